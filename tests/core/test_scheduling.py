"""The scheduling policy as pure functions: fair order and positions with several owners,
admission by CPU places and GPU memory, the ledger of training time, and the refusals."""

import math

import pytest

from core.jobs_api import JobError
from core.scheduling import (
    GIB,
    Ledger,
    Policy,
    Ticket,
    admit,
    check_fits,
    check_quota,
    check_room,
    check_steps,
    fair_order,
    gpu_capacity,
    over_quota,
    positions,
)


def tickets(*owners, gpu=False, memory=0):
    """One ticket per owner named, in submission order: ids a1, a2, b1, ..."""
    seen: dict[str, int] = {}
    out = []
    for seq, owner in enumerate(owners):
        seen[owner] = seen.get(owner, 0) + 1
        out.append(Ticket(f"{owner}{seen[owner]}", owner, None, seq, memory, gpu))
    return out


def ids(order):
    return [t.id for t in order]


def test_one_owners_three_runs_wait_behind_everyone_elses_first():
    waiting = tickets("a", "a", "a", "b", "c", "b")
    assert ids(fair_order(waiting, {})) == ["a1", "b1", "c1", "a2", "b2", "a3"]


def test_the_owner_who_trained_least_recently_goes_first():
    waiting = tickets("a", "b", "c", "a", "b")
    used = {"a": 600.0, "b": 30.0}  # c has not trained at all
    assert ids(fair_order(waiting, used)) == ["c1", "b1", "a1", "b2", "a2"]


def test_a_resumed_run_that_gave_its_place_away_goes_first():
    waiting = tickets("a", "b")
    back = Ticket("c1", "c", None, seq=99, first=True)
    assert ids(fair_order([*waiting, back], {"c": 1e6})) == ["c1", "a1", "b1"]


def test_positions_follow_the_order_and_stay_correct_as_runs_start():
    """Starting position 1 moves everyone else up by one, and no one else's order."""
    waiting = tickets("a", "a", "b", "c", "c", "b")
    used = {"a": 5.0, "b": 10.0, "c": 20.0}
    before = positions(waiting, used)
    assert before == {"a1": 1, "b1": 2, "c1": 3, "a2": 4, "b2": 5, "c2": 6}
    head = min(before, key=before.get)
    rest = [t for t in waiting if t.id != head]
    after = positions(rest, used, holding={"a": 1})  # a1 holds a place now
    assert after == {k: v - 1 for k, v in before.items() if k != head}
    # a run training counts as that owner's turn: a newcomer goes before a's next run
    newcomer = Ticket("d1", "d", None, seq=99)
    assert positions([*rest, newcomer], {**used, "d": 50.0}, {"a": 1})["d1"] == 3


def test_positions_across_many_owners_are_a_round_robin():
    waiting = [t for t in tickets(*"abcdefgh" * 3)]
    order = fair_order(waiting, {})
    # Every run in round r comes before every run in round r + 1.
    rounds = [int(t.id[1:]) for t in order]
    assert rounds == sorted(rounds)
    assert sorted(ids(order)) == sorted(ids(waiting))


def test_cpu_places_limit_how_many_start():
    order = tickets("a", "b", "c")
    policy = Policy(max_cpu_runs=2)
    assert ids(admit(order, [], policy, None)) == ["a1", "b1"]
    running = order[:1]
    assert ids(admit(order[1:], running, policy, None)) == ["b1"]
    assert admit(order[2:], order[:2], policy, None) == []


