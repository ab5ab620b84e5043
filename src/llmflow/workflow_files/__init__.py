"""Workflow files (YAML) and agent files (Markdown with front matter) -> steps.

See docs/workflow-files.md for the format. `load_workflow_file(path)` gives a runnable
`Workflow`; `load_agent_file(path)` an agent step. Every mistake in a file is reported as a
`SpecError` listing `file:line:column: what is wrong` for each.
"""

from ..errors import SpecError
from .load import (
    TEMPLATES,
    WORKFLOW_FILE,
    FileWorkflow,
    find_workflow_file,
    load_agent_file,
    load_workflow_file,
    load_workflow_text,
    templates,
    validate_file,
)

__all__ = [
    "TEMPLATES",
    "WORKFLOW_FILE",
    "FileWorkflow",
    "SpecError",
    "find_workflow_file",
    "load_agent_file",
    "load_workflow_file",
    "load_workflow_text",
    "templates",
    "validate_file",
]
