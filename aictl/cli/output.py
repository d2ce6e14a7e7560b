"""Everything the CLI prints. The only module that imports rich, and only when a table is drawn.

Data goes to stdout; errors, warnings and hints to stderr. Every listing has three forms: a
human table, ``--json`` with stable keys, and ``-q`` with ids only.

Text for people never drives the terminal: titles, reasons and names come from users and
agents, and an ANSI escape in a title could clear the screen, retitle the window or forge
output. Every human path (:func:`line`, :func:`error`, :func:`note`, table cells) shows
control characters escaped (:func:`aictl.domain.terminal.printable`); JSON output keeps values
exact (JSON escapes control characters itself).
"""

from __future__ import annotations

import json
import os
import re
import sys
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from enum import Enum
from typing import Any, NamedTuple

from aictl.domain.tasks import Task, format_time
from aictl.domain.terminal import printable


class Format(Enum):
    TABLE = "table"
    JSON = "json"
    QUIET = "quiet"


def pick(json_output: bool, quiet: bool) -> Format:
    return Format.JSON if json_output else Format.QUIET if quiet else Format.TABLE


_answered = {"json": False}
"""Whether this command has printed its JSON answer (:func:`failure` then adds no second one)."""


def emit_json(data: Any) -> None:
    """Indented for a person at a terminal; compact when piped, where the C encoder is about
    three times faster (35 ms against 13 ms for a thousand tasks)."""
    _answered["json"] = True
    indent = 2 if sys.stdout.isatty() else None
    sys.stdout.write(json.dumps(data, indent=indent, default=_default) + "\n")


def _default(value: Any) -> Any:
    if isinstance(value, datetime):
        return format_time(value)
    if isinstance(value, Enum):
        return value.value
    raise TypeError(f"cannot serialise {type(value).__name__}")


def compact(data: Any, limit: int = 80) -> str:
    """One-line JSON for a table cell, cut at ``limit`` characters."""
    return cut(json.dumps(data, separators=(",", ":"), default=_default), limit)


def cut(text: str, limit: int) -> str:
    """``text`` if it fits in ``limit`` characters, else its start and an ellipsis (``…``),
    ``limit`` characters in all: a cut text says it was cut."""
    return text if len(text) <= limit else text[: limit - 1] + "…"


def line(text: str = "") -> None:
    sys.stdout.write(printable(text) + "\n")


_DIFF_COLOUR = {"header": "1", "hunk": "36", "added": "32", "removed": "31"}
"""SGR codes by diff line kind: bold, cyan, green, red (as git colours its diffs)."""


def colour_wanted() -> bool:
    """Whether to colour text: on a terminal only, and never under ``NO_COLOR``
    (https://no-color.org: set to anything but the empty string)."""
    return sys.stdout.isatty() and not os.environ.get("NO_COLOR")


def diff(text: str) -> None:
    """A unified diff: coloured on a terminal (added lines green, removed red, hunks cyan,
    file headers bold); as written in a pipe or under ``NO_COLOR``, so that ``| patch`` and
    ``> file.diff`` get the diff itself. Control characters are escaped either way."""
    if not colour_wanted():
        line(text.rstrip("\n"))
        return
    from aictl.domain.diffs import line_kind

    out = sys.stdout
    for row in text.rstrip("\n").split("\n"):
        code = _DIFF_COLOUR.get(line_kind(row))
        out.write(f"\x1b[{code}m{printable(row)}\x1b[0m\n" if code else printable(row) + "\n")


def error(message: str, hint: str | None = None) -> None:
    sys.stderr.write(f"Error: {printable(message)}\n")
    if hint:
        sys.stderr.write(f"Hint: {printable(hint)}\n")


def begin() -> None:
    """A new command line starts (tests run many in one process)."""
    _answered["json"] = False


def failure(
    message: str, hint: str | None = None, *, exit_code: int, json_output: bool = False
) -> int:
    """The one way a command's failure is reported; returns ``exit_code``. ``Error:`` and the
    hint go to stderr; under ``--json`` stdout also gets one JSON object, so that a script or
    an agent reading stdout learns what happened: ``{"error", "hint", "exit_code", "kind",
    "meaning"}``, ``kind`` and ``meaning`` from the exit-code table (aictl.errors); unless the
    command printed its JSON answer before failing (``audit verify`` reports a broken chain
    so), since stdout holds one JSON document."""
    from aictl.errors import exit_kind

    error(message, hint)
    if json_output and not _answered["json"]:
        kind = exit_kind(exit_code)
        emit_json(
            {
                "error": message,
                "hint": hint,
                "exit_code": exit_code,
                "kind": kind.kind,
                "meaning": kind.meaning,
            }
        )
    return exit_code


def note(message: str) -> None:
    sys.stderr.write(printable(message) + "\n")


def _console() -> Any:
    from rich.console import Console

    # Piped output has no terminal width; rich would assume 80 columns and fold every title.
    width = None if sys.stdout.isatty() else 160
    return Console(highlight=False, soft_wrap=False, width=width)


class Styled(NamedTuple):
    """A table cell drawn in a rich style, such as ``Styled("done", "green")``: the one way to
    colour a cell, since every other cell is printed exactly as written."""

    text: str
    style: str


def table(title: str | None, columns: Sequence[str], rows: Iterable[Sequence[Any]]) -> None:
    """Draw a table. Cells are plain text, never rich markup: a title, actor, reason or glob
    such as ``src/[ab]/x.py`` or ``[/oops]`` prints as written (``None`` prints empty). Only a
    ``Styled`` cell carries a style."""
    from rich.table import Table
    from rich.text import Text

    def cell(value: Any) -> Text:
        if isinstance(value, Styled):
            return Text(printable(value.text), style=value.style)
        return Text("" if value is None else printable(str(value)))

    grid = Table(
        title=None if title is None else Text(printable(title), style="table.title"),
        title_justify="left",
        header_style="bold",
        box=None,
        pad_edge=False,
    )
    for column in columns:
        grid.add_column(cell(column), overflow="fold")
    for row in rows:
        grid.add_row(*(cell(value) for value in row))
    console = _console()
    with console.capture() as captured:
        console.print(grid)
    console.file.write(without_trailing_spaces(captured.get()))


