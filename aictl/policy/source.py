"""Stage 1 of loading: YAML text to plain data that remembers the line of every node.

The file is parsed with ``yaml.compose`` and the safe constructors, so every mapping key and
value keeps its line and nothing but plain data (mappings, lists, scalars) can come out of it. A
duplicate key is an error naming both lines: PyYAML's own loaders silently keep the last one,
which turns a pasted rule into a silent override.

Only the loader imports this module, and only for a file that the fast path
(:func:`aictl.policy.digest.trivial_document`) could not read.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import yaml

    from aictl.policy.issues import PolicyIssue

Path_ = tuple[str | int, ...]
"""A node's place in the document: mapping keys and list indexes from the top."""


@dataclass
class Lines:
    """The 1-based line of every node, by its path; ``line_of`` falls back to the nearest
    ancestor, so an error about a missing field points at the mapping that lacks it."""

    lines: dict[Path_, int] = field(default_factory=lambda: {(): 1})
    literal_blocks: set[Path_] = field(default_factory=set)
    """Paths of values written as ``|`` block scalars: their text starts on the next line."""

    def line_of(self, path: Path_) -> int:
        for end in range(len(path), -1, -1):
            line = self.lines.get(tuple(path[:end]))
            if line is not None:
                return line
        return 1


@dataclass
class YamlProblem:
    line: int
    field: str
    message: str


@dataclass
class Parsed:
    """The outcome of stage 1: ``data`` is None when the text could not be read at all."""

    data: Any
    lines: Lines
    problems: list[YamlProblem]


def field_path(path: Path_) -> str:
    """``("rules", 2, "when")`` → ``rules[2].when``."""
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out


def parse_file(text: str, *, display: str, kind: str) -> tuple[Parsed, list[PolicyIssue]]:
    """Stage 1 of a versioned aictl YAML file (``kind``: policy, workflow): the parse, and its
    problems as issues of ``display``, an empty file among them."""
    from aictl.policy.issues import PolicyIssue

    parsed = parse(text)
    issues = [PolicyIssue(display, p.line, p.field, p.message) for p in parsed.problems]
    if parsed.data is None and not parsed.problems:
        message = f"the file is empty; a {kind} starts with `version: 1`"
        issues.append(PolicyIssue(display, 1, "", message))
    return parsed, issues


def parse(text: str) -> Parsed:
    """Parse one YAML document into plain data with lines; problems are collected, not raised.

    A syntax error stops the file (nothing after it can be trusted) and is reported with its
    line and column. Duplicate keys are all reported; the first occurrence is kept.
    """
    import yaml

    lines = Lines()
    try:
        node = yaml.compose(text, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
    except yaml.MarkedYAMLError as error:
        mark = error.problem_mark or error.context_mark
        line = mark.line + 1 if mark else 1
        column = f" (column {mark.column + 1})" if mark else ""
        problem = error.problem or error.context or "unreadable YAML"
        context = f" {error.context}" if error.context and error.problem else ""
        message = f"YAML syntax error{column}: {problem}{context}"
        return Parsed(None, lines, [YamlProblem(line, "", message)])
    except yaml.YAMLError as error:  # pragma: no cover - every PyYAML parse error is marked
        return Parsed(None, lines, [YamlProblem(1, "", f"YAML error: {error}")])
    if node is None:
        return Parsed(None, lines, [])
    builder = _Builder(lines)
    data = builder.build(node, ())
    return Parsed(data, lines, builder.problems)


class _Builder:
    """Turns composed nodes into plain data, recording lines and duplicate keys."""

    def __init__(self, lines: Lines) -> None:
        import yaml

        self.lines = lines
        self.problems: list[YamlProblem] = []
        self._yaml = yaml
        self._constructor = yaml.SafeLoader("")

    def build(self, node: yaml.Node, path: Path_) -> Any:
        yaml = self._yaml
        self.lines.lines.setdefault(path, node.start_mark.line + 1)
        if isinstance(node, yaml.MappingNode):
            return self._mapping(node, path)
        if isinstance(node, yaml.SequenceNode):
            return [self.build(item, (*path, index)) for index, item in enumerate(node.value)]
        if isinstance(node, yaml.ScalarNode) and node.style == "|":
            self.lines.literal_blocks.add(path)
        return self._scalar(node, path)

    def _scalar(self, node: yaml.Node, path: Path_) -> Any:
        try:
            return self._constructor.construct_object(node, deep=True)
        except self._yaml.YAMLError as error:
            self.problems.append(
                YamlProblem(
                    node.start_mark.line + 1, field_path(path), f"unreadable value: {error}"
                )
            )
            return None

    def _mapping(self, node: yaml.MappingNode, path: Path_) -> dict[Any, Any]:
        out: dict[Any, Any] = {}
        first_line: dict[Any, int] = {}
        for key_node, value_node in node.value:
            line = key_node.start_mark.line + 1
            if not isinstance(key_node, self._yaml.ScalarNode):
                self.problems.append(
                    YamlProblem(line, field_path(path), "a mapping key must be a plain value")
                )
                continue
            key = self._scalar(key_node, path)
            if isinstance(key, bool | float) or key is None:
                key = key_node.value  # `on:` or `null:` as a key means the word, not a value
            if key == "<<":
                self.problems.append(
                    YamlProblem(line, field_path(path), "YAML merge keys (<<) are not supported")
                )
                continue
            if key in first_line:
                self.problems.append(
                    YamlProblem(
                        line,
                        field_path((*path, key)),
                        f"duplicate key {key!r} (first at line {first_line[key]})",
                    )
                )
                continue
            first_line[key] = line
            child = (*path, key)
            self.lines.lines[child] = line
            out[key] = self.build(value_node, child)
        return out
