"""A class on one server (issue 14, "Load, measured"): the real `streamlit run`, then N
simulated students, each a Playwright context of Debian's Chromium (its own `?me=` token),
that open the Train page, start a small run and watch its live status and charts for a
fixed time. Loopback only; bounded in students, seconds and cycles.

Printed:
- `/_stcore/health` latency p50/p95/max with no session, with one student training
  alone, and during the class (and how many checks failed);
- what the students saw: the gaps between updates of their run's status line and of its
  charts (p50/p95/max), beside the period the page asks for;
- the class's aggregate training throughput (steps a second, all runs, from the store)
  against one student alone on the same server (target >= 0.85);
- the server process's threads and RSS before, after the class and after `--cycles`
  sessions opened and closed;
- that no student's page ever showed another student's run: each student trains for a
  different number of epochs, so its run's total steps name it, and every status line a
  page showed must carry its own run's total.

Targets on this 2-core CPU with N = 10: health p95 <= 1 s, refresh p95 <= 2 s, no error.
Run: .venv/bin/python bench/classroom_load.py [--students 10] [--seconds 60]
"""

from __future__ import annotations

import argparse
import itertools
import re
import sqlite3
import statistics
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

import _util

from tests.e2e.serving import launch, start_server

VIEW = {"width": 1280, "height": 900}
BASE_EPOCHS = 300  # student i trains BASE_EPOCHS + i epochs: its total steps name its run
WATCH = """
window.__seen = {status: [], charts: []};
new MutationObserver((records) => {
  const now = performance.now(), seen = window.__seen;
  const bar = document.querySelector('[data-testid="stProgress"]');
  const text = bar ? bar.innerText : null;
  const last = seen.status[seen.status.length - 1];
  if (text && (!last || last[1] !== text)) seen.status.push([now, text]);
  const inChart = records.some(r => {
    const el = r.target.nodeType === 1 ? r.target : r.target.parentElement;
    return el && el.closest('[data-testid="stPlotlyChart"]');
  });
  const lastChart = seen.charts[seen.charts.length - 1];
  if (inChart && (!lastChart || now - lastChart[0] > 250)) seen.charts.push([now, ""]);
}).observe(document, {subtree: true, childList: true, characterData: true});
"""


# -- the server's side -----------------------------------------------------------------


