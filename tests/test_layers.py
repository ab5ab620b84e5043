"""The package's layers, as the README and docs/architecture.md draw them: every import of
llmflow code (at the top of a module or inside a function) points down or stays in its own
folder, and no two folders import each other. An import that points up fails here, naming
the file and line, with the layer order to fix it against."""

from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src"
PACKAGE = SRC / "llmflow"

LAYERS: list[set[str]] = [
    {"errors", "ids", "redact", "untrusted"},  # the foundation: errors, ids, redaction, input text
    {"settings"},  # configuration from the environment
    {"store"},  # the run store and versioned classifiers
    {"models"},  # the gateway, providers, pricing, budgets, the response cache
    {"testing", "doctor"},  # the scripted model; install checks
    {"steps"},  # Step, RunContext, effects, code / llm / ml / agent steps
    {"patterns"},  # chain, route, parallel, vote, orchestrate, refine, cascade
    {"runtime"},  # run one input or a batch; recording
    {"analysis"},  # costs, forecasts, evaluation, calibration, tuning: learning from records
    {"durable"},  # checkpointed runs, effects, approvals, workers (DBOS)
    {"graph", "inputs"},  # drawing workflows; reading inputs (email)
    {"apps"},  # the Python main job
    {"workflow_files"},  # workflow files (YAML) and agent files (Markdown)
    {"workflows"},  # finding a workflow by name, file or module:attr
    {"ui"},  # the run viewer and approvals inbox (web)
    {"cli"},  # the commands
    {"__init__"},  # the public names
]
RANK = {unit: rank for rank, units in enumerate(LAYERS) for unit in units}


def _unit(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def _imports() -> list[tuple[str, str, Path, int]]:
    """(importing unit, imported unit, file, line) of every llmflow import in the package."""
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        if "templates" in path.relative_to(PACKAGE).parts:  # user code, loaded by path
            continue
        module = ".".join(path.relative_to(SRC).with_suffix("").parts)
        package = module.removesuffix(".__init__") if path.name == "__init__.py" else (
            module.rsplit(".", 1)[0]
        )  # fmt: skip
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom):
                if node.level:
                    base = package.split(".")[: len(package.split(".")) - node.level + 1]
                    target = ".".join([*base, *([node.module] if node.module else [])])
                else:
                    target = node.module or ""
                targets = [target]
                if node.module is None or target == "llmflow":  # from . import x, from llmflow...
                    targets = [f"{target}.{alias.name}" for alias in node.names]
            elif isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            else:
                continue
            for t in targets:
                if t == "llmflow" or t.startswith("llmflow."):
                    source, dest = _unit(module), _unit(t)
                    if source != dest:
                        found.append((source, dest, path, node.lineno))
    return found


def test_every_folder_has_a_layer() -> None:
    units = {p.stem if p.is_file() else p.name for p in PACKAGE.iterdir()}
    units = {u for u in units if not u.startswith(("_", ".")) or u == "__init__"}
    units -= {"py", "templates", "__pycache__"}
    missing = sorted(u for u in units if u not in RANK)
    assert not missing, f"add these folders/modules to LAYERS in {__file__}: {missing}"


def test_imports_point_down() -> None:
    up = [
        f"{path.relative_to(SRC)}:{line}: {source} imports {dest}, a higher layer"
        for source, dest, path, line in _imports()
        if RANK[dest] > RANK[source]
    ]
    order = " < ".join("/".join(sorted(layer)) for layer in LAYERS)
    assert not up, "imports that point up a layer:\n" + "\n".join(up) + f"\nlayers: {order}"


def test_no_two_folders_import_each_other() -> None:
    edges = {(s, d) for s, d, _, _ in _imports()}
    both = sorted({tuple(sorted(e)) for e in edges if (e[1], e[0]) in edges})
    assert not both, f"folders that import each other: {both}"


def test_no_private_name_crosses_a_module() -> None:
    """`_name` is a module's own: another module importing it couples to what may change."""
    crossing = []
    for path in sorted(PACKAGE.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and (
                node.level or "llmflow" in (node.module or "")
            ):
                crossing += [
                    f"{path.relative_to(SRC)}:{node.lineno}: {alias.name}"
                    for alias in node.names
                    if alias.name.startswith("_") and not alias.name.startswith("__")
                ]
    assert not crossing, "private names imported from another module:\n" + "\n".join(crossing)
