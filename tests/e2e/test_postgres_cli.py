"""The installed `aictl` command on PostgreSQL (issue 14), as a user runs it: `aictl init --db
postgresql://...` in a fresh repository, then the task lifecycle, `task execute` with the real
Claude Code CLI against ``aictl.model_server``, and a server that cannot be reached.

The database is a new one on the suite's throw-away server (``pg_database``); under CI a
missing server or ``claude`` binary fails these tests.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from aictl.model_server import serve
from tests.e2e.test_execute import WRITE_HELLO
from tests.e2e.test_execute import git_repo as fresh_repo

pytestmark = pytest.mark.e2e


def ok(done: subprocess.CompletedProcess[str]) -> str:
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_a_repository_on_postgresql_from_init_to_a_verified_audit_log(
    tmp_path: Path, pg_database: str
) -> None:
    repo = fresh_repo(tmp_path)
    ok(repo.aictl("init", "--db", pg_database))
    assert f"database: {pg_database}" in (repo.root / ".ai" / "config").read_text()
    doctor = ok(repo.aictl("doctor"))
    assert "postgresql://" in doctor and "schema" in doctor
    ok(repo.aictl("task", "create", "first", "--path", "src/a/**", "-q"))
    ok(repo.aictl("task", "create", "second", "--path", "src/**", "--depends-on", "1", "-q"))

    first = json.loads(ok(repo.aictl("task", "claim", "--as", "bot", "--json")))
    assert first["task"]["id"] == 1
    waiting = repo.aictl("task", "claim", "--as", "other")
    assert waiting.returncode == 5 and "wait on dependencies" in waiting.stderr
    token = first["lease_token"]
    ok(repo.aictl("task", "start", "1", "--lease", token))
    ok(repo.aictl("task", "complete", "1", "--lease", token))
    stale = repo.aictl("task", "complete", "1", "--lease", token)
    assert stale.returncode == 4 and "no longer valid" in stale.stderr  # fenced

    second = json.loads(ok(repo.aictl("task", "claim", "--as", "other", "--json")))
    assert second["task"]["id"] == 2
    ok(repo.aictl("task", "start", "2", "--lease", second["lease_token"]))
    ok(repo.aictl("task", "complete", "2", "--lease", second["lease_token"]))
    listed = json.loads(ok(repo.aictl("task", "list", "--json")))
    assert [(task["id"], task["status"]) for task in listed] == [(1, "done"), (2, "done")]
    verified = ok(repo.aictl("audit", "verify"))
    assert "audit log intact" in verified and "2 task(s)" in verified
    assert not (repo.root / ".ai" / "state.db").exists()  # the state is in PostgreSQL

    backup = repo.aictl("backup", str(tmp_path / "copy.db"))
    assert backup.returncode == 2 and "pg_dump" in backup.stderr


def test_task_execute_runs_the_real_claude_on_postgresql(tmp_path: Path, pg_database: str) -> None:
    with serve(WRITE_HELLO) as server:
        repo = fresh_repo(tmp_path, server.url)
        ok(repo.aictl("init", "--db", pg_database))
        repo.git("add", "-A")
        repo.git("commit", "-q", "-m", "first")
        ok(repo.aictl("ai", "register", "claude-1", "--connector", "claude-code"))
        ok(repo.aictl("task", "create", "Write hello", "--path", "src/**", "-q"))
        summary = json.loads(ok(repo.aictl("task", "execute", "--json")))
    assert (summary["task_id"], summary["outcome"]) == (1, "done")
    assert repo.task(1)["evidence"]["files_changed"] == ["src/hello.txt"]
    assert (repo.root / "src" / "hello.txt").read_text() == WRITE_HELLO[0]["tool_use"]["input"][
        "content"
    ]  # merged from the task's worktree
    decisions = json.loads(
        ok(repo.aictl("policy", "decisions", "--task", "1", "--action", "execute", "--json"))
    )
    assert len(decisions) == 1
    assert "audit log intact" in ok(repo.aictl("audit", "verify"))


def test_a_server_that_cannot_be_reached_is_named_and_nothing_is_made(tmp_path: Path) -> None:
    repo = fresh_repo(tmp_path)
    nowhere = "postgresql://postgres@127.0.0.1:1/aictl"
    made = repo.aictl("init", "--db", nowhere)
    assert made.returncode == 1 and "Traceback" not in made.stderr
    assert "cannot connect to the PostgreSQL database" in made.stderr
    assert "Connection refused" in made.stderr and "--db / AICTL_DB" in made.stderr
    assert not (repo.root / ".ai").exists()


def test_init_db_moves_a_repository_on_sqlite_and_its_live_lease_holds(
    tmp_path: Path, pg_database: str
) -> None:
    repo = fresh_repo(tmp_path)
    ok(repo.aictl("init"))
    ok(repo.aictl("task", "create", "first", "--path", "src/**", "-q"))
    ok(repo.aictl("task", "create", "second", "--depends-on", "1", "-q"))
    token = json.loads(ok(repo.aictl("task", "claim", "--as", "bot", "--json")))["lease_token"]

    moved = ok(repo.aictl("init", "--db", pg_database))
    assert "Moved the SQLite state into postgresql://" in moved and "2 task(s)" in moved
    assert not (repo.root / ".ai" / "state.db").exists()
    kept = list((repo.root / ".ai" / "backups").glob("state-*-before-postgresql.db"))
    assert len(kept) == 1
    ok(repo.aictl("task", "start", "1", "--lease", token))  # the lease taken on SQLite
    ok(repo.aictl("task", "complete", "1", "--lease", token))
    assert ok(repo.aictl("task", "create", "third", "-q")) == "3\n"
    assert "3 task(s)" in ok(repo.aictl("audit", "verify"))

    (tmp_path / "other").mkdir()
    other = fresh_repo(tmp_path / "other")  # a second repository on SQLite, same database
    ok(other.aictl("init"))
    ok(other.aictl("task", "create", "elsewhere", "-q"))
    refused = other.aictl("init", "--db", pg_database)
    assert refused.returncode == 2 and "already holds aictl state" in refused.stderr
    assert (other.root / ".ai" / "state.db").is_file()
    assert not (other.root / ".ai" / "config").exists()  # still on SQLite
    assert [task["title"] for task in json.loads(ok(other.aictl("task", "list", "--json")))] == [
        "elsewhere"
    ]