def test_gpu_runs_start_while_their_memory_fits_the_share():
    order = [
        Ticket("a1", "a", None, 0, 3 * GIB, gpu=True),
        Ticket("b1", "b", None, 1, 4 * GIB, gpu=True),
        Ticket("c1", "c", None, 2, 2 * GIB, gpu=True),  # 9 GiB in all: waits
        Ticket("d1", "d", None, 3, 0, gpu=False),  # the CPU is another resource
    ]
    capacity = gpu_capacity(Policy(gpu_share=0.8), free=10 * GIB, held=0)
    assert capacity == 8 * GIB
    started = admit(order, [], Policy(max_cpu_runs=1), capacity)
    assert ids(started) == ["a1", "b1", "d1"]
    # once a1 ends, b1 holds 4 GiB: c1 (2 GiB) starts, e1 (3 GiB) would make 9 and waits
    more = [order[2], Ticket("e1", "e", None, 4, 3 * GIB, gpu=True)]
    assert ids(admit(more, order[1:2], Policy(), capacity)) == ["c1"]
    # a small run behind a big one that waits does not overtake it
    small = Ticket("f1", "f", None, 5, 1, gpu=True)
    assert ids(admit([more[1], small], order[1:3], Policy(), capacity)) == []


def test_gpu_capacity_counts_our_own_runs_as_free():
    assert gpu_capacity(Policy(gpu_share=0.5), free=2 * GIB, held=6 * GIB) == 4 * GIB
    assert gpu_capacity(Policy(), free=None, held=0) is None


def test_no_gpu_run_starts_without_a_gpu_and_a_blocked_owner_does_not_hold_others():
    gpu = Ticket("a1", "a", None, 0, GIB, gpu=True)
    assert admit([gpu], [], Policy(), None) == []
    order = tickets("a", "b")
    assert ids(admit(order, [], Policy(max_cpu_runs=1), None, blocked={"a"})) == ["b1"]


def test_the_ledger_counts_only_the_window():
    ledger = Ledger(window_s=100.0)
    ledger.start("r1", "a", now=0.0)
    assert ledger.used("a", now=30.0) == pytest.approx(30.0)  # an open place counts
    ledger.stop("r1", now=40.0)
    ledger.start("r2", "b", now=40.0)
    assert ledger.used("a", now=120.0) == pytest.approx(20.0)  # (20, 40] is in the window
    assert ledger.used("a", now=200.0) == 0.0
    assert ledger.usage(["a", "b"], now=60.0) == {"a": 40.0, "b": 20.0}
    ledger.start("r2", "b", now=50.0)  # starting twice keeps the first start
    assert ledger.used("b", now=60.0) == pytest.approx(20.0)


def test_the_quota_says_when_a_new_run_can_start():
    policy = Policy(owner_seconds=600.0, window_s=3600.0)
    ledger = Ledger(window_s=3600.0)
    ledger.start("r1", "a", now=0.0)
    assert over_quota(policy, ledger, ["a", "b"], now=599.0) == set()
    assert over_quota(policy, ledger, ["a", "b"], now=600.0) == {"a"}
    with pytest.raises(JobError) as e:
        check_quota(policy, ledger, "a", now=700.0)
    assert str(e.value) == (
        "you have used your 10 minutes of training time for this hour (12 min); stop a run "
        "that is training, or wait for it to end"
    )
    ledger.stop("r1", now=700.0)
    # 700 s in (0, 700]: below 600 s once the window starts after 100 s, at now = 3700
    assert ledger.wait_below("a", 600.0, now=700.0) == pytest.approx(3000.0, abs=0.01)
    with pytest.raises(JobError) as e:
        check_quota(policy, ledger, "a", now=700.0)
    assert str(e.value).endswith("(12 min); a new run can start in about 50 min")
    check_quota(policy, ledger, "b", now=700.0)  # someone else is not affected
    check_quota(Policy(), ledger, "a", now=700.0)  # no quota set: nothing refused


def test_room_per_owner_per_address_and_queue():
    policy = Policy(max_per_owner=3, max_per_client=6, max_queue=50)
    check_room(policy, owner_active=2, client_active=5, waiting=49)
    check_room(policy, owner_active=0, client_active=None, waiting=0)  # address unknown
    with pytest.raises(JobError, match=r"^you already have 3 runs waiting or running"):
        check_room(policy, owner_active=3, client_active=0, waiting=0)
    with pytest.raises(JobError) as e:
        check_room(policy, owner_active=0, client_active=6, waiting=0)
    assert str(e.value) == (
        "6 runs from this computer are waiting or running already, in all its browser tabs "
        "(the limit is 6); stop one or wait for it to finish"
    )
    check_room(Policy(max_per_client=0), owner_active=0, client_active=99, waiting=0)
    with pytest.raises(JobError, match=r"queue is full \(50 runs waiting\)"):
        check_room(policy, owner_active=0, client_active=0, waiting=50)


