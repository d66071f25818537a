"""One contract for every training backend: threads in this process (LocalJobManager),
worker processes over the store (ProcessJobManager) and Ray actors (RayJobManager, on a
local Ray instance with 2 CPUs that this module starts and shuts down).

Submit and finish, twin arms seeing the same batches, commands landing at the paused
step and at a later step (`at_step`), the queue with its positions, owners kept apart,
cancel, a failing run, and a paused run giving its place away and resuming. A page must
not be able to tell the backends apart by any of these.
"""

import pytest
import torch

from core.config import ConfigError, TrainConfig
from core.data import DataError, DataRequest, load
from core.jobs import LocalJobManager
from core.jobs_api import JobError
from core.model import build
from core.run import Arm, Command, Init, Run, failure_message
from core.training import pick_device
from core.workers import ProcessJobManager
from tests.core.helpers import separable_data, tiny_spec
from tests.waiting import wait_for

DATA = separable_data()
CPU = {"device": "cpu", "precision": "fp32"}
LONG = TrainConfig(steps=100_000, batch_size=16, **CPU)  # stopped by the test
SHORT = TrainConfig(steps=12, batch_size=16, eval_every=6, device="cpu", precision="fp32")
TIMEOUT = 180  # a worker or an actor imports torch: seconds on a busy 2-core machine
NET = "resnet8_narrow"
BACKENDS = ("threads", "processes", "ray")


def arms():
    return [Arm(NET, tiny_spec())]


@pytest.fixture(scope="module")
def ray_instance():
    """A local Ray instance for this module's Ray cases: 2 CPUs, no dashboard."""
    try:
        import ray
    except ImportError:
        pytest.skip("ray is not installed (pip install -r requirements-dev.txt)")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield ray
    ray.shutdown()


@pytest.fixture(params=BACKENDS)
def manager(request, tmp_path):
    limits = dict(max_running=1, max_per_owner=3, max_queue=4, threads_per_job=1)
    stored = dict(checkpoint_every=5, flush_s=0.05)
    if request.param == "threads":
        mgr = LocalJobManager(**limits)
    elif request.param == "processes":
        mgr = ProcessJobManager(tmp_path, **limits, **stored)
    else:
        request.getfixturevalue("ray_instance")
        from core.ray_jobs import RayJobManager

        mgr = RayJobManager(tmp_path, **limits, **stored)
    mgr.backend = request.param
    yield mgr
    for owner in ("alice", "bob"):
        for info in mgr.list(owner):
            if info.active:
                mgr.cancel(info.id, owner)
    for owner in ("alice", "bob"):
        for info in mgr.list(owner):
            mgr.wait(info.id, TIMEOUT)
    if hasattr(mgr, "shutdown"):
        mgr.shutdown()


def info(mgr, job, owner="alice"):
    return mgr.info(job, owner)


def events(mgr, job, arm=NET, owner="alice"):
    return mgr.logs(job, owner)[arm].snapshot().events


def test_a_run_finishes_and_twin_arms_see_the_same_batches(manager):
    spec = tiny_spec()
    job = manager.submit("alice", "twin", [Arm("a", spec), Arm("b", spec)], DATA, SHORT)
    assert manager.wait(job, TIMEOUT) == "finished"
    done = info(manager, job)
    assert (done.arms, done.step, done.total_steps, done.message) == (("a", "b"), 12, 12, "")
    assert done.device.startswith("CPU") and done.classes == ("dim", "bright")
    logs = manager.logs(job, "alice")
    a, b = (logs[k].snapshot() for k in ("a", "b"))
    assert [r.step for r in a.steps] == [r.step for r in b.steps] == list(range(1, 13))
    assert [e.step for e in a.evals] == [6, 12]
    assert a.events[-1].kind == "finished"
    # Same seed, same weights, same batches: identical nets trace identical curves.
    assert (a.column("loss") == b.column("loss")).all()
    assert (a.column("accuracy") == b.column("accuracy")).all()
    net, data = manager.copy_model(job, "alice", "b")
    assert not net.training and data.name == "separable"
    assert [i.id for i in manager.list("alice")] == [job]


