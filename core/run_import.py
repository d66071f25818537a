"""Import a run zip made by `core.export`, as hostile input.

Caps on the zip, on each entry and on what it unpacks to (counted while unpacking);
only the expected names, no folders; every safetensors header parsed by us and checked
against the spec's parameter names, dtypes and shapes before a tensor is read. model.py
is never read, let alone run. Each refusal names the file and what is wrong with it.
"""

from __future__ import annotations

import csv
import io
import json
import zipfile
import zlib
from dataclasses import dataclass

from safetensors import SafetensorError
from safetensors.torch import load as st_load

from core.checkpoint import CheckpointError, read_header
from core.config import TrainConfig
from core.errors import ExplainedError
from core.export import EVAL_COLUMNS, FIXED_COLUMNS, FORMAT, SERIES, entry_names, safe_arm_name
from core.model import build
from core.spec import NetSpec
from core.store import RunStore
from core.store_writer import RunWriter
from core.telemetry import EvalRecord, Event, StepRecord
from core.words import N_, say

_MB = 1024**2
ENDED = ("finished", "stopped", "failed", "diverged", "cancelled", "interrupted")
_DTYPE_NAMES = {"float32": "F32", "float64": "F64", "int64": "I64", "float16": "F16"}


@dataclass(frozen=True, kw_only=True)
class ImportLimits:
    """What a run zip may cost the server (move to core/limits.py when merging)."""

    max_zip_bytes: int = 256 * _MB  # a ResNet-56 twin with 64k logged steps is ~100 MB
    max_unzipped_bytes: int = 768 * _MB  # counted while unpacking, never declared sizes
    max_json_bytes: int = 2 * _MB  # a 500-block spec is ~100 kB
    max_csv_bytes: int = 256 * _MB
    max_weights_bytes: int = 640 * _MB  # SpecLimits.max_params (150M) as float32, plus BN
    max_ratio: int = 200  # CSV of floats packs ~10x; zip bombs reach 1000x and more
    ratio_floor_bytes: int = _MB
    max_arms: int = 8
    max_text: int = 500  # characters of a name, an event's kind or detail


IMPORT_LIMITS = ImportLimits()


class RunImportError(ExplainedError):
    """A run zip refused; the message names the file in the zip and what is wrong."""


def _fail(problem: str, entry: str | None = None, fix: str | None = None):
    where = say("{entry} in the zip", entry=entry) if entry else N_("the zip")
    fix = fix or N_("export the run again and import that")
    raise RunImportError(problem, where=where, fix=fix)


def import_run(
    store: RunStore, owner: str, data: bytes, *, limits: ImportLimits = IMPORT_LIMITS
) -> str:
    """Check a run zip in full, then store it as a new run of `owner`; returns its id.

    Raises:
        RunImportError: naming the file and the problem.
        StoreFullError: the owner is at the cap on stored runs.
    """
    files = _read_zip(data, limits)
    meta, arms = _meta_and_arms(files, limits)
    config = _parse("config.json", lambda: TrainConfig.from_json(_text(files, "config.json")))
    specs = {a: _spec(files, f"spec-{a}.json") for a in arms}
    starts = meta.get("spec_start") if isinstance(meta.get("spec_start"), dict) else {}
    start = {
        a: _parse("run.json", lambda a=a: NetSpec.from_dict(starts[a])) if a in starts else specs[a]
        for a in arms
    }
    nets = {a: _weights(files, a, specs[a], limits) for a in arms}
    steps = {a: _metrics(files, f"metrics-{a}.csv") for a in arms}
    evals, events = _evals(files, arms), _events(files, arms, limits)

    status = meta.get("status") if meta.get("status") in ENDED else "interrupted"
    run_id = store.create_run(
        owner,
        _short(meta.get("name"), "imported run", limits),
        arms=start,
        config=config,
        data=meta.get("data") if isinstance(meta.get("data"), dict) else {},
        device=_short(meta.get("device"), "", limits),
        status=status,
    )
    writer = RunWriter(store, run_id, every_s=3600, every_n=10**9)
    for arm in arms:
        layers, records = steps[arm]
        net = nets[arm] if nets[arm] is not None else build(specs[arm])
        params = tuple(n for n, p in net.named_parameters() if p.requires_grad)
        writer.arm(arm, spec=specs[arm], layers=layers, param_names=params)
        for r in records:
            writer.step(arm, r)
        last = records[-1].step if records else 0
        if nets[arm] is not None:
            writer.checkpoint(arm, nets[arm], step=last)
    for arm, record in evals:
        writer.eval(arm, record)
    for arm, event in events:
        writer.event(arm, event)
    writer.close()
    store.finish(run_id, status, _short(meta.get("message"), "", limits), results={})
    return run_id


