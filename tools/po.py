"""The translation catalogues without Babel: extract marked strings, read .po, write .mo.

- `extract(folders)`: every literal string passed to a marker (MARKERS: `_()`, `N_()`,
  `fill()`, `translate()`, and core's `say()` from core/words.py) in the Python files of
  `folders`, found with `ast` (nothing is imported or run).
- `parse_po(text)`: the entries of a .po file (msgid, msgstr, fuzzy flag, line).
- `compile_mo(entries)`: GNU .mo bytes that the standard library's `gettext` reads.

Run: .venv/bin/python tools/po.py          compile every app/locales/*/LC_MESSAGES/*.po
     .venv/bin/python tools/po.py --check  exit 1 if a .mo is not what its .po compiles to
     .venv/bin/python tools/po.py --missing  list marked strings the German catalogue lacks
"""

from __future__ import annotations

import argparse
import ast
import struct
import sys
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LOCALES = ROOT / "app" / "locales"
DOMAIN = "messages"
# say(): core/words.py, a template with values; translate: `_` where `_` is a throwaway;
# fill(): `_()` and its values, numbers as the language writes them (app/i18n.py)
MARKERS = ("_", "N_", "say", "translate", "fill")
HEADER = "Content-Type: text/plain; charset=UTF-8\n"


class PoError(ValueError):
    """A .po file this reader does not understand; the message names the line."""


@dataclass(frozen=True)
class Entry:
    msgid: str
    msgstr: str
    fuzzy: bool = False
    line: int = 0


def extract(folders: list[Path]) -> dict[str, list[str]]:
    """{marked string: ['app/views/x.py:12', ...]} over every .py file under `folders`."""
    found: dict[str, list[str]] = {}
    for folder in folders:
        for path in sorted(folder.rglob("*.py")):
            tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
            for node in ast.walk(tree):
                if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Name)):
                    continue
                if node.func.id not in MARKERS or len(node.args) != 1:
                    continue
                arg = node.args[0]
                if isinstance(arg, ast.Constant) and isinstance(arg.value, str):
                    where = f"{path.relative_to(ROOT)}:{node.lineno}"
                    found.setdefault(arg.value, []).append(where)
    return found


def _unquote(token: str, line: int) -> str:
    if len(token) < 2 or token[0] != '"' or token[-1] != '"':
        raise PoError(f"line {line}: expected a quoted string, got {token[:30]!r}")
    out, body, i = [], token[1:-1], 0
    escapes = {"n": "\n", "t": "\t", '"': '"', "\\": "\\"}
    while i < len(body):
        ch = body[i]
        if ch == "\\":
            if i + 1 >= len(body) or body[i + 1] not in escapes:
                raise PoError(f"line {line}: unknown escape in {token[:30]!r}")
            out.append(escapes[body[i + 1]])
            i += 2
        else:
            out.append(ch)
            i += 1
    return "".join(out)


def parse_po(text: str) -> list[Entry]:
    """Entries of a .po file; obsolete (#~) entries are skipped, plurals refused."""
    entries: list[Entry] = []
    current: dict = {}
    key = None
    fuzzy = False

    def finish():
        nonlocal current, fuzzy
        if "msgid" in current:
            if "msgstr" not in current:
                raise PoError(f"line {current['line']}: msgid without msgstr")
            entries.append(Entry(current["msgid"], current["msgstr"], fuzzy, current["line"]))
            fuzzy = False  # a flag belongs to the entry after it
        current = {}

    for n, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line:
            finish()
            key = None
        elif line.startswith("#"):
            if line.startswith("#,") and "fuzzy" in line:
                fuzzy = True
        elif line.startswith(("msgid_plural", "msgctxt", "msgstr[")):
            raise PoError(f"line {n}: plurals and contexts are not supported here")
        elif line.startswith("msgid "):
            finish()
            key, current = "msgid", {"line": n, "msgid": _unquote(line[6:].strip(), n)}
        elif line.startswith("msgstr "):
            key = "msgstr"
            current["msgstr"] = _unquote(line[7:].strip(), n)
        elif line.startswith('"') and key:
            current[key] += _unquote(line, n)
        else:
            raise PoError(f"line {n}: cannot read {line[:30]!r}")
    finish()
    return entries


def compile_mo(entries: list[Entry]) -> bytes:
    """GNU .mo (little-endian, no hash table) of the translated, non-fuzzy entries."""
    pairs = {"": HEADER}
    pairs |= {e.msgid: e.msgstr for e in entries if e.msgid and e.msgstr and not e.fuzzy}
    keys = sorted(pairs)
    ids = [k.encode("utf-8") for k in keys]
    strs = [pairs[k].encode("utf-8") for k in keys]
    n = len(keys)
    start = 7 * 4 + 16 * n  # header, then two tables of (length, offset) pairs
    offsets, blob = [], b""
    for data in ids + strs:
        offsets.append((len(data), start + len(blob)))
        blob += data + b"\0"
    header = struct.pack("<7I", 0x950412DE, 0, n, 28, 28 + 8 * n, 0, 0)
    tables = b"".join(struct.pack("<2I", *o) for o in offsets)
    return header + tables + blob


def catalogues() -> list[Path]:
    return sorted(LOCALES.glob(f"*/LC_MESSAGES/{DOMAIN}.po"))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--check", action="store_true")
    ap.add_argument("--missing", action="store_true")
    args = ap.parse_args(argv)
    status = 0
    for po in catalogues():
        mo = po.with_suffix(".mo")
        entries = parse_po(po.read_text(encoding="utf-8"))
        data = compile_mo(entries)
        if args.missing:
            have = {e.msgid for e in entries if e.msgstr and not e.fuzzy}
            for msgid, where in extract([ROOT / "app", ROOT / "core"]).items():
                if msgid not in have:
                    print(f"{po.parent.parent.name}: {msgid!r} ({where[0]})")
        elif args.check:
            if not mo.exists() or mo.read_bytes() != data:
                print(f"{mo.relative_to(ROOT)} is stale: run tools/po.py")
                status = 1
        else:
            mo.write_bytes(data)
            print(f"wrote {mo.relative_to(ROOT)} ({len(entries)} entries)")
    return status


if __name__ == "__main__":
    sys.exit(main())
