"""The fast path of the commonest command lines: ``aictl task list`` and ``aictl task create``
with their plain options, parsed here without typer (its import, with the modules only it
needs, and the building of its commands were the largest part of these commands' start-up:
bench/README.md, part 16).

Anything this parser does not recognise goes to the full CLI instead: help, ``--version``, a
misspelt or repeated-in-one-word option (``-qq``), a missing value, a bad integer, ``--``,
another command. So does every failure of the command itself (the service raises before it
writes): the full CLI then runs the same line and reports the error in its own words, so the
answer (stdout, stderr, exit code) is the full CLI's in every case. The one exception is a
failure after the command's work (stdout closed, say): reported here as the full CLI would
(:func:`_failed_after`), rather than creating the task twice or printing a listing again.

The commands' bodies mirror ``aictl.cli.task``'s ``create`` and ``list``;
``tests/cli/test_fast.py`` runs both paths on the same lines and compares their answers.
"""

from __future__ import annotations

import errno
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from aictl.cli import output
from aictl.domain.tasks import MAX_INTEGER

if TYPE_CHECKING:
    from aictl.services.tasks import TaskService


class _Unrecognised(Exception):
    """The line is not one this parser answers: the full CLI takes it."""


#: Each command's options: name -> (keyword, kind). Kinds: "flag" (True when present), "one"
#: (a value, the last one wins), "many" (every value, in order), "int", "int?" (an integer),
#: "id" (a task id, many).
_LIST: dict[str, tuple[str, str]] = {
    "--status": ("statuses", "many"),
    "--ready": ("ready", "flag"),
    "--label": ("labels", "many"),
    "--json": ("json", "flag"),
    "--quiet": ("quiet", "flag"),
    "-q": ("quiet", "flag"),
}
_CREATE: dict[str, tuple[str, str]] = {
    "--description": ("description", "one"),
    "--type": ("type", "one"),
    "--priority": ("priority", "int"),
    "--depends-on": ("depends_on", "id"),
    "--path": ("paths", "many"),
    "--label": ("labels", "many"),
    "--requires": ("requires", "many"),
    "--max-attempts": ("max_attempts", "int?"),
    "--skill": ("skills", "many"),
    "--json": ("json", "flag"),
    "--quiet": ("quiet", "flag"),
    "-q": ("quiet", "flag"),
}


def _task_id(text: str) -> int:
    """As ``aictl.cli.common.parse_task_id`` accepts it; anything else is the full CLI's."""
    if not text.strip().isdigit() or not 1 <= int(text) <= MAX_INTEGER:
        raise _Unrecognised
    return int(text)


def _integer(text: str) -> int:
    try:
        return int(text)  # what click's INT does
    except ValueError:
        raise _Unrecognised from None


_CONVERT: dict[str, Callable[[str], Any]] = {"int": _integer, "int?": _integer, "id": _task_id}


def _options(
    words: Sequence[str], spec: dict[str, tuple[str, str]]
) -> tuple[dict[str, Any], list[str]]:
    """The options of one command (click's rules: ``--name value`` or ``--name=value``, a
    value taken whatever it looks like, options and arguments in any order) and its
    arguments."""
    found: dict[str, Any] = {}
    arguments: list[str] = []
    rest = list(words)
    while rest:
        word = rest.pop(0)
        if not word.startswith("-") or word == "-":
            arguments.append(word)
            continue
        name, equals, attached = word.partition("=")
        if name not in spec:
            raise _Unrecognised
        keyword, kind = spec[name]
        if kind == "flag":
            if equals:
                raise _Unrecognised
            found[keyword] = True
            continue
        if equals:
            value = attached
        elif rest:
            value = rest.pop(0)
        else:
            raise _Unrecognised
        converted = _CONVERT.get(kind, str)(value)
        if kind in ("many", "id"):
            found.setdefault(keyword, []).append(converted)
        else:
            found[keyword] = converted
    return found, arguments


def _parse(argv: Sequence[str]) -> tuple[Path | None, str, dict[str, Any]]:
    """The database, the command (``list`` or ``create``) and its options."""
    words = list(argv)
    db: str | None = os.environ.get("AICTL_DB") or None
    while words and words[0].startswith("--db"):
        word = words.pop(0)
        if word.startswith("--db="):
            db = word[len("--db=") :]
        elif word == "--db" and words:
            db = words.pop(0)
        else:
            raise _Unrecognised
    if db == "" or words[:1] != ["task"] or len(words) < 2 or words[1] not in ("list", "create"):
        raise _Unrecognised
    command = words[1]
    options, arguments = _options(words[2:], _LIST if command == "list" else _CREATE)
    if (command == "list" and arguments) or (command == "create" and len(arguments) != 1):
        raise _Unrecognised
    if command == "create":
        options["title"] = arguments[0]
    return (None if db is None else Path(db)), command, options


def attempt(argv: Sequence[str]) -> int | None:
    """Answer ``argv`` and return the exit code, or None when the full CLI must answer it
    (nothing has been written then). A listing that fails while printing is reported here
    too: printing it again would repeat what reached stdout."""
    try:
        db, command, options = _parse(argv)
    except _Unrecognised:
        return None
    from aictl.services.tasks import TaskService
    from aictl.workspace import locate

    fmt = output.pick(options.pop("json", False), options.pop("quiet", False))
    answer: Any = None
    try:
        service = TaskService(locate(db))
        try:
            answer = _run(service, command, options)
        finally:
            service.close()
        if command == "list":
            output.tasks(answer, fmt)
        else:
            output.task(answer, fmt, headline=f"Created task {answer.id} ({answer.status})")
    except KeyboardInterrupt:
        return 130  # as typer answers an interrupted command: the code alone
    except Exception as error:
        if answer is None:
            return None  # nothing written: the full CLI reports it in its own words
        return _failed_after(error, json_output=fmt is output.Format.JSON)
    return 0


def _failed_after(error: Exception, *, json_output: bool) -> int:
    """Report a failure after the command did its work, as the full CLI would: a closed pipe
    as typer does (exit 1, no message, stdout and stderr kept from complaining at exit), any
    other error through ``aictl.cli.failure``."""
    if isinstance(error, OSError) and error.errno == errno.EPIPE:
        from typer._click.utils import PacifyFlushWrapper

        sys.stdout = PacifyFlushWrapper(sys.stdout)
        sys.stderr = PacifyFlushWrapper(sys.stderr)
        return 1
    from aictl.cli import failure

    return failure(error, json_output=json_output)


def _run(service: TaskService, command: str, options: dict[str, Any]) -> Any:
    from aictl.domain.globs import from_cwd

    if command == "list":
        return service.list_tasks(
            statuses=options.get("statuses", []),
            ready=options.get("ready", False),
            labels=options.get("labels", []),
        )
    return service.create(
        options["title"],
        description=options.get("description", ""),
        type=options.get("type", "task"),
        priority=options.get("priority", 0),
        depends_on=options.get("depends_on", []),
        paths=from_cwd(options.get("paths", []), service.workspace.root, Path.cwd()),
        labels=options.get("labels", []),
        requires=options.get("requires", []),
        max_attempts=options.get("max_attempts"),
        skills=options.get("skills", []),
    )