def _meta_and_arms(files: dict[str, bytes], limits: ImportLimits) -> tuple[dict, list[str]]:
    """run.json's contents and its arm names, checked: the format this version reads, 1 to
    max_arms safe distinct names, and no entry in the zip that is not part of the run."""
    meta = _json(files, "run.json", dict)
    if meta.get("format") != FORMAT:
        _fail(
            say(
                "has format {got!r}; this version reads format {want}",
                got=meta.get("format"),
                want=FORMAT,
            ),
            "run.json",
        )
    arms = meta.get("arms")
    if not isinstance(arms, list) or not 1 <= len(arms) <= limits.max_arms:
        _fail(say("must list 1 to {n} arms", n=limits.max_arms), "run.json")
    if not all(isinstance(a, str) and safe_arm_name(a) for a in arms) or len(set(arms)) < len(arms):
        _fail("has an arm name that is not letters, digits, - or _", "run.json")
    unexpected = sorted(set(files) - entry_names(arms))
    if unexpected:
        expected = ", ".join(sorted(entry_names(arms)))
        _fail(
            say("is not part of a run export (expected only: {expected})", expected=expected),
            unexpected[0],
        )
    return meta, arms


def _read_zip(data: bytes, lim: ImportLimits) -> dict[str, bytes]:
    """Every entry's bytes, read under the caps; names checked before anything is read."""
    if len(data) > lim.max_zip_bytes:
        _fail(
            say(
                "is {mb:,.0f} MB; this server takes run zips up to {limit:,.0f} MB",
                mb=len(data) / _MB,
                limit=lim.max_zip_bytes / _MB,
            )
        )
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
        infos = archive.infolist()
    except (zipfile.BadZipFile, OSError, ValueError):
        _fail(say("is not a zip archive"), fix=say("choose the .zip that Export made"))
    names = [i.filename for i in infos]
    for name in names:
        if "/" in name or "\\" in name or name.startswith(".") or not name.isprintable():
            why = say("is a path or a hidden file; a run zip holds only plain file names")
            _fail(why, repr(name))
    if len(infos) > 3 + 3 * lim.max_arms + 2:
        _fail(say("holds {n} files, more than a run export has", n=len(infos)))
    if len(set(names)) < len(names):
        _fail(say("holds two files of the same name"))
    budget, files = [lim.max_unzipped_bytes], {}
    for info in infos:
        if info.filename != "model.py":  # never read, never run
            files[info.filename] = _read_entry(archive, info, budget, lim)
    return files


def _entry_cap(name: str, lim: ImportLimits) -> int:
    if name.endswith(".safetensors"):
        return lim.max_weights_bytes
    return lim.max_csv_bytes if name.endswith(".csv") else lim.max_json_bytes


def _read_entry(archive, info, budget: list[int], lim: ImportLimits) -> bytes:
    cap = _entry_cap(info.filename, lim)
    ratio_cap = max(lim.ratio_floor_bytes, lim.max_ratio * max(1, info.compress_size))
    chunks, got = [], 0
    try:
        with archive.open(info) as f:
            while chunk := f.read(1 << 20):
                got += len(chunk)
                budget[0] -= len(chunk)
                if got > cap:
                    _fail(
                        say("is larger than {mb:,.0f} MB, the cap for this file", mb=cap / _MB),
                        info.filename,
                    )
                if got > ratio_cap or budget[0] < 0:
                    _fail(
                        say("unpacks to far more than it holds packed, as a zip bomb does"),
                        info.filename,
                    )
                chunks.append(chunk)
    except RunImportError:
        raise
    except (zipfile.BadZipFile, RuntimeError, NotImplementedError, EOFError, OSError, zlib.error):
        why = say("is damaged inside the zip (bad checksum, cut short or encrypted)")
        _fail(why, info.filename)
    return b"".join(chunks)


def _text(files: dict, name: str) -> str:
    if name not in files:
        _fail(say("is missing"), name)
    try:
        return files[name].decode("utf-8")
    except UnicodeDecodeError:
        _fail(say("is not UTF-8 text"), name)


def _json(files: dict, name: str, kind: type):
    try:
        value = json.loads(_text(files, name))
    except json.JSONDecodeError as e:
        _fail(say("is not valid JSON (line {line}: {why})", line=e.lineno, why=e.msg), name)
    if not isinstance(value, kind):
        _fail(
            say("must hold a JSON object") if kind is dict else say("must hold a JSON list"), name
        )
    return value


def _parse(name: str, read):
    """Run a parser of core (spec, config); its refusal becomes one naming the file."""
    try:
        return read()
    except RunImportError:
        raise
    except (ValueError, KeyError, TypeError) as e:
        _fail(say("cannot be used: {why}", why=e), name)  # the app translates `e` itself


def _spec(files: dict, name: str) -> NetSpec:
    spec = _parse(name, lambda: NetSpec.from_json(_text(files, name)))
    _parse(name, spec.validate)  # the caps on blocks, channels and parameters
    return spec


def _short(value, default: str, lim: ImportLimits) -> str:
    return value[: lim.max_text] if isinstance(value, str) and value.isprintable() else default


