"""Three hosts, one queue: three daemons, each a separate OS process serving its own git clone,
share one PostgreSQL database and drain 500 tasks with dependencies and overlapping globs
(issue 14, "Proved"); then again with one daemon killed by SIGKILL mid-run and another frozen
by SIGSTOP past its lease TTL.

Everything is checked from the audit log, the record the store appends in the same transaction
as each change: every task completed exactly once, no task claimed before its dependencies
completed, no two intersecting globs ever held at once, and the chain verifies. Lock intervals
are reconstructed from the chain's order (``seq``), not from clocks: a claim opens its task's
interval, its completion, failure, release, requeue or lease expiry closes it.

The daemons run ``tests/reliability/daemon_host.py``: the real ``Daemon.run`` with the fake
connector of tests/daemon_fakes.py (a run takes ~50 ms), each in a network namespace of its
own (``unshare --net``), reaching the database through the server's Unix socket. Isolation
is ``shared``: every agent works in its clone's one working tree, since a worktree per task
would spend the time of 500 git worktree creations and integrations on a test of the queue,
the leases and the locks (test_hosts_remote.py runs worktrees through a remote).
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from aictl.clock import SystemClock
from aictl.daemon.runtime import DaemonPaths
from aictl.daemon.status import log_lines
from aictl.store.audit import Entry
from aictl.store.db import connect
from aictl.store.tasks import TaskStore
from aictl.workspace import Workspace, initialise
from tests import pgserver
from tests.daemon_fakes import register_ai
from tests.reliability.lock_order import clashes_in_chain
from tests.reliability.test_race import SEED, TASKS, dag_of_tasks
from tests.reliability.workers import read_log, wait_for

REPO = Path(__file__).resolve().parents[2]
HOSTS = 3
LEASE_TTL_S = 3
TEST_TIMEOUT_S = 900
"""pytest-timeout's deadline for each test of this module (a run takes 35-70 s here)."""
WAIT_S = 600.0
"""Deadline for a hung wait (500 tasks on a loaded 2-core machine), not a speed expectation:
below ``TEST_TIMEOUT_S``, so that a hang fails in ``wait_or_explain`` with what each host and
the server were doing, not in pytest-timeout with a stack of the test's own poll."""
pytestmark = [pytest.mark.slow, pytest.mark.timeout(TEST_TIMEOUT_S)]
POLICY = f"version: 1\nsettings:\n  lease_ttl: {LEASE_TTL_S}s\n  isolation: shared\n"
HOST_COMMAND = (sys.executable, "-m", "tests.reliability.daemon_host")


@dataclass
class Host:
    workspace: Workspace
    log: Path
    process: subprocess.Popen[bytes]

    def journal(self) -> list[dict[str, Any]]:
        return log_lines(DaemonPaths.of(self.workspace).log)

    def in_hand(self) -> set[int]:
        """Tasks whose agent run started in this process and has not ended."""
        records = read_log(self.log)
        started = {r["task"] for r in records if r["event"] == "started"}
        return started - {r["task"] for r in records if r["event"] == "ended"}


def git(root: Path, *args: str) -> None:
    subprocess.run(
        ["git", "-c", "user.name=t", "-c", "user.email=t@example.com", *args],
        cwd=root,
        check=True,
        capture_output=True,
    )


def clones(tmp_path: Path, url: str) -> list[Workspace]:
    """A repository with one commit and three clones of it, each initialised on ``url``."""
    origin = tmp_path / "origin"
    origin.mkdir()
    git(origin, "init", "-q")
    (origin / "README.md").write_text("three hosts\n")
    # The fake agent writes out/<task>.txt: untracked, so no run changes a file outside its globs
    (origin / ".gitignore").write_text("out/\n")
    git(origin, "add", "-A")
    git(origin, "commit", "-q", "-m", "first")
    found = []
    for n in range(HOSTS):
        root = tmp_path / f"host-{n}"
        git(tmp_path, "clone", "-q", str(origin), str(root))
        workspace, _ = initialise(root, database=url)
        (root / ".ai" / "policy.yaml").write_text(POLICY)
        found.append(workspace)
    return found


def host_network(url: str) -> tuple[str, tuple[str, ...]]:
    """The database URL the hosts use and the command that starts each in a network namespace
    of its own: the server's Unix socket (a namespace has its own loopback, so the server's
    127.0.0.1 is out of its reach) and ``unshare --net``. A server elsewhere (``AICTL_TEST_PG``)
    has no socket here: the hosts then share this machine's network, never under CI."""
    through_socket = pgserver.socket_url(url)
    if through_socket is None:
        assert not os.environ.get("CI"), "under CI the hosts run in network namespaces"
        return url, ()
    return through_socket, ("unshare", "--net", "--")


