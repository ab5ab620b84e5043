"""`llmflow chat`: talk with an agent file's agent in the terminal."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from ..errors import ConfigError, LLMFlowError, SpecError
from .app import EXIT_FAILED, EXIT_INTERRUPTED, EXIT_OK, endpoint, err, fail, out

if TYPE_CHECKING:  # the command imports what it uses: `llmflow --help` starts fast
    from ..models.gateway import Gateway

EXIT_COMMANDS = ("/exit", "/quit")


def register(app: typer.Typer) -> None:
    app.command("chat")(chat)


def chat(
    agent_file: Annotated[Path, typer.Argument(help="An agent file (Markdown, front matter).")],
    model: Annotated[
        str | None,
        typer.Option(help="Model: local, openai:<model>, or a model at --base-url."),
    ] = None,
    base_url: Annotated[
        str | None,
        typer.Option(
            callback=endpoint,
            help="An OpenAI-compatible endpoint, e.g. http://localhost:8000/v1. "
            "\\[env: OPENAI_BASE_URL]",
        ),
    ] = None,
    input_value: Annotated[
        str | None,
        typer.Option(
            "--input",
            help="What the agent's instructions see as `input`: JSON, or text. "
            "\\[default: each line you type]",
        ),
    ] = None,
) -> int:
    """Talk with an agent: each line is a turn; /exit or Ctrl-D ends."""
    import asyncio

    from ..models.gateway import Gateway
    from ..settings import Settings
    from ..workflow_files import load_agent_file

    try:
        agent = load_agent_file(agent_file)
        overrides: dict[str, Any] = {}
        if model:
            overrides["model"] = model
        if base_url:
            overrides["base_url"] = base_url
        gateway = Gateway(Settings().model_copy(update=overrides))
        if model:  # the command line wins over the agent file's model
            agent.model = model
        gateway.resolve(agent.model)  # an unknown model or a missing key fails now
    except SpecError as e:
        raise fail(str(e)) from None
    except ConfigError as e:
        raise fail(str(e)) from None
    err.print(f"chatting with {agent.name} ({agent.description}); /exit or Ctrl-D to end")
    try:
        return asyncio.run(_converse(agent, gateway, _parse_input(input_value)))
    except KeyboardInterrupt:  # Ctrl-C ends the chat like /exit, without a traceback
        err.print()
        return EXIT_INTERRUPTED


def _parse_input(text: str | None) -> Any:
    if text is None:
        return None
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


async def _converse(agent: Any, gateway: Gateway, input: Any) -> int:
    import asyncio

    from ..steps.context import RunContext
    from ..store.sqlite import to_json
    from ..workflow_files.scope import Conversation

    conversation = Conversation(input)
    ctx = RunContext(gateway=gateway)
    try:
        while True:
            line = await asyncio.to_thread(_read_line)
            if line is None or line.strip() in EXIT_COMMANDS:
                return EXIT_OK
            if not line.strip():
                continue
            conversation.turns.append(("user", line.strip()))
            try:
                answer = await agent(conversation, ctx)
            except LLMFlowError as e:
                err.print(f"[bold red]error:[/] {e}", highlight=False)
                conversation.turns.pop()
                if isinstance(e, ConfigError):
                    return EXIT_FAILED
                continue
            text = answer if isinstance(answer, str) else (to_json(answer) or "")
            conversation.turns.append(("assistant", text))
            out.print(f"{agent.name}> {text}", highlight=False, markup=False)
    finally:
        await gateway.aclose()


def _read_line() -> str | None:
    """One line from the user (None at end of input); the prompt goes to stderr."""
    sys.stderr.write("you> ")
    sys.stderr.flush()
    line = sys.stdin.readline()
    return line if line else None
