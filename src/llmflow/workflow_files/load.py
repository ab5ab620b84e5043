"""Loading workflow files and agent files into runnable workflows and agent steps."""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jinja2

from ..errors import ConfigError, MissingCredentialsError, SpecError, StepError, UnknownModelError
from ..models.gateway import Gateway
from ..runtime.runner import Workflow
from ..steps.principal import Principal
from . import batch_io as io
from . import expressions as ex
from .build import Builder
from .check import BASE_VARIABLES, ModelUse, Where, shown
from .schema import PrincipalSpec, ReportSpec, WorkflowSpec
from .schemas import SchemaProblem, output_type
from .scope import ScopedAgent
from .source import Path_, Source, fail, read_yaml

WORKFLOW_FILE = "workflow.yaml"
TEMPLATES = Path(__file__).resolve().parent.parent / "templates"
"""The templates shipped with llmflow: one folder each, holding a workflow.yaml."""
MAX_FILE_BYTES = 1_000_000


@dataclass(slots=True, kw_only=True)
class FileWorkflow(Workflow):
    """A workflow loaded from a file: the runnable workflow plus what the CLI needs."""

    file: Path
    """The workflow file."""
    model: str | None = None
    """The file's default model (the CLI's --model wins)."""
    concurrency: int | None = None
    """`limits.concurrency`: items in flight (the CLI's --concurrency wins)."""
    models: list[ModelUse] = field(default_factory=list)
    """Every model the file names, with its position."""

    def check_models(self, gateway: Gateway) -> None:
        """Every model the file names resolves on `gateway`; else a SpecError at its place.
        A model that needs a key not set is not the file's fault and passes here."""
        problems: list[tuple[str, int, int, str]] = []
        for use in self.models:
            try:
                gateway.resolve(use.name)
            except UnknownModelError as e:
                pos = use.source.at(use.path)
                problems.append((use.source.file, pos.line, pos.column, str(e)))
            except MissingCredentialsError:
                pass
        if problems:
            raise SpecError(problems)


def find_workflow_file(target: str | Path) -> Path | None:
    """The workflow file `target` names: a YAML file, a folder holding workflow.yaml, or a
    template's name. None when it names none of these."""
    path = Path(target)
    if path.is_dir() and (path / WORKFLOW_FILE).is_file():
        return path / WORKFLOW_FILE
    if path.is_file() and path.suffix.lower() in (".yaml", ".yml"):
        return path
    name = str(target)
    if "/" not in name and os.sep not in name and (TEMPLATES / name / WORKFLOW_FILE).is_file():
        return TEMPLATES / name / WORKFLOW_FILE
    return None


def templates() -> dict[str, str]:
    """The shipped templates and their descriptions (from each workflow.yaml)."""
    found = {}
    if TEMPLATES.is_dir():
        for folder in sorted(TEMPLATES.iterdir()):
            file = folder / WORKFLOW_FILE
            if not file.is_file():
                continue
            try:
                source = read_yaml(str(file), file.read_text(encoding="utf-8"))
            except (OSError, UnicodeDecodeError):
                continue
            data = source.data if isinstance(source.data, dict) else {}
            description = data.get("description")
            found[folder.name] = description if isinstance(description, str) else ""
    return found


def _read(file: Path) -> str:
    try:
        if file.stat().st_size > MAX_FILE_BYTES:
            raise SpecError([(shown(file), 1, 1, f"the file is over {MAX_FILE_BYTES} bytes")])
        return file.read_text(encoding="utf-8")
    except UnicodeDecodeError as e:
        raise SpecError([(shown(file), 1, 1, f"not UTF-8 text (byte {e.start})")]) from None
    except OSError as e:
        raise ConfigError(f"cannot read workflow file {file}: {e.strerror}") from None


def load_workflow_file(target: str | Path) -> FileWorkflow:
    """The workflow in a workflow file (or a folder holding workflow.yaml, or a template).

    Raises SpecError listing every problem as file:line:column, or ConfigError when there is
    no such file."""
    file = find_workflow_file(target)
    if file is None:
        raise ConfigError(
            f"no workflow file at {target}: give a .yaml file, a folder holding "
            f"{WORKFLOW_FILE}, or a template name ({', '.join(templates()) or 'none'})"
        )
    return load_workflow_text(_read(file), file)


