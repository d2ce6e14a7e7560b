"""The text of a CEL expression, read just enough to check its references against the schema.

:func:`scan` blanks out string literals and ``//`` comments (a literal may contain dots and
parentheses), keeping every position and line break, and records the literals with their
values; :func:`calls` locates the calls of a function and the spans of their arguments. This
is not a parser: ``cel.compile`` has already accepted the expression, and these helpers only
recognise the few shapes the field check and the linter look for.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from aictl.policy.celbinding import cel

MAX_EXPRESSION_CHARS = 4096
"""The longest condition or workflow expression: a rule is a line or a few, not a program."""
MAX_MACRO_NESTING = 2
"""How deeply comprehension macros (``all``, ``exists``, ``exists_one``, ``map``, ``filter``)
may nest. Each level multiplies the work of every evaluation by the length of a list, and
conditions are evaluated inside the claim's write transaction: three levels over a task's
paths made one claim take 16 s."""
_MACRO_CALL = re.compile(r"\.\s*(?:all|exists_one|exists|map|filter)\s*(\()")


@dataclass(frozen=True)
class Literal:
    start: int
    end: int
    value: str


@dataclass(frozen=True)
class Scanned:
    """The expression with string literals and comments blanked (same length, same line
    breaks), and the literals with their positions and values."""

    source: str
    blank: str
    literals: tuple[Literal, ...]

    def literal_at(self, start: int, end: int) -> Literal | None:
        for literal in self.literals:
            if literal.start == start and literal.end == end:
                return literal
        return None


_STRING_START = re.compile(r"""(?i:[rb]{0,2})('''|\"\"\"|'|")""")


def scan(source: str) -> Scanned:
    """Blank out string literals (keeping their quotes) and ``//`` comments."""
    out = list(source)
    literals = []
    index = 0
    while index < len(source):
        char = source[index]
        if source.startswith("//", index):
            end = source.find("\n", index)
            end = len(source) if end < 0 else end
            out[index:end] = " " * (end - index)
            index = end
            continue
        match = _STRING_START.match(source, index) if char in "'\"rRbB" else None
        if match and (index == 0 or not (source[index - 1].isalnum() or source[index - 1] == "_")):
            quote = match.group(1)
            raw = "r" in match.group(0)[: match.start(1) - index].lower()
            body_start = match.end()
            end = _string_end(source, body_start, quote, raw)
            literals.append(Literal(index, end, _decode(source[index:end])))
            for position in range(body_start, end - len(quote)):
                if out[position] != "\n":
                    out[position] = " "
            index = end
            continue
        index += 1
    return Scanned(source, "".join(out), tuple(literals))


def scan_within_bounds(source: str) -> Scanned | tuple[int, str]:
    """``scan(source)``, or the first bound it passes as (line within it, why): the length is
    checked before anything reads the text, the nesting of macros after the scan."""
    beyond = too_long(source)
    if beyond is not None:
        return beyond
    scanned = scan(source)
    return too_costly(source, scanned.blank) or scanned


def too_long(source: str) -> tuple[int, str] | None:
    """(1, why) when ``source`` is longer than :data:`MAX_EXPRESSION_CHARS`, else None:
    checked before anything else reads the text."""
    if len(source) <= MAX_EXPRESSION_CHARS:
        return None
    return 1, (
        f"the expression is {len(source):,} characters long; at most "
        f"{MAX_EXPRESSION_CHARS:,} are allowed (split the rule, or use a helper such as "
        "touches() or within())"
    )


def too_costly(source: str, blank: str) -> tuple[int, str] | None:
    """(line within ``source``, why) at the first comprehension macro nested deeper than
    :data:`MAX_MACRO_NESTING`, else None. ``blank`` is ``scan(source).blank``, so that words
    inside string literals are not taken for macros."""
    opens_macro = {match.start(1) for match in _MACRO_CALL.finditer(blank)}
    opened: list[bool] = []
    depth = 0
    for index, char in enumerate(blank):
        if char in "([{":
            macro = index in opens_macro
            opened.append(macro)
            depth += macro
            if depth > MAX_MACRO_NESTING:
                return source.count("\n", 0, index) + 1, (
                    f"comprehensions (all, exists, exists_one, map, filter) are nested "
                    f"{depth} deep; at most {MAX_MACRO_NESTING} are allowed, as each level "
                    "multiplies the work of every evaluation by the length of a list"
                )
        elif char in ")]}" and opened:
            depth -= opened.pop()
    return None


def _string_end(source: str, start: int, quote: str, raw: bool) -> int:
    index = start
    while index < len(source):
        if not raw and source[index] == "\\":
            index += 2
            continue
        if source.startswith(quote, index):
            return index + len(quote)
        index += 1
    return len(source)  # unterminated: cel.compile reports it


def _decode(text: str) -> str:
    """A literal's value as CEL reads it (escapes included); its raw body if CEL cannot."""
    try:
        value = cel().compile(text).execute()
    except Exception:
        value = None
    if isinstance(value, str):
        return value
    match = _STRING_START.match(text)
    if match is None:  # pragma: no cover - scan() only records literals that start so
        return text
    quote = match.group(1)
    end = len(text) - len(quote) if text.endswith(quote) else len(text)
    return text[match.end() : max(end, match.end())]


def calls(blank: str, name: str) -> list[tuple[tuple[int, int] | None, list[tuple[int, int]]]]:
    """Each call of ``name``: the span of its receiver (method form) and of its arguments."""
    calls = []
    for match in re.finditer(rf"(?<![\w])(?P<dot>\.\s*)?{re.escape(name)}\s*\(", blank):
        receiver = None
        if match["dot"]:
            end = match.start()
            start = end
            while start > 0 and blank[start - 1] == " ":
                start -= 1
            receiver = (_expression_start(blank, start), start)
        calls.append((receiver, _split_arguments(blank, match.end())))
    return calls


def _expression_start(blank: str, end: int) -> int:
    """Where the operand ending at ``end`` starts: a quoted literal or a dotted name."""
    if end and blank[end - 1] in "'\"":
        quote = blank[end - 1]
        return blank.rfind(quote, 0, end - 1)
    start = end
    while start > 0 and (blank[start - 1].isalnum() or blank[start - 1] in "_."):
        start -= 1
    return start


def _split_arguments(blank: str, start: int) -> list[tuple[int, int]]:
    spans = []
    depth = 0
    begin = start
    for index in range(start, len(blank)):
        char = blank[index]
        if char in "([{":
            depth += 1
        elif char in ")]}":
            if depth == 0:
                spans.append((begin, index))
                break
            depth -= 1
        elif char == "," and depth == 0:
            spans.append((begin, index))
            begin = index + 1
    stripped = []
    for begin, end in spans:
        text = blank[begin:end]
        left = len(text) - len(text.lstrip())
        stripped.append((begin + left, begin + len(text.rstrip())))
    return stripped


def literal_arguments(scanned: Scanned, name: str, position: int) -> list[Literal]:
    """The string literals passed as argument ``position`` of ``name`` (receiver first)."""
    found = []
    for receiver, arguments in calls(scanned.blank, name):
        spans = ([receiver] if receiver else []) + arguments
        if position < len(spans):
            literal = scanned.literal_at(*spans[position])
            if literal is not None:
                found.append(literal)
    return found
