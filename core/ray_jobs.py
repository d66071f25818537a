"""The Ray backend: every run trains in its own Ray actor, on whichever machine of a Ray
cluster has room for it, while the app's process keeps the queue, the owners and the
run store.

It is the process backend (`core.workers.ProcessJobManager`) with another way to start
a run's worker and to talk to it. The queue, owners and caps, commands to queued or
released runs, pause release, resume, copy_model and everything a page reads (`info`,
`list`, `logs`: the store) are that class's own, so both keep one contract
(tests/core/test_backend_contract.py). What differs:

- Where a run trains: an actor (`core.ray_run.RunActor`) asking Ray for
  `threads_per_job` CPUs and, when the cluster has GPUs and the run may use one, the
  share of a GPU its estimated training memory takes (`core.jobs_api.check_device_memory`
  over the GPU's memory), so Ray packs small runs onto one GPU and places the rest on
  other machines.
- Commands: actor calls, numbered so they are applied in the order they were sent.
- Metrics: a thread per run pulls the actor's new records every `pull_s` seconds, in one
  batch, and hands them to a RunWriter: pages read the store as they do for processes.
- Checkpoints and results: sent back to the app's process and written through its store
  there; nothing is written by the actor. Why not shared storage: the store is one
  SQLite file, which must not be written from several machines over a network
  filesystem, and a cluster's machines need not see the app's disk at all. A checkpoint
  of the networks this app trains is a few MB, sent every `checkpoint_every` steps, at a
  pause and at the end; so the cluster needs no shared storage, and a run's curves and
  last checkpoint outlive both its actor and the app (a lost actor leaves the run
  interrupted, and Resume continues it from that checkpoint).
- Data: loaded in the app's process (uploads and downloads are on its disk) and sent to
  the actor once, as safetensors bytes through Ray's object store. Code: a cluster's
  machines get this `core` package from the app (Ray's `py_modules`); they need only the
  same Python packages.

Ray moves values between the app and its actors with its own serializer (pickle), so the
cluster must be private to the app, as Ray's documentation asks of every cluster. Nothing
a user uploads is unpickled: a dataset travels as safetensors bytes.

`ray` is imported only when this backend is chosen (RESNET_EXPLORER_BACKEND=ray); without
it, `import_ray` says how to install it.
"""

from __future__ import annotations

import functools
import itertools
import logging
import math
import os
import re
import threading
import time
from pathlib import Path

import torch

from core.arm_init import init_path
from core.checkpoint import atomic_write
from core.data import load
from core.jobs_api import JobError, check_device_memory
from core.ray_run import RELEASED, RunActor
from core.run import ACTIVE, FAILED, RUNNING, Arm, failure_message
from core.spec import NetSpec
from core.store_writer import RunWriter
from core.worker_process import data_to_bytes
from core.workers import ProcessJobManager

log = logging.getLogger("resnet_explorer.ray")
PULL_S = 0.25  # the manager collects each actor's records this often
CALL_TIMEOUT_S = 60.0  # a pull that takes longer means the actor is stuck or gone
LOCAL_CPUS_ENV = "RESNET_EXPLORER_RAY_CPUS"  # CPUs of a local Ray instance (no RAY_ADDRESS)
GPU_MEMORY_ENV = "RESNET_EXPLORER_RAY_GPU_GB"  # one cluster GPU's memory, for GPU shares
_ANSI = re.compile(r"\x1b\[[0-9;]*m")  # Ray colours its error texts
RAY_MISSING = (
    "RESNET_EXPLORER_BACKEND=ray needs Ray, which is not installed here: run "
    "`pip install ray` (on this machine and on every machine of the cluster), or unset "
    "RESNET_EXPLORER_BACKEND to train on this server"
)


def import_ray():
    """The `ray` module, or a JobError that says how to get it."""
    try:
        import ray
    except ImportError:
        raise JobError(RAY_MISSING) from None
    return ray