def load_workflow_text(text: str, file: Path) -> FileWorkflow:
    """The workflow in `text`, read from `file` (paths in it are relative to its folder)."""
    source = read_yaml(shown(file), text)
    fail(source)
    builder = Builder(source, file.parent)
    if not isinstance(source.data, dict):
        source.error((), "a workflow file is a mapping with name, steps and other keys")
        fail(source)
    spec = builder.validate(WorkflowSpec, source.data, (), "the workflow")
    if spec is None:
        # Report the steps' problems too, in the same pass.
        steps = source.data.get("steps")
        if isinstance(steps, list) and steps:
            builder.collect_ids(steps, ("steps",))
            builder.chain("workflow", steps, None, (), Where())
        fail(*builder.sources)
        raise AssertionError("unreachable")  # pragma: no cover - fail raised
    builder.limits = spec.limits
    builder.workflow = spec.name
    builder.model(spec.model, ("model",), source)
    builder.collect_ids(source.data.get("steps"), ("steps",))
    item_type = _item_type(spec, builder, file.parent)
    step = builder.chain(
        spec.name,
        spec.steps,
        spec.result,
        (),
        Where(),
        top=io.prepare_item(spec.input, item_type),
        result_path=("result",),
    )
    principal = _principal(spec, builder)
    reports = _reports(spec, builder, file.parent)
    if spec.output.columns:
        for name, expression in spec.output.columns.items():
            builder.expression(
                expression, ("output", "columns", name),
                Where(variables=frozenset({"output"}), step="a column"),
            )  # fmt: skip
    fail(*builder.sources)
    assert step is not None  # no problems: the chain was built
    step.principal = principal
    return FileWorkflow(
        name=spec.name,
        step=step,
        load=io.loader(spec.input),
        finish=io.finisher(spec.output, reports),
        description=spec.description,
        columns=io.columns(spec.output),
        file=file,
        model=spec.model,
        concurrency=spec.limits.concurrency,
        models=builder.models,
    )


def _principal(spec: WorkflowSpec, builder: Builder) -> Callable[[Any], Principal] | None:
    """The item's principal from its input: the `principal:` expressions, compiled."""
    given = spec.principal
    if given is None:
        return None
    where = Where(step="the principal")
    at: Path_ = ("principal",)
    fields = PrincipalSpec(id=given) if isinstance(given, str) else given
    id_at = at if isinstance(given, str) else (*at, "id")
    who = builder.expression(fields.id, id_at, where)
    attributes = {
        key: builder.expression(text, (*at, "attributes", key), where)
        for key, text in fields.attributes.items()
    }
    if who is None or any(a is None for a in attributes.values()):
        return None
    kind, permissions, text = fields.kind, frozenset(fields.permissions), fields.id

    def principal(input: Any) -> Principal:
        value = who(input=input, steps={})
        if value is None or not str(value).strip():
            raise StepError(
                spec.name, f"the item has no principal: {text} is empty (workflow principal:)"
            )
        extra = {key: compute(input=input, steps={}) for key, compute in attributes.items()}
        return Principal(
            id=str(value).strip(), kind=kind, permissions=permissions, attributes=extra
        )

    return principal


def _item_type(spec: WorkflowSpec, builder: Builder, folder: Path) -> Any:
    if spec.input.schema_ is None:
        return None
    try:
        return output_type(spec.input.schema_, folder)
    except SchemaProblem as e:
        builder.source.error(("input", "schema", *e.path), e.message)
        return None


def _reports(spec: WorkflowSpec, builder: Builder, folder: Path) -> list[io.Report]:
    """The reports: one mapping, or a list of them, each a template rendered to a file."""
    given = spec.output.report
    if given is None:
        return []
    at = ("output", "report")
    entries = list(enumerate(given)) if isinstance(given, list) else [(None, given)]
    reports = []
    for index, entry in entries:
        path = at if index is None else (*at, index)
        report = builder.validate(ReportSpec, entry, path, "a report")
        if report is None:
            continue
        template = _report_template(report, builder, folder, (*path, "template"))
        if template is not None:
            reports.append(io.Report(report.file, template))
    files = [r.file for r in reports]
    for file in sorted({f for f in files if files.count(f) > 1}):
        builder.source.error(at, f"two reports write {file}: give each its own file")
    return reports


def _report_template(
    report: ReportSpec, builder: Builder, folder: Path, at: Path_
) -> jinja2.Template | None:
    try:
        text = (folder / report.template).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        reason = getattr(e, "strerror", None) or str(e)
        builder.source.error(at, f"cannot read report template {report.template}: {reason}")
        return None
    try:
        ex.parse_template(text)
        return ex.compile_template(text, lenient_undefined=True)
    except ex.ExpressionError as e:
        message = e.message
        line = e.line
    except jinja2.TemplateSyntaxError as e:  # e.g. an unknown filter, found when compiling
        message = e.message or "invalid template"
        line = e.lineno or 1
    builder.source.error(at, f"{report.template} line {line}: invalid template: {message}")
    return None


def load_agent_file(file: str | Path) -> ScopedAgent:
    """The agent step of an agent file (e.g. for `llmflow chat`)."""
    path = Path(file).resolve()
    if not path.is_file():
        raise ConfigError(f"no agent file at {file}")
    root = Source(file=shown(path), text="")
    builder = Builder(root, path.parent)
    builder.folders = (path.parent.parent,)  # e.g. agents/x.md next to the workflow's tools.py
    agent = builder.agent_from_file(path, (), root, Where(variables=BASE_VARIABLES, any_steps=True))
    fail(*builder.sources)
    assert agent is not None
    return agent


def validate_file(target: str | Path, gateway: Gateway | None = None) -> FileWorkflow:
    """Load a workflow file and, given a gateway, check its models too."""
    workflow = load_workflow_file(target)
    if gateway is not None:
        workflow.check_models(gateway)
    return workflow
