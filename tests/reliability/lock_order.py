"""Leases rebuilt from the audit chain's order (``seq``), not from clocks: the record of which
tasks held their path locks at once, whatever the hosts' clocks said."""

from __future__ import annotations

from dataclasses import dataclass
from itertools import combinations

from aictl.domain.globs import globs_intersect
from aictl.store.audit import Entry

CLOSING = {"task.completed", "task.failed", "task.released", "task.requeued", "task.lease_expired"}


@dataclass
class Interval:
    task: int
    epoch: int
    paths: list[str]
    start: int
    end: int | None = None


def lock_intervals(entries: list[Entry]) -> list[Interval]:
    """Each lease as an interval of audit sequence numbers: claim to its closing event."""
    open_: dict[int, Interval] = {}
    closed: list[Interval] = []
    for entry in entries:
        if entry.task_id is None:
            continue
        if entry.kind == "task.claimed":
            assert entry.task_id not in open_, f"task {entry.task_id} leased twice at once"
            open_[entry.task_id] = Interval(
                entry.task_id, entry.data["epoch"], entry.data["paths"], entry.seq
            )
        elif entry.kind in CLOSING and entry.task_id in open_:
            interval = open_.pop(entry.task_id)
            assert entry.data["epoch"] == interval.epoch, (entry, interval)
            interval.end = entry.seq
            closed.append(interval)
    assert open_ == {}, "leases still open at the end"
    return closed


def clashes_in_chain(entries: list[Entry]) -> tuple[int, list[tuple[int, int]]]:
    """How many pairs of leases were open at once in the chain's order, and those of them
    whose globs intersect (which exact path locks never allow)."""
    intervals = lock_intervals(entries)
    concurrent = [
        (a, b)
        for a, b in combinations(intervals, 2)
        if a.task != b.task and a.start < b.end and b.start < a.end  # type: ignore[operator]
    ]
    clashes = [
        (a.task, b.task)
        for a, b in concurrent
        if any(globs_intersect(x, y) for x in a.paths for y in b.paths)
    ]
    return len(concurrent), clashes