def connect(address: str | None = None) -> None:
    """Join the Ray cluster at `address` (default: $RAY_ADDRESS), or start a local Ray
    instance with $RESNET_EXPLORER_RAY_CPUS CPUs (default: all); nothing when this
    process is connected already (a test's own `ray.init`)."""
    ray = import_ray()
    if ray.is_initialized():
        return
    address = address or os.environ.get("RAY_ADDRESS", "").strip() or None
    if address is not None:  # the cluster's machines get `core` from here, as Ray ships it
        code = {"py_modules": [str(Path(__file__).resolve().parent)]}
        ray.init(address=address, runtime_env=code, log_to_driver=False)
        return
    cpus = os.environ.get(LOCAL_CPUS_ENV, "").strip()
    start = functools.partial(
        ray.init,
        num_cpus=int(cpus) if cpus.isdigit() and int(cpus) > 0 else None,
        include_dashboard=False,
        log_to_driver=False,
    )
    if threading.current_thread() is threading.main_thread():
        start()
    else:
        _start_in_a_lasting_thread(start)


def _start_in_a_lasting_thread(start) -> None:
    """Run `start` (which starts a local Ray instance) in a thread that lives as long as
    this process. Ray starts its head processes (GCS, raylet) with PR_SET_PDEATHSIG,
    which Linux ties to the thread that started them: started from a Streamlit page
    run's thread, they were killed as soon as that run ended (and the app with them,
    a minute later)."""
    started, failed = threading.Event(), []

    def keep() -> None:
        try:
            start()
        except BaseException as e:  # handed to the caller below
            failed.append(e)
        finally:
            started.set()
        threading.Event().wait()  # never returns: the head lives as long as the process

    threading.Thread(target=keep, name="ray-head", daemon=True).start()
    started.wait()
    if failed:
        raise failed[0]


def gpu_share(needed: int, gpu_bytes: int | None) -> float:
    """The share of one GPU a run asks Ray for: its training memory over the GPU's,
    rounded up to a hundredth; a whole GPU when the GPU's memory is not known."""
    if not gpu_bytes:
        return 1.0
    return min(1.0, max(0.01, math.ceil(100 * needed / gpu_bytes) / 100))


def gpu_bytes_known() -> int | None:
    """One cluster GPU's memory: $RESNET_EXPLORER_RAY_GPU_GB, else this machine's first
    GPU (the usual case: the app runs on the GPU box that heads the cluster)."""
    gb = os.environ.get(GPU_MEMORY_ENV, "").strip()
    if gb:
        return int(float(gb) * 2**30)
    if torch.cuda.is_available():
        return torch.cuda.get_device_properties(0).total_memory
    return None


