"""Reading a gate's check: the steps its code names, by walking the function's bytecode."""

from __future__ import annotations

import types
from collections.abc import Callable, Iterator
from typing import Any

from ..patterns.chain import Divert
from ..steps.base import Step


def divert_targets(check: Callable[..., Any]) -> list[Step[Any, Any]]:
    """The steps a gate's check can divert to, as far as its code shows: when it uses
    `Divert`, the steps it refers to through its closure or its globals."""
    code = getattr(check, "__code__", None)
    if not isinstance(code, types.CodeType):
        return []
    names = set(_code_names(code))
    scope: dict[str, Any] = getattr(check, "__globals__", {})
    if "Divert" not in names and not any(scope.get(n) is Divert for n in names):
        return []
    found: list[Any] = []
    for cell in getattr(check, "__closure__", None) or ():
        try:
            found.append(cell.cell_contents)
        except ValueError:  # an empty cell
            continue
    found += [scope.get(n) for n in sorted(names)]
    unique: dict[int, Step[Any, Any]] = {id(v): v for v in found if isinstance(v, Step)}
    return list(unique.values())


def _code_names(code: types.CodeType) -> Iterator[str]:
    yield from code.co_names
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            yield from _code_names(const)
