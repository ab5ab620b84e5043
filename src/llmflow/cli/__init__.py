"""The `llmflow` command line: `main(args) -> exit code` is the testable entry point.

Exit codes: 0 success; 1 the run failed (every item failed, or the run itself broke);
2 a usage or configuration error (bad flag, unknown workflow, missing key, unreadable input);
3 the run finished but some items failed; 130 interrupted.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

import typer

from ..errors import pydantic_message
from . import chat as _chat
from . import cost as _cost
from . import doctor as _doctor
from . import durable as _durable
from . import estimate as _estimate
from . import files as _files
from . import graph as _graph
from . import models as _models
from . import run as _run
from . import runs as _runs
from . import tune as _tune
from . import ui as _ui
from . import watch as _watch
from .app import EXIT_INTERRUPTED, EXIT_OK, EXIT_USAGE, app, arrange, err

__all__ = ["app", "main", "run_cli"]

_cost.register(app)
_doctor.register(app)
_durable.register(app)
_estimate.register(app)
_run.register(app)
_runs.register(app)
_graph.register(app)
_models.register(app)
_files.register(app)
_chat.register(app)
_tune.register(app)
_ui.register(app)
_watch.register(app)
arrange(app)


def main(args: Sequence[str] | None = None) -> int:
    """Run the CLI with `args` (default: sys.argv[1:]) and return its exit code."""
    try:
        result = app(args=list(args) if args is not None else None, standalone_mode=False)
    except typer.Abort:
        return EXIT_INTERRUPTED
    except SystemExit as e:  # typer's --show-completion and --install-completion exit
        return e.code if isinstance(e.code, int) else EXIT_OK if e.code is None else EXIT_USAGE
    except typer.TyperException as e:  # bad flags or arguments
        show = getattr(e, "show", None)
        if show is not None:
            show()
        else:
            err.print(f"error: {e}")
        return EXIT_USAGE
    except Exception as e:  # a setting from the environment or .env, e.g. LLMFLOW_TIMEOUT
        from pydantic import ValidationError  # not at import: `llmflow --help` starts fast

        if not isinstance(e, ValidationError) or not e.title.endswith("Settings"):
            raise
        for problem in e.errors():
            where = ".".join(map(str, problem["loc"]))
            err.print(
                f"[bold red]error:[/] {where + ': ' if where else ''}{pydantic_message(problem)}"
                " (set in the environment or .env)",
                highlight=False,
                soft_wrap=True,
            )
        return EXIT_USAGE
    return result if isinstance(result, int) else EXIT_OK


def run_cli() -> None:
    """The console script."""
    sys.exit(main())
