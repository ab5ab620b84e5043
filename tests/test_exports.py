"""The public API is listed once, sorted and complete (after httpx's test of the same name)."""

from __future__ import annotations

import ast
from pathlib import Path

import llmflow


def test_all_is_sorted_and_complete() -> None:
    assert llmflow.__all__ == sorted(llmflow.__all__)
    public = {  # dir() lists the names that load on first use too; getattr loads them
        name
        for name in dir(llmflow)
        if not name.startswith("_")
        and getattr(getattr(llmflow, name), "__module__", "").startswith("llmflow.")
    }
    assert public == set(llmflow.__all__)


def test_lazy_names_are_the_type_checkers_imports() -> None:
    """The names that load on first use are those the `if TYPE_CHECKING:` block imports."""
    tree = ast.parse(Path(llmflow.__file__).read_text(encoding="utf-8"))
    checked: dict[str, set[str]] = {}
    for node in tree.body:
        if isinstance(node, ast.If) and ast.unparse(node.test) == "TYPE_CHECKING":
            for imp in node.body:
                assert isinstance(imp, ast.ImportFrom)
                assert imp.level == 1
                checked[f".{imp.module}"] = {alias.name for alias in imp.names}
    assert checked == {module: set(names) for module, names in llmflow._LAZY.items()}
