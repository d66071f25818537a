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
import tempfile
import time
from pathlib import Path

import _util
import torch
from degradation import train_in_process

from app.services import threads_per_job
from core import experiments
from core.data import load
from tests.e2e.serving import browser_page, start_server
from tests.waiting import wait_for

TARGET = 1.2


def bench_seconds(steps: int, threads: int) -> float:
    """Training seconds of the experiment in this process, as bench/degradation.py trains,
    on as many torch threads as the app gives a run."""
    torch.set_num_threads(threads)
    exp = experiments.degradation(steps)
    data = load(exp.data)
    trained = train_in_process(data, exp.specs, exp.config, seed=exp.config.seed)
    return sum(seconds for _, seconds in trained.values())


def _reported_seconds(text: str) -> float | None:
    """The training time in a finished run's progress label ('… · 1 min 05 s of training')."""
    match = re.search(r"(?:(\d+) min )?([\d.]+) s of training", text)
    return int(match.group(1) or 0) * 60 + float(match.group(2)) if match else None


def app_seconds(steps: int, timeout: float) -> float:
    """Training seconds of the experiment run by the app, as its page reports them."""
    view = {"width": 1600, "height": 1000}
    with (
        tempfile.TemporaryDirectory() as data_dir,
        start_server({"RESNET_EXPLORER_DATA": data_dir}) as (url, _),
        browser_page(120_000, viewport=view) as page,
    ):
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

        what = "the experiment to finish in the app"
        try:
            seconds = wait_for(finished, timeout, what, every=0.5)
        except AssertionError:
            shot = Path(tempfile.gettempdir()) / "app_vs_bench.png"
            page.screenshot(path=str(shot), full_page=True)
            print(f"  the page as it was: {shot}")
            raise
        return float(seconds)


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
