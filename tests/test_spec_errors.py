"""Mistakes in workflow and agent files: each reported at its exact line and column, with
what is wrong and how to fix it."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from llmflow import ConfigError, Gateway, Settings
from llmflow.errors import SpecError
from llmflow.workflow_files import load_agent_file, load_workflow_file, validate_file

TOOLS = '''
def lookup_order(order_id: str) -> str:
    """Look an order up."""
    return order_id


def shout(text: str) -> str:
    return text.upper()
'''


def problems(tmp_path: Path, workflow: str, files: dict[str, str] | None = None) -> list[str]:
    """`line:column: message` of every problem in the workflow file."""
    root = tmp_path / "wf"
    root.mkdir(exist_ok=True)
    (root / "workflow.yaml").write_text(textwrap.dedent(workflow))
    broken = "import math\nRATIO = 1 / 0\n"
    report = "# Report\n{{ ok | lenght }}\n"
    examples = '{"text": "a", "label": "x"}\n{"text": "b"}\n'
    files = {"tools.py": TOOLS, "broken.py": broken, "report.md.j2": report,
             "examples.jsonl": examples, **(files or {})}  # fmt: skip
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(textwrap.dedent(text))
    with pytest.raises(SpecError) as caught:
        load_workflow_file(root)
    return [f"{line}:{col}: {message}" for _file, line, col, message in caught.value.problems]


CASES = {
    "unknown key with a did-you-mean": (
        """\
        name: x
        steps:
          - id: a
            kind: llm
            instructions: hi
            promtp: "{{ input }}"
        """,
        "6:5: unknown key 'promtp' in an llm step (did you mean 'prompt'?)",
    ),
    "unknown top-level key": (
        "name: x\nstpes: []\nsteps: [{id: a, kind: code, function: tools:shout}]\n",
        "2:1: unknown key 'stpes' in the workflow (did you mean 'steps'?)",
    ),
    "unknown kind": (
        "name: x\nsteps:\n  - id: a\n    kind: lmm\n    instructions: hi\n",
        "4:11: unknown kind 'lmm' (did you mean 'llm'?)",
    ),
    "missing key": (
        "name: x\nsteps:\n  - id: a\n    kind: llm\n",
        "3:5: missing key 'instructions' in an llm step",
    ),
    "unknown step reference": (
        """\
        name: x
        steps:
          - {id: classify, kind: code, function: tools:shout}
          - id: b
            kind: llm
            instructions: hi
            prompt: "{{ steps.clasify.category }}"
        """,
        "7:23: unknown step 'clasify' in steps.clasify (did you mean 'classify'?)",
    ),
    "forward reference": (
        """\
        name: x
        steps:
          - id: answer
            kind: code
            function: tools:shout
            input: steps.draft
          - {id: draft, kind: code, function: tools:shout}
        """,
        "6:18: step 'answer' refers to steps.draft, which runs after it: move 'draft' before it",
    ),
    "reference into another branch": (
        """\
        name: x
        steps:
          - id: r
            kind: route
            classifier: {kind: code, function: tools:shout}
            branches:
              a: {id: inner, kind: code, function: tools:shout}
          - {id: after, kind: code, function: tools:shout, input: steps.inner}
        """,
        "8:65: step 'after' refers to steps.inner (line 7), which has not run by then",
    ),
    "reference in a block template": (
        """\
        name: x
        steps:
          - id: a
            kind: llm
            instructions: hi
            prompt: |
              Hello {{ input }}
              See {{ steps.nope }}
        """,
        "8:20: unknown step 'nope' in steps.nope",
    ),
    "unknown variable": (
        "name: x\nsteps:\n  - {id: a, kind: code, function: tools:shout, input: inptu.x}\n",
        "3:55: unknown variable 'inptu' (did you mean 'input'?)",
    ),
    "missing tool in tools.py": (
        """\
        name: x
        steps:
          - id: a
            kind: agent
            instructions: hi
            tools: [tools:lookup_ordr]
        """,
        "6:13: missing tool 'tools:lookup_ordr': tools.py has no 'lookup_ordr' "
        "(did you mean 'lookup_order'?)",
    ),
    "unregistered tool": (
        "name: x\nsteps:\n  - {id: a, kind: agent, instructions: hi, tools: [nwo]}\n",
        "3:52: missing tool 'nwo': no tool registered as 'nwo' (did you mean 'now'?)",
    ),
    "bad schema": (
        """\
        name: x
        steps:
          - id: a
            kind: llm
            instructions: hi
            output:
              type: object
              properties:
                n: {type: integre}
        """,
        "9:19: not a valid JSON Schema: 'integre' is not valid under any of the given schemas",
    ),
    "invalid gate expression": (
        "name: x\nsteps:\n  - {id: g, kind: gate, when: 'steps.a =='}\n",
        "3:31: invalid expression: unexpected 'end of template'",
    ),
    "unknown filter": (
        "name: x\nsteps:\n  - {id: a, kind: code, function: tools:shout, input: input | uper}\n",
        "3:63: invalid expression: No filter named 'uper'. (did you mean 'upper'?)",
    ),
    "duplicate id": (
        """\
        name: x
        steps:
          - {id: a, kind: code, function: tools:shout}
          - {id: a, kind: code, function: tools:shout}
        """,
        "4:10: duplicate step id 'a': this chain has one already",
    ),
    "duplicate key": (
        "name: x\nname: y\nsteps: [{id: a, kind: code, function: tools:shout}]\n",
        "2:1: duplicate key 'name' (first at line 1): keep one",
    ),
    "bad route default": (
        """\
        name: x
        steps:
          - id: r
            kind: route
            instructions: pick
            branches: {billing: {kind: code, function: tools:shout}}
            default: biling
        """,
        "7:14: default 'biling' is not a branch (did you mean 'billing'?): one of billing",
    ),
    "wrong type": (
        "name: x\nlimits: {concurrency: many}\n"
        "steps: [{id: a, kind: code, function: tools:shout}]\n",
        "2:23: concurrency: Input should be a valid integer",
    ),
    "a value outside a fixed set": (
        "name: x\ninput: {type: jsonlines}\nsteps: [{id: a, kind: code, function: tools:shout}]\n",
        "2:15: type: Input should be 'text', 'jsonl', 'json', 'csv', 'email' or 'value' "
        "(did you mean 'jsonl'?)",
    ),
    "tools.py that fails to import": (
        "name: x\nsteps: [{id: a, kind: code, function: broken:f}]\n",
        "2:39: broken.py failed to load: line 2: ZeroDivisionError: division by zero",
    ),
    "missing instructions file": (
        "name: x\nsteps:\n  - {id: a, kind: llm, instructions: prompts/a.md}\n",
        "3:38: cannot read instructions file prompts/a.md: No such file or directory",
    ),
    "invalid YAML": (
        "name: x\nsteps:\n  - id: a\n   kind: llm\n",
        "4:4: invalid YAML: expected <block end>, but found '<block mapping start>'",
    ),
    "not a mapping": (
        "- just\n- a list\n",
        "1:1: a workflow file is a mapping with name, steps and other keys",
    ),
    "agent output the SDK cannot make strict": (
        """\
        name: x
        steps:
          - id: a
            kind: agent
            instructions: hi
            output: {type: object, additionalProperties: true}
        """,
        "6:13: an agent cannot answer this output: Strict JSON schema is enabled",
    ),
    "branch label with a slash": (
        """\
        name: x
        steps:
          - id: r
            kind: route
            classifier: {kind: code, function: tools:shout}
            branches:
              a/b: {kind: code, function: tools:shout}
        """,
        "7:7: branch label 'a/b' must be non-empty text without '/'",
    ),
    "tools of a file agent set in the step": (
        """\
        name: x
        steps:
          - {id: a, kind: agent, file: agents/a.md, tools: [now]}
        """,
        "3:45: tools of an agent from a file belong in its front matter",
    ),
    "a report template that does not parse": (
        """\
        name: x
        steps: [{id: a, kind: code, function: tools:shout}]
        output:
          report:
            - {template: report.md.j2}
            - {template: missing.md.j2, file: other.md}
        """,
        "5:18: report.md.j2 line 2: invalid template: No filter named 'lenght'.",
    ),
    "a missing report template in a list": (
        """\
        name: x
        steps: [{id: a, kind: code, function: tools:shout}]
        output:
          report:
            - {template: missing.md.j2, file: other.md}
        """,
        "5:18: cannot read report template missing.md.j2: No such file or directory",
    ),
    "an ml step with neither a model nor examples": (
        "name: x\nsteps:\n  - {id: a, kind: ml, text: '{{ input }}'}\n",
        "3:5: an ml step needs model (a saved model) or train (examples)",
    ),
    "examples with a row missing its label": (
        "name: x\nsteps:\n  - {id: a, kind: ml, train: examples.jsonl}\n",
        "3:30: examples.jsonl line 2: no field 'label'",
    ),
    "a classifier with one label": (
        "name: x\nsteps:\n  - {id: a, kind: classify, labels: [a, a]}\n",
        "3:37: a classifier needs two different labels or more",
    ),
    "a tag": (
        "name: !!python/object:os.system x\nsteps: [{id: a, kind: code, function: tools:shout}]\n",
        "1:7: unsupported tag 'tag:yaml.org,2002:python/object:os.system'",
    ),
}


@pytest.mark.parametrize("case", list(CASES))
def test_each_mistake_is_reported_at_its_position(tmp_path: Path, case: str) -> None:
    workflow, expected = CASES[case]
    found = problems(tmp_path, workflow)
    assert any(p.startswith(expected) for p in found), found


def test_every_problem_is_reported_in_one_pass(tmp_path: Path) -> None:
    found = problems(
        tmp_path,
        """\
        name: x
        steps:
          - {id: a, kind: lmm}
          - {id: b, kind: code, function: tools:shuot}
          - {id: c, kind: code, function: tools:shout, input: steps.zzz}
        """,
    )
    assert [p.split(":")[0] for p in found] == ["3", "4", "5"]


def test_the_message_has_file_line_and_column(tmp_path: Path) -> None:
    root = tmp_path / "wf"
    root.mkdir()
    (root / "workflow.yaml").write_text("name: x\nsteps:\n  - {id: a, kind: lmm}\n")
    with pytest.raises(SpecError) as caught:
        load_workflow_file(root)
    assert isinstance(caught.value, ConfigError)
    assert (caught.value.line, caught.value.column) == (3, 19)
    assert str(caught.value).endswith(
        "workflow.yaml:3:19: unknown kind 'lmm' (did you mean 'llm'?): one of code, llm, agent, "
        "tool, gate, chain, route, parallel, vote, orchestrate, refine, cascade, rules, ml, "
        "classify, claims, grounding"
    )


def test_unknown_model_is_reported_where_it_is_named(tmp_path: Path) -> None:
    root = tmp_path / "wf"
    root.mkdir()
    (root / "workflow.yaml").write_text(
        "name: x\nmodel: local\nsteps:\n  - id: a\n    kind: llm\n    instructions: hi\n"
        "    model: gpt-4o\n"
    )
    with pytest.raises(SpecError) as caught:
        validate_file(root, Gateway(Settings()))
    assert [(p[1], p[2]) for p in caught.value.problems] == [(7, 12)]
    assert "unknown model 'gpt-4o'" in caught.value.problems[0][3]


def test_an_agent_file_problems_each_at_its_line(tmp_path: Path) -> None:
    (tmp_path / "tools.py").write_text(TOOLS)
    agents = tmp_path / "agents"
    agents.mkdir()
    (agents / "a.md").write_text(
        "---\nname: a\ntools:\n  - tools:lookup_ordr\nhandoffs: [b.md]\n---\n\n"
        "Hello {{ input }} and {{ custmer }}.\n"
    )
    (agents / "b.md").write_text("---\nhandoffs: [a.md]\n---\nB.\n")
    with pytest.raises(SpecError) as caught:
        load_agent_file(agents / "a.md")
    found = {(Path(f).name, line, col): msg for f, line, col, msg in caught.value.problems}
    assert found[("a.md", 4, 5)].startswith("missing tool 'tools:lookup_ordr'")
    assert found[("a.md", 8, 26)].startswith("unknown variable 'custmer'")
    assert found[("b.md", 2, 12)].startswith("handoff cycle: a.md → b.md → a.md")


def test_no_file_is_a_config_error_naming_the_choices(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"no workflow file at .*template name"):
        load_workflow_file(tmp_path / "nothing")


def test_aliases_that_expand_without_end_are_refused(tmp_path: Path) -> None:
    levels = ["a: &a [x, x, x, x, x, x, x, x, x, x]"]
    for name, below in zip("bcdef", "abcde", strict=True):
        levels.append(f"{name}: &{name} [{', '.join([f'*{below}'] * 10)}]")
    found = problems(tmp_path, "\n".join(["name: x", *levels, "steps: []"]) + "\n")
    assert any("expands to more than 100000 values" in p for p in found), found


def test_a_recursive_alias_is_refused(tmp_path: Path) -> None:
    found = problems(tmp_path, "name: x\nloop: &l [*l]\nsteps: []\n")
    assert any(p.startswith("2:") and "refers to a value that contains it" in p for p in found)
