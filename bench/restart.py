"""Restart: from `kill -9` of the server's process (the process that holds the job manager,
as the Streamlit server does) to its runs listed again by a new one, with the runs that
were training marked "interrupted at step N", and on to the first new step after Resume.

A child process opens a store that already holds `--stored` finished runs (of
`--stored-steps` steps each), starts `--training` runs in worker processes and reports
their steps; when each has stored `--kill-at` steps it is killed with SIGKILL. Then, in
this process: a new ProcessJobManager on the same data folder (which marks the runs it
finds active as interrupted) and `list` of the owner's runs, timed from the kill. The
killed server's workers see their pipe close and end within a step; their runs stay
interrupted (not failed) and resume from their last checkpoint.

Run: .venv/bin/python bench/restart.py [--rounds 3]
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import _util

from core.config import TrainConfig
from core.data import DataRequest
from core.presets import PRESETS
from core.run import Arm
from core.store import RunStore
from core.store_writer import RunWriter
from core.telemetry import StepRecord
from core.workers import ProcessJobManager

OWNER = "class"


def tiny_spec(key: str = "resnet8_narrow", classes: int = 6):
    return PRESETS[key].spec(input_shape=(3, 8, 8), num_classes=classes)


MANAGER = dict(max_running=2, threads_per_job=1, checkpoint_every=10, flush_s=0.2)


def fill(root: Path, runs: int, steps: int) -> None:
    """`runs` finished runs of `steps` steps each (two arms, eight layers), as a class
    that trained before would leave them."""
    store = RunStore(root)
    layers = [f"layer{i}" for i in range(8)]
    norms = tuple(0.5 for _ in layers)
    for r in range(runs):
        arms = {"plain": tiny_spec("plain8_narrow"), "residual": tiny_spec()}
        rid = store.create_run(OWNER, f"earlier {r}", arms=arms, config=TrainConfig(steps=steps))
        writer = RunWriter(store, rid, every_s=3600, every_n=10**9)
        for arm in arms:
            writer.arm(arm, layers=layers)
            for s in range(1, steps + 1):
                writer.step(arm, StepRecord(s, s / 100, 1.0, 0.5, 0.1, norms, norms, norms))
        writer.close()
        store.finish(rid, "finished", results={"step": steps})
    store.close()


def serve(root: str, training: int) -> None:
    """The child: the server's process with its manager, training until it is killed."""
    mgr = ProcessJobManager(root, **MANAGER)
    request = DataRequest(name="shapes", size=8, n=240)
    arms = [Arm("Plain 8", tiny_spec("plain8_narrow")), Arm("ResNet-8", tiny_spec())]
    cfg = TrainConfig(steps=100_000, batch_size=16, eval_every=50, device="cpu", precision="fp32")
    jobs = [mgr.submit(OWNER, f"training {i}", arms, request, cfg) for i in range(training)]
    while True:
        infos = [mgr.info(j, OWNER) for j in jobs]
        pids = [mgr.worker_pid(j) for j in jobs]
        print(json.dumps({"steps": [i.step for i in infos], "pids": pids}), flush=True)
        time.sleep(0.2)


def one_round(root: Path, args) -> dict:
    child = subprocess.Popen(
        [sys.executable, __file__, "--serve", str(root), "--training", str(args.training)],
        stdout=subprocess.PIPE,
        text=True,
        cwd=_util.ROOT,
    )
    seen: dict = {}
    for line in child.stdout:
        seen = json.loads(line)
        if min(seen["steps"]) >= args.kill_at:
            break
    else:
        raise SystemExit(f"the server child ended early with code {child.wait()}")
    killed = time.perf_counter()
    os.kill(child.pid, signal.SIGKILL)
    child.wait()
    opened = time.perf_counter()
    mgr = ProcessJobManager(root, **MANAGER)  # marks what was active as interrupted
    listed = mgr.list(OWNER)
    done = time.perf_counter()
    interrupted = [i for i in listed if i.status == "interrupted"]
    workers_gone = _wait_gone([p for p in seen["pids"] if p], 60)
    statuses = sorted({mgr.info(i.id, OWNER).status for i in interrupted})
    result = {
        "kill_to_listed_s": done - killed,
        "open_and_list_s": done - opened,
        "listed": len(listed),
        "interrupted": len(interrupted),
        "message": interrupted[0].message if interrupted else "",
        "after_workers_ended": statuses,
        "workers_gone_s": workers_gone,
    }
    if args.resume and interrupted:
        job = interrupted[0].id
        start = mgr.info(job, OWNER).step
        mgr.resume(job, OWNER)
        t = time.perf_counter()
        while mgr.info(job, OWNER).step <= start and time.perf_counter() - t < 300:
            time.sleep(0.05)
        result["kill_to_training_again_s"] = time.perf_counter() - killed
        result["steps_resumed_from"] = start
    mgr.shutdown()
    for info in listed:  # until the monitors have written what the shutdown ended
        mgr.wait(info.id, 30)
    mgr.store.close()
    return result


def _wait_gone(pids: list[int], timeout: float) -> float:
    """Seconds until every orphaned worker has exited."""
    start = time.perf_counter()
    while time.perf_counter() - start < timeout:
        alive = []
        for pid in pids:
            try:
                os.kill(pid, 0)
                alive.append(pid)
            except ProcessLookupError:
                pass
        if not alive:
            break
        time.sleep(0.05)
    return time.perf_counter() - start


def main(argv=None) -> list[dict]:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--stored", type=int, default=30, help="finished runs stored before")
    ap.add_argument("--stored-steps", type=int, default=2000)
    ap.add_argument("--training", type=int, default=2, help="runs training at the kill")
    ap.add_argument("--kill-at", type=int, default=25, help="steps each run has stored")
    ap.add_argument("--no-resume", dest="resume", action="store_false")
    ap.add_argument("--serve", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.serve:
        serve(args.serve, args.training)
        return []
    _util.header("restart: kill -9 of the server's process to its runs listed again")
    results = []
    for r in range(args.rounds):
        with tempfile.TemporaryDirectory() as tmp:
            root = Path(tmp)
            fill(root, args.stored, args.stored_steps)
            result = one_round(root, args)
        results.append(result)
        print(f"round {r + 1}: " + ", ".join(f"{k}={_fmt(v)}" for k, v in result.items()))
    for key in ("kill_to_listed_s", "open_and_list_s", "kill_to_training_again_s"):
        values = [r[key] for r in results if key in r]
        if values:
            print(f"{key}: median {statistics.median(values):.3f} s over {len(values)} rounds")
    print(f"# {args.stored} stored runs of {args.stored_steps} steps, {args.training} training")
    return results


def _fmt(value) -> str:
    return f"{value:.3f}" if isinstance(value, float) else repr(value)


if __name__ == "__main__":
    main()
