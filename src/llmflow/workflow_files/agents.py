"""Agent files (Markdown with YAML front matter) and agent steps: tools by import path,
folder-relative path or registered name; handoffs to other agent files (cycles refused);
the body a template over the scope."""

from __future__ import annotations

import typing
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import jinja2
from agents.agent_output import AgentOutputSchema

from ..steps.agent import AgentStep, Tool, tool
from ..steps.base import Step
from . import schema as m
from .check import (
    Checker,
    Folders,
    Where,
    shown,
)
from .scope import (
    ScopedAgent,
)
from .source import Path_, Pos, Source, read_yaml


@dataclass(slots=True)
class AgentFile:
    """An agent file, read: its front matter and its body (the instructions)."""

    path: Path
    source: Source
    meta: dict[str, Any]
    body: str
    body_line: int
    """The file line the body starts on."""


class AgentBuilder(Checker):
    """Builds agent steps from agent files or inline agent steps."""

    def _agent(
        self, spec: m.AgentSpec, name: str, path: Path_, where: Where
    ) -> Step[Any, Any] | None:
        if spec.file is None:
            if spec.instructions is None:
                self.source.error(
                    path, "an agent step needs a file (an agent file) or instructions"
                )
                return None
            instructions = self.text_or_file(
                spec.instructions, (*path, "instructions"), self.folder, self.source
            )
            if instructions is None:
                return None
            fields = spec.model_dump(
                exclude_unset=True, exclude={"id", "kind", "file", "timeout_s"}
            )
            fields.pop("instructions", None)
            return self.agent(
                name, fields, instructions, self.source, path, self.folders, where,
                body_path=(*path, "instructions"),
            )  # fmt: skip
        if spec.instructions is not None:
            self.source.error((*path, "instructions"), "give file or instructions, not both")
            return None
        fixed = [key for key in ("tools", "handoffs", "output") if key in spec.model_fields_set]
        for key in fixed:  # what the agent is made of stays in one place: its file
            self.source.key_error(
                (*path, key), f"{key} of an agent from a file belong in its front matter"
            )
        if fixed:
            return None
        file = (self.folder / spec.file).resolve()
        overrides = spec.model_dump(exclude_unset=True, exclude={"id", "kind", "file", "timeout_s"})
        return self.agent_from_file(file, (*path, "file"), self.source, where, name, overrides)

    def read_agent_file(self, file: Path, at: Path_, source: Source) -> AgentFile | None:
        if file in self._agent_files:
            return self._agent_files[file]
        try:
            text = file.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as e:
            reason = getattr(e, "strerror", None) or str(e)
            source.error(at, f"cannot read agent file {shown(file)}: {reason}")
            self._agent_files[file] = None
            return None
        agent_file = read_agent_text(shown(file), text, file)
        self.sources.append(agent_file.source)
        self._agent_files[file] = agent_file
        return agent_file

    def agent_from_file(
        self,
        file: Path,
        at: Path_,
        source: Source,
        where: Where,
        name: str | None = None,
        overrides: dict[str, Any] | None = None,
    ) -> ScopedAgent | None:
        """The agent of an agent file; its handoffs are built from their files in turn."""
        if file in self._building_agents:
            cycle = [*self._building_agents[self._building_agents.index(file) :], file]
            source.error(
                at,
                "handoff cycle: " + " → ".join(p.name for p in cycle)
                + ": an agent cannot be handed back to one it came from; remove one handoff",
            )  # fmt: skip
            return None
        agent_file = self.read_agent_file(file, at, source)
        if agent_file is None:
            return None
        front = self.validate(
            m.AgentFrontMatter, agent_file.meta, (), "front matter", agent_file.source
        )
        if front is None:
            return None
        fields = front.model_dump(exclude_unset=True)
        default_name = fields.pop("name", None) or file.stem
        fields.update(overrides or {})
        name = name or default_name
        key = (file, name)
        if key in self._built_agents and not overrides:
            return self._built_agents[key]
        self._building_agents.append(file)
        try:
            built = self.agent(
                name, fields, agent_file.body, agent_file.source, (),
                (file.parent, *self.folders), where, body_line=agent_file.body_line,
            )  # fmt: skip
        finally:
            self._building_agents.pop()
        if built is not None and not overrides:
            self._built_agents[key] = built
        return built

    def agent(
        self,
        name: str,
        fields: dict[str, Any],
        instructions: str,
        source: Source,
        path: Path_,
        folders: Sequence[Path],
        where: Where,
        *,
        body_line: int | None = None,
        body_path: Path_ | None = None,
    ) -> ScopedAgent | None:
        """An agent from its fields (front matter, or an inline step) and instructions."""
        where = replace(where, step=f"agent {name!r}")
        ok = True
        tools: list[Tool] = []
        for index, entry in enumerate(fields.get("tools") or []):
            made = self._make_tool(entry, (*path, "tools", index), folders, source)
            ok = ok and made is not None
            if made is not None:
                tools.append(made)
        handoffs: list[AgentStep] = []
        for index, ref in enumerate(fields.get("handoffs") or []):
            target = (folders[0] / ref).resolve() if isinstance(ref, str) else None
            if target is None:
                source.error((*path, "handoffs", index), "a handoff is an agent file's path")
                ok = False
                continue
            handoff = self.agent_from_file(target, (*path, "handoffs", index), source, where)
            ok = ok and handoff is not None
            if handoff is not None:
                handoffs.append(handoff)
        output = self.output(fields.get("output"), (*path, "output"), folders, source)
        if output is not None and output is not str:
            try:  # the SDK makes the schema strict; some schemas cannot be (found now, not mid-run)
                AgentOutputSchema(output)
            except Exception as e:
                source.error(
                    (*path, "output"),
                    f"an agent cannot answer this output: {e} (an agent's schema must be strict: "
                    "drop additionalProperties: true, or answer text)",
                )
                output = None
        template = None
        if fields.get("prompt") is not None:
            template = self.expression(
                fields["prompt"], (*path, "prompt"), where, template=True, source=source
            )
            ok = ok and template is not None
        body_template = None
        if "{{" in instructions or "{%" in instructions:
            body_template = self._body_template(
                instructions, source, where, body_line=body_line, body_path=body_path
            )
            ok = ok and body_template is not None
        model = self.model(fields.get("model"), (*path, "model"), source)
        if not ok or output is None:
            return None
        try:
            step = ScopedAgent(
                name,
                instructions=instructions,
                tools=tools,
                handoffs=handoffs,
                output=output,
                model=model,
                max_turns=fields.get("max_turns") or self.limits.max_turns or 10,
                temperature=fields.get("temperature") or 0.0,
                max_tokens=fields.get("max_tokens") or 512,
                description=fields.get("description"),
            )
        except ValueError as e:
            source.error(path, str(e))
            return None
        step.template = template
        step.instructions_template = body_template
        return step

    def _body_template(
        self,
        body: str,
        source: Source,
        where: Where,
        *,
        body_line: int | None,
        body_path: Path_ | None,
    ) -> jinja2.Template | None:
        if body_path is not None:  # inline instructions in a workflow file
            compiled = self.expression(body, body_path, where, template=True, source=source)
            return typing.cast("jinja2.Template | None", compiled)
        # An agent file's body: positions are lines of the file after the front matter.
        body_source = Source(file=source.file, text=source.text)
        start = body_line or 1
        # A block-style position: the body's line k is the file's line `start - 1 + k`.
        body_source.values[("body",)] = Pos(start - 1, 1, "|")
        compiled = self.expression(body, ("body",), where, template=True, source=body_source)
        source.problems.extend(body_source.problems)
        return typing.cast("jinja2.Template | None", compiled)

    def _make_tool(self, entry: Any, path: Path_, folder: Folders, source: Source) -> Tool | None:
        if isinstance(entry, str):
            ref = m.ToolRef(function=entry)
        else:
            parsed = self.validate(m.ToolRef, entry, path, "a tool", source)
            if parsed is None:
                return None
            ref = parsed
        at = path if isinstance(entry, str) else (*path, "function")
        fn = self.tool_function(ref.function, at, folder, source)
        check = None
        if ref.check is not None:
            check = self.function(ref.check, (*path, "check"), folder, source)
        approval: Any = ref.needs_approval
        if isinstance(approval, str):
            approval = self.function(approval, (*path, "needs_approval"), folder, source)
        if fn is None or (ref.check is not None and check is None) or approval is None:
            return None
        try:
            made: Tool = tool(
                fn, name=ref.name, description=ref.description, side_effect=ref.side_effect,
                needs_approval=approval, requires=ref.requires or (), check=check,
                untrusted=ref.untrusted,
            )  # fmt: skip
        except Exception as e:
            source.error(at, f"cannot make a tool of {ref.function}: {type(e).__name__}: {e}")
            return None
        return made


def read_agent_text(shown: str, text: str, file: Path) -> AgentFile:
    """Split an agent file into front matter (YAML with positions) and body."""
    lines = text.splitlines(keepends=True)
    if not lines or lines[0].strip() != "---":
        source = Source(file=shown, text=text)
        source.data = {}
        return AgentFile(file, source, {}, text.strip(), 1)
    end = next((i for i in range(1, len(lines)) if lines[i].strip() in ("---", "...")), None)
    if end is None:
        source = Source(file=shown, text=text)
        source.error((), "the front matter opened by '---' on line 1 has no closing '---'")
        return AgentFile(file, source, {}, "", 1)
    source = read_yaml(shown, "".join(lines[1:end]), line_offset=1)
    source.text = text
    meta = source.data
    if source.problems or meta is None:
        meta = {}
    elif not isinstance(meta, dict):
        source.error((), "the front matter must be a mapping of keys to values")
        meta = {}
    body_lines = lines[end + 1 :]
    skipped = len(body_lines) - len("".join(body_lines).lstrip("\n").splitlines(keepends=True))
    return AgentFile(file, source, meta, "".join(body_lines).strip(), end + 2 + skipped)
