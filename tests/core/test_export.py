"""Export and import of runs: the standalone model.py reproduces the app's outputs in a
clean process, a zip round-trips, and every kind of hostile zip is refused by name."""

import dataclasses
import io
import json
import subprocess
import sys
import zipfile

import pytest
import torch

from core.checkpoint import load_checkpoint
from core.config import TrainConfig
from core.export import export_run
from core.model import build
from core.presets import PRESETS, cifar_resnet
from core.run_import import ImportLimits, RunImportError, import_run
from core.spec import BasicSpec, NetSpec, StemSpec
from core.standalone import demo_input
from core.store import RunStore
from core.store_writer import RunWriter
from core.telemetry import EvalRecord, Event, StepRecord


def projection_net() -> NetSpec:
    blocks = (
        BasicSpec(out_channels=8),
        BasicSpec(out_channels=16, stride=2, shortcut="projection"),
    )
    return NetSpec(
        name="projection",
        input_shape=(3, 12, 12),
        num_classes=3,
        stem=StemSpec(out_channels=8),
        blocks=blocks,
    )


SPECS = {
    "plain": cifar_resnet(3, residual=False, input_shape=(3, 16, 16)),
    "resnet20": PRESETS["resnet20"].spec(input_shape=(3, 16, 16)),
    "resnet20_off": PRESETS["resnet20"].spec(input_shape=(3, 16, 16)).with_skips(False),
    "projection": projection_net(),
    "projection_off": projection_net().with_skips(False),
    "bottleneck": PRESETS["resnet50_imagenet"].spec(input_shape=(3, 32, 32), num_classes=5),
    "dense": PRESETS["dense_residual"].spec(),
    "dense_off": PRESETS["dense_residual"].spec().with_skips(False),
}


def trained_looking(spec: NetSpec, seed: int) -> torch.nn.Module:
    """A net whose BatchNorm statistics and affine weights are no longer the defaults."""
    net = build(spec, seed=seed)
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, (torch.nn.BatchNorm1d, torch.nn.BatchNorm2d)):
                m.weight.uniform_(0.5, 1.5, generator=g)
                m.bias.uniform_(-0.2, 0.2, generator=g)
        net.train()
        net(torch.randn(4, *spec.input_shape, generator=g))  # moves the running stats
    return net.eval()


def store_run(store: RunStore, specs: dict, owner: str = "ann"):
    rid = store.create_run(
        owner,
        "exported",
        arms=specs,
        config=TrainConfig(device="cpu"),
        data={"name": "shapes", "size": 16},
        device="CPU",
    )
    writer = RunWriter(store, rid, every_s=3600)
    nets = {}
    for i, (arm, spec) in enumerate(specs.items()):
        nets[arm] = trained_looking(spec, seed=i)
        names = tuple(n for n, _ in nets[arm].named_parameters())  # what a Trainer logs
        writer.arm(arm, layers=("stem", "head"), param_names=names)
        for s in (1, 2):
            writer.step(
                arm,
                StepRecord(
                    step=s,
                    epoch=s / 4,
                    loss=1 / 3 + s,
                    accuracy=0.5,
                    lr=0.1,
                    grad_norms=(1e-30, 0.1),
                    weight_norms=(1.0, 2.0),
                    update_ratios=(0.01, 1 / 7),
                ),
            )
        writer.eval(arm, EvalRecord(step=2, epoch=0.5, loss=0.9, accuracy=0.75))
        writer.event(arm, Event(step=1, kind="skip", detail="skip off: all blocks"))
        writer.checkpoint(arm, nets[arm], step=2)
    writer.close()
    store.finish(rid, "finished")
    return rid, nets


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    store = RunStore(tmp_path_factory.mktemp("data"))
    rid, nets = store_run(store, SPECS)
    return store, rid, nets, export_run(store, rid)


@pytest.fixture(scope="module")
def small(tmp_path_factory):
    """A two-arm run, for the import tests (each import builds every arm's network)."""
    store = RunStore(tmp_path_factory.mktemp("data"))
    specs = {"resnet20": SPECS["resnet20"], "dense": SPECS["dense"]}
    rid, nets = store_run(store, specs)
    return store, rid, nets, export_run(store, rid)


def members(data: bytes) -> dict[str, bytes]:
    with zipfile.ZipFile(io.BytesIO(data)) as z:
        return {n: z.read(n) for n in z.namelist()}


def rezip(data: bytes, name: str, value: bytes | None) -> bytes:
    """The zip with one entry replaced or added (bytes) or removed (None)."""
    files = members(data)
    files.pop(name, None)
    if value is not None:
        files[name] = value
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as z:
        for key, content in files.items():
            z.writestr(key, content)
    return out.getvalue()


@pytest.mark.slow
def test_standalone_model_py_gives_the_apps_outputs_in_a_clean_process(exported, tmp_path):
    _, _, nets, data = exported
    files = members(data)
    for name in ("model.py", *(f"weights-{arm}.safetensors" for arm in SPECS)):
        (tmp_path / name).write_bytes(files[name])

    def run(*args):
        out = subprocess.run(
            [sys.executable, "-I", "model.py", *args],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=600,
        )
        assert out.returncode == 0, out.stderr
        return json.loads(out.stdout)

    every = run("--all")
    assert list(every) == list(SPECS)
    assert run("--arm", "projection") == every["projection"]
    for arm, spec in SPECS.items():
        with torch.no_grad():
            expected = nets[arm](demo_input(spec.input_shape))
        got = torch.tensor(every[arm])
        assert got.shape == expected.shape == (2, spec.num_classes)
        torch.testing.assert_close(got, expected, atol=1e-5, rtol=0, msg=arm)


