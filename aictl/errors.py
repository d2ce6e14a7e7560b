"""The exception tree and the exit-code contract.

Every error a user can cause is an ``AictlError``; its class decides the process exit code,
which the CLI's single ``main()`` maps (see ``aictl.cli``). A traceback reaching the user is a bug.

Exit codes: 0 ok, 1 error, 2 invalid input or usage, 3 policy denied, 4 conflict (lease lost,
held by another, lock held), 5 nothing ready to claim, 7 the state database is damaged,
130 interrupted.
"""

from __future__ import annotations


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
