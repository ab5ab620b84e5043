"""Finding workflows by name: entry points in the `llmflow.workflows` group, or `module:attr`.

The built-in workflows register through the same entry point group as plugins do, so the
plugin path is always the one in use.
"""

from __future__ import annotations

import importlib
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any

from .errors import ConfigError
from .runtime.runner import Workflow

GROUP = "llmflow.workflows"


def available() -> dict[str, str]:
    """Registered workflow names and their import paths."""
    return {ep.name: ep.value for ep in entry_points(group=GROUP)}


def load_workflow(name: str, **options: Any) -> Workflow:
    """The workflow registered as `name`, in a workflow file (a .yaml file, a folder holding
    workflow.yaml, or a template's name: see docs/workflow-files.md), or at import path
    `module:attr`.

    The target is a `Workflow` or a function returning one (called with `options`).
    """
    from .workflow_files import find_workflow_file, load_workflow_file

    registered = {ep.name: ep for ep in entry_points(group=GROUP)}
    file = None if name in registered else find_workflow_file(name)
    if name in registered:
        target = registered[name].load()
    elif file is not None:
        return load_workflow_file(file)
    elif ":" in name:
        module_name, _, attr = name.partition(":")
        try:
            target = getattr(importlib.import_module(module_name), attr)
        except (ImportError, AttributeError) as e:
            raise ConfigError(f"cannot load workflow {name!r}: {e}") from e
    elif name.lower().endswith((".yaml", ".yml")) and not Path(name).is_file():
        raise ConfigError(f"{name}: no such workflow file (check the path)")
    elif Path(name).is_dir():
        raise ConfigError(
            f"{name}: this folder has no workflow.yaml: name the workflow file, or create one "
            "with llmflow new <template> <folder>"
        )
    else:
        known = ", ".join(sorted(registered)) or "none"
        raise ConfigError(
            f"unknown workflow {name!r}: use a registered name ({known}), a workflow file or "
            "folder, a template (llmflow templates), or module:attr"
        )
    workflow = (
        target(**options) if callable(target) and not isinstance(target, Workflow) else target
    )
    if not isinstance(workflow, Workflow):
        raise ConfigError(f"{name!r} is not a Workflow (got {type(workflow).__name__})")
    return workflow