def test_commands_land_at_the_paused_step(manager):
    job = manager.submit("alice", "live", arms(), DATA, LONG)
    wait_for(lambda: info(manager, job).step >= 2, TIMEOUT, "two steps")
    manager.send(job, "alice", Command("pause"))
    wait_for(lambda: info(manager, job).status == "paused", TIMEOUT, "paused")
    paused_at = info(manager, job).step
    manager.send(job, "alice", Command("skip", block=1, on=False))
    manager.send(job, "alice", Command("lr", value=0.02))
    wait_for(lambda: any(e.kind == "lr" for e in events(manager, job)), TIMEOUT, "the lr event")
    wait_for(lambda: info(manager, job).skips[NET][1] is False, TIMEOUT, "the skip in the spec")
    assert info(manager, job).step == paused_at  # nothing trains while paused
    # Explain's copy has the skips as they are now, toggled while paused too.
    now = {0: True, 1: False, 2: True}
    wait_for(lambda: manager.copy_model(job, "alice", NET)[0].skips() == now, 30, "the copy")
    manager.send(job, "alice", Command("resume"))
    wait_for(lambda: info(manager, job).step >= paused_at + 3, TIMEOUT, "steps after resume")
    manager.send(job, "alice", Command("stop"))
    assert manager.wait(job, TIMEOUT) == "stopped"
    assert info(manager, job).message.startswith("stopped at step ")
    snap = manager.logs(job, "alice")[NET].snapshot()
    kinds = [(e.kind, e.step) for e in snap.events]
    assert kinds[:4] == [(k, paused_at) for k in ("pause", "skip", "lr", "resume")]
    assert kinds[-1][0] == "stop"
    after = [r for r in snap.steps if r.step > paused_at]
    assert after and all(r.lr == pytest.approx(0.02) for r in after)
    assert [r.step for r in snap.steps] == list(range(1, len(snap.steps) + 1))


def test_queue_positions_owners_and_cancel(manager):
    a = manager.submit("alice", "a", arms(), DATA, LONG)
    b = manager.submit("bob", "b", arms(), DATA, SHORT)
    c = manager.submit("alice", "c", arms(), DATA, SHORT)
    assert info(manager, a).status == "running"
    assert info(manager, b, "bob").queue_position == 1
    assert info(manager, c).queue_position == 2
    # Owners: another owner's run does not exist for you, whatever you ask.
    assert [i.id for i in manager.list("bob")] == [b]
    assert {i.id for i in manager.list("alice")} == {a, c}
    missing = f"there is no run '{a}' in this session"
    for ask in (
        lambda: manager.info(a, "bob"),
        lambda: manager.logs(a, "bob"),
        lambda: manager.send(a, "bob", Command("stop")),
        lambda: manager.cancel(a, "bob"),
        lambda: manager.delete(a, "bob"),
        lambda: manager.copy_model(a, "bob", NET),
    ):
        with pytest.raises(JobError, match=missing):
            ask()
    d = manager.submit("alice", "d", arms(), DATA, SHORT)
    with pytest.raises(JobError, match="you already have 3 runs waiting or running"):
        manager.submit("alice", "e", arms(), DATA, SHORT)
    manager.cancel(b, "bob")
    cancelled = info(manager, b, "bob")
    assert (cancelled.status, cancelled.message) == ("cancelled", "cancelled before it started")
    assert (info(manager, c).queue_position, info(manager, d).queue_position) == (1, 2)
    manager.cancel(d, "alice")
    manager.cancel(a, "alice")
    assert manager.wait(a, TIMEOUT) == "stopped"
    assert manager.wait(c, TIMEOUT) == "finished"
    assert info(manager, a).step < 100_000 and info(manager, c).step == 12


def test_a_failing_run_fails_with_its_message_and_the_next_run_trains(manager):
    request = DataRequest(name="mnist")  # not in the suite's data folder: cannot load
    with pytest.raises(DataError) as why:
        load(request)
    broken = (lambda: load(request)) if manager.backend == "threads" else request
    bad = manager.submit("alice", "bad", arms(), broken, SHORT)
    # Fails where it trains (the worker, the actor): asks for a GPU this machine lacks.
    gpu = TrainConfig(steps=12, batch_size=16, device="cuda", precision="fp32")
    no_gpu = None
    if not torch.cuda.is_available():
        no_gpu = manager.submit("alice", "gpu", arms(), DATA, gpu)
    good = manager.submit("alice", "good", arms(), DATA, SHORT)
    assert manager.wait(bad, TIMEOUT) == "failed"
    assert info(manager, bad).message == failure_message(why.value, None)
    assert "MNIST" in info(manager, bad).message or "mnist" in info(manager, bad).message
    if no_gpu is not None:
        assert manager.wait(no_gpu, TIMEOUT) == "failed"
        with pytest.raises(ConfigError) as no_cuda:
            pick_device("cuda")
        assert info(manager, no_gpu).message == failure_message(no_cuda.value, 1)
        assert info(manager, no_gpu).message.endswith("no CUDA device; choose 'auto' or 'cpu'")
    assert manager.wait(good, TIMEOUT) == "finished"
    with pytest.raises(JobError, match="bad has already ended"):
        manager.send(bad, "alice", Command("pause"))


