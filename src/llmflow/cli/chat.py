"""`llmflow chat`: talk with an agent file's agent in the terminal.

A chat is a recorded run (`llmflow runs show`): each turn an item, with its model calls and
every tool call (allowed, refused, awaiting approval). `--principal` says who you chat as;
tools that act for someone refuse without one. A tool call that needs approval asks at the
terminal (the person running the chat decides), and the decision is recorded.
"""

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
    from ..steps.principal import Principal
    from ..store.sqlite import RunStore

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
    principal: Annotated[
        str | None,
        typer.Option(
            help="Who you chat as (an email address, a customer id): tools that act for "
            "someone act for them only. \\[default: none: such tools refuse]",
        ),
    ] = None,
) -> int:
    """Talk with an agent: each line is a turn; /exit or Ctrl-D ends."""
    import asyncio

    from ..models.gateway import Gateway
    from ..settings import Settings
    from ..steps.principal import Principal
    from ..store.sqlite import RunStore
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
        store = RunStore(Settings().db_path)
    except SpecError as e:
        raise fail(str(e)) from None
    except ConfigError as e:
        raise fail(str(e)) from None
    who = Principal(id=principal.strip()) if principal and principal.strip() else None
    err.print(f"chatting with {agent.name} ({agent.description}); /exit or Ctrl-D to end")
    session = _Session(store, agent, gateway, str(agent_file), who)
    try:
        return asyncio.run(_converse(agent, gateway, _parse_input(input_value), session))
    except KeyboardInterrupt:  # Ctrl-C ends the chat like /exit, without a traceback
        err.print()
        session.end("interrupted")
        return EXIT_INTERRUPTED
    finally:
        session.end("ok")
        store.close()


def _parse_input(text: str | None) -> Any:
    if text is None:
        return None
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


class _Session:
    """The chat's run in the store: started now, a turn an item, ended once."""

    def __init__(
        self, store: RunStore, agent: Any, gateway: Gateway, source: str, who: Principal | None
    ) -> None:
        from ..ids import new_id
        from ..runtime.recording import StoreRecorder
        from ..runtime.telemetry import telemetry_hooks
        from ..steps.context import RunContext

        self.store = store
        self.run_id = new_id()
        self.ok = self.failed = 0
        self.ended = False
        store.start_run(
            self.run_id, workflow=f"chat:{agent.name}", model=agent.model or gateway.settings.model,
            source=source, out_dir=None, items_total=0,
        )  # fmt: skip
        self.ctx = RunContext(
            gateway=gateway,
            run_id=self.run_id,
            hooks=(StoreRecorder(store), *telemetry_hooks()),
            principal=who,
            effects=_terminal_approvals(),
        )
        self.workflow = f"chat:{agent.name}"
        for hook in self.ctx.hooks:
            hook.on_run_start(self.ctx, workflow=self.workflow, items=0, resuming=False)

    def end(self, status: str) -> None:
        if self.ended:
            return
        self.ended = True
        if status == "ok" and self.failed:
            status = "failed" if not self.ok else "partial"
        self.store.end_run(
            self.run_id, status=status, items_ok=self.ok, items_failed=self.failed, error=None,
            items_total=self.ok + self.failed,
        )  # fmt: skip
        for hook in self.ctx.hooks:
            hook.on_run_end(
                self.ctx, workflow=self.workflow, status=status, items_ok=self.ok,
                items_failed=self.failed, error=None,
            )  # fmt: skip
        err.print(f"recorded as run {self.run_id}: llmflow runs show {self.run_id[:12]}")


def _terminal_approvals() -> Any:
    from ..steps.effects import Effects

    class TerminalApprovals(Effects):
        """Approvals asked of the person at the terminal (side effects run directly)."""

        approvals = True

        async def approval(self, ctx: Any, prompt: str, **kwargs: Any) -> Any:
            import asyncio
            import getpass
            import time

            from ..steps.effects import Decision

            def ask() -> str:
                sys.stderr.write(f"approve {prompt}? [y/N] ")
                sys.stderr.flush()
                return sys.stdin.readline().strip().lower()

            answer = await asyncio.to_thread(ask)
            try:
                user: str | None = getpass.getuser()
            except (KeyError, OSError):
                user = None
            approved = answer in ("y", "yes")
            comment = None if approved else "declined at the terminal"
            return Decision(approved=approved, comment=comment, by=user, at=time.time())

    return TerminalApprovals()


async def _converse(agent: Any, gateway: Gateway, input: Any, session: _Session) -> int:
    import asyncio
    import time

    from ..store.sqlite import to_json
    from ..workflow_files.scope import Conversation

    conversation = Conversation(input)
    turn = 0
    try:
        while True:
            line = await asyncio.to_thread(_read_line)
            if line is None or line.strip() in EXIT_COMMANDS:
                return EXIT_OK
            if not line.strip():
                continue
            conversation.turns.append(("user", line.strip()))
            turn += 1
            ctx = session.ctx.for_item(f"{session.run_id}.{turn}")
            for hook in ctx.hooks:
                hook.on_item_start(ctx, key=f"turn {turn}")
            started_at = time.time()
            try:
                answer = await agent(conversation, ctx)
            except LLMFlowError as e:
                _item_end(ctx, turn, None, e, started_at)
                session.failed += 1
                err.print(f"[bold red]error:[/] {e}", highlight=False)
                conversation.turns.pop()
                if isinstance(e, ConfigError):
                    return EXIT_FAILED
                continue
            _item_end(ctx, turn, answer, None, started_at)
            session.ok += 1
            text = answer if isinstance(answer, str) else (to_json(answer) or "")
            conversation.turns.append(("assistant", text))
            out.print(f"{agent.name}> {text}", highlight=False, markup=False)
    finally:
        await gateway.aclose()


def _item_end(
    ctx: Any, turn: int, output: Any, error: BaseException | None, started_at: float
) -> None:
    for hook in ctx.hooks:
        hook.on_item_end(ctx, key=f"turn {turn}", output=output, error=error, started_at=started_at)


def _read_line() -> str | None:
    """One line from the user (None at end of input); the prompt goes to stderr."""
    sys.stderr.write("you> ")
    sys.stderr.flush()
    line = sys.stdin.readline()
    return line if line else None