class HealthPoller:
    """/_stcore/health every `every` seconds in a thread, latencies kept per phase."""

    def __init__(self, url: str, every: float = 0.1):
        self.url, self.every = url, every
        self.phase, self.times, self.failed = "idle", {}, {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        while not self._stop.is_set():
            start = time.perf_counter()
            try:
                with urllib.request.urlopen(f"{self.url}/_stcore/health", timeout=10) as r:
                    ok = r.read().strip() == b"ok"
            except OSError:
                ok = False
            ms = (time.perf_counter() - start) * 1e3
            target = self.times if ok else self.failed
            target.setdefault(self.phase, []).append(ms)
            self._stop.wait(self.every)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(15)


def process_stats(pid: int) -> dict:
    """Threads and resident memory (MB) of the server process."""
    fields = dict(
        line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines()
    )
    return {"threads": int(fields["Threads"]), "rss_mb": int(fields["VmRSS"].split()[0]) / 1024}


def stored_steps(data: Path) -> dict[str, tuple[str, int, int]]:
    """run id -> (owner, stored step, total steps), read from the store's file."""
    path = data / "runs.sqlite"
    if not path.exists():
        return {}
    with sqlite3.connect(f"{path.as_uri()}?mode=ro", uri=True) as db:
        rows = db.execute("SELECT id, owner, step, total_steps FROM runs").fetchall()
    return {rid: (owner, step, total) for rid, owner, step, total in rows}


def training(data: Path, owners: set[str], runs: int, timeout: float = 300) -> None:
    """Until `runs` runs of `owners` have stored a step (their workers have started)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        started = [s for o, s, _ in stored_steps(data).values() if o in owners and s > 0]
        if len(started) >= runs:
            return
        time.sleep(0.2)
    raise RuntimeError(f"fewer than {runs} runs started training within {timeout:.0f} s")


def throughput(data: Path, seconds: float, owners: set[str]) -> float:
    """Steps a second over the next `seconds`, summed over the runs of `owners`."""
    before, start = stored_steps(data), time.monotonic()
    time.sleep(seconds)  # the measuring window itself, not a wait for a condition
    after, took = stored_steps(data), time.monotonic() - start
    done = sum(
        step - before.get(rid, (owner, 0, 0))[1]
        for rid, (owner, step, _) in after.items()
        if owner in owners
    )
    return done / took


# -- the students' side ------------------------------------------------------------------


def start_student(browser, url: str, epochs: int):
    """A new browser context on the Train page, a run of `epochs` started; (context, page)."""
    context = browser.new_context(viewport=VIEW)
    context.add_init_script(WATCH)
    page = context.new_page()
    page.set_default_timeout(180_000)
    page.goto(f"{url}/train")
    page.get_by_role("heading", name="Train").wait_for()
    field = page.get_by_label("Epochs")
    field.fill(str(epochs))
    field.press("Tab")
    page.get_by_role("button", name="Start training").click()
    shown = page.locator('[data-testid="stProgress"], [data-testid="stAlert"]').first
    shown.wait_for()  # its progress bar, or its place in the queue, or why it could not start
    if "Could not start" in shown.inner_text():
        raise RuntimeError(f"a student's run was refused: {shown.inner_text()}")
    return context, page


def owner_of(page) -> str:
    match = re.search(r"[?&]me=([0-9a-f]{32})", page.url)
    return match.group(1) if match else ""


def stop_run(page, data: Path, timeout: float = 120) -> None:
    """Click the page's Stop and wait until the store says the run ended, so the context
    is not closed before the click has reached the server."""
    button = page.get_by_role("button", name="Stop")
    if not button.count():
        return
    button.first.click()
    path, deadline = data / "runs.sqlite", time.monotonic() + timeout
    while time.monotonic() < deadline:
        with sqlite3.connect(f"{path.as_uri()}?mode=ro", uri=True) as db:
            q = "SELECT COUNT(*) FROM runs WHERE owner = ? AND status IN ('queued', 'running')"
            if db.execute(q, (owner_of(page),)).fetchone()[0] == 0:
                return
        time.sleep(0.2)


def gaps(stamps: list[list]) -> list[float]:
    times = [t for t, _ in stamps]
    return [(b - a) / 1e3 for a, b in itertools.pairwise(times)]


def quantiles(values: list[float]) -> str:
    if len(values) < 2:
        return f"{len(values)} samples"
    p95 = statistics.quantiles(values, n=20, method="inclusive")[18]
    return f"p50 {statistics.median(values):.2f}, p95 {p95:.2f}, max {max(values):.2f}"


def open_close(browser, url: str, cycles: int) -> int:
    """Open the app in a fresh context and close it, `cycles` times; failures counted."""
    failed = 0
    for _ in range(cycles):
        context = browser.new_context(viewport=VIEW)
        try:
            page = context.new_page()
            page.set_default_timeout(60_000)
            page.goto(f"{url}/train")
            page.get_by_role("heading", name="Train").wait_for()
        except Exception:  # a refused or stuck session: counted, the bench goes on
            failed += 1
        finally:
            context.close()
    return failed


# -- the bench ---------------------------------------------------------------------------


def isolation(pages: list, data: Path) -> list[str]:
    """Students whose page showed a run that is not theirs (a run still queued at the end
    has shown none: that is no problem)."""
    runs = stored_steps(data)
    problems = []
    for i, page in enumerate(pages):
        own = {total for owner, _, total in runs.values() if owner == owner_of(page)}
        seen = page.evaluate("window.__seen.status.map(s => s[1])")
        totals = {int(m.replace(",", "")) for t in seen for m in re.findall(r"of ([\d,]+)", t)}
        if len(own) != 1 or not totals <= own:
            problems.append(f"student {i}: own run totals {own}, shown {totals}")
    return problems


def class_phase(browser, url, data, args, health) -> dict:
    """N students start runs and watch them for `--seconds`; what they saw."""
    health.phase, students = "starting", []
    for i in range(args.students):
        students.append(start_student(browser, url, BASE_EPOCHS + i))
    owners = {owner_of(page) for _, page in students}
    training(data, owners, min(args.students, args.max_running))
    health.phase = "class"
    rate = throughput(data, args.seconds, owners)
    seen = [page.evaluate("window.__seen") for _, page in students]
    problems = isolation([page for _, page in students], data)
    for context, page in students:
        stop_run(page, data)
        context.close()
    return {
        "rate": rate,
        "status_gaps": [g for s in seen for g in gaps(s["status"])],
        "chart_gaps": [g for s in seen for g in gaps(s["charts"])],
        "problems": problems,
    }


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser()
    ap.add_argument("--students", type=int, default=10)
    ap.add_argument("--seconds", type=float, default=60.0, help="how long the class watches")
    ap.add_argument("--alone-seconds", type=float, default=None, help="default: --seconds")
    ap.add_argument("--cycles", type=int, default=200, help="sessions opened and closed")
    ap.add_argument("--max-running", type=int, default=2, help="runs that train at once")
    args = ap.parse_args(argv)
    _util.header(f"classroom load: {args.students} students for {args.seconds:.0f} s")
    from playwright.sync_api import sync_playwright

    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp)
        env = {
            "RESNET_EXPLORER_DATA": str(data),
            "RESNET_EXPLORER_MAX_RUNNING": str(args.max_running),
            "RESNET_EXPLORER_MAX_PER_USER": "3",
        }
        with start_server(env) as (url, proc), sync_playwright() as p:
            browser = launch(p)
            health = HealthPoller(url)
            time.sleep(5)  # idle health: the sampling window
            stats = {"before": process_stats(proc.pid)}
            health.phase = "starting"  # a page loads, a worker starts: counted apart
            context, page = start_student(browser, url, BASE_EPOCHS - 1)
            training(data, {owner_of(page)}, 1)
            health.phase = "alone"
            alone = throughput(data, args.alone_seconds or args.seconds, {owner_of(page)})
            stop_run(page, data)
            context.close()
            seen = class_phase(browser, url, data, args, health)
            health.phase = "after"
            time.sleep(5)  # sessions and workers wind down
            stats["after the class"] = process_stats(proc.pid)
            failed_cycles = open_close(browser, url, args.cycles)
            time.sleep(5)
            stats[f"after {args.cycles} open/close"] = process_stats(proc.pid)
            health.stop()
            browser.close()
    return report(args, health, stats, alone, seen, failed_cycles)


def report(args, health, stats, alone, seen, failed_cycles) -> dict:
    for phase in ("idle", "alone", "class"):
        times, failed = health.times.get(phase, []), len(health.failed.get(phase, []))
        print(f"health {phase:>5}: {len(times)} checks, {failed} failed, ms {quantiles(times)}")
    print(f"status line gaps, s (asked: 1 s per arm): {quantiles(seen['status_gaps'])}")
    print(f"chart gaps, s (asked: 5 s per arm): {quantiles(seen['chart_gaps'])}")
    ratio = seen["rate"] / alone if alone else 0.0
    print(
        f"throughput: alone {alone:.1f} steps/s, class {seen['rate']:.1f} steps/s, "
        f"ratio {ratio:.2f} (target >= 0.85)"
    )
    for when, s in stats.items():
        print(f"server {when}: {s['threads']} threads, {s['rss_mb']:.0f} MB RSS")
    print(f"open/close cycles failed: {failed_cycles} of {args.cycles}")
    print("isolation: " + ("every page showed only its own run" if not seen["problems"] else ""))
    for problem in seen["problems"]:
        print(f"  {problem}")
    return {"ratio": ratio, "problems": seen["problems"], "stats": stats, "health": health}


if __name__ == "__main__":
    main()