def _weights(files: dict, arm: str, spec: NetSpec, lim: ImportLimits):
    """The arm's network with the zip's weights, or None if the zip has none for it."""
    name = f"weights-{arm}.safetensors"
    if name not in files:
        return None
    data = files[name]
    try:
        header = read_header(data, where=f"{name} in the zip")
    except CheckpointError as e:
        raise RunImportError(e.problem, where=e.where, fix=e.fix) from None
    net = build(spec, seed=0)
    expected = net.state_dict()
    found = {k: v for k, v in header.items() if k != "__metadata__"}
    missing, extra = sorted(expected.keys() - found.keys()), sorted(found.keys() - expected)
    if missing:
        _fail(
            say(
                "lacks {key!r}, a parameter of the network in spec-{arm}.json",
                key=missing[0],
                arm=arm,
            ),
            name,
        )
    if extra:
        _fail(
            say(
                "has {key!r}, which the network in spec-{arm}.json does not have",
                key=extra[0],
                arm=arm,
            ),
            name,
        )
    for key, tensor in expected.items():
        want = (_DTYPE_NAMES.get(str(tensor.dtype).removeprefix("torch.")), list(tensor.shape))
        got = (found[key]["dtype"], found[key]["shape"])
        if got != want:
            _fail(
                f"gives {key!r} as {got[0]} {got[1]}, but the spec needs {want[0]} {want[1]}", name
            )
    try:
        net.load_state_dict(st_load(data))
    except (SafetensorError, RuntimeError) as e:
        _fail(say("cannot be read ({why})", why=str(e).splitlines()[0]), name)
    return net


def _floats(row: list[str], name: str, line: int) -> list[float]:
    try:
        return [float(v) for v in row]
    except ValueError:
        _fail(say("has a value that is not a number on line {line}", line=line), name)


def _rows(files: dict, name: str) -> list[list[str]]:
    try:
        return list(csv.reader(io.StringIO(_text(files, name))))
    except csv.Error as e:
        _fail(say("is not a readable CSV file ({why})", why=str(e)), name)


def _metrics(files: dict, name: str):
    """(layers, parameter names, StepRecords) from an arm's metrics CSV."""
    if name not in files:
        return (), (), []
    rows = _rows(files, name)
    if not rows or tuple(rows[0][: len(FIXED_COLUMNS)]) != FIXED_COLUMNS:
        _fail(say("must start with the columns {names}", names=", ".join(FIXED_COLUMNS)), name)
    header = rows[0][len(FIXED_COLUMNS) :]
    groups = {
        field: [h.split(":", 1)[1] for h in header if h.startswith(f"{prefix}:")]
        for prefix, field in SERIES
    }
    if sum(map(len, groups.values())) != len(header):
        _fail(say("has a column that is not a metric of a run export"), name)
    records = []
    for line, row in enumerate(rows[1:], 2):
        if len(row) != len(rows[0]):
            _fail(
                say(
                    "has {n} values on line {line}, not {want}",
                    n=len(row),
                    line=line,
                    want=len(rows[0]),
                ),
                name,
            )
        values = _floats(row, name, line)
        if not values[0].is_integer() or (records and values[0] <= records[-1].step):
            _fail(
                say(
                    "has a step on line {line} that is not a whole number after the last",
                    line=line,
                ),
                name,
            )
        series, at = {}, len(FIXED_COLUMNS)
        for _, field in SERIES:
            series[field] = tuple(values[at : at + len(groups[field])])
            at += len(groups[field])
        scalars = dict(zip(FIXED_COLUMNS[1:], values[1 : len(FIXED_COLUMNS)], strict=True))
        records.append(StepRecord(step=int(values[0]), **scalars, **series))
    return tuple(groups["grad_norms"]), records


def _evals(files: dict, arms) -> list[tuple[str, EvalRecord]]:
    name = "evaluations.csv"
    if name not in files:
        return []
    rows = _rows(files, name)
    if not rows or tuple(rows[0]) != EVAL_COLUMNS:
        _fail(say("must have the columns {names}", names=", ".join(EVAL_COLUMNS)), name)
    out = []
    for line, row in enumerate(rows[1:], 2):
        if len(row) != len(EVAL_COLUMNS) or row[0] not in arms:
            _fail(
                say("line {line} does not name an arm of this run with four numbers", line=line),
                name,
            )
        step, epoch, loss, acc = _floats(row[1:], name, line)
        out.append((row[0], EvalRecord(step=int(step), epoch=epoch, loss=loss, accuracy=acc)))
    return out


def _events(files: dict, arms, lim: ImportLimits) -> list[tuple[str, Event]]:
    name = "events.json"
    if name not in files:
        return []
    out = []
    for i, e in enumerate(_json(files, name, list)):
        ok = isinstance(e, dict) and e.get("arm") in arms and type(e.get("step")) is int
        ok = ok and all(
            isinstance(e.get(k), str) and len(e[k]) <= lim.max_text for k in ("kind", "detail")
        )
        if not ok:
            _fail(
                say("event {i} needs an arm of this run, a whole step, a kind and a detail", i=i),
                name,
            )
        out.append((e["arm"], Event(step=e["step"], kind=e["kind"], detail=e["detail"])))
    return out
