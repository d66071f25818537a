"""The job manager: queue, commands at the right step, isolation, failures, threads."""

import logging
import threading

import pytest

from core.config import TrainConfig
from core.jobs import Arm, Command, JobError, LocalJobManager
from core.scheduling import Policy
from tests.core.helpers import separable_data, tiny_spec
from tests.waiting import wait_for

DATA = separable_data()
CPU = {"device": "cpu", "precision": "fp32"}
LONG = TrainConfig(steps=100_000, batch_size=16, **CPU)  # stopped by the test, never finishes
SHORT = TrainConfig(steps=12, batch_size=16, eval_every=6, device="cpu", precision="fp32")


def arms(*keys):
    return [Arm(k, tiny_spec(k)) for k in keys or ("resnet8_narrow",)]


@pytest.fixture
def manager():
    m = LocalJobManager(max_running=1, max_per_owner=3, max_queue=4, threads_per_job=1)
    yield m
    for info in [i for owner in ("alice", "bob") for i in m.list(owner)]:
        if info.active:
            m.cancel(info.id, info.owner)
    for info in [i for owner in ("alice", "bob") for i in m.list(owner)]:
        m.wait(info.id, timeout=30)


def test_a_run_finishes_with_its_telemetry(manager):
    job = manager.submit("alice", "first", arms(), DATA, SHORT)
    assert manager.wait(job) == "finished"
    info = manager.info(job, "alice")
    assert (info.step, info.total_steps, info.progress) == (12, 12, 1.0)
    assert info.device.startswith("CPU")  # pinned: the suite means the CPU here
    snap = manager.logs(job, "alice")["resnet8_narrow"].snapshot()
    assert [r.step for r in snap.steps] == list(range(1, 13))
    assert [e.step for e in snap.evals] == [6, 12]
    assert snap.events[-1].kind == "finished"


def test_pause_skip_lr_resume_land_at_the_paused_step(manager):
    job = manager.submit("alice", "live", arms(), DATA, TrainConfig(steps=30, batch_size=16, **CPU))
    manager.send(job, "alice", Command("pause"))
    wait_for(lambda: manager.info(job, "alice").status == "paused", what="pause")
    paused_at = manager.info(job, "alice").step
    manager.send(job, "alice", Command("skip", block=1, on=False))
    manager.send(job, "alice", Command("lr", value=0.02))
    log = manager.logs(job, "alice")["resnet8_narrow"]
    wait_for(lambda: any(e.kind == "lr" for e in log.snapshot().events), what="lr event")
    assert manager.info(job, "alice").step == paused_at  # nothing trains while paused
    manager.send(job, "alice", Command("resume"))
    assert manager.wait(job) == "finished"
    snap = log.snapshot()
    kinds = [(e.kind, e.step) for e in snap.events]
    assert kinds[:4] == [
        ("pause", paused_at),
        ("skip", paused_at),
        ("lr", paused_at),
        ("resume", paused_at),
    ]
    after = [r for r in snap.steps if r.step > paused_at]
    assert after and after[0].lr == pytest.approx(0.02)


def test_stop_is_honoured_within_one_step(manager):
    job = manager.submit("alice", "long", arms(), DATA, LONG)
    wait_for(lambda: manager.info(job, "alice").step >= 3, what="three steps")
    manager.send(job, "alice", Command("stop"))
    seen = manager.info(job, "alice").step  # at least the step when the stop was sent
    assert manager.wait(job) == "stopped"
    final = manager.info(job, "alice").step
    assert seen <= final <= seen + 1
    assert manager.logs(job, "alice")["resnet8_narrow"].snapshot().events[-1].kind == "stop"


def test_queue_positions_are_visible_and_follow_cancel(manager):
    a = manager.submit("alice", "a", arms(), DATA, LONG)
    b = manager.submit("bob", "b", arms(), DATA, SHORT)
    c = manager.submit("alice", "c", arms(), DATA, SHORT)
    assert manager.info(a, "alice").status == "running"
    assert manager.info(b, "bob").queue_position == 1
    assert manager.info(c, "alice").queue_position == 2
    manager.cancel(b, "bob")
    assert manager.info(b, "bob").status == "cancelled"
    assert manager.info(c, "alice").queue_position == 1
    manager.cancel(a, "alice")
    assert manager.wait(a) == "stopped"
    assert manager.wait(c) == "finished"