def test_model_py_holds_the_specs_and_imports_nothing_of_the_project(small):
    store, rid, _, data = small
    source = members(data)["model.py"].decode()
    assert "from core" not in source and "import core" not in source
    namespace = {"__name__": "exported_model"}
    exec(compile(source, "model.py", "exec"), namespace)  # our own export, not a user's zip
    assert namespace["SPECS"] == {a: now.to_dict() for a, (_, now) in store.specs(rid).items()}


def test_a_run_round_trips_through_export_and_import(small, tmp_path):
    store, rid, nets, data = small
    target = RunStore(tmp_path)
    new = import_run(target, "bob", data)
    info, old = target.run(new), store.run(rid)
    assert (info.owner, info.name, info.status, info.arms) == (
        "bob",
        old.name,
        "finished",
        old.arms,
    )
    assert (info.config, info.data, info.device) == (old.config, old.data, old.device)
    assert target.specs(new) == store.specs(rid)
    for arm in ("resnet20", "dense"):
        a, b = store.snapshot(rid, arm), target.snapshot(new, arm)
        assert (a.steps, a.evals, a.events, a.layers, a.param_names) == (
            b.steps,
            b.evals,
            b.events,
            b.layers,
            b.param_names,
        )
    net = build(SPECS["resnet20"], seed=99)
    load_checkpoint(target.checkpoint_path(new, "resnet20"), net)
    ref = nets["resnet20"].state_dict()
    assert all(torch.equal(v, ref[k]) for k, v in net.state_dict().items())


def test_model_py_in_the_zip_is_never_run(small, tmp_path):
    _, _, _, data = small
    marker = tmp_path / "ran"
    evil = f"open({str(marker)!r}, 'w').write('x')\nraise SystemExit(3)\n".encode()
    import_run(RunStore(tmp_path / "d"), "eve", rezip(data, "model.py", evil))
    assert not marker.exists()


def _weights_of(spec: NetSpec) -> bytes:
    from safetensors.torch import save

    return save({k: v.contiguous() for k, v in build(spec, seed=0).state_dict().items()})


def bad_cases(data: bytes) -> list:
    """(zip bytes, limits, exact start of the message) for each kind of bad zip."""
    w = members(data)["weights-resnet20.safetensors"]
    wider = dataclasses.replace(SPECS["resnet20"], stem=StemSpec(out_channels=8))
    header_len = int.from_bytes(w[:8], "little")
    huge = (2**40).to_bytes(8, "little") + w[8:]
    csv_head = b"step,epoch,loss,accuracy,lr,images_per_s,seconds\n"

    def weights(value: bytes, problem: str):
        return rezip(data, "weights-resnet20.safetensors", value), None, f"{W}{problem}"

    W = "weights-resnet20.safetensors in the zip: "
    return [
        (b"PK\x03\x04 not really", None, "the zip: is not a zip archive"),
        (data, ImportLimits(max_zip_bytes=1000), "the zip: is "),
        (rezip(data, "../run.json", b"{}"), None, "'../run.json' in the zip: is a path"),
        (rezip(data, "sub/x.csv", b""), None, "'sub/x.csv' in the zip: is a path"),
        (rezip(data, "evil.exe", b"MZ"), None, "evil.exe in the zip: is not part of a run"),
        (rezip(data, "spec-dense.json", None), None, "spec-dense.json in the zip: is missing"),
        (rezip(data, "run.json", b"{"), None, "run.json in the zip: is not valid JSON"),
        (rezip(data, "run.json", b'{"format": 9}'), None, "run.json in the zip: has format 9"),
        (
            rezip(data, "spec-dense.json", b'{"schema": 1}'),
            None,
            "spec-dense.json in the zip: cannot be used: the network: the spec has no",
        ),
        weights(w[:-10], "holds "),
        weights(huge, "declares a header of 1,099,511,627,776 bytes"),
        weights(w[: 8 + header_len // 2], "is cut short inside its header"),
        weights(w[:8] + b"[" + w[9:], "has a header that is not"),
        weights(
            _weights_of(wider),
            "gives 'stem.conv.weight' as F32 [8, 3, 3, 3], but the spec needs F32 [16, 3, 3, 3]",
        ),
        weights(_weights_of(SPECS["dense"]), "lacks 'blocks.0.bn1.bias', a parameter of"),
        (data, ImportLimits(max_json_bytes=100), "run.json in the zip: is larger than"),
        (
            rezip(data, "metrics-dense.csv", csv_head + b"0" * (3 * 2**20)),
            ImportLimits(max_ratio=5),
            "metrics-dense.csv in the zip: unpacks to far more than it holds packed",
        ),
        (
            rezip(data, "metrics-dense.csv", csv_head + b"1,0,x,0,0,0,0\n"),
            None,
            "metrics-dense.csv in the zip: has a value that is not a number on line 2",
        ),
        (
            rezip(data, "events.json", b'[{"arm": "nobody"}]'),
            None,
            "events.json in the zip: event 0 needs an arm of this run",
        ),
    ]


def test_every_bad_zip_is_refused_with_the_file_and_the_problem(small, tmp_path):
    _, _, _, data = small
    store = RunStore(tmp_path)
    for case, (bad, limits, start) in enumerate(bad_cases(data)):
        kw = {"limits": limits} if limits else {}
        with pytest.raises(RunImportError) as e:
            import_run(store, "eve", bad, **kw)
        assert str(e.value).startswith(start), f"{case}: {e.value}"
    assert store.list_runs("eve") == []  # nothing half-imported
