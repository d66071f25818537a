"""The degradation experiment as the app runs it against the same experiment in-process:
the app's training time over the bench's. Target: at most 1.2.

The app side is the real thing: `streamlit run` on a free loopback port, Debian's
Chromium (headless, through Playwright) on Compare at a projector's 1600x1000, the
Degradation tab's own steps box and button, and the live tab watching until the run
finishes; its training time is the one the page reports (the run's own clock, pauses
excluded: core.experiments.training_seconds, read from the progress bar). The bench side
is bench/degradation.py's way: the same four nets, data and settings
(core.experiments.degradation), trained one after the other in this process, on the same
number of torch threads as the app gives a run (app.services.threads_per_job: the cores
less one for the server; on a busy 2-core machine a run on both cores is several times
slower, its threads waiting on each other).

On a shared machine the load moves: the bench side runs before and after the app, and
the ratio is against their mean.

Run: .venv/bin/python bench/app_vs_bench.py [--steps 30]
"""

from __future__ import annotations

import argparse
import os
import re
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import _util
import torch
from degradation import train_in_process

from app.services import threads_per_job
from core import experiments
from core.data import load

CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
ARGS = [  # as tests/e2e/test_browser.py
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-dev-shm-usage",
]
TARGET = 1.2


def bench_seconds(steps: int, threads: int) -> float:
    """Training seconds of the experiment in this process, as bench/degradation.py trains,
    on as many torch threads as the app gives a run."""
    torch.set_num_threads(threads)
    exp = experiments.degradation(steps)
    data = load(exp.data)
    trained = train_in_process(data, exp.specs, exp.config, seed=exp.config.seed)
    return sum(seconds for _, seconds in trained.values())


def _free_port() -> int:
    """A free port in 20000-30000 on the loopback address."""
    for port in range(20000 + os.getpid() % 9000, 30000):
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError("no free port in 20000-30000")


def _wait(condition, timeout: float, what: str, every: float = 0.5):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(every)
    raise TimeoutError(f"waited {timeout:.0f} s for {what}")


def _healthy(url: str, proc: subprocess.Popen) -> bool:
    if proc.poll() is not None:
        raise RuntimeError(f"streamlit exited early:\n{proc.stdout.read()}")
    try:
        with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as r:
            return r.read().strip() == b"ok"
    except OSError:
        return False


def _reported_seconds(text: str) -> float | None:
    """The training time in a finished run's progress label ('… · 1 min 05 s of training')."""
    match = re.search(r"(?:(\d+) min )?([\d.]+) s of training", text)
    return int(match.group(1) or 0) * 60 + float(match.group(2)) if match else None


def app_seconds(steps: int, timeout: float) -> float:
    """Training seconds of the experiment run by the app, as its page reports them."""
    from playwright.sync_api import sync_playwright

    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    with tempfile.TemporaryDirectory() as data_dir:
        env = {**os.environ, "RESNET_EXPLORER_DATA": data_dir}
        command = [sys.executable, "-m", "streamlit", "run", "app/streamlit_app.py"]
        command += ["--server.port", str(port), "--server.address", "127.0.0.1"]
        command += ["--server.headless", "true", "--browser.gatherUsageStats", "false"]
        proc = subprocess.Popen(
            command, cwd=_util.ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
        )
        try:
            _wait(lambda: _healthy(url, proc), 90, f"{url}/_stcore/health", every=0.2)
            with sync_playwright() as p:
                browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
                page = browser.new_page(viewport={"width": 1600, "height": 1000})
                page.set_default_timeout(120_000)
                page.goto(url)
                page.get_by_role("link", name="Compare").click()
                page.get_by_role("heading", name="Compare plain and residual").wait_for()
                page.get_by_role("tab", name="Degradation (He et al. Fig. 1)").click()
                box = page.get_by_label("Steps per net")
                box.fill(str(steps))
                box.press("Enter")
                page.get_by_text(f"{steps:,} steps each").wait_for()
                page.get_by_role("button", name="Run the experiment").click()
                progress = page.locator('[data-testid="stProgress"]').first

                said = [0.0]

                def finished():
                    text = progress.inner_text() if progress.count() else ""
                    if time.monotonic() - said[0] > 30:  # a sign of life on a slow machine
                        print(f"  app: {text or 'no progress bar yet'}", flush=True)
                        said[0] = time.monotonic()
                    return _reported_seconds(text) if "finished" in text else None

                try:
                    seconds = _wait(finished, timeout, "the experiment to finish in the app")
                except TimeoutError:
                    shot = Path(tempfile.gettempdir()) / "app_vs_bench.png"
                    page.screenshot(path=str(shot), full_page=True)
                    print(f"  the page as it was: {shot}")
                    raise
                browser.close()
                return float(seconds)
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()


def main(argv=None) -> float:
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=30, help="steps per net, on both sides")
    ap.add_argument("--timeout", type=float, default=1800, help="seconds to wait for the app")
    args = ap.parse_args(argv)
    _util.header(f"app vs bench: the degradation experiment, {args.steps} steps per net")
    threads = threads_per_job(int(os.environ.get("RESNET_EXPLORER_MAX_RUNNING", "1")))
    print(f"torch threads on both sides: {threads} (app.services.threads_per_job)")
    before = bench_seconds(args.steps, threads)
    print(f"bench (in process), before: {before:.1f} s of training")
    app = app_seconds(args.steps, args.timeout)
    print(f"app (server + browser watching): {app:.1f} s of training, as the page reports")
    after = bench_seconds(args.steps, threads)
    print(f"bench (in process), after: {after:.1f} s of training")
    ratio = app / ((before + after) / 2)
    print(f"ratio app/bench {ratio:.2f} (target <= {TARGET})")
    return ratio


if __name__ == "__main__":
    main()
