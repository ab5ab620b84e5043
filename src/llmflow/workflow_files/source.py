"""YAML with positions: plain Python data, plus the line and column of every key and value.

PyYAML composes a node tree whose nodes carry marks; `read_yaml` turns that tree into plain
data (mappings with string keys, lists, scalars) and remembers, for each path into the data
(`("steps", 2, "prompt")`), where its key and its value start. Problems are collected as
`(file, line, column, message)` so that one pass reports every mistake, and `fail()` raises
them as one `SpecError`. Anything the reader cannot take (several documents, tags, merge
keys, recursive aliases, a structure nested absurdly deep or blown up by aliases) is a
problem with its position, never a traceback.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import yaml

from ..errors import SpecError

Path_ = tuple[str | int, ...]
"""A path into the data: mapping keys and list indices."""

MAX_DEPTH = 100
MAX_NODES = 100_000

# Plain scalars PyYAML would turn into these are kept as the text written: a date or a
# timestamp in a workflow file is meant as text, and binary data has no place there.
_AS_TEXT = {"tag:yaml.org,2002:timestamp"}
_SCALARS = {
    "tag:yaml.org,2002:str",
    "tag:yaml.org,2002:int",
    "tag:yaml.org,2002:float",
    "tag:yaml.org,2002:bool",
    "tag:yaml.org,2002:null",
}


@dataclass(frozen=True, slots=True)
class Pos:
    """A 1-based line and column, and for a string, how it was written."""

    line: int
    column: int
    style: str | None = None
    """The scalar style: None (plain), "'" or '"' (quoted), '|' or '>' (block)."""


@dataclass(slots=True)
class Source:
    """One file's text, data and positions, and the problems found in it."""

    file: str
    """The file as shown in messages (relative to the working folder where possible)."""
    text: str
    line_offset: int = 0
    """Lines before the YAML in the file (an agent file's `---`)."""
    data: Any = None
    values: dict[Path_, Pos] = field(default_factory=dict)
    keys: dict[Path_, Pos] = field(default_factory=dict)
    problems: list[tuple[str, int, int, str]] = field(default_factory=list)

    # -- positions --------------------------------------------------------------------------

    def at(self, path: Sequence[str | int]) -> Pos:
        """Where the value at `path` starts, or its nearest ancestor when it is absent."""
        path = tuple(path)
        while path and path not in self.values:
            path = path[:-1]
        return self.values.get(path, Pos(1 + self.line_offset, 1))

    def key_at(self, path: Sequence[str | int]) -> Pos:
        """Where the key of the mapping entry at `path` starts (else its value's position)."""
        return self.keys.get(tuple(path)) or self.at(path)

    def in_text(self, path: Sequence[str | int], line: int, needle: str | None) -> Pos:
        """A position inside the string at `path`: its `line`-th line (as Jinja counts), at
        `needle` when found there. Block scalars (`|`, `>`) start on the next line."""
        start = self.at(path)
        target = start.line + line - (0 if start.style in ("|", ">") else 1)
        lines = self.text.splitlines()
        index = target - 1 - self.line_offset
        if needle and 0 <= index < len(lines):
            found = lines[index].find(needle, start.column - 1 if target == start.line else 0)
            if found >= 0:
                return Pos(target, found + 1)
        if target != start.line and 0 <= index < len(lines):
            text = lines[index]
            return Pos(target, len(text) - len(text.lstrip()) + 1)
        return start

    # -- problems ---------------------------------------------------------------------------

    def problem(self, pos: Pos, message: str) -> None:
        self.problems.append((self.file, pos.line, pos.column, message))

    def error(self, path: Sequence[str | int], message: str) -> None:
        """A problem with the value at `path`."""
        self.problem(self.at(path), message)

    def key_error(self, path: Sequence[str | int], message: str) -> None:
        """A problem with the key at `path`."""
        self.problem(self.key_at(path), message)


def did_you_mean(word: str, choices: Iterable[str]) -> str:
    """` (did you mean 'x'?)` for the closest choice, or nothing."""
    close = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


def fail(*sources: Source) -> None:
    """Raise every problem of `sources` as one SpecError (nothing when there is none)."""
    problems = [p for s in sources for p in s.problems]
    if problems:
        raise SpecError(problems)


