"""The task: its fields, its JSON form, its lease token and its one state-machine table.

The model is a stdlib dataclass rather than a pydantic model on purpose: every CLI call builds
tasks, and a pydantic model with datetimes costs about 120 ms of import and class construction,
more than the whole budget of a command. Input is validated where it enters (the service layer);
pydantic is kept for YAML configuration, where its error messages earn their cost.
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from aictl.domain.sha import sha256_hex
from aictl.errors import IllegalTransition, InvalidInput, LeaseLost


class Status(StrEnum):
    QUEUED = "queued"
    CLAIMED = "claimed"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"
    BLOCKED = "blocked"
    CANCELLED = "cancelled"


LEASED = (Status.CLAIMED, Status.RUNNING)
"""Statuses in which a task has a live holder and holds its path locks."""

UNSATISFIABLE = (Status.FAILED, Status.CANCELLED, Status.BLOCKED)
"""Statuses of a dependency that block its dependents instead of leaving them waiting."""

# The one transition table. Every status change in the store names an event from here; the
# store's UPDATE statements take their allowed source statuses from it too, so the database
# and this table cannot disagree.
TRANSITIONS: dict[str, dict[Status, Status]] = {
    "claim": {Status.QUEUED: Status.CLAIMED},
    "start": {Status.CLAIMED: Status.RUNNING},
    "complete": {Status.RUNNING: Status.DONE},
    "fail": {Status.CLAIMED: Status.FAILED, Status.RUNNING: Status.FAILED},
    # release by the holder, an expired lease, or a failure with attempts left
    "requeue": {Status.CLAIMED: Status.QUEUED, Status.RUNNING: Status.QUEUED},
    "block": {Status.QUEUED: Status.BLOCKED},
    "unblock": {Status.BLOCKED: Status.QUEUED},
    "cancel": {
        Status.QUEUED: Status.CANCELLED,
        Status.BLOCKED: Status.CANCELLED,
        Status.CLAIMED: Status.CANCELLED,
        Status.RUNNING: Status.CANCELLED,
    },
    "retry": {Status.FAILED: Status.QUEUED, Status.CANCELLED: Status.QUEUED},
    # `aictl task integrate`: the work of a run whose integration was refused (failed) or
    # whose process died mid-integration (queued again when its lease expired) is merged
    "integrate": {Status.FAILED: Status.DONE, Status.QUEUED: Status.DONE},
}


def next_status(current: Status, event: str) -> Status:
    """The status ``event`` leads to from ``current``; ``IllegalTransition`` if it may not."""
    try:
        return TRANSITIONS[event][current]
    except KeyError:
        allowed = ", ".join(sorted(TRANSITIONS.get(event, {}))) or "nothing"
        raise IllegalTransition(
            f"cannot {event} a {current} task", hint=f"{event} applies to: {allowed}"
        ) from None


def sources(event: str) -> tuple[str, ...]:
    """The statuses ``event`` may start from (used to build fenced UPDATE statements)."""
    return tuple(str(status) for status in TRANSITIONS[event])


_LOST_LEASE_HINTS = {
    Status.QUEUED: "claim the task again if it is still wanted (`aictl task claim {id}`)",
    Status.CLAIMED: "another holder has it now; `aictl task show {id}` says who",
    Status.RUNNING: "another holder has it now; `aictl task show {id}` says who",
    Status.DONE: "nothing to do: the task is done (`aictl task evidence {id}` shows its result)",
    Status.FAILED: "`aictl task retry {id}` queues it again if it is still wanted",
    Status.BLOCKED: "`aictl task show {id}` says what it waits for",
    Status.CANCELLED: "nothing to do: the task was cancelled",
}


def lost_lease_hint(task_id: int, status: Status) -> str:
    """What a holder whose lease is gone can do next, from the task's current status: a done
    task is not to be claimed again, a failed one is retried, a queued one claimed."""
    return _LOST_LEASE_HINTS[status].format(id=task_id)


def current_holder(status: Status, holder: str | None) -> str:
    """Who holds a task's lease now, in words: a holder only counts while the lease lives."""
    if status in LEASED and holder:
        return f"now held by {holder}"
    return f"nobody holds it now, it is {status}"


def failure_event(attempts: int, max_attempts: int, *, retry: bool) -> str:
    """What a failure leads to: ``requeue`` while attempts remain and retry is allowed."""
    return "requeue" if retry and attempts < max_attempts else "fail"


MAX_INTEGER = 2**63 - 1
"""The largest id, epoch or count SQLite stores (a signed 64-bit integer)."""