def test_commands_for_a_later_step_and_a_paused_run_giving_its_place_away(manager):
    manager.pause_release_s = 0.2  # read when a run pauses
    cfg = TrainConfig(steps=40, batch_size=16, eval_every=10, **CPU)
    paused = manager.submit("alice", "paused", arms(), DATA, cfg)
    manager.send(paused, "alice", Command("pause", at_step=5))
    manager.send(paused, "alice", Command("lr", value=0.05, at_step=20))
    wait_for(lambda: info(manager, paused).status == "paused", TIMEOUT, "the pause at step 5")
    assert info(manager, paused).step == 5
    manager.send(paused, "alice", Command("lr", value=0.03))  # now, before it gives way
    wait_for(lambda: any(e.kind == "lr" for e in events(manager, paused)), TIMEOUT, "lr event")
    waiting = manager.submit("bob", "waiting", arms(), DATA, SHORT)
    assert manager.wait(waiting, TIMEOUT) == "finished"  # it had the only place
    gave = info(manager, paused)
    assert gave.status == "paused" and "gave its training place" in gave.message
    manager.send(paused, "alice", Command("resume"))
    assert manager.wait(paused, TIMEOUT) == "finished"
    snap = manager.logs(paused, "alice")[NET].snapshot()
    assert [(e.kind, e.step) for e in snap.events if e.kind in ("pause", "lr")] == [
        ("pause", 5),
        ("lr", 5),
        ("lr", 20),
    ]
    assert [r.step for r in snap.steps] == list(range(1, 41))  # no gap, none twice
    lrs = {r.step: r.lr for r in snap.steps}
    assert (lrs[5], lrs[6], lrs[20], lrs[21]) == pytest.approx((0.1, 0.03, 0.03, 0.05))


def test_an_arm_starting_from_given_weights_trains_as_it_does_here(manager):
    """A transfer's arm (core.run.Init: weights, some frozen) reaches the worker or the
    actor whole: its curve is the one the same Run traces in this process, step for step,
    and its frozen weights come back unchanged."""
    spec = tiny_spec()
    donor = build(spec, seed=7)  # not the weights the run's seed would give
    frozen = next(n for n, _ in donor.named_parameters())
    init = Init({k: v.clone() for k, v in donor.state_dict().items()}, (frozen,))
    here = Run([Arm(NET, spec, init)], DATA, SHORT)
    while not here.ended:
        here.step()
    job = manager.submit("alice", "transfer", [Arm(NET, spec, init)], DATA, SHORT)
    assert manager.wait(job, TIMEOUT) == "finished"
    there = manager.logs(job, "alice")[NET].snapshot()
    assert there.column("loss").tolist() == here.logs[NET].snapshot().column("loss").tolist()
    net, _ = manager.copy_model(job, "alice", NET)
    assert torch.equal(net.state_dict()[frozen], donor.state_dict()[frozen])


# -- the Ray backend's own -------------------------------------------------------------------


@pytest.fixture
def ray_manager(request, tmp_path):
    request.getfixturevalue("ray_instance")
    from core.ray_jobs import RayJobManager

    mgr = RayJobManager(tmp_path, threads_per_job=1, checkpoint_every=5, flush_s=0.05)
    yield mgr
    mgr.shutdown()


def test_ray_a_lost_actor_leaves_its_run_resumable_from_the_store(ray_manager):
    mgr = ray_manager
    job = mgr.submit("alice", "lost", arms(), DATA, TrainConfig(steps=60, batch_size=16, **CPU))
    wait_for(lambda: info(mgr, job).step >= 12, TIMEOUT, "two checkpoints")
    mgr.ray.kill(mgr._slots[job].conn)  # as a machine of the cluster going away would
    assert mgr.wait(job, TIMEOUT) == "interrupted"
    lost = info(mgr, job)
    assert lost.message.startswith(f"interrupted at step {lost.step}: its Ray worker was lost (")
    assert lost.message.endswith("; Resume continues from its last checkpoint")
    mgr.resume(job, "alice")
    assert mgr.wait(job, TIMEOUT) == "finished"
    snap = mgr.logs(job, "alice")[NET].snapshot()
    assert [r.step for r in snap.steps] == list(range(1, 61))  # every step stored once
    assert [e.kind for e in snap.events if e.kind == "resume"] == ["resume"]


def test_ray_asks_for_the_share_of_a_gpu_its_memory_estimate_takes():
    from core.ray_jobs import gpu_share

    gib = 2**30
    assert gpu_share(3 * gib, 141 * gib) == 0.03  # rounded up to a hundredth
    assert gpu_share(1, 141 * gib) == 0.01  # never nothing: Ray would not count it
    assert gpu_share(200 * gib, 141 * gib) == 1.0
    assert gpu_share(gib, None) == 1.0  # the GPU's size unknown: a whole one


def test_without_ray_installed_the_ray_backend_says_how_to_get_it(monkeypatch, tmp_path):
    import sys

    from core.ray_jobs import RayJobManager

    monkeypatch.setitem(sys.modules, "ray", None)  # what `import ray` meets without Ray
    with pytest.raises(JobError) as refused:
        RayJobManager(tmp_path)
    assert str(refused.value) == (
        "RESNET_EXPLORER_BACKEND=ray needs Ray, which is not installed here: run "
        "`pip install ray` (on this machine and on every machine of the cluster), or unset "
        "RESNET_EXPLORER_BACKEND to train on this server"
    )