class RayJobManager(ProcessJobManager):
    """Runs jobs as Ray actors, over a RunStore in this process.

    Args:
        root, max_running, max_per_owner, max_queue, threads_per_job, pause_release_s,
            checkpoint_every, flush_s: as ProcessJobManager (`threads_per_job` is also
            the number of CPUs each run asks Ray for).
        address: the cluster (default: $RAY_ADDRESS; neither: a local Ray instance).
        gpu_bytes: one cluster GPU's memory (default: `gpu_bytes_known()`).
        pull_s: how often each run's records are collected.
    """

    def __init__(self, root=None, *, address=None, gpu_bytes=None, pull_s=PULL_S, **limits):
        self.ray = import_ray()
        connect(address)
        super().__init__(root, **limits)
        self.gpu_bytes = gpu_bytes or gpu_bytes_known()
        self.pull_s = pull_s
        self._actor = self.ray.remote(RunActor)
        self._calls: dict[str, itertools.count] = {}  # run -> its actor's command numbers

    # -- where the process backend starts a worker and talks to it --------------------------

    def _spawn(self, slot) -> None:
        """Start the run's actor from a thread of its own. Caller holds the lock."""
        row = self.store.run(slot.id)
        specs = self.store.specs(slot.id)
        job = {
            "config": row.config_json,
            "arms": {a: (now or start).to_json(indent=None) for a, (start, now) in specs.items()},
            "threads": self.threads_per_job,
            "checkpoint_every": self.checkpoint_every,
            "scheduled": self._scheduled.get(slot.id, []) if slot.resume else [],
        }
        slot.conn, slot.ready, slot.report = None, False, {}
        slot.paused_since, slot.releasing, slot.released = None, False, False
        self._calls[slot.id] = itertools.count()  # a new actor counts from 0
        self.store.update_run(slot.id, status=RUNNING, message="")
        self._running.add(slot.id)
        name = f"ray-{slot.id}"
        threading.Thread(target=self._follow, args=(slot, row, job), name=name, daemon=True).start()

    def _call(self, slot, raw: dict) -> bool:
        """A numbered actor call, so the actor applies commands in the order sent."""
        slot.conn.command.remote(next(self._calls[slot.id]), raw)
        return True

    def _interrupt(self, slot) -> None:
        """Nothing to raise: the actor looks at its commands between steps."""

    def shutdown(self, timeout: float = 10.0) -> None:
        """Kill every actor (their runs become interrupted, resumable from a checkpoint)."""
        with self._lock:
            actors = [s.conn for s in self._slots.values() if s.conn is not None]
        for actor in actors:
            self.ray.kill(actor)
        with self._lock:
            slots = [s for s in self._slots.values() if s.id in self._running]
        for slot in slots:
            slot.done.wait(timeout)

    # -- one run's thread -----------------------------------------------------------------

    def _follow(self, slot, row, job: dict) -> None:
        """Start the actor, collect its records until it is done, settle the run."""
        writer = RunWriter(self.store, slot.id, every_s=self.flush_s)
        try:
            actor, done = self._start_actor(slot, row, job)
        except Exception as e:  # the data would not load, Ray refused the actor
            log.error("run %s (%s) could not start on Ray", slot.id, slot.name, exc_info=e)
            result = {"status": FAILED, "message": failure_message(e, None)}
        else:
            result = self._collect(slot, actor, done, writer)
            self.ray.kill(actor)  # its process goes; what it had to say is here
        writer.close()
        self._settle(slot, result)
        self._ended(slot, 0)

    def _start_actor(self, slot, row, job: dict):
        data = slot.data
        if data is None:  # loaded here, where the uploads are; cached per process
            data = load(slot.request, root=row.data.get("root"))
        checkpoints = None
        if slot.resume:  # prepare_resume checked that every arm has one
            checkpoints = {a: self.store.checkpoint_path(slot.id, a).read_bytes() for a in row.arms}
        cpus, gpus = self._resources(row, job)
        actor = self._actor.options(num_cpus=cpus, num_gpus=gpus, max_concurrency=4).remote(job)
        inits = {  # a transfer's initial weights, as the process backend keeps them
            a: path.read_bytes()
            for a in row.arms
            if (path := init_path(self.store, slot.id, a)).is_file()
        }
        done = actor.train.remote(self.ray.put(data_to_bytes(data)), checkpoints, inits)
        with self._lock:
            slot.conn, slot.ready = actor, True
            for command in slot.pending:
                self._deliver(slot, command)
            slot.pending.clear()
        return actor, done

    def _resources(self, row, job: dict) -> tuple[float, float]:
        """(CPUs, GPU share) the run's actor asks Ray for."""
        cpus = float(job["threads"])
        config = row.config
        if config.device in ("cpu", "mps") or not self.ray.cluster_resources().get("GPU"):
            return cpus, 0.0
        arms = [Arm(a, NetSpec.from_json(s)) for a, s in job["arms"].items()]
        needed = check_device_memory(arms, config.batch_size, None)
        return cpus, gpu_share(needed, self.gpu_bytes)

    def _collect(self, slot, actor, done, writer: RunWriter) -> dict:
        """Pull records until `train` has returned; its answer."""
        ray, asked = self.ray, None
        while True:
            finished, _ = ray.wait([done], timeout=self.pull_s)
            asked = asked or actor.pull.remote()  # after `train` returned: the last records
            try:
                self._hear(slot, ray.get(asked, timeout=CALL_TIMEOUT_S), writer)
                asked = None
            except ray.exceptions.GetTimeoutError:
                continue  # a long step holds the actor: this pull's answer comes later
            except ray.exceptions.RayError:
                if not finished:
                    ray.wait([done], timeout=CALL_TIMEOUT_S)  # gone: `done` says how
                    finished = [done]
            if finished:
                break
            self._maybe_release(slot)
            self._check_time(slot)  # the owner's training time, as the process backend
        try:
            return ray.get(done)
        except ray.exceptions.RayError as e:  # the actor died: node lost, killed
            return {"status": "lost", "message": "", "error": str(e)}

    def _hear(self, slot, items: dict, writer: RunWriter) -> None:
        """One pull's records into the store (rows, then checkpoints, then the status:
        a page that sees 'paused' finds the paused weights)."""
        for arm, (layers, names) in items["arms"].items():
            writer.arm(arm, layers=layers, param_names=names)
        for arm, record in items["steps"]:
            writer.step(arm, record)
        for arm, record in items["evals"]:
            writer.eval(arm, record)
        for arm, event in items["events"]:
            writer.event(arm, event)
        for arm, text in items["specs"].items():
            writer.arm(arm, spec=NetSpec.from_json(text))
        if items["checkpoints"]:
            writer.flush()  # rows first: a checkpoint never runs ahead of the stored curve
            self._write_checkpoints(slot.id, items["checkpoints"])
        report = items.get("report")
        if report is not None:
            self._report(slot, report)

    def _write_checkpoints(self, run_id: str, checkpoints: dict[str, bytes]) -> None:
        if not self.store.saving:
            return  # an in-memory store keeps no files
        self.store.run_dir(run_id).mkdir(parents=True, exist_ok=True)
        for arm, data in checkpoints.items():
            atomic_write(self.store.checkpoint_path(run_id, arm), data)
        self.store.refresh_file_bytes(run_id)

    def _report(self, slot, report: dict) -> None:
        with self._lock:
            before = slot.report.get("status")
            slot.hear({"kind": "report", **report})
        if before is None:  # the run is built: what it trains on
            results = {"classes": report["classes"]}
            self.store.update_run(
                slot.id, device=report["device"], total_steps=report["total"], results=results
            )
        if report["status"] != before and report["status"] in ACTIVE:
            self.store.update_run(slot.id, status=report["status"])

    def _settle(self, slot, result: dict) -> None:
        """The run's row, from what `train` answered."""
        status = result["status"]
        if status == RELEASED:  # paused, its state in its checkpoint: Resume queues it
            with self._lock:
                slot.released = True
            return
        if status == "lost":
            self._lost(slot, result["error"])
            return
        if "error" in result:  # the traceback goes to the server log, not the page
            error = result["error"]
            log.error("run %s (%s) failed in its Ray actor:\n%s", slot.id, slot.name, error)
        report = slot.report
        results = {"classes": report.get("classes", []), "step": report.get("step", 0)}
        self.store.finish(slot.id, status, result["message"], results if report else None)

    def _lost(self, slot, error: str) -> None:
        """The actor died without ending its run: interrupted when every arm has a
        checkpoint (Resume continues from it), else failed. One that never reported
        could not start there (a package missing on that machine, say)."""
        log.error("run %s (%s): its Ray actor ended:\n%s", slot.id, slot.name, error)
        first = _ANSI.sub("", error).strip().splitlines()[0][:200]
        if not slot.report:
            message = (
                f"the run could not start on the Ray cluster ({first}); the details are in "
                "the server log"
            )
            self.store.finish(slot.id, FAILED, message)
            return
        step = self.store.mark_interrupted(slot.id)
        reason = f"its Ray worker was lost ({first})"
        row = self.store.run(slot.id)
        if all(self.store.checkpoint_path(slot.id, a).is_file() for a in row.arms):
            message = (
                f"interrupted at step {step}: {reason}; Resume continues from its last checkpoint"
            )
            self.store.update_run(slot.id, message=message, ended=time.time())
        else:
            message = f"the run stopped at step {step}: {reason}; start it again"
            self.store.finish(slot.id, FAILED, message)


__all__ = ["RayJobManager", "connect", "gpu_share", "import_ray"]
