"""Python objects named in workflow files: `tools:lookup_order`, `package.module:attr`, or a
tool registered under the `llmflow.tools` entry point group.

`tools:x` names `tools.py` in the workflow's folder when that file exists. It is loaded by its
path, under a module name derived from that path (`llmflow_local_<hash>_tools`), so two
folders' `tools.py` never clash and `sys.path` is left as it was. The module is kept in
`sys.modules` under that name (pydantic resolves a model's annotations through it) and
reloaded when the file changes.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import re
import sys
import traceback
from collections.abc import Sequence
from dataclasses import dataclass
from importlib.metadata import entry_points
from pathlib import Path
from types import ModuleType
from typing import Any

from .source import did_you_mean

TOOLS_GROUP = "llmflow.tools"
_REF = re.compile(r"^[A-Za-z_][\w.]*:[A-Za-z_][\w.]*$")


class ImportProblem(Exception):
    """A reference that does not resolve; the message says why and how to fix it."""


@dataclass(frozen=True, slots=True)
class _Loaded:
    module: ModuleType
    mtime_ns: int


_local: dict[Path, _Loaded] = {}


def is_reference(text: str) -> bool:
    """Whether `text` looks like `module:attr`."""
    return bool(_REF.match(text))


def resolve(ref: str, folder: Path | Sequence[Path]) -> Any:
    """The object `module:attr` names: `module.py` in `folder` (or the first of several
    folders that has it), else an installed module."""
    if not is_reference(ref):
        raise ImportProblem(
            f"{ref!r} is not an import path: write module:name (e.g. tools:lookup_order for "
            "tools.py next to the workflow, or package.module:function)"
        )
    module_name, _, attr = ref.partition(":")
    folders = [folder] if isinstance(folder, Path) else list(dict.fromkeys(folder))
    candidates = [f / f"{module_name}.py" for f in folders]
    local = next((c for c in candidates if c.is_file()), candidates[0])
    if "." not in module_name and local.is_file():
        module = load_local(local)
        where = local.name
    else:
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as e:
            places = " or ".join(str(f) for f in folders)
            hint = f" (no {local.name} in {places}, and no installed module either)"
            raise ImportProblem(f"cannot import {module_name!r}{hint}: {e}") from None
        except Exception as e:
            raise ImportProblem(f"importing {module_name!r} failed: {type(e).__name__}: {e}") from e
        where = f"module {module_name!r}"
    target: Any = module
    for part in attr.split("."):
        if not hasattr(target, part):
            names = [n for n in dir(target) if not n.startswith("_")]
            raise ImportProblem(f"{where} has no {part!r}{did_you_mean(part, names)}")
        target = getattr(target, part)
    return target


def load_local(path: Path) -> ModuleType:
    """The module in file `path`, loaded under its own name, reloaded when the file changed."""
    path = path.resolve()
    mtime = path.stat().st_mtime_ns
    cached = _local.get(path)
    if cached is not None and cached.mtime_ns == mtime:
        return cached.module
    digest = hashlib.sha1(str(path).encode()).hexdigest()[:12]
    stem = re.sub(r"\W", "_", path.stem)
    name = f"llmflow_local_{digest}_{stem}"
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:  # pragma: no cover - a .py file always has one
        raise ImportProblem(f"cannot load {path.name}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException as e:
        sys.modules.pop(name, None)
        if not isinstance(e, Exception | SystemExit):
            raise
        raise ImportProblem(f"{path.name} failed to load: {_where(e, path)}") from e
    _local[path] = _Loaded(module, mtime)
    return module


def _where(error: BaseException, path: Path) -> str:
    """`line 12: NameError: ...`, the line being the deepest one in `path`."""
    if isinstance(error, SyntaxError) and error.lineno:
        return f"line {error.lineno}: SyntaxError: {error.msg}"
    frames = [f for f in traceback.extract_tb(error.__traceback__) if f.filename == str(path)]
    line = f"line {frames[-1].lineno}: " if frames else ""
    return f"{line}{type(error).__name__}: {error}"


def registered_tools() -> dict[str, str]:
    """Tool names registered in the `llmflow.tools` entry point group, with their targets."""
    return {ep.name: ep.value for ep in entry_points(group=TOOLS_GROUP)}


def resolve_tool(ref: str, folder: Path | Sequence[Path]) -> Any:
    """A tool function by import path, folder-relative path, or registered name."""
    if ":" in ref:
        return resolve(ref, folder)
    registered = {ep.name: ep for ep in entry_points(group=TOOLS_GROUP)}
    if ref not in registered:
        known = ", ".join(sorted(registered)) or "none"
        raise ImportProblem(
            f"no tool registered as {ref!r}{did_you_mean(ref, registered)}: use module:function "
            f"(e.g. tools:{ref} for tools.py next to the workflow) or a registered tool ({known})"
        )
    try:
        return registered[ref].load()
    except Exception as e:
        raise ImportProblem(f"the registered tool {ref!r} failed to load: {e}") from e