def test_the_step_budget_says_by_how_much():
    check_steps(Policy(max_steps=1000), 1000)
    check_steps(Policy(), 10**9)  # no budget set
    check_steps(Policy(max_steps=1000), None)  # length not known yet
    with pytest.raises(JobError) as e:
        check_steps(Policy(max_steps=1000), 2500)
    assert str(e.value) == (
        "this run would take 2,500 steps, 1,500 more than the 1,000 the teacher allows per "
        "run; choose fewer steps or epochs"
    )


def test_a_run_that_never_fits_the_gpu_says_by_how_much():
    check_fits(Policy(), 8 * GIB, 8 * GIB)
    check_fits(Policy(), 10**12, None)  # no GPU: the plan's caps alone apply
    with pytest.raises(JobError) as e:
        check_fits(Policy(gpu_share=0.8), 9 * GIB, 8 * GIB)
    assert str(e.value) == (
        "this run needs 9.00 GiB of GPU memory for training, 1.00 GiB more than the 8.00 "
        "GiB the runs of this server may use (80% of the GPU's free memory); use a smaller "
        "batch size or a smaller network"
    )


def test_the_policy_reads_the_teachers_settings():
    env = {
        "RESNET_EXPLORER_GPU_SHARE": "0.5",
        "RESNET_EXPLORER_MAX_PER_ADDRESS": "0",
        "RESNET_EXPLORER_MAX_STEPS": "5000",
        "RESNET_EXPLORER_OWNER_MINUTES": "20",
    }
    policy = Policy.from_env(env, max_cpu_runs=2, max_per_owner=None)
    assert (policy.gpu_share, policy.max_per_client, policy.max_steps) == (0.5, 0, 5000)
    assert (policy.owner_seconds, policy.max_cpu_runs, policy.max_per_owner) == (1200, 2, 3)
    bad = Policy.from_env({"RESNET_EXPLORER_GPU_SHARE": "80%"})
    assert bad.gpu_share == Policy().gpu_share  # not a number: the default, and a warning
    assert math.isclose(Policy.from_env({}).owner_seconds, 0.0)


# -- the process manager follows the same policy (one short test: workers are spawned) ----


def test_the_process_manager_queues_fairly_and_lands_a_command_at_its_step(tmp_path):
    from core.config import TrainConfig
    from core.run import Arm, Command
    from core.workers import ProcessJobManager
    from tests.core.helpers import separable_data, tiny_spec
    from tests.waiting import wait_for

    mgr = ProcessJobManager(
        tmp_path, max_running=1, threads_per_job=1, flush_s=0.05, policy=Policy(max_per_client=3)
    )
    data, net = separable_data(), [Arm("net", tiny_spec())]
    cfg = TrainConfig(steps=12, batch_size=16, eval_every=6, device="cpu", precision="fp32")
    try:
        a1 = mgr.submit("alice", "a1", net, data, TrainConfig(**(vars(cfg) | {"steps": 10**5})))
        a2 = mgr.submit("alice", "a2", net, data, cfg, client="10.0.0.9")
        b1 = mgr.submit("bob", "b1", net, data, cfg, client="10.0.0.9")
        assert [mgr.info(j, o).queue_position for j, o in ((b1, "bob"), (a2, "alice"))] == [1, 2]
        mgr.submit("carol", "c1", net, data, cfg, client="10.0.0.9")
        with pytest.raises(JobError, match=r"^3 runs from this computer are waiting"):
            mgr.submit("dave", "d1", net, data, cfg, client="10.0.0.9")
        mgr.send(b1, "bob", Command("skip", on=False, at_step=5))  # waits while b1 queues
        wait_for(lambda: mgr.info(a1, "alice").step >= 1, 180, "a1 training")
        mgr.cancel(a1, "alice")
        assert mgr.wait(b1, 180) == "finished"
        assert mgr.info(a2, "alice").status in ("queued", "running")  # b1 went first
        skips = [(e.step, e.detail) for e in mgr.logs(b1, "bob")["net"].snapshot().events]
        assert skips[0] == (5, "skip off: all blocks")
        assert not any(mgr.info(b1, "bob").skips["net"].values())  # stored as it is now
    finally:
        mgr.shutdown()