def test_owners_are_isolated_and_capped(manager):
    a = manager.submit("alice", "a", arms(), DATA, LONG)
    assert [i.id for i in manager.list("bob")] == []
    with pytest.raises(JobError, match="there is no run 'run-1' in this session"):
        manager.info(a, "bob")
    with pytest.raises(JobError, match="there is no run"):
        manager.send(a, "bob", Command("stop"))
    manager.submit("alice", "b", arms(), DATA, SHORT)
    manager.submit("alice", "c", arms(), DATA, SHORT)
    with pytest.raises(JobError, match="you already have 3 runs waiting or running"):
        manager.submit("alice", "d", arms(), DATA, SHORT)
    manager.submit("bob", "w", arms(), DATA, SHORT)
    manager.submit("bob", "x", arms(), DATA, SHORT)  # the queue now holds 4, its limit
    with pytest.raises(JobError, match=r"the server's queue is full \(4 runs waiting\)"):
        manager.submit("bob", "y", arms(), DATA, SHORT)


def test_a_failing_run_ends_alone_and_its_thread_exits(manager, caplog):
    baseline = threading.active_count()

    def broken_data():
        raise RuntimeError("the disk at /srv/data is on fire")

    caplog.set_level(logging.ERROR, logger="resnet_explorer")
    bad = manager.submit("alice", "bad", arms(), broken_data, SHORT)
    good = manager.submit("alice", "good", arms(), DATA, SHORT)
    assert manager.wait(bad) == "failed"
    assert manager.info(bad, "alice").message == (
        "the run failed before its first step because of an error in the server; the "
        "details are in the server log"
    )
    # the server log has the whole traceback; the page has no internals
    record = next(r for r in caplog.records if r.name == "resnet_explorer.jobs")
    assert "run-1 (bad)" in record.getMessage()
    assert record.exc_info[0] is RuntimeError and "broken_data" in caplog.text
    assert manager.wait(good) == "finished"
    wait_for(lambda: threading.active_count() == baseline, what="threads back to baseline")
    assert manager.running_threads() == 0


def test_a_diverging_run_is_marked_with_its_hint(manager):
    import dataclasses

    from core.spec import Defaults

    spec = dataclasses.replace(tiny_spec(), defaults=Defaults(batch_norm=False))
    cfg = TrainConfig(lr=10.0, momentum=0.99, steps=300, batch_size=32, **CPU)
    job = manager.submit("alice", "wild", [Arm("net", spec)], DATA, cfg)
    assert manager.wait(job) == "diverged"
    assert "Lower the learning rate" in manager.info(job, "alice").message


def test_a_refused_command_is_logged_and_the_run_goes_on(manager):
    job = manager.submit("alice", "x", arms(), DATA, TrainConfig(steps=20, batch_size=16, **CPU))
    manager.send(job, "alice", Command("skip", block=0, on=False))
    manager.send(job, "alice", Command("skip", block=99, on=False))
    assert manager.wait(job) == "finished"
    events = manager.logs(job, "alice")["resnet8_narrow"].snapshot().events
    rejected = [e for e in events if e.kind == "rejected"]
    assert len(rejected) == 1 and "block 99: has no skip connection" in rejected[0].detail


def test_twin_arms_with_one_spec_have_identical_curves(manager):
    """Same seed for weights and batches: identical nets must trace identical losses."""
    spec = tiny_spec()
    job = manager.submit("alice", "twin", [Arm("a", spec), Arm("b", spec)], DATA, SHORT)
    assert manager.wait(job) == "finished"
    logs = manager.logs(job, "alice")
    la, lb = (logs[k].snapshot().column("loss") for k in ("a", "b"))
    assert len(la) == 12 and (la == lb).all()


def test_plain_and_residual_twins_trace_different_curves_of_equal_length(manager):
    job = manager.submit("alice", "twin", arms("plain8_narrow", "resnet8_narrow"), DATA, SHORT)
    assert manager.wait(job) == "finished"
    logs = manager.logs(job, "alice")
    plain, res = (logs[k].snapshot() for k in ("plain8_narrow", "resnet8_narrow"))
    assert plain.steps[0].loss != res.steps[0].loss  # same weights, different function
    assert len(plain.steps) == len(res.steps) == 12