_TRAILING = re.compile(r"(?:[ ]|\x1b\[[0-9;]*m)+$", re.MULTILINE)
_STYLE = re.compile(r"\x1b\[[0-9;]*m")


def without_trailing_spaces(text: str) -> str:
    """``text`` with no line ending in spaces. rich pads every cell to its column's width, so
    a table's lines end in runs of spaces (inside colour codes on a terminal), which show up
    in diffs, copies and ``grep 'x$'``; the colour codes are kept, the spaces dropped."""
    return _TRAILING.sub(lambda found: "".join(_STYLE.findall(found.group())), text)


_STATUS_STYLE = {
    "queued": "cyan",
    "claimed": "yellow",
    "running": "yellow bold",
    "done": "green",
    "failed": "red",
    "blocked": "magenta",
    "cancelled": "dim",
}


def task_status(status: str) -> Styled:
    """A task's status in its colour, the same in every view (list, show, watch)."""
    return Styled(status, _STATUS_STYLE.get(status, ""))


TIME_VARIABLE = "AICTL_TIME"
"""``utc`` (the default) or ``local``: the zone of the times people read (tables, messages).
JSON always carries ISO 8601 UTC (``2026-12-05T07:01:02.000000Z``), whatever it says."""


def _local() -> bool:
    import os

    chosen = os.environ.get(TIME_VARIABLE, "utc").strip().lower() or "utc"
    if chosen not in ("utc", "local"):
        from aictl.errors import InvalidInput

        raise InvalidInput(
            f"{TIME_VARIABLE} must be utc or local, not {chosen!r}",
            hint=f"unset {TIME_VARIABLE} for UTC, or set it to local",
        )
    return chosen == "local"


def _in_zone(moment: datetime | str) -> datetime:
    if isinstance(moment, str):  # ISO 8601 text, as the JSON of a report carries it
        moment = datetime.fromisoformat(moment)
    if moment.tzinfo is None:  # stored times are UTC
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone() if _local() else moment.astimezone(UTC)


def zone() -> str:
    """The zone :func:`when` shows times in, for a column header: ``UTC``, or the local
    zone's abbreviation (``CET``) under ``AICTL_TIME=local``."""
    return datetime.now().astimezone().strftime("%Z") if _local() else "UTC"


def when(moment: datetime | str | None, *, zoned: bool = False) -> str:
    """A time for people, in one format everywhere: ``2026-12-05 07:01:02``, in UTC or in
    local time (``AICTL_TIME``); ``zoned`` adds the zone (``2026-12-05 08:01:02 CET``). Empty
    for no time."""
    if moment is None or moment == "":
        return ""
    shown = _in_zone(moment)
    text = shown.strftime("%Y-%m-%d %H:%M:%S")
    return f"{text} {shown.strftime('%Z')}" if zoned else text


_when = when


def tasks(items: Sequence[Task], fmt: Format) -> None:
    if fmt is Format.JSON:
        emit_json([task.to_dict() for task in items])
    elif fmt is Format.QUIET:
        for task in items:
            line(str(task.id))
    elif not items:
        note("no tasks")
    else:
        table(
            None,
            ["ID", "PRI", "STATUS", "TITLE", "HOLDER", "DEPENDS ON", "PATHS", "LABELS"],
            (
                (
                    task.id,
                    task.priority,
                    task_status(task.status),
                    task.title,
                    task.lease_holder if task.status in ("claimed", "running") else "",
                    ",".join(map(str, task.depends_on)),
                    " ".join(task.paths),
                    " ".join(f"{k}={v}" for k, v in task.labels.items()),
                )
                for task in items
            ),
        )


def task(item: Task, fmt: Format, *, headline: str | None = None) -> None:
    """One task: in full for ``show``, as a one-line confirmation after a change."""
    if fmt is Format.JSON:
        emit_json(item.to_dict())
    elif fmt is Format.QUIET:
        line(str(item.id))
    elif headline:
        line(headline)
    else:
        _task_detail(item)


def _task_detail(item: Task) -> None:
    rows: list[tuple[str, Any]] = [
        ("id", item.id),
        ("title", item.title),
        ("status", task_status(item.status)),
        ("type", item.type),
        ("priority", item.priority),
        ("description", item.description),
        ("labels", ", ".join(f"{k}={v}" for k, v in item.labels.items())),
        ("requires", ", ".join(item.requires)),
        ("skills", ", ".join(item.skills)),
        ("paths", " ".join(item.paths)),
        ("depends on", ", ".join(map(str, item.depends_on))),
        ("attempts", f"{item.attempts} of {item.max_attempts}"),
        (
            "lease",
            f"{item.lease_holder} epoch {item.lease_epoch} until {_when(item.lease_expires_at)}"
            if item.lease_expires_at
            else "",
        ),
        ("blocked", item.blocked_reason or ""),
        ("failure", item.failure_reason or ""),
        ("not before", _when(item.not_before)),
        ("result", item.result or ""),
        ("evidence", "yes" if item.evidence else ""),
        ("created", _when(item.created_at)),
        ("claimed", _when(item.claimed_at)),
        ("started", _when(item.started_at)),
        ("finished", _when(item.finished_at)),
    ]
    table(None, ["FIELD", "VALUE"], [(name, value) for name, value in rows if value != ""])