def test_a_command_for_a_later_step_survives_a_release_and_resume_in_a_new_worker(tmp_path):
    """The pause lands at step 5 exactly; the paused run gives its worker up, and the new
    worker that resumes it still applies the lr change at step 20, once."""
    from core.config import TrainConfig
    from core.run import Arm, Command
    from core.workers import ProcessJobManager
    from tests.core.helpers import separable_data, tiny_spec
    from tests.waiting import wait_for

    mgr = ProcessJobManager(
        tmp_path, max_running=1, threads_per_job=1, flush_s=0.05, pause_release_s=0.3
    )
    data, net = separable_data(), [Arm("net", tiny_spec())]
    cfg = TrainConfig(steps=30, batch_size=16, eval_every=10, device="cpu", precision="fp32")
    try:
        a = mgr.submit("alice", "a", net, data, cfg)
        mgr.send(a, "alice", Command("pause", at_step=5))
        mgr.send(a, "alice", Command("lr", value=0.05, at_step=20))
        wait_for(lambda: mgr.info(a, "alice").status == "paused", 180, "the pause at step 5")
        b = mgr.submit("bob", "b", net, data, TrainConfig(**(vars(cfg) | {"steps": 3})))
        assert mgr.wait(b, 180) == "finished"  # a gave its place away
        mgr.send(a, "alice", Command("resume"))
        assert mgr.wait(a, 180) == "finished"
        events = [(e.kind, e.step) for e in mgr.logs(a, "alice")["net"].snapshot().events]
        assert [e for e in events if e[0] in ("pause", "lr")] == [("pause", 5), ("lr", 20)]
        steps = mgr.logs(a, "alice")["net"].snapshot().steps
        assert [r.lr for r in steps if r.step in (20, 21)] == [pytest.approx(0.1), 0.05]
    finally:
        mgr.shutdown()


@pytest.mark.gpu
def test_on_a_gpu_runs_train_together_while_their_memory_fits():
    """Real CUDA: two small runs start at once with one CPU place (they are admitted by
    memory, not by CPU places); a share too small for one run refuses it at submit."""
    from core.config import TrainConfig
    from core.jobs import LocalJobManager
    from core.run import Arm
    from tests.core.helpers import separable_data, tiny_spec
    from tests.waiting import wait_for

    data, net = separable_data(), [Arm("net", tiny_spec())]
    cfg = TrainConfig(steps=10**5, batch_size=16, device="cuda")
    m = LocalJobManager(max_running=1, threads_per_job=1)
    jobs = [m.submit(o, "x", net, data, cfg) for o in ("alice", "bob")]
    try:
        for job, owner in zip(jobs, ("alice", "bob"), strict=True):
            wait_for(lambda j=job, o=owner: m.info(j, o).step >= 2, 120, f"{owner} training")
        assert m.running_threads() == 2
    finally:
        for job, owner in zip(jobs, ("alice", "bob"), strict=True):
            m.cancel(job, owner)
            m.wait(job)
    tight = LocalJobManager(policy=Policy(gpu_share=1e-9))
    with pytest.raises(JobError, match=r"GiB more than the 0.00 GiB the runs of this server"):
        tight.submit("alice", "x", net, data, cfg)
