"""Three hosts integrating through one shared remote (issue 14, "Several hosts"): three daemon
processes, each serving its own clone of a bare ``origin``, share one PostgreSQL queue; every
task runs in its own git worktree made from the remote's head, commits, and is integrated by a
push to ``origin``'s ``main`` (a compare-and-swap, fetched and merged again when another host
pushed first). One host is killed by SIGKILL with runs in hand, another frozen by SIGSTOP with
runs in hand past their leases' expiry and then thawed.

Checked at the end: every task completed exactly once (the audit log, as in the three-host
queue test); the remote's ``main`` holds every task's file and nothing else; each file was
added by one commit, so no task's work landed twice or not at all; the frozen host's late work
never reached the remote; and every task's run saw the files of all its dependencies, merged on
other hosts before it started.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from aictl.clock import SystemClock
from aictl.store.db import connect
from aictl.store.tasks import NewTask, TaskStore
from aictl.workspace import initialise
from tests.daemon_fakes import register_ai
from tests.reliability.test_three_hosts import (
    TEST_TIMEOUT_S,
    Host,
    all_done,
    catch_with_work_in_hand,
    check_audit,
    finished_by,
    host_network,
    reap,
    redone_elsewhere,
    start_hosts,
    statuses,
    stop,
    wait_or_explain,
)
from tests.store.test_worktrees import git

pytestmark = [pytest.mark.slow, pytest.mark.timeout(TEST_TIMEOUT_S)]

TASKS = 30
GROUPS = ("a", "b", "c", "d")
POLICY = "version: 1\nsettings:\n  lease_ttl: 3s\n  remote: origin\n"


def target(title: str) -> str:
    """The file a task's run writes: its title names it after ``->``."""
    return title.split("->", 1)[1].strip()


def tasks(rng: random.Random) -> list[NewTask]:
    """TASKS tasks; each writes ``src/<group>/t<n>.txt`` under a glob of its group (and
    sometimes holds a second group), and depends on up to two earlier tasks."""
    specs = []
    for index in range(1, TASKS + 1):
        groups = rng.sample(GROUPS, rng.choice((1, 1, 2)))
        deps = rng.sample(range(1, index), min(index - 1, rng.choice((0, 1, 1, 2))))
        specs.append(
            NewTask(
                title=f"t{index} -> src/{groups[0]}/t{index}.txt",
                paths=[f"src/{group}/**" for group in groups],
                depends_on=deps,
            )
        )
    return specs


@pytest.fixture
def hosts(tmp_path: Path, pg_database: str) -> Iterator[Callable[[], list[Host]]]:
    """A bare ``origin`` whose ``main`` has one commit, three clones of it initialised on
    ``pg_database`` with the remote policy, and the tasks; calling the value starts a daemon
    process per clone (``--commits``), each in a network namespace of its own, and waits
    until all three serve."""
    url, prefix = host_network(pg_database)
    origin = tmp_path / "origin.git"
    subprocess.run(["git", "init", "-q", "--bare", "-b", "main", str(origin)], check=True)
    seed = tmp_path / "seed"
    git(tmp_path, "clone", "-q", str(origin), str(seed))
    git(seed, "checkout", "-q", "-B", "main")
    (seed / "README.md").write_text("three hosts, one remote\n")
    (seed / ".gitignore").write_text("out/\n")  # the fake connector's own untracked notes
    git(seed, "add", "-A")
    git(seed, "commit", "-q", "-m", "first")
    git(seed, "push", "-q", "origin", "main")
    workspaces = []
    for n in range(3):
        root = tmp_path / f"host-{n}"
        git(tmp_path, "clone", "-q", str(origin), str(root))
        workspace, _ = initialise(root, database=url)
        (workspace.state_dir / "policy.yaml").write_text(POLICY)
        workspaces.append(workspace)
    register_ai(workspaces[0], "fake-1", max_concurrency=6)
    db = connect(pg_database)
    try:
        TaskStore(db, SystemClock()).create_many(tasks(random.Random(14)))
    finally:
        db.close()
    started: list[Host] = []

    def start() -> list[Host]:
        started.extend(start_hosts(workspaces, tmp_path, prefix, "--commits"))
        return started

    yield start
    reap(started)


