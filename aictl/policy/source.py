"""Stage 1 of loading: YAML text to plain data that remembers the line of every node.

The file is parsed with ``yaml.compose`` and the safe constructors, so every mapping key and
value keeps its line and nothing but plain data (mappings, lists, scalars) can come out of it. A
duplicate key is an error naming both lines: PyYAML's own loaders silently keep the last one,
which turns a pasted rule into a silent override.

Only the loaders import this module, and only for a file that the fast path
(:func:`aictl.policy.digest.trivial_document`) could not read.

Every input is bounded before anything is expanded, so that no file can take the memory or the
time of the process reading it (the daemon reloads these files while it runs):

- :data:`MAX_FILE_BYTES` (1 MiB): a larger file is refused before it is read whole;
- the text must be UTF-8; the first bad byte is named with its offset, line and column;
- :data:`MAX_DEPTH` levels of nested mappings and lists;
- :data:`MAX_ALIAS_NODES`: aliases (``*name``) may repeat at most that many nodes in all. A
  "billion laughs" file (ten aliases of ten aliases of ...) expands to a billion strings from a
  few hundred bytes: the check counts, in one streaming pass over the parser's events, how many
  nodes each anchor stands for, and stops at the first alias that passes the bound.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import yaml

    from aictl.policy.issues import PolicyIssue

MAX_FILE_BYTES = 1 << 20
"""The largest YAML file aictl reads (1 MiB): far beyond any real policy, workflow or skill."""
MAX_DEPTH = 64
"""How deeply mappings and lists may nest."""
MAX_ALIAS_NODES = 10_000
"""How many nodes aliases may repeat in one file, counting each alias as the whole subtree it
names (so the nodes hidden in aliases of aliases count too)."""

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


class Unreadable(Exception):
    """A file that cannot be read as text: ``line`` is where the problem is (1 when unknown)."""

    def __init__(self, line: int, message: str) -> None:
        super().__init__(message)
        self.line = line
        self.message = message


def read_bytes(path: Path) -> bytes:
    """The bytes of ``path``, at most :data:`MAX_FILE_BYTES` of them; raises ``Unreadable``
    for a larger file (read no further than the limit) or one that cannot be read."""
    try:
        with path.open("rb") as stream:
            raw = stream.read(MAX_FILE_BYTES + 1)
    except OSError as error:
        raise Unreadable(1, f"cannot read the file: {error.strerror or error}") from None
    if len(raw) > MAX_FILE_BYTES:
        raise Unreadable(1, _too_large())
    return raw


def decode(raw: bytes) -> str:
    """``raw`` as text the way text mode reads it (UTF-8, universal newlines); raises
    ``Unreadable`` naming the first byte that is not UTF-8: offset, line and column."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as error:
        line = raw.count(b"\n", 0, error.start) + 1
        column = error.start - (raw.rfind(b"\n", 0, error.start) + 1) + 1
        raise Unreadable(
            line,
            f"not UTF-8 text: {error.reason} at byte {error.start} (line {line}, column {column})",
        ) from None
    return text.replace("\r\n", "\n").replace("\r", "\n")


def read_text(path: Path) -> str:
    """:func:`read_bytes` then :func:`decode`."""
    return decode(read_bytes(path))


def _too_large() -> str:
    return (
        f"the file is larger than {MAX_FILE_BYTES // (1 << 20)} MiB, the limit for aictl's "
        "YAML files (policy, workflow, skill)"
    )


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
    line and column, as is text over a bound (see the module docstring), which is refused
    before any node is built. Duplicate keys are all reported; the first occurrence is kept.
    """
    import yaml

    lines = Lines()
    if len(text) > MAX_FILE_BYTES:
        return Parsed(None, lines, [YamlProblem(1, "", _too_large())])
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    try:
        beyond = _beyond_bounds(text, loader)
        if beyond is not None:
            return Parsed(None, lines, [beyond])
        node = yaml.compose(text, Loader=loader)
    except yaml.MarkedYAMLError as error:
        return Parsed(None, lines, [syntax_problem(text, error)])
    except yaml.YAMLError as error:  # pragma: no cover - every PyYAML parse error is marked
        return Parsed(None, lines, [YamlProblem(1, "", f"YAML error: {error}")])
    if node is None:
        return Parsed(None, lines, [])
    builder = _Builder(lines)
    data = builder.build(node, ())
    return Parsed(data, lines, builder.problems)


_UNCLOSED = (
    "while scanning a simple key",  # a key whose ':' never came: the key's line is wrong
    "while scanning a quoted scalar",  # a quote never closed
    "while parsing a flow",  # a '[' or '{' never closed
)
"""Contexts in which PyYAML notices a problem only on a later line (or at the end of the
file) than the one that holds it: the error is reported at the context's line."""