def read_yaml(file: str, text: str, *, line_offset: int = 0) -> Source:
    """Parse `text` (one YAML document) into a Source; problems are recorded, not raised."""
    source = Source(file=file, text=text, line_offset=line_offset)
    try:
        loader = yaml.SafeLoader(text)
    except yaml.reader.ReaderError as e:  # a control character, before any parsing
        line = text.count("\n", 0, e.position) + 1 + line_offset
        column = e.position - (text.rfind("\n", 0, e.position) + 1) + 1
        source.problem(Pos(line, column), f"invalid character U+{e.character:04X}: remove it")
        return source
    try:
        node = loader.get_single_node()
    except yaml.MarkedYAMLError as e:
        mark = e.problem_mark or e.context_mark
        where = Pos(mark.line + 1 + line_offset, mark.column + 1) if mark else Pos(1, 1)
        what = e.problem or e.context or "invalid YAML"
        source.problem(where, f"invalid YAML: {what}")
        return source
    except yaml.YAMLError as e:
        source.problem(Pos(1 + line_offset, 1), f"invalid YAML: {e}")
        return source
    except RecursionError:
        source.problem(Pos(1 + line_offset, 1), f"nested more than {MAX_DEPTH} levels deep")
        return source
    finally:
        loader.dispose()
    if node is None:
        source.problem(Pos(1 + line_offset, 1), "the file is empty: it needs a YAML mapping")
        return source
    walker = _Walker(source, loader)
    source.data = walker.value(node, ())
    return source


class _Walker:
    """Turns a composed node tree into data, recording positions and problems."""

    def __init__(self, source: Source, loader: yaml.SafeLoader) -> None:
        self.source = source
        self.loader = loader
        self.count = 0
        self.active: set[int] = set()

    def pos(self, node: yaml.Node) -> Pos:
        mark = node.start_mark
        style = node.style if isinstance(node, yaml.ScalarNode) else None
        return Pos(mark.line + 1 + self.source.line_offset, mark.column + 1, style)

    def value(self, node: yaml.Node, path: Path_) -> Any:
        self.count += 1
        if self.count > MAX_NODES:
            if self.count == MAX_NODES + 1:
                self.source.problem(
                    self.pos(node),
                    f"the file expands to more than {MAX_NODES} values (aliases repeating "
                    "aliases?): write it out plainly",
                )
            return None
        self.source.values.setdefault(path, self.pos(node))
        if len(path) > MAX_DEPTH:
            self.source.problem(self.pos(node), f"nested more than {MAX_DEPTH} levels deep")
            return None
        if id(node) in self.active:
            self.source.problem(self.pos(node), "an alias refers to a value that contains it")
            return None
        if isinstance(node, yaml.ScalarNode):
            return self.scalar(node)
        self.active.add(id(node))
        try:
            if isinstance(node, yaml.MappingNode):
                return self.mapping(node, path)
            if isinstance(node, yaml.SequenceNode):
                if node.tag != "tag:yaml.org,2002:seq":
                    self.source.problem(self.pos(node), f"unsupported tag {node.tag!r}")
                return [self.value(item, (*path, i)) for i, item in enumerate(node.value)]
        finally:
            self.active.discard(id(node))
        self.source.problem(self.pos(node), "unsupported YAML node")
        return None

    def scalar(self, node: yaml.ScalarNode) -> Any:
        if node.tag in _AS_TEXT:
            return node.value
        if node.tag not in _SCALARS:
            self.source.problem(
                self.pos(node),
                f"unsupported tag {node.tag!r}: write plain text, numbers, true/false or null",
            )
            return None
        try:
            return self.loader.construct_object(node)
        except (yaml.YAMLError, ValueError, TypeError, OverflowError) as e:
            self.source.problem(self.pos(node), f"cannot read this value: {e}")
            return None

    def mapping(self, node: yaml.MappingNode, path: Path_) -> dict[str, Any]:
        if node.tag != "tag:yaml.org,2002:map":
            self.source.problem(self.pos(node), f"unsupported tag {node.tag!r}")
        out: dict[str, Any] = {}
        for key_node, value_node in node.value:
            if not isinstance(key_node, yaml.ScalarNode) or key_node.tag not in (
                *_SCALARS,
                *_AS_TEXT,
            ):
                if key_node.tag == "tag:yaml.org,2002:merge":
                    self.source.problem(
                        self.pos(key_node), "merge keys (<<) are not supported: write the keys"
                    )
                else:
                    self.source.problem(self.pos(key_node), "a key must be plain text")
                continue
            # Keys are taken as written: `on:` or `yes:` stay text, not YAML 1.1 booleans.
            key = str(key_node.value)
            if key in out:
                first = self.source.keys[(*path, key)]
                self.source.problem(
                    self.pos(key_node),
                    f"duplicate key {key!r} (first at line {first.line}): keep one",
                )
                continue
            self.source.keys[(*path, key)] = self.pos(key_node)
            out[key] = self.value(value_node, (*path, key))
        return out