def test_hosts_integrate_through_one_remote_with_one_host_killed_and_one_frozen(
    hosts: Callable[[], list[Host]], pg_database: str, tmp_path: Path
) -> None:
    """One host is killed (SIGKILL) with runs in hand; another is frozen (SIGSTOP) with runs
    in hand until those tasks have been done again elsewhere, then thawed: its runs end, and
    their work, committed in worktrees whose leases are gone, never reaches the remote."""
    began = time.monotonic()
    killed, frozen, survivor = all_hosts = hosts()
    wait_or_explain(lambda: statuses(pg_database)["done"] >= TASKS // 5,
                    "a fifth of the tasks done", pg_database, all_hosts, interval=0.1)  # fmt: skip
    in_hand = catch_with_work_in_hand(killed, pg_database, TASKS)  # stopped with runs in hand
    killed.process.kill()
    assert killed.process.wait(timeout=60) == -signal.SIGKILL
    frozen_held = catch_with_work_in_hand(frozen, pg_database, TASKS)

    wait_or_explain(lambda: redone_elsewhere(pg_database, frozen_held),
                    "the frozen host's tasks redone", pg_database, all_hosts)  # fmt: skip
    os.kill(frozen.process.pid, signal.SIGCONT)
    wait_or_explain(lambda: all_done(pg_database, TASKS), "every task done", pg_database,
                    all_hosts)  # fmt: skip
    wait_or_explain(
        lambda: (
            frozen_held
            <= {r.get("task") for r in frozen.journal() if r.get("event") == "task.lease_lost"}
        ),
        "the thawed host told its leases were lost",
        pg_database,
        all_hosts,
    )
    for host in (frozen, survivor):
        stop(host)
    elapsed = time.monotonic() - began

    figures = check_audit(pg_database, survivor.workspace)
    assert in_hand | frozen_held <= figures["expired"], "a task ran again before its expiry"
    specs = {task.id: task for task in figures["tasks"].values()}
    origin = tmp_path / "origin.git"
    expected = {target(task.title) for task in specs.values()}
    assert len(expected) == TASKS
    on_main = set(git(origin, "ls-tree", "-r", "--name-only", "main").split())
    assert on_main == expected | {"README.md", ".gitignore"}

    added = Counter(
        line
        for line in git(
            origin, "log", "--format=", "--name-only", "--diff-filter=A", "main"
        ).split()
        if line.startswith("src/")
    )
    assert added == Counter(dict.fromkeys(expected, 1)), "a task's file added twice, or never"

    unseen = {
        task.id: [dep for dep in task.depends_on if target(specs[dep].title) not in seen]
        for task in specs.values()
        for seen in [git(origin, "show", f"main:{target(task.title)}").split()]
    }
    assert {k: v for k, v in unseen.items() if v} == {}, "a dependency's work was not visible"
    shares = [finished_by(host) for host in (frozen, survivor)]
    assert shares[1] > 0, shares
    # One task commit per task; two for a task whose lease expired after its push had landed
    # (a host killed or frozen between its push and its complete: the push, git's own
    # process, went on; the task then ran once more). The runs caught in hand had not ended,
    # so had pushed nothing: each of their tasks has one commit, the rerun's.
    trailers = git(origin, "log", "--format=%(trailers:key=Aictl-Task,valueonly)", "main")
    commits = Counter(int(n) for n in trailers.split())
    assert set(commits) == set(specs), "a task's work never reached the remote"
    twice = {n for n, count in commits.items() if count > 1}
    assert twice <= figures["expired"] - in_hand - frozen_held, commits
    assert max(commits.values()) <= 2, commits
    print(
        f"\n{TASKS} tasks, 3 hosts, one remote, one killed ({sorted(in_hand)} in hand), one"
        f" frozen ({sorted(frozen_held)} in hand): {elapsed:.1f} s; {shares}"
    )