def test_submit_refuses_bad_input_before_queueing(manager):
    with pytest.raises(JobError, match="needs at least one network"):
        manager.submit("alice", "none", [], DATA, SHORT)
    with pytest.raises(JobError, match="need different names"):
        manager.submit("alice", "dup", [Arm("a", tiny_spec()), Arm("a", tiny_spec())], DATA, SHORT)
    with pytest.raises(ValueError, match="learning rate"):
        manager.submit("alice", "bad lr", arms(), DATA, TrainConfig(lr=0))
    many = separable_data(n=2000)  # 1,500 training images: 1000 epochs of batch 1
    with pytest.raises(ValueError, match="1,500,000 steps, more than the 1,000,000"):
        manager.submit("alice", "forever", arms(), many, TrainConfig(epochs=1000, batch_size=1))
    assert manager.list("alice") == []
    job = manager.submit("alice", "x", arms(), DATA, LONG)
    with pytest.raises(JobError, match="there is no command 'jump'"):
        manager.send(job, "alice", Command("jump"))
    with pytest.raises(JobError, match="x has no network named 'nope'"):
        manager.send(job, "alice", Command("lr", value=0.1, arm="nope"))


def test_weights_can_be_copied_only_while_no_step_can_run(manager):
    import torch

    job = manager.submit("alice", "x", arms(), DATA, LONG)
    wait_for(lambda: manager.info(job, "alice").step >= 1, what="a first step")
    with pytest.raises(JobError, match="is running: pause it or let it finish first"):
        manager.copy_model(job, "alice", "resnet8_narrow")
    manager.send(job, "alice", Command("pause"))
    wait_for(lambda: manager.info(job, "alice").status == "paused", what="pause")
    net, data = manager.copy_model(job, "alice", "resnet8_narrow")
    live = manager._jobs[job].run.trainers["resnet8_narrow"].net
    assert not net.training and net is not live
    assert all(
        torch.equal(a, b)
        for a, b in zip(net.state_dict().values(), live.state_dict().values(), strict=True)
    )
    assert data is manager._jobs[job].run.trainers["resnet8_narrow"].data
    with pytest.raises(JobError, match="has no trained network 'nope'"):
        manager.copy_model(job, "alice", "nope")
    with pytest.raises(JobError, match="there is no run"):
        manager.copy_model(job, "bob", "resnet8_narrow")


def test_submit_refuses_a_batch_whose_training_memory_is_over_the_cap(manager):
    from core.plan import make_plan
    from core.presets import cifar_resnet
    from core.spec import SpecError

    spec = cifar_resnet(3, residual=True, input_shape=(3, 128, 128), num_classes=2)
    per_image = make_plan(spec).activations * 4  # float32 activations autograd keeps
    fits = 16 * 1024**3 // per_image  # the most images under the 16 GiB cap
    assert fits < 4096  # so the settings themselves allow one more
    config = TrainConfig(steps=1, batch_size=fits + 1, **CPU)
    with pytest.raises(SpecError, match=rf"use batch size {fits:,} or less"):
        manager.submit("alice", "too big", [Arm("r20", spec)], DATA, config)
    assert manager.list("alice") == []  # refused before anything was queued


