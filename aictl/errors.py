"""The exception tree and the exit-code contract.

Every error a user can cause is an ``AictlError``; its class decides the process exit code,
which the CLI's single ``main()`` maps (see ``aictl.cli``). A traceback reaching the user is a bug.

:data:`EXIT_CODES` is the table (0 ok, 1 error, 2 invalid input or usage, 3 policy denied,
4 conflict, 5 nothing ready, 6 queued again for a retry, 7 the state database is damaged,
130 interrupted).
"""

from __future__ import annotations

from typing import NamedTuple


class ExitCode(NamedTuple):
    """What an exit code means: ``kind`` names it in a JSON error object (``--json``)."""

    kind: str
    meaning: str


#: The exit-code contract: every code any command exits with, the one table the CLI's
#: ``main()``, the JSON error objects and docs/cli.md take their words from.
EXIT_CODES = {
    0: ExitCode("ok", "success"),
    1: ExitCode("error", "the command failed (the message says why)"),
    2: ExitCode("invalid_input", "invalid input or usage: nothing was changed"),
    3: ExitCode("policy_denied", "policy denied the action"),
    4: ExitCode("conflict", "someone else holds it: lease lost, task held, lock held"),
    5: ExitCode("nothing_ready", "nothing ready: no task to claim, or no AI eligible"),
    6: ExitCode("requeued", "task execute: the run failed and the task is queued for a retry"),
    7: ExitCode("database_damaged", "the state database is damaged: the hint says how to recover"),
    130: ExitCode("interrupted", "interrupted (Ctrl-C)"),
}

REQUEUED = 6
"""``task execute``'s exit code when the run failed but the task has attempts left."""


def exit_kind(code: int) -> ExitCode:
    """The meaning of ``code``; a code outside the table (a daemon's own) is an error."""
    return EXIT_CODES.get(code, EXIT_CODES[1])


class AictlError(Exception):
    """Root of every error aictl raises on purpose."""

    exit_code = 1

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint


class InvalidInput(AictlError):
    """The request itself is wrong: a malformed value, an unknown id, a bad glob."""

    exit_code = 2


class NotInitialised(InvalidInput):
    """No ``.ai/state.db`` was found walking up from the working directory."""


class TaskNotFound(InvalidInput):
    """A task id that names no task."""


class DependencyCycle(InvalidInput):
    """An edge that would close a cycle in the dependency graph; ``cycle`` lists it."""

    def __init__(self, cycle: list[int]) -> None:
        self.cycle = cycle
        path = " -> ".join(str(task_id) for task_id in cycle)
        super().__init__(f"dependency cycle: {path}", hint="remove one of these dependencies")


class NotAnAictlDatabase(InvalidInput):
    """The file given as the state database is not one: not SQLite at all, an empty file, or
    another program's database. aictl refuses it untouched (``aictl init`` makes one)."""


class IllegalTransition(InvalidInput):
    """A status change the state machine does not allow (for example retrying a done task)."""


class DatabaseUnusable(AictlError):
    """The state database cannot be used as it is: the disk is full, it is on a read-only
    file system, it is damaged, or a newer aictl wrote it. Nothing was changed."""


class DatabaseDamaged(DatabaseUnusable):
    """The state database is damaged: truncated, malformed, or no longer SQLite at all. Its own
    exit code (7), so that a script can tell it from other failures and restore a backup; the
    message names the file and the hint says how to recover."""

    exit_code = 7


class PolicyDenied(AictlError):
    """Policy forbids the action."""

    exit_code = 3


class ApprovalRequired(PolicyDenied):
    """Policy requires a person's approval first; the task waits, blocked, until given."""


class Contention(AictlError):
    """Someone else holds what was asked for."""

    exit_code = 4


class LeaseLost(Contention):
    """The lease token is stale: it expired, was released, or was re-granted to another holder."""


class TaskHeld(Contention):
    """The task is already claimed by another holder."""


class LockHeld(Contention):
    """The task's paths intersect paths locked by a claimed or running task."""


class NothingReady(AictlError):
    """No task can be claimed now; the message says why (empty, waiting, or locked)."""

    exit_code = 5