def start_hosts(
    workspaces: list[Workspace], folder: Path, prefix: tuple[str, ...], *flags: str
) -> list[Host]:
    """One daemon process per workspace (``daemon_host.py``, started under ``prefix``);
    waits until every one serves, and checks that each has a network namespace of its own
    when ``prefix`` gives it one. Logs: ``folder/host-N.jsonl`` (runs), ``host-N.out``."""
    if prefix:
        flags = (*flags, "--own-network")
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    env.pop("AICTL_DB", None)
    started = []
    for n, workspace in enumerate(workspaces):
        log = folder / f"host-{n}.jsonl"
        with open(folder / f"host-{n}.out", "wb") as out:
            process = subprocess.Popen(
                [*prefix, *HOST_COMMAND, str(workspace.root), str(log), *flags],
                cwd=workspace.root,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        started.append(Host(workspace, log, process))

    def ready(host: Host) -> dict[str, Any] | None:
        return next((r for r in read_log(host.log) if r["event"] == "ready"), None)

    wait_for(
        lambda: all(ready(h) or h.process.poll() is not None for h in started),
        timeout=WAIT_S,
        what="every daemon serving",
    )
    dead = [(folder / f"host-{n}.out").read_text() for n, h in enumerate(started)
            if h.process.poll() is not None]  # fmt: skip
    assert dead == [], "a daemon died at start"
    if prefix:
        networks = {ready(h)["network"] for h in started}  # type: ignore[index]
        assert len(networks) == len(started), "two hosts share a network namespace"
        assert os.readlink("/proc/self/ns/net") not in networks
    return started


def reap(started: list[Host]) -> None:
    """Kill (a stopped one too) and reap every host still running."""
    for host in started:
        if host.process.poll() is None:
            host.process.kill()
        host.process.wait(timeout=60)


@pytest.fixture
def hosts(tmp_path: Path, pg_database: str) -> Iterator[Callable[[], list[Host]]]:
    """Three clones on ``pg_database`` with its 500 tasks; calling the fixture's value starts
    one daemon process per clone, each in a network namespace of its own, and waits until all
    three serve. Every process is killed and reaped at the end."""
    url, prefix = host_network(pg_database)
    workspaces = clones(tmp_path, url)
    register_ai(workspaces[0], "fake-1", max_concurrency=2 * HOSTS)
    db = connect(pg_database)
    try:
        TaskStore(db, SystemClock()).create_many(dag_of_tasks(random.Random(SEED)))
    finally:
        db.close()
    started: list[Host] = []

    def start() -> list[Host]:
        started.extend(start_hosts(workspaces, tmp_path, prefix))
        return started

    yield start
    reap(started)


def statuses(url: str) -> Counter[str]:
    db = connect(url)
    try:
        return Counter(str(task.status) for task in TaskStore(db, SystemClock()).list_tasks())
    finally:
        db.close()


def all_done(url: str, tasks: int = TASKS) -> bool:
    """Whether all ``tasks`` are done; fails at once, naming each and why, when one failed or
    was blocked (no wait)."""
    db = connect(url)
    try:
        found = TaskStore(db, SystemClock()).list_tasks()
    finally:
        db.close()
    stuck = [(t.id, str(t.status), t.failure_reason, t.result, t.blocked_reason)
             for t in found if str(t.status) in {"failed", "blocked"}]  # fmt: skip
    assert stuck == [], stuck
    return Counter(str(t.status) for t in found) == Counter({"done": tasks})


def explain(url: str, hosts: list[Host]) -> str:
    """What every host and the server's sessions were doing: for the message of a hung wait."""
    lines = []
    db = connect(url)
    try:
        store = TaskStore(db, SystemClock())
        tasks = store.list_tasks()
        lines.append(f"statuses: {dict(Counter(str(t.status) for t in tasks))}")
        lines += [f"  task {t.id}: {t.status} epoch {t.lease_epoch} holder {t.lease_holder}"
                  f" expires {t.lease_expires_at}"
                  for t in tasks if str(t.status) in {"claimed", "running"}]  # fmt: skip
    finally:
        db.close()
    import psycopg

    with psycopg.connect(url, autocommit=True) as server:
        sessions = server.execute(
            "SELECT pid, state, wait_event_type, wait_event, now() - xact_start,"
            " left(query, 100) FROM pg_stat_activity"
            " WHERE datname = current_database() AND pid <> pg_backend_pid()"
        ).fetchall()
        waiting = server.execute(
            "SELECT pid, locktype, objid, mode FROM pg_locks WHERE NOT granted"
        ).fetchall()
    lines += ["sessions (pid, state, wait, in transaction for, query):"]
    lines += [f"  {row}" for row in sessions]
    lines += [f"locks waited for: {waiting}"]
    for n, host in enumerate(hosts):
        state = host.process.poll()
        lines.append(f"host {n} (pid {host.process.pid}, exit {state}), in hand {host.in_hand()}:")
        lines += [f"  {r.get('event')}: {r.get('message')}" for r in host.journal()[-8:]]
    return "\n".join(lines)


def wait_or_explain(
    condition: Callable[[], Any], what: str, url: str, hosts: list[Host], interval: float = 0.5
) -> None:
    """``wait_for`` that fails with ``explain``'s account of the hosts and the server."""
    try:
        wait_for(condition, timeout=WAIT_S, what=what, interval=interval)
    except TimeoutError as error:
        raise AssertionError(f"{error}\n{explain(url, hosts)}") from None


def stop(host: Host) -> None:
    host.process.send_signal(signal.SIGTERM)
    assert host.process.wait(timeout=WAIT_S) == 0, host.journal()[-5:]


def all_threads_stopped(pid: int) -> bool:
    """Whether every thread of process ``pid`` is stopped (state ``T``), or gone: a process
    that died meanwhile (a zombie, ``Z``) runs nothing either, and the caller's checks of its
    runs and leases say what that means."""
    for stat in Path(f"/proc/{pid}/task").glob("*/stat"):
        try:
            state = stat.read_text().rsplit(")", 1)[1].split()[0]
        except (FileNotFoundError, ProcessLookupError):
            continue  # the thread ended
        if state not in {"T", "t", "Z", "X"}:
            return False
    return True


def catch_with_work_in_hand(host: Host, url: str, tasks: int = TASKS) -> set[int]:
    """SIGSTOP ``host`` at a moment it has agent runs in hand whose leases are live; returns
    those tasks. The stop is sent only once the host's log shows a run in hand, and is
    retried (SIGCONT, wait for the next run) when that run ended before the stop landed:
    stopping blindly and retrying kept the host frozen most of the time, so the other hosts
    drained the queue first (seen in CI).

    The log and the database are read only once every thread has stopped: ``kill`` returns
    before that, one thread takes the stop and then stops the others, and meanwhile (long, on
    a loaded machine) a worker thread runs on, so a run read as "in hand" could still end
    and complete at its first epoch (a hang in CI, waiting for that task's expiry)."""

    def run_in_hand() -> bool:
        if host.in_hand():
            return True
        assert not all_done(url, tasks), "the queue drained before the host was caught mid-run"
        return False

    while True:
        wait_for(run_in_hand, timeout=WAIT_S, what=f"a run in hand in {host.process.pid}",
                 interval=0.02)  # fmt: skip
        os.kill(host.process.pid, signal.SIGSTOP)
        wait_for(lambda: all_threads_stopped(host.process.pid), timeout=60,
                 what=f"every thread of {host.process.pid} stopped")  # fmt: skip
        held = host.in_hand()
        if held:
            db = connect(url)
            try:
                store = TaskStore(db, SystemClock())
                live = {t for t in held if str(store.get(t).status) in {"claimed", "running"}}
            finally:
                db.close()
            if live == held:
                return held
        os.kill(host.process.pid, signal.SIGCONT)


def redone_elsewhere(url: str, held: set[int]) -> bool:
    """Whether every task of ``held`` (a frozen host's, caught mid-run) is done; fails at once
    on one completed at its first epoch, which the frozen host cannot have been running."""
    db = connect(url)
    try:
        store = TaskStore(db, SystemClock())
        found = [store.get(t) for t in held]
    finally:
        db.close()
    first = [t.id for t in found if str(t.status) == "done" and t.lease_epoch == 1]
    assert first == [], f"completed at epoch 1, so not caught mid-run: {first}"
    return all(str(t.status) == "done" for t in found)


def check_audit(url: str, workspace: Workspace) -> dict[str, Any]:
    """The checks of both tests, from the audit log; returns figures for the assertions that
    differ between them."""
    db = connect(url)
    try:
        store = TaskStore(db, SystemClock())
        entries = store.audit.entries()
        verification = store.audit.verify()
        tasks = {task.id: task for task in store.list_tasks()}
    finally:
        db.close()
    assert verification.ok, verification
    completed = Counter(e.task_id for e in entries if e.kind == "task.completed")
    assert completed == Counter(dict.fromkeys(tasks, 1)), "not every task completed exactly once"
    assert [e for e in entries if e.kind == "task.failed"] == []

    done_at = {e.task_id: e.seq for e in entries if e.kind == "task.completed"}
    claims = [e for e in entries if e.kind == "task.claimed"]
    early = [(e.task_id, dep) for e in claims for dep in tasks[e.task_id].depends_on  # type: ignore[index]
             if e.seq < done_at[dep]]  # fmt: skip
    assert early == [], "claimed before a dependency completed (task, dependency)"

    concurrent, clashes = clashes_in_chain(entries)
    assert clashes == [], "tasks with intersecting globs held at the same time"
    assert concurrent > 0, "no two leases ever overlapped: there was no parallel work"
    return {
        "entries": entries,
        "expired": {e.task_id for e in entries if e.kind == "task.lease_expired"},
        "tasks": tasks,
    }


def finished_by(host: Host) -> int:
    return sum(1 for r in host.journal() if r.get("event") == "task.finished")


def test_three_daemon_processes_share_one_queue_each_task_once(
    hosts: Callable[[], list[Host]], pg_database: str
) -> None:
    """500 tasks, three daemon processes in three clones, nothing goes wrong: every task
    completed once, on its first lease, by a queue all three hosts took work from."""
    began = time.monotonic()
    running = hosts()
    wait_or_explain(lambda: all_done(pg_database), "every task done", pg_database, running)
    for host in running:
        stop(host)
    elapsed = time.monotonic() - began
    figures = check_audit(pg_database, running[0].workspace)
    assert figures["expired"] == set()
    assert {(t.attempts, t.lease_epoch) for t in figures["tasks"].values()} == {(1, 1)}
    shares = [finished_by(host) for host in running]
    assert sum(shares) == TASKS and min(shares) > 0, shares
    print(f"\n{TASKS} tasks, {HOSTS} daemon processes: {elapsed:.1f} s; per host {shares}")


def test_sigkill_one_host_and_freeze_another_past_its_ttl_each_task_still_once(
    hosts: Callable[[], list[Host]], pg_database: str
) -> None:
    """Mid-run one daemon is killed (SIGKILL) while it has runs in hand, and another is frozen
    (SIGSTOP) with runs in hand until their leases have expired and the tasks have been done
    elsewhere; then it is thawed (SIGCONT). Every task is still completed exactly once, the
    dead and the frozen hosts' tasks after an expiry at a later epoch, and every late write of
    the frozen host is refused (its journal says the lease was lost; the audit log holds no
    completion at the old epoch)."""
    began = time.monotonic()
    killed, frozen, survivor = all_hosts = hosts()
    wait_or_explain(lambda: statuses(pg_database)["done"] >= TASKS // 5,
                    "a fifth of the tasks done", pg_database, all_hosts, interval=0.2)  # fmt: skip
    dead_held = catch_with_work_in_hand(killed, pg_database)
    killed.process.kill()
    assert killed.process.wait(timeout=60) == -signal.SIGKILL

    frozen_held = catch_with_work_in_hand(frozen, pg_database)
    wait_or_explain(lambda: redone_elsewhere(pg_database, frozen_held),
                    "the frozen host's tasks redone", pg_database, all_hosts, 0.2)  # fmt: skip
    os.kill(frozen.process.pid, signal.SIGCONT)
    wait_or_explain(lambda: all_done(pg_database), "every task done", pg_database, all_hosts)
    # The thawed host's agent runs end and try to write with their old tokens.
    wait_for(lambda: not (frozen.in_hand() & frozen_held), timeout=WAIT_S,
             what="the thawed host's runs ended")  # fmt: skip
    wait_for(
        lambda: (
            frozen_held
            <= {r.get("task") for r in frozen.journal() if r.get("event") == "task.lease_lost"}
        ),
        timeout=WAIT_S,
        what="the thawed host told its leases were lost",
    )
    for host in (frozen, survivor):
        stop(host)
    elapsed = time.monotonic() - began

    figures = check_audit(pg_database, survivor.workspace)
    assert dead_held | frozen_held <= figures["expired"]
    entries: list[Entry] = figures["entries"]
    completions = {e.task_id: e.data["epoch"] for e in entries if e.kind == "task.completed"}
    assert all(completions[t] > 1 for t in dead_held | frozen_held), completions
    print(
        f"\n{TASKS} tasks, {HOSTS} daemon processes, one killed ({sorted(dead_held)} in hand),"
        f" one frozen ({sorted(frozen_held)} in hand): {elapsed:.1f} s;"
        f" leases expired {len(figures['expired'])}"
    )
