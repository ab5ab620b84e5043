"""Items in, files out: the `input` and `output` sections of a workflow file.

`loader(spec)` turns the command-line argument into items (text files, JSON lines, CSV rows,
emails, or the argument itself); `finisher(...)` writes `results.jsonl` and the optional
report after the batch. An unreadable input is an `InputError` naming the file and line.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jinja2
import pydantic_core
from pydantic import TypeAdapter, ValidationError

from ..errors import InputError, pydantic_message
from ..inputs.email import load_inbox, parse_email
from ..runtime.runner import BatchResult, Item
from ..steps.context import RunContext
from . import expressions as ex
from .schema import InputSpec, OutputFiles

Loader = Callable[[Path], list[Item]]


def loader(spec: InputSpec) -> Loader:
    """The function reading a CLI argument into items, for the `input` section."""
    readers: dict[str, Loader] = {
        "text": lambda path: _text(path, spec.pattern),
        "jsonl": lambda path: _jsonl(path, spec.key),
        "json": lambda path: _json(path, spec.key),
        "csv": lambda path: _csv(path, spec.key),
        "email": load_inbox,
        "value": lambda path: _value(str(path), spec.json_),
    }
    return readers[spec.type]


def prepare_item(spec: InputSpec, item_type: Any) -> Callable[[Any], Any]:
    """What the workflow's first step sees of an item: an email parsed, and the item checked
    against `input.schema` (a failure fails that item only, with the reason)."""
    adapter = None if item_type is None or item_type is str else TypeAdapter(item_type)

    def prepare(value: Any) -> Any:
        if spec.type == "email":
            value = parse_email(value)
        if adapter is not None:
            try:
                value = adapter.validate_python(value)
            except ValidationError as e:
                raise InputError(f"the item does not match input.schema: {_first(e)}") from e
        return value

    return prepare


def _first(error: ValidationError) -> str:
    first = error.errors()[0]
    where = ".".join(str(p) for p in first["loc"])
    return f"{where + ': ' if where else ''}{pydantic_message(first)}"


def _read(path: Path) -> str:
    if not path.exists():
        raise InputError("no such file or folder", source=str(path))
    if path.is_dir():
        raise InputError("expected a file, got a folder", source=str(path))
    try:
        return path.read_text(encoding="utf-8")
    except OSError as e:
        raise InputError(f"cannot read: {e.strerror}", source=str(path)) from e
    except UnicodeDecodeError as e:
        raise InputError(f"not UTF-8 text (byte {e.start})", source=str(path)) from e


def _text(path: Path, pattern: str) -> list[Item]:
    if path.is_dir():
        files = sorted(p for p in path.glob(pattern) if p.is_file() and not p.name.startswith("."))
        if not files:
            raise InputError(f"no files matching {pattern!r} in this folder", source=str(path))
        return [Item(key=p.name, value=_read(p)) for p in files]
    return [Item(key=path.name, value=_read(path))]


def _key(value: Any, key: str | None, default: str, where: str) -> str:
    if key is None:
        return default
    if not isinstance(value, dict) or key not in value:
        raise InputError(f"no field {key!r} (input.key) in this item", source=where)
    return str(value[key])


def _jsonl(path: Path, key: str | None) -> list[Item]:
    items = []
    for number, line in enumerate(_read(path).splitlines(), start=1):
        if not line.strip():
            continue
        where = f"{path}:{number}"
        try:
            value = json.loads(line)
        except json.JSONDecodeError as e:
            raise InputError(f"invalid JSON at column {e.colno}: {e.msg}", source=where) from e
        items.append(Item(key=_key(value, key, f"line-{number}", where), value=value))
    if not items:
        raise InputError("no JSON lines in this file", source=str(path))
    return items


def _json(path: Path, key: str | None) -> list[Item]:
    try:
        value = json.loads(_read(path))
    except json.JSONDecodeError as e:
        raise InputError(f"invalid JSON at line {e.lineno} column {e.colno}: {e.msg}",
                         source=str(path)) from e  # fmt: skip
    values = value if isinstance(value, list) else [value]
    if not values:
        raise InputError("the JSON list is empty", source=str(path))
    return [
        Item(key=_key(v, key, str(n) if isinstance(value, list) else path.name, f"{path}[{n}]"),
             value=v)
        for n, v in enumerate(values, start=1)
    ]  # fmt: skip


def _csv(path: Path, key: str | None) -> list[Item]:
    # newline="": quoted fields may hold line breaks; the reader counts the file's lines.
    reader = csv.DictReader(io.StringIO(_read(path), newline=""))
    items = []
    try:
        for number, row in enumerate(reader, start=1):
            where = f"{path}:{reader.line_num}"
            if None in row:
                raise InputError("more values than header columns", source=where)
            items.append(Item(key=_key(row, key, f"row-{number}", where), value=row))
    except csv.Error as e:
        raise InputError(f"invalid CSV: {e}", source=f"{path}:{reader.line_num}") from e
    if not items:
        raise InputError("no rows below the header", source=str(path))
    return items


def _value(text: str, as_json: bool) -> list[Item]:
    if not as_json:
        return [Item(key="value", value=text)]
    try:
        return [Item(key="value", value=json.loads(text))]
    except json.JSONDecodeError as e:
        raise InputError(f"the input is not JSON (column {e.colno}: {e.msg})") from e


def columns(spec: OutputFiles) -> Callable[[Any], dict[str, str]] | None:
    """The CLI table's columns: name -> expression over `output` (compiled at load)."""
    if not spec.columns:
        return None
    compiled = {name: ex.compile_expression(e, lenient_undefined=True)
                for name, e in spec.columns.items()}  # fmt: skip

    def cells(output: Any) -> dict[str, str]:
        out = {}
        for name, expression in compiled.items():
            try:
                value = expression(output=output)
            except jinja2.TemplateError as e:
                value = f"({e.message})"
            out[name] = "" if value is None else str(value)
        return out

    return cells


@dataclass(frozen=True, slots=True)
class Report:
    """A Jinja template rendered over the batch's results to a file of the run's folder."""

    file: str
    template: jinja2.Template


def finisher(
    spec: OutputFiles, reports: Sequence[Report] = ()
) -> Callable[[BatchResult, RunContext], dict[str, Path]]:
    """Writes results.jsonl (and the reports) into the run's folder after the batch."""

    def finish(batch: BatchResult, ctx: RunContext) -> dict[str, Path]:
        if ctx.out_dir is None:
            return {}
        ctx.out_dir.mkdir(parents=True, exist_ok=True)
        rows = [
            {"key": r.key, "ok": True, "output": _plain(r.output)}
            if r.ok
            else {"key": r.key, "ok": False, "error": str(r.error)}
            for r in batch.results
        ]
        results = ctx.out_dir / spec.results
        results.parent.mkdir(parents=True, exist_ok=True)
        with results.open("w", encoding="utf-8") as f:
            for row in rows:
                f.write(json.dumps(row, ensure_ascii=False) + "\n")
        files = {"results": results}
        for index, report in enumerate(reports):
            text = report.template.render(
                workflow=batch.workflow,
                run_id=batch.run_id,
                status=batch.status,
                results=rows,
                ok=[r for r in rows if r["ok"]],
                failed=[r for r in rows if not r["ok"]],
            )
            target = ctx.out_dir / report.file
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(text, encoding="utf-8")
            files["report" if index == 0 else report.file] = target
        return files

    return finish


def _plain(value: Any) -> Any:
    """Any output as JSON-ready data (pydantic models, paths, ...)."""
    return json.loads(pydantic_core.to_json(value, fallback=repr))