def syntax_problem(text: str, error: yaml.MarkedYAMLError) -> YamlProblem:
    """A syntax error at the line a person must fix.

    PyYAML marks where it gave up, which is one line late (or at the end of the file) for an
    unterminated construct: a key without ``:``, an unclosed quote or bracket. For those the
    line that opened the construct is reported, and where it gave up is said too. A tab in
    the indentation of any line up to the failure is named as the problem: YAML indents with
    spaces only, and PyYAML's own words for it ("found character that cannot start any
    token") do not say so.
    """
    mark = error.problem_mark or error.context_mark
    line = mark.line + 1 if mark else 1
    tabbed = _tab_indented(text, line)
    if tabbed is not None:
        return YamlProblem(
            tabbed,
            "",
            "YAML syntax error: a tab in the indentation; YAML indents with spaces only",
        )
    problem = error.problem or error.context or "unreadable YAML"
    context = f" {error.context}" if error.context and error.problem else ""
    opened = error.context_mark
    unclosed = bool(error.context and error.context.startswith(_UNCLOSED))
    if unclosed and opened and mark and opened.line < mark.line:
        message = (
            f"YAML syntax error (column {opened.column + 1}): {problem}{context} "
            f"(noticed at line {mark.line + 1}, column {mark.column + 1})"
        )
        return YamlProblem(opened.line + 1, "", message)
    column = f" (column {mark.column + 1})" if mark else ""
    return YamlProblem(line, "", f"YAML syntax error{column}: {problem}{context}")


def _tab_indented(text: str, last: int) -> int | None:
    """The line whose indentation holds a tab: ``last`` (1-based, where the parser gave up)
    itself, else the first such line before it; None when there is none."""
    numbered = list(enumerate(text.split("\n")[:last], start=1))
    for number, content in [*numbered[-1:], *numbered[:-1]]:
        indentation = content[: len(content) - len(content.lstrip(" \t"))]
        if "\t" in indentation and content.strip():
            return number
    return None


def _beyond_bounds(text: str, loader: Any) -> YamlProblem | None:
    """The first bound the text passes, from one pass over the parser's events (iterative:
    no recursion, and no node built); None when it is within every bound."""
    import yaml

    opened: list[list[Any]] = []  # per open collection: [anchor, nodes so far]
    sizes: dict[str, int] = {}  # per anchor: the nodes it stands for
    repeated = 0
    for event in yaml.parse(text, Loader=loader):
        if isinstance(event, yaml.CollectionStartEvent):
            opened.append([event.anchor, 1])
            if len(opened) > MAX_DEPTH:
                return YamlProblem(
                    _line_of(event),
                    "",
                    f"mappings and lists are nested more than {MAX_DEPTH} levels deep",
                )
            continue
        if isinstance(event, yaml.CollectionEndEvent):
            anchor, count = opened.pop()
        elif isinstance(event, yaml.ScalarEvent):
            anchor, count = event.anchor, 1
        elif isinstance(event, yaml.AliasEvent):
            anchor, count = None, sizes.get(event.anchor or "", 1)
            repeated += count
            if repeated > MAX_ALIAS_NODES:
                return YamlProblem(
                    _line_of(event),
                    "",
                    f"aliases (*{event.anchor}) expand to more than {MAX_ALIAS_NODES:,} nodes; "
                    "write the values out, or use fewer aliases",
                )
        else:
            continue
        if anchor:
            sizes[anchor] = count
        if opened:
            opened[-1][1] += count
    return None


def _line_of(event: yaml.Event) -> int:
    return event.start_mark.line + 1 if event.start_mark else 1


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
