"""Transfer: which weights carry over, which are new, what trains, and what is refused."""

import dataclasses

import pytest
import torch

from core.data import TensorData
from core.model import build
from core.presets import PRESETS
from core.transfer import TransferError, trainable, transfer_net
from tests.core.helpers import separable_data, tiny_spec


def _trained(seed: int = 3):
    spec = tiny_spec("resnet8_narrow")
    return build(spec, seed=seed), spec


def _data(classes: int = 2, size: int = 8, channels: int = 3) -> TensorData:
    n = 40
    y = torch.arange(n) % classes
    x = torch.rand(n, channels, size, size, generator=torch.Generator().manual_seed(1))
    return TensorData(
        name="target",
        classes=tuple(f"c{i}" for i in range(classes)),
        x_train=x[:30],
        y_train=y[:30],
        x_val=x[30:],
        y_val=y[30:],
        mean=(0.5,) * channels,
        std=(0.3,) * channels,
    )


def test_same_classes_copies_every_weight_and_finetune_trains_all():
    source, spec = _trained()
    net, new_spec = transfer_net(source, spec, separable_data(), "finetune")
    assert new_spec.num_classes == 2
    src = source.state_dict()
    for k, v in net.state_dict().items():
        assert torch.equal(v, src[k]), k
    assert trainable(net) == [n for n, _ in source.named_parameters()]
    x = torch.rand(4, 3, 8, 8)
    source.eval(), net.eval()
    assert torch.equal(net(x), source(x))


def test_new_classes_get_a_new_head_and_head_mode_freezes_the_rest():
    source, spec = _trained()
    net, new_spec = transfer_net(source, spec, _data(classes=5), "head")
    assert new_spec.num_classes == 5 and net.head.fc.out_features == 5
    assert trainable(net) == ["head.fc.weight", "head.fc.bias"]
    src = source.state_dict()
    body = [k for k in net.state_dict() if not k.startswith("head.fc.")]
    assert body and all(torch.equal(net.state_dict()[k], src[k]) for k in body)
    # the new head is the seeded fresh one, not the old weights cut down
    fresh = build(new_spec, seed=0)
    assert torch.equal(net.head.fc.weight, fresh.head.fc.weight)


def test_larger_images_fit_a_net_with_global_pooling():
    source, spec = _trained()
    net, new_spec = transfer_net(source, spec, _data(size=16), "finetune")
    assert new_spec.input_shape == (3, 16, 16)
    assert net(torch.rand(2, 3, 16, 16)).shape == (2, 2)


def test_other_channels_are_refused_with_the_stem_named():
    source, spec = _trained()
    with pytest.raises(TransferError) as e:
        transfer_net(source, spec, _data(channels=1), "head")
    assert str(e.value) == (
        "transfer: the network's stem takes 3 colour channel(s), but 'target' has 1: the stem "
        "would have to change, and its trained weights with it; choose data with as many "
        "channels as the run it starts from (colour images)"
    )


def test_other_image_sizes_are_refused_for_a_net_without_global_pooling():
    spec = PRESETS["dense_residual"].spec(input_shape=(3, 8, 8), num_classes=2)
    source = build(spec, seed=0)
    with pytest.raises(TransferError) as e:
        transfer_net(source, spec, _data(size=16), "head")
    assert str(e.value) == (
        "transfer: this network has no global pooling, so it takes only 3x8x8 images, not "
        "3x16x16; resize the new images to 3x8x8"
    )
    net, _ = transfer_net(source, spec, _data(size=8, classes=3), "head")  # same size: fine
    assert net.head.fc.out_features == 3


def test_unknown_mode_and_mismatched_weights_are_refused():
    source, spec = _trained()
    with pytest.raises(TransferError, match="the transfer mode"):
        transfer_net(source, spec, separable_data(), "everything")
    other = build(tiny_spec("resnet8_narrow"), seed=0)
    wider = dataclasses.replace(spec, stem=dataclasses.replace(spec.stem, out_channels=4))
    with pytest.raises(TransferError, match="do not fit"):
        transfer_net(other, wider, separable_data(), "head")
