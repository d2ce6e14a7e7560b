"""Worker programs for the multi-process reliability tests, and the helpers to read their logs.

Run by path (``python tests/reliability/workers.py race ...``) or as
``python -m tests.reliability.workers ...``. Each worker opens its own connection to the
shared database (``--db``: a SQLite file or a PostgreSQL URL), uses the real ``SystemClock``
(it is a separate process: the test cannot move its clock) and appends one JSON object per
line to its log, flushed at once, so that whatever a
worker did before it was killed is on disk for the test to read.

Subcommands:

``race``
    Wait for the gate file, then claim / start / heartbeat / complete until the queue is
    drained; log every completion. Used by ``test_race.py``.
``hold``
    Claim one task and keep it: either heartbeat in a tight loop (every heartbeat is a write
    transaction, so a SIGKILL probably lands inside one) or idle until a "go" file appears, then
    try every holder write with the now-stale token and log what the store answered. Used by
    ``test_crash.py``.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import time
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

from aictl.clock import SystemClock
from aictl.domain.tasks import LeaseToken, Status
from aictl.errors import AictlError, LeaseLost, NothingReady
from aictl.store.db import connect
from aictl.store.tasks import TaskStore

WORKERS_PY = Path(__file__).resolve()


class Log:
    """An append-only JSON Lines file, written with one ``write`` per record (no buffering)."""

    def __init__(self, path: Path) -> None:
        self._fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)

    def write(self, **record: Any) -> None:
        os.write(self._fd, (json.dumps(record, sort_keys=True) + "\n").encode())

    def close(self) -> None:
        os.close(self._fd)


def read_log(path: Path) -> list[dict[str, Any]]:
    """The records of a worker log; a missing file is an empty log."""
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def wait_for(
    condition: Callable[[], Any], *, timeout: float, what: str, interval: float = 0.01
) -> Any:
    """Poll ``condition`` until it returns something truthy; fail after ``timeout`` seconds.

    The timeout is a deadline for a hung test, not an expectation about speed: callers pass
    generous values so that a slow, noisy machine only ever makes the test slower.
    """
    deadline = time.monotonic() + timeout
    while True:
        result = condition()
        if result:
            return result
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(interval)


def _open_store(path: str) -> TaskStore:
    return TaskStore(connect(path), SystemClock())


# ------------------------------------------------------------------------------------- race


def race(args: argparse.Namespace) -> int:
    """Drain the queue with the other racers; exit 0 when every task is done."""
    store = _open_store(args.db)
    log = Log(Path(args.log))
    rng = random.Random(args.name)
    deadline = time.monotonic() + args.deadline
    Path(args.ready).touch()
    # The start gate: every racer polls for the same file, so they start within a few ms of
    # each other rather than one by one as the parent spawned them.
    while not Path(args.gate).exists():
        if time.monotonic() > deadline:
            log.write(event="error", message="gate never opened")
            return 3
        time.sleep(0.002)
    claims = waits = 0
    ttl = timedelta(seconds=args.ttl)
    try:
        while True:
            if time.monotonic() > deadline:
                log.write(
                    event="error",
                    message="deadline passed with work left",
                    counts=store.count_by_status(),
                )
                return 3
            try:
                claim = store.claim(args.name, ttl)
            except NothingReady:
                counts = store.count_by_status()
                if set(counts) <= {str(Status.DONE)}:
                    break
                # Work remains but is waiting on dependencies or path locks held by others.
                waits += 1
                time.sleep(rng.uniform(0.001, 0.01))
                continue
            claims += 1
            store.start(claim.token)
            # "Work": hold the lease a moment so that leases overlap and the lock check and
            # the fenced writes of other workers interleave with this one.
            time.sleep(rng.uniform(0, args.work))
            store.heartbeat(claim.token)
            store.complete(claim.token, result=args.name)
            log.write(
                event="completed", task=claim.task.id, epoch=claim.token.epoch, worker=args.name
            )
    finally:
        log.write(event="summary", worker=args.name, claims=claims, waits=waits)
        log.close()
        store.db.close()
    return 0


# ------------------------------------------------------------------------------------- hold


def hold(args: argparse.Namespace) -> int:
    """Claim a task and hold it until killed, or until told to try writing as a zombie."""
    store = _open_store(args.db)
    log = Log(Path(args.log))
    claim = store.claim(args.name, timedelta(seconds=args.ttl), args.task)
    token = claim.token
    log.write(
        event="claimed", task=token.task_id, epoch=token.epoch, token=str(token), pid=os.getpid()
    )
    if args.heartbeat_loop:
        beats = 0
        while True:  # until SIGKILL
            try:
                store.heartbeat(token)
            except LeaseLost:
                # Stalled past the TTL on a busy machine: the lease is gone, but the test only
                # needs a holder that dies holding a claimed row, so wait for the kill.
                log.write(event="lost", beats=beats)
                while True:
                    time.sleep(1)
            beats += 1
            if beats == 10:
                log.write(event="heartbeating", beats=beats)
    # Idle outside any transaction (so SIGSTOP never freezes the database's write lock) until
    # the test says go; then every holder write with the old token.
    wait_for(lambda: Path(args.go).exists(), timeout=args.deadline, what="the go file")
    log.write(event="resumed")
    attempts: list[tuple[str, Callable[[LeaseToken], object]]] = [
        ("heartbeat", store.heartbeat),
        ("start", store.start),
        ("complete", lambda t: store.complete(t, result=f"zombie {args.name}")),
        ("fail", lambda t: store.fail(t, "zombie failure", retry=False)),
        ("release", store.release),
    ]
    for name, write in attempts:
        try:
            write(token)
        except AictlError as error:
            log.write(event="refused", op=name, error=type(error).__name__, message=error.message)
        else:
            log.write(event="accepted", op=name)
    log.close()
    store.db.close()
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="workers", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    race_parser = commands.add_parser("race")
    race_parser.add_argument("--db", required=True)
    race_parser.add_argument("--name", required=True)
    race_parser.add_argument("--log", required=True)
    race_parser.add_argument("--ready", required=True, help="file to create once connected")
    race_parser.add_argument("--gate", required=True, help="file whose creation starts the race")
    race_parser.add_argument("--ttl", type=float, default=3600.0)
    race_parser.add_argument("--work", type=float, default=0.005, help="max seconds per task")
    race_parser.add_argument("--deadline", type=float, default=120.0)
    hold_parser = commands.add_parser("hold")
    hold_parser.add_argument("--db", required=True)
    hold_parser.add_argument("--name", required=True)
    hold_parser.add_argument("--log", required=True)
    hold_parser.add_argument("--ttl", type=float, required=True)
    hold_parser.add_argument("--task", type=int, default=None)
    hold_parser.add_argument("--heartbeat-loop", action="store_true")
    hold_parser.add_argument("--go", help="file whose creation wakes an idle holder")
    hold_parser.add_argument("--deadline", type=float, default=120.0)
    args = parser.parse_args(argv)
    if args.command == "hold" and not args.heartbeat_loop and not args.go:
        parser.error("hold needs --heartbeat-loop or --go")
    return race(args) if args.command == "race" else hold(args)


if __name__ == "__main__":
    sys.exit(main())
