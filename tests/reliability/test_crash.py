"""Dead and paused holders: a lease must outlive neither a SIGKILLed worker nor a SIGSTOPped one.

The holder is a real process (``workers.py hold``) so that the kill really lands on an open
connection (SQLite's file, or a PostgreSQL session), possibly inside a write transaction, and
the pause really freezes a process that still believes it holds its lease. The successor runs
in this process. Both run on both backends (``state_db``).
"""

from __future__ import annotations

import os
import signal
import subprocess
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from aictl.clock import ManualClock, SystemClock
from aictl.domain.tasks import LeaseToken, Status
from aictl.errors import LeaseLost, NothingReady, TaskHeld
from aictl.store.db import connect
from aictl.store.tasks import Expiry, NewTask, TaskStore
from tests.reliability.workers import read_log, wait_for

if TYPE_CHECKING:
    from tests.reliability.conftest import Snapshot

PATHS = ["src/a/**", "docs/*.md"]
SUCCESSOR_TTL = timedelta(minutes=10)  # long: the successor must not expire during the test


def create_task(db_path: Path | str) -> int:
    db = connect(db_path)
    try:
        store = TaskStore(db, SystemClock())
        return store.create(NewTask(title="contested", paths=PATHS, max_attempts=3)).id
    finally:
        db.close()


def events(log: Path, name: str) -> list[dict[str, object]]:
    return [record for record in read_log(log) if record["event"] == name]


@pytest.mark.slow
def test_sigkilled_holder_loses_its_lease_after_the_ttl_and_the_task_is_done_once(
    tmp_path: Path,
    state_db: Path | str,
    spawn: Callable[..., subprocess.Popen[bytes]],
    worker_stderr: Callable[[int], str],
) -> None:
    """A holder heartbeating in a tight loop is killed with SIGKILL; its lease and path locks
    stay until exactly the TTL after its last heartbeat, then the sweep returns the task, a
    successor claims it (epoch 2, attempts 2) and completes it, once.

    Every heartbeat is a ``BEGIN IMMEDIATE`` transaction, so the kill probably lands inside
    one: the test also proves that a writer dying mid-transaction neither wedges the database
    (the successor's writes would time out) nor leaves half a write behind (integrity check,
    the row still a consistent "claimed" lease).

    It fails if the lease is re-granted before its expiry (the boundary is checked to the
    microsecond with a manual clock), if the sweep forgets the expired lease or its locks, if
    the attempt is not counted, or if the dead holder's token could still write.
    """
    task_id = create_task(state_db)
    log = tmp_path / "holder.jsonl"
    holder = spawn("hold", "--db", str(state_db), "--log", str(log), "--name", "holder",
                   "--ttl", "2", "--heartbeat-loop")  # fmt: skip
    wait_for(
        lambda: events(log, "heartbeating") or events(log, "lost") or holder.poll() is not None,
        timeout=60,
        what="the holder's heartbeats",
    )
    assert holder.poll() is None, f"the holder died early: {worker_stderr(0)}"
    os.kill(holder.pid, signal.SIGKILL)
    assert holder.wait(timeout=60) == -signal.SIGKILL
    [claimed] = events(log, "claimed")
    dead_token = LeaseToken.parse(str(claimed["token"]))
    assert (dead_token.task_id, dead_token.epoch) == (task_id, 1)

    db = connect(state_db)
    try:
        if isinstance(state_db, Path):  # SQLite's own check of its file
            assert db.connection.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        # Time stands where the holder's last heartbeat left it: the lease is live.
        reader = TaskStore(db, SystemClock())
        before = reader.get(task_id)
        assert (before.status, before.lease_holder, before.lease_epoch) == (
            Status.CLAIMED,
            "holder",
            1,
        )
        assert before.heartbeat_at and before.lease_expires_at
        assert before.lease_expires_at - before.heartbeat_at == timedelta(seconds=2)
        clock = ManualClock(before.heartbeat_at)
        store = TaskStore(db, clock)

        with pytest.raises(TaskHeld):
            store.claim("successor", SUCCESSOR_TTL, task_id)
        with pytest.raises(NothingReady):
            store.claim("successor", SUCCESSOR_TTL)
        clock.advance(before.lease_expires_at - clock.now() - timedelta(microseconds=1))
        assert store.sweep() == []
        assert {lock.holder for lock in store.held_locks()} == {"holder"}

        clock.advance(timedelta(microseconds=1))  # now == expiry: the lease is over
        assert store.sweep() == [Expiry(task_id, "holder", 1, Status.QUEUED)]
        assert store.held_locks() == []
        assert store.get(task_id).status is Status.QUEUED

        claim = store.claim("successor", SUCCESSOR_TTL)
        assert (claim.token.task_id, claim.token.epoch) == (task_id, 2)
        assert claim.task.attempts == 2
        assert {(lock.holder, lock.lease_epoch) for lock in store.held_locks()} == {
            ("successor", 2)
        }
        with pytest.raises(LeaseLost):
            store.heartbeat(dead_token)
        store.start(claim.token)
        store.complete(claim.token, result="successor")
        with pytest.raises(LeaseLost):
            store.complete(claim.token, result="twice")

        after = store.get(task_id)
        assert (after.status, after.attempts, after.lease_epoch, after.result) == (
            Status.DONE,
            2,
            2,
            "successor",
        )
        assert store.held_locks() == []
    finally:
        db.close()


