"""docs/scale.md's three-host set-up, followed step by step with the installed `aictl` and the
real Claude Code CLI (against ``aictl.model_server``): a shared repository whose committed
policy says ``remote: origin``, three clones each initialised with ``aictl init --db URL`` on
one PostgreSQL database and each running ``aictl daemon start``, one ``ai register``, work
created from one clone. Every task runs once, in a worktree of whichever clone claimed it, and
lands on ``origin``'s ``main``; more than one host did work; the one audit chain verifies.

The hosts share this machine's network here (test_hosts_remote.py puts daemons in namespaces
of their own); under CI a missing server or ``claude`` binary fails this test.
"""

from __future__ import annotations

import json
import subprocess
import time
from collections import Counter
from pathlib import Path

import pytest

from aictl.model_server import serve
from tests.e2e.test_execute import Repo

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(600)]

HOSTS = 3
POLICY = """\
version: 1
settings:
  remote: origin
  isolation: worktree
  integrate: merge
  lease_ttl: 2m
"""
# Each task writes its own file, named by its id (the model server fills in {task}).
SCRIPT = [
    {
        "tool_use": {
            "name": "Write",
            "input": {"file_path": "src/t{task}.txt", "content": "t{task}\n"},
        }
    },
    {"text": "Done."},
]
TASKS = 6
DEADLINE_S = 240.0
"""For a hung run on a loaded machine, not a speed expectation."""


def ok(done: subprocess.CompletedProcess[str]) -> str:
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def shared_repository(tmp_path: Path) -> Path:
    """``origin.git``: a bare repository whose ``main`` holds a README and the policy."""
    origin = tmp_path / "origin.git"
    subprocess.run(["git", "init", "-q", "--bare", "-b", "main", str(origin)], check=True)
    seed = Repo(tmp_path / "seed")
    subprocess.run(["git", "clone", "-q", str(origin), str(seed.root)], check=True)
    seed.git("checkout", "-q", "-B", "main")
    (seed.root / "README.md").write_text("one repository, three hosts\n")
    (seed.root / ".ai").mkdir()
    (seed.root / ".ai" / "policy.yaml").write_text(POLICY)
    seed.git("add", "-A")
    seed.git("commit", "-q", "-m", "first")
    seed.git("push", "-q", "origin", "main")
    return origin


def test_three_hosts_as_docs_scale_md_sets_them_up(tmp_path: Path, pg_database: str) -> None:
    origin = shared_repository(tmp_path)
    with serve(SCRIPT) as model:
        hosts = []
        for n in range(HOSTS):
            host = Repo(tmp_path / f"h{n + 1}", model.url)
            subprocess.run(["git", "clone", "-q", str(origin), str(host.root)], check=True)
            ok(host.aictl("init", "--db", pg_database))
            hosts.append(host)
        ok(hosts[0].aictl("ai", "register", "claude-1", "--connector", "claude-code"))
        again = hosts[1].aictl("ai", "register", "claude-1", "--connector", "claude-code")
        assert again.returncode != 0, "a second register of the same name is refused"
        try:
            for host in hosts:
                ok(host.aictl("daemon", "start", "--concurrency", "2", "--grace", "5s", "-q"))
            for n in range(1, TASKS + 1):
                depends = ("--depends-on", str(n - 1)) if n % 3 == 0 else ()
                ok(hosts[n % HOSTS].aictl(
                    "task", "create", f"Write t{n}", "--path", f"src/t{n}.txt", *depends, "-q"
                ))  # fmt: skip
            deadline = time.monotonic() + DEADLINE_S
            while True:
                listed = json.loads(ok(hosts[0].aictl("task", "list", "--json")))
                statuses = Counter(task["status"] for task in listed)
                if statuses == Counter({"done": TASKS}):
                    break
                assert not statuses.keys() & {"failed", "blocked"}, listed
                assert time.monotonic() < deadline, f"not every task done: {statuses}"
                time.sleep(0.5)
        finally:
            stopped = [host.aictl("daemon", "stop") for host in hosts]
    assert all(done.returncode == 0 for done in stopped), [d.stderr for d in stopped]

    on_main = subprocess.run(
        ["git", "-C", str(origin), "ls-tree", "-r", "--name-only", "main"],
        capture_output=True, text=True, check=True,
    ).stdout.split()  # fmt: skip
    assert {f"src/t{n}.txt" for n in range(1, TASKS + 1)} <= set(on_main)
    trailers = subprocess.run(
        ["git", "-C", str(origin), "log", "--format=%(trailers:key=Aictl-Task,valueonly)", "main"],
        capture_output=True, text=True, check=True,
    ).stdout.split()  # fmt: skip
    assert Counter(int(n) for n in trailers) == Counter(dict.fromkeys(range(1, TASKS + 1), 1))
    ran_here = [
        sum(1 for line in (host.root / ".ai" / "logs" / "daemon.jsonl").read_text().splitlines()
            if json.loads(line).get("event") == "task.finished")
        for host in hosts
    ]  # fmt: skip
    assert sum(ran_here) == TASKS and sum(1 for count in ran_here if count) >= 2, ran_here
    verified = ok(hosts[2].aictl("audit", "verify"))
    assert "audit log intact" in verified