def test_a_runs_networks_must_fit_the_free_device_memory_together():
    from core.jobs_api import check_device_memory

    twins = arms("plain8_narrow", "resnet8_narrow")
    alone = check_device_memory(twins[:1], 16, None)
    check_device_memory(twins, 16, 2 * alone + 1)  # both fit
    with pytest.raises(JobError) as refused:
        check_device_memory(twins, 16, alone + alone // 2)  # each fits, not both
    message = str(refused.value)
    assert message.startswith("the 2 networks of this run need ")
    assert "1.3x the " in message and message.endswith("race fewer networks at once")


# -- scheduling through the thread manager (core.scheduling's policy, real threads) --------


@pytest.fixture
def managers():
    """LocalJobManager(**kwargs) made by the test; every run of every owner ended after."""
    made = []

    def make(**kwargs):
        kwargs = {"max_per_owner": 3, "max_queue": 10, "threads_per_job": 1} | kwargs
        made.append(LocalJobManager(**kwargs))
        return made[-1]

    yield make
    for m in made:
        jobs = list(m._jobs.values())
        for job in jobs:
            if job.status in ("queued", "running", "paused"):
                m.cancel(job.id, job.owner)
        for job in jobs:
            m.wait(job.id, timeout=30)


def positions(m, *jobs):
    return [m.info(job, m._jobs[job].owner).queue_position for job in jobs]


def test_one_owners_runs_wait_behind_another_owners_first_run(managers):
    m = managers(max_running=1)
    a1 = m.submit("alice", "a1", arms(), DATA, LONG)
    a2 = m.submit("alice", "a2", arms(), DATA, LONG)
    a3 = m.submit("alice", "a3", arms(), DATA, LONG)
    b1 = m.submit("bob", "b1", arms(), DATA, LONG)  # last in, but bob's first
    assert positions(m, a1, b1, a2, a3) == [None, 1, 2, 3]
    m.cancel(a1, "alice")
    assert m.wait(a1) == "stopped"
    wait_for(lambda: m.info(b1, "bob").status == "running", what="bob's run to start")
    assert positions(m, b1, a2, a3) == [None, 1, 2]  # everyone moved up by one
    assert m.info(a2, "alice").status == "queued"
    m.cancel(b1, "bob")
    wait_for(lambda: m.info(a2, "alice").status == "running", what="alice's second run")
    assert positions(m, a3) == [1]


def test_several_cpu_runs_train_at_once_up_to_the_cap(managers):
    m = managers(max_running=2)
    a = m.submit("alice", "a", arms(), DATA, LONG)
    b = m.submit("bob", "b", arms(), DATA, LONG)
    c = m.submit("carol", "c", arms(), DATA, LONG)
    for job, owner in ((a, "alice"), (b, "bob")):
        wait_for(lambda j=job, o=owner: m.info(j, o).step >= 2, what=f"{job} training")
    assert (m.running_threads(), positions(m, c)) == (2, [1])


def test_new_tokens_from_one_address_do_not_reset_its_cap(managers):
    m = managers(max_running=1, policy=Policy(max_per_client=2))
    first = m.submit("tab-1", "a", arms(), DATA, LONG, client="10.0.0.7")
    m.submit("tab-2", "b", arms(), DATA, LONG, client="10.0.0.7")
    with pytest.raises(JobError) as refused:
        m.submit("tab-3", "c", arms(), DATA, LONG, client="10.0.0.7")
    assert str(refused.value) == (
        "2 runs from this computer are waiting or running already, in all its browser tabs "
        "(the limit is 2); stop one or wait for it to finish"
    )
    m.submit("tab-4", "d", arms(), DATA, LONG, client="10.0.0.8")  # another computer
    m.submit("tab-5", "e", arms(), DATA, LONG)  # address unknown: the token's cap alone
    m.cancel(first, "tab-1")
    assert m.wait(first) == "stopped"
    m.submit("tab-3", "c", arms(), DATA, LONG, client="10.0.0.7")  # room again


def test_the_step_budget_refuses_a_longer_run(managers):
    m = managers(policy=Policy(max_steps=10))
    with pytest.raises(JobError, match=r"^this run would take 12 steps, 2 more than the 10 "):
        m.submit("alice", "x", arms(), DATA, SHORT)
    assert m.list("alice") == []


def test_a_run_stops_when_its_owners_training_time_is_used_up(managers):
    m = managers(policy=Policy(owner_seconds=1.5))
    job = m.submit("alice", "long", arms(), DATA, LONG)
    assert m.wait(job, timeout=60) == "stopped"
    info = m.info(job, "alice")
    assert info.message == (
        f"you have used your 0.025 minutes of training time for this hour (0 min), so this "
        f"run stopped at step {info.step}"
    )
    with pytest.raises(JobError, match=r"^you have used your 0.025 minutes of training time"):
        m.submit("alice", "again", arms(), DATA, SHORT)
    other = m.submit("bob", "b", arms(), DATA, SHORT)  # bob's time is his own
    assert m.wait(other) == "finished"