@pytest.mark.slow
def test_resumed_zombie_is_fenced_off_by_library_and_cli_without_changing_a_byte(
    tmp_path: Path,
    state_db: Path | str,
    spawn: Callable[..., subprocess.Popen[bytes]],
    worker_stderr: Callable[[int], str],
    aictl_exe: str,
    snapshot: Snapshot,
) -> None:
    """A holder is frozen with SIGSTOP past its TTL; a successor claims the task (epoch 2);
    the holder is resumed with SIGCONT and tries heartbeat, start, complete, fail and release
    with its old token through the library, and the test tries heartbeat, complete and release
    with the same token through the installed ``aictl`` command.

    Proves: every zombie write is refused with LeaseLost (exit code 4 and ``Error: lease 1:1 is
    stale`` from the CLI), the database is byte-for-byte what the successor left (every row of
    every task table), and the successor can still finish the task.

    It fails if the fence admits a stale epoch (the classic zombie: a paused worker finishing
    or releasing a task that was handed to someone else), if a refused write leaves anything
    behind (a heartbeat that extends the successor's lease, a release that drops its locks),
    or if the CLI reports the refusal with another exit code or a traceback.

    The pause is real time: the holder is a separate process on the system clock, so its lease
    must really expire (TTL 1.5 s); the successor polls for it with a deadline.
    """
    task_id = create_task(state_db)
    log, go = tmp_path / "zombie.jsonl", tmp_path / "go"
    holder = spawn("hold", "--db", str(state_db), "--log", str(log), "--name", "zombie",
                   "--ttl", "1.5", "--go", str(go))  # fmt: skip
    wait_for(
        lambda: events(log, "claimed") or holder.poll() is not None,
        timeout=60,
        what="the holder's claim",
    )
    assert holder.poll() is None, f"the holder died early: {worker_stderr(0)}"
    os.kill(holder.pid, signal.SIGSTOP)
    # Wait until the kernel reports it stopped (WUNTRACED does not reap it; Popen still can).
    _, status = os.waitpid(holder.pid, os.WUNTRACED)
    assert os.WIFSTOPPED(status)
    zombie_token = LeaseToken.parse(str(events(log, "claimed")[0]["token"]))
    assert (zombie_token.task_id, zombie_token.epoch) == (task_id, 1)

    db = connect(state_db)
    try:
        store = TaskStore(db, SystemClock())
        zombie_expiry = store.get(task_id).lease_expires_at

        def try_claim() -> object:
            try:
                return store.claim("successor", SUCCESSOR_TTL, task_id)
            except TaskHeld:
                return None

        claim = wait_for(try_claim, timeout=60, what="the holder's lease to expire", interval=0.05)
        assert (claim.token.task_id, claim.token.epoch) == (task_id, 2)
        assert claim.task.attempts == 2
        assert zombie_expiry and claim.task.claimed_at and claim.task.claimed_at >= zombie_expiry
        whole_before, task_before = snapshot(state_db), snapshot(state_db, task_id)
        assert [row[0] for row in task_before].count("path_locks") == len(PATHS)

        os.kill(holder.pid, signal.SIGCONT)
        go.touch()
        assert holder.wait(timeout=60) == 0
        assert events(log, "accepted") == []
        refused = events(log, "refused")
        assert [record["op"] for record in refused] == [
            "heartbeat",
            "start",
            "complete",
            "fail",
            "release",
        ]
        for record in refused:
            assert record["error"] == LeaseLost.__name__, record
            assert str(record["message"]).startswith("lease 1:1 is stale"), record

        for verb in ("heartbeat", "complete", "release"):
            argv = [aictl_exe, "--db", str(state_db), "task", verb, str(task_id)]
            result = subprocess.run(
                [*argv, "--lease", str(zombie_token)],
                capture_output=True,
                text=True,
                timeout=120,
                cwd=tmp_path,
                check=False,
            )
            assert result.returncode == 4, (verb, result.stdout, result.stderr)
            assert result.stderr.startswith("Error: lease 1:1 is stale"), (verb, result.stderr)
            assert "Traceback" not in result.stderr

        assert snapshot(state_db, task_id) == task_before
        assert snapshot(state_db) == whole_before

        store.start(claim.token)
        done = store.complete(claim.token, result="successor")
        assert (done.status, done.attempts, done.lease_epoch, done.result) == (
            Status.DONE,
            2,
            2,
            "successor",
        )
        assert store.held_locks() == []
    finally:
        db.close()