@dataclass(frozen=True, slots=True)
class LeaseToken:
    """Proof of a claim: the task, the epoch the claim created, and the claim's random secret.

    Written as ``<task>:<epoch>:<secret>``. The task and epoch are public (audit rows, decision
    records and error messages name them); the secret is known only to whoever received the
    claim, and the store keeps only its SHA-256 (``secret_hash``). Every write by a holder
    checks epoch, secret hash and expiry in its WHERE clause (fencing), so a token guessed from
    the public parts is refused like a stale one. ``label`` is the form to print anywhere but
    to the holder itself.
    """

    task_id: int
    epoch: int
    secret: str = field(default="", repr=False)

    def __str__(self) -> str:
        return f"{self.task_id}:{self.epoch}:{self.secret}"

    @property
    def label(self) -> str:
        """``<task>:<epoch>`` without the secret: safe for logs, errors and the audit log."""
        return f"{self.task_id}:{self.epoch}"

    @property
    def secret_hash(self) -> str:
        """SHA-256 (hex) of the secret: what the store keeps and compares."""
        return hash_secret(self.secret)

    @classmethod
    def parse(cls, text: str) -> LeaseToken:
        """The token written as ``<task>:<epoch>:<secret>``.

        Raises ``InvalidInput`` for text that is no token at all, and ``LeaseLost`` (exit 4,
        contention) for the old ``<task>:<epoch>`` form without a secret: such a token can be
        guessed, so it proves no claim.
        """
        match = re.fullmatch(r"\s*(\d+):(\d+)(?::([A-Za-z0-9_-]{1,128}))?\s*", text)
        if not match or int(match[1]) > MAX_INTEGER or int(match[2]) > MAX_INTEGER:
            raise InvalidInput(
                f"invalid lease token {text!r}",
                hint="a token looks like 12:3:<secret> (task 12, epoch 3), as printed by"
                " `aictl task claim`",
            )
        if match[3] is None:
            raise LeaseLost(
                f"lease token {text.strip()!r} carries no secret: it proves no claim",
                hint="use the whole token printed by `aictl task claim` (<task>:<epoch>:<secret>)",
            )
        return cls(int(match[1]), int(match[2]), match[3])


def hash_secret(secret: str) -> str:
    """SHA-256 (hex) of a lease secret, the only form of it the database holds."""
    return sha256_hex(secret.encode("utf-8"))


@dataclass(slots=True, kw_only=True)
class Task:
    """A unit of work. Times are UTC-aware; ``to_dict``/``from_dict`` round-trip exactly."""

    id: int
    title: str
    description: str = ""
    type: str = "task"
    priority: int = 0
    status: Status = Status.QUEUED
    labels: dict[str, str] = field(default_factory=dict)
    requires: list[str] = field(default_factory=list)
    skills: list[str] = field(default_factory=list)
    paths: list[str] = field(default_factory=list)
    depends_on: list[int] = field(default_factory=list)
    attempts: int = 0
    max_attempts: int = 3
    lease_holder: str | None = None
    lease_epoch: int = 0
    lease_ttl_seconds: float | None = None
    lease_expires_at: datetime | None = None
    heartbeat_at: datetime | None = None
    created_at: datetime
    updated_at: datetime
    claimed_at: datetime | None = None
    started_at: datetime | None = None
    finished_at: datetime | None = None
    not_before: datetime | None = None
    blocked_reason: str | None = None
    approval: str | None = None
    approval_by: str | None = None
    failure_reason: str | None = None
    result: str | None = None
    evidence: dict[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready mapping with stable keys (the `--json` form of a task)."""
        out = {name: getattr(self, name) for name in _FIELD_NAMES}
        for name in _TIME_FIELDS:
            if out[name] is not None:
                out[name] = format_time(out[name])
        out["status"] = self.status.value
        for name in _CONTAINER_FIELDS:
            if out[name] is not None:
                out[name] = out[name].copy()
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Task:
        values = dict(data)
        for name in _TIME_FIELDS:
            if values.get(name) is not None:
                values[name] = parse_time(values[name])
        values["status"] = Status(values["status"])
        return cls(**values)


_FIELD_NAMES = tuple(f.name for f in dataclasses.fields(Task))
_TIME_FIELDS = tuple(f.name for f in dataclasses.fields(Task) if "datetime" in str(f.type))
_CONTAINER_FIELDS = ("labels", "requires", "skills", "paths", "depends_on", "evidence")


def format_time(moment: datetime) -> str:
    """Fixed-width UTC text (``2026-01-01T00:00:00.000000Z``): sorts as it compares.

    An aware time in another zone is converted first, so the text compares correctly with
    every stored time; a naive time is taken to be UTC already.
    """
    if moment.tzinfo is not None:
        moment = moment.astimezone(UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def parse_time(text: str) -> datetime:
    return datetime.fromisoformat(text)


def check_text(value: str, what: str) -> str:
    """``value`` unchanged if it can be stored, hashed and printed as UTF-8.

    A byte that is not UTF-8 in an argument or environment variable reaches Python as a lone
    surrogate (``\\udcff``); SQLite and the audit hash would refuse it deep inside a write.
    Raises ``InvalidInput`` naming ``what`` and the position of the first bad character.
    """
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as error:
        raise InvalidInput(
            f"invalid {what} {value!r}: character {error.start + 1} is not valid UTF-8",
            hint="pass text encoded as UTF-8",
        ) from None
    return value


def check_json_text(value: Any, what: str) -> Any:
    """``value`` unchanged if every key and string inside it is valid UTF-8 (see
    ``check_text``); the error names the path to the bad string, such as ``evidence.files[2]``."""
    if isinstance(value, str):
        check_text(value, what)
    elif isinstance(value, dict):
        for key, inner in value.items():
            check_text(str(key), f"key in {what}")
            check_json_text(inner, f"{what}.{key}")
    elif isinstance(value, list):
        for index, inner in enumerate(value):
            check_json_text(inner, f"{what}[{index}]")
    return value


def parse_label(text: str) -> tuple[str, str]:
    """``key=value`` → (key, value). Keys are letters, digits, ``_.-/``; values are free text."""
    key, sep, value = check_text(text, "label").partition("=")
    if not sep or not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_./-]*", key):
        raise InvalidInput(
            f"invalid label {text!r}",
            hint="write labels as KEY=VALUE, with a key of letters, digits and _ . / -",
        )
    return key, value
