"""The Inside page's transfer tab (AppTest on the finished tiny twin run): the button copies
the chosen net and submits one run of two arms, transferred and from scratch, on the new
data; a net that cannot take the data is refused with the reason, and nothing starts."""

from __future__ import annotations

import torch

from app import services, state
from app.inside_run import initial_net
from core.transfer import HEAD_KEYS, SCRATCH, TRANSFERRED, is_transfer
from tests.app.conftest import OWNER, page


def _open(job: str):
    at = page("inside")
    at.run()
    at.selectbox(key="ex_run").set_value(job).run()
    assert not at.exception, at.exception
    return at


def _transfers() -> list:
    return [i for i in services.job_manager().list(OWNER) if is_transfer(i.name)]


def test_the_button_starts_a_two_arm_race_from_the_chosen_net(finished_run):
    before = {i.id for i in _transfers()}
    at = _open(finished_run)
    at.selectbox(key=state.inside_key(state.INSIDE_TRANSFER, "arm", finished_run)).set_value(
        "ResNet-8"
    )
    at.selectbox(key=state.inside_key(state.INSIDE_TRANSFER, "data")).set_value("shapes").run()
    at.selectbox(key=state.inside_key(state.INSIDE_TRANSFER, "size", "shapes")).set_value(16)
    at.radio(key=state.inside_key(state.INSIDE_TRANSFER, "mode")).set_value("head")
    at.number_input(key=state.inside_key(state.INSIDE_TRANSFER, "steps")).set_value(10).run()
    at.button(key=state.inside_key(state.INSIDE_TRANSFER, "go")).click().run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    new = [i for i in _transfers() if i.id not in before]
    assert len(new) == 1
    info = new[0]
    assert info.arms == (TRANSFERRED, SCRATCH)
    assert info.name == "Transfer: tiny twin / ResNet-8 → Shapes (head)"
    assert all(s.input_shape == (3, 16, 16) and s.num_classes == 6 for s in info.specs.values())
    mgr = services.job_manager()
    assert mgr.wait(info.id, timeout=180) == "finished", mgr.info(info.id, OWNER).message
    source, _ = mgr.copy_model(finished_run, OWNER, "ResNet-8")
    moved, _ = mgr.copy_model(info.id, OWNER, TRANSFERRED)
    src, now = source.state_dict(), dict(moved.named_parameters())
    body = [n for n in now if n not in HEAD_KEYS]
    assert body and all(torch.equal(now[n].detach().cpu(), src[n].cpu()) for n in body)
    # the interpolation's start for the transferred net: the source's weights, not its seed's
    first = dict(initial_net(mgr, OWNER, info, TRANSFERRED, moved).named_parameters())
    assert all(torch.equal(first[n].detach().cpu(), src[n].cpu()) for n in body)
    scratch = dict(initial_net(mgr, OWNER, info, SCRATCH, moved).named_parameters())
    assert torch.equal(scratch["head.fc.weight"], first["head.fc.weight"])  # one seed
    assert not torch.equal(scratch["stem.conv.weight"], first["stem.conv.weight"])


def test_data_the_net_cannot_take_is_refused_and_nothing_starts(finished_run):
    before = len(_transfers())
    at = _open(finished_run)
    at.selectbox(key=state.inside_key(state.INSIDE_TRANSFER, "data")).set_value(
        "digits"
    ).run()  # greyscale: the stem takes 3
    at.button(key=state.inside_key(state.INSIDE_TRANSFER, "go")).click().run()
    assert not at.exception
    assert [e.value for e in at.error] == [
        "Could not start the transfer: transfer: the network's stem takes 3 colour "
        "channel(s), but 'digits' has 1: the stem would have to change, and its trained "
        "weights with it; choose data with as many channels as the run it starts from "
        "(colour images)"
    ]
    assert len(_transfers()) == before
