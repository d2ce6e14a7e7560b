"""Who is asking: a person, or an agent that aictl runs (pure: the caller passes the readers).

Approvals, rejections and policy overrides are a person's decisions. An agent that aictl runs
carries the marker ``AICTL_AGENT_RUN=<task>:<attempt>`` in its environment (the executor puts
it there), and so does every process it starts unless that process removes it. Removing it from
one's own shell is easy; changing the environment of one's ancestors is not (``/proc/<pid>/
environ`` is the environment a process was started with, and only that process or root could
rewrite its memory). So a request is an agent's when the marker is in our own environment, in
the environment of any ancestor process, or when the actor names an AI.

The limit, stated honestly: a process that leaves its ancestry (a double fork re-parents it to
init or a subreaper) *and* drops the marker is not recognised this way. The OS sandbox around
the agent's shell, which keeps ``.ai/`` read-only for it, is the backstop for that case.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass

AGENT_RUN_ENV = "AICTL_AGENT_RUN"
"""The environment marker of an agent run: ``<task id>:<attempt>``."""

PERSON_ONLY_RULE = "aictl:person-only"
"""The id of aictl's own rule in the decision records of refused agent requests."""

MAX_ANCESTORS = 4096
"""A bound on the walk up the process tree, in case ``/proc`` ever shows a loop."""

ReadStat = Callable[[int], "str | None"]
"""``/proc/<pid>/stat`` of a process as text, or None when it cannot be read."""
ReadEnviron = Callable[[int], "bytes | None"]
"""``/proc/<pid>/environ`` of a process (NUL-separated), or None when it cannot be read."""


@dataclass(frozen=True)
class AgentSign:
    """Why a request is taken to come from an agent: a sentence for the decision record, and
    the evidence (the process carrying the marker and the marker's value, or the actor)."""

    reason: str
    pid: int | None = None
    run: str | None = None
    actor: str | None = None

    def to_dict(self) -> dict[str, object]:
        return {"reason": self.reason, "pid": self.pid, "run": self.run, "actor": self.actor}


def parent_pid(stat: str) -> int | None:
    """The parent pid from a ``/proc/<pid>/stat`` line. The command name (field 2) sits in
    parentheses and may itself contain spaces and parentheses, so the fields are counted from
    the last ``)``: state, then ppid."""
    _, paren, rest = stat.rpartition(")")
    fields = rest.split()
    if not paren or len(fields) < 2:
        return None
    try:
        return int(fields[1])
    except ValueError:
        return None


def command_name(stat: str) -> str:
    """The command name from a ``/proc/<pid>/stat`` line (``?`` when malformed)."""
    start, end = stat.find("("), stat.rfind(")")
    return stat[start + 1 : end] if 0 <= start < end else "?"


def marker_in(environ: bytes) -> str | None:
    """The value of the marker in a NUL-separated environment block, if present."""
    prefix = AGENT_RUN_ENV.encode() + b"="
    for entry in environ.split(b"\0"):
        if entry.startswith(prefix):
            return entry[len(prefix) :].decode("utf-8", "replace")
    return None


def actor_is_ai(actor: str, registered: Collection[str]) -> bool:
    """Whether ``actor`` names an AI: ``ai:<anything>``, or the id of a registered AI."""
    return actor.startswith("ai:") or actor in registered


def find_agent(
    *,
    actor: str,
    registered: Collection[str],
    environ: Mapping[str, str],
    pid: int,
    read_stat: ReadStat,
    read_environ: ReadEnviron,
) -> AgentSign | None:
    """The sign that the current request comes from an agent, or None for a person.

    Checked in this order: the actor (``AICTL_ACTOR`` or the default) names an AI; the marker
    is in ``environ`` (our own, as the program sees it now); the marker is in the environment
    ``pid`` or any ancestor started with, walking parent pids up to 1. A process whose files
    cannot be read (gone, or another user's) is skipped, and the walk goes on from its parent
    when its ``stat`` was readable, else stops there.
    """
    if actor_is_ai(actor, registered):
        return AgentSign(f"the actor {actor!r} is an AI, not a person", actor=actor)
    if environ.get(AGENT_RUN_ENV):
        own = environ[AGENT_RUN_ENV]
        return AgentSign(
            f"{AGENT_RUN_ENV}={own} is in this process's environment (an agent run)", run=own
        )
    seen: set[int] = set()
    current: int | None = pid
    while current is not None and current > 0 and current not in seen:
        if len(seen) >= MAX_ANCESTORS:
            break
        seen.add(current)
        stat = read_stat(current)
        block = read_environ(current)
        run = marker_in(block) if block is not None else None
        if run:
            name = command_name(stat) if stat else "?"
            return AgentSign(
                f"{AGENT_RUN_ENV}={run} is in the environment of pid {current} ({name}), "
                "an ancestor of this process: the request comes from inside an agent run",
                pid=current,
                run=run,
            )
        if current == 1 or stat is None:
            break
        current = parent_pid(stat)
    return None
