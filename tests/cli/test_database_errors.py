"""A state database that cannot be used is a clear error with its exit code, never "internal
error ... a bug": not SQLite, damaged, empty, another program's, from a newer aictl, full, on a
read-only mount; and numbers past SQLite's integers on the command line."""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Callable
from pathlib import Path

import pytest

from aictl.store.db import latest_version
from aictl.workspace import Workspace
from tests.cli.conftest import Result

TOO_BIG = str(2**63)


def refused(result: Result, code: int, *words: str) -> str:
    exit_code, _, err = result
    assert exit_code == code, err
    assert "internal error" not in err and "Traceback" not in err
    assert err.startswith("Error: ")
    for word in words:
        assert word in err, err
    return err


def test_a_file_that_is_not_sqlite(aictl: Callable[..., Result], tmp_path: Path) -> None:
    bad = tmp_path / "notes.txt"
    bad.write_text("hello, this is not a database at all\n" * 10)
    err = refused(aictl("--db", str(bad), "task", "list"), 2, str(bad), "not an aictl")
    assert "Hint: " in err
    assert bad.read_text().startswith("hello")  # untouched


def test_a_damaged_database(aictl: Callable[..., Result], workspace: Workspace) -> None:
    assert aictl("task", "create", "one")[0] == 0
    damaged = workspace.root / "damaged.db"
    source = sqlite3.connect(workspace.db_path)
    source.execute(f"VACUUM INTO '{damaged}'")
    source.close()
    with damaged.open("r+b") as stream:
        stream.seek(4096)
        stream.write(b"\xff" * 8192)
    refused(aictl("--db", str(damaged), "task", "list"), 1, str(damaged), "damaged")


def test_an_empty_file_is_not_made_a_database(aictl: Callable[..., Result], tmp_path: Path) -> None:
    empty = tmp_path / "empty.db"
    empty.touch()
    refused(aictl("--db", str(empty), "task", "list"), 2, str(empty), "empty", "aictl init")
    assert empty.stat().st_size == 0


def test_another_programs_database_is_refused_untouched(
    aictl: Callable[..., Result], tmp_path: Path
) -> None:
    foreign = tmp_path / "app.db"
    connection = sqlite3.connect(foreign)
    connection.execute("CREATE TABLE customers (id INTEGER PRIMARY KEY, name TEXT)")
    connection.commit()
    connection.close()
    refused(aictl("--db", str(foreign), "task", "list"), 2, str(foreign), "customers")
    connection = sqlite3.connect(foreign)
    names = {row[0] for row in connection.execute("SELECT name FROM sqlite_master")}
    connection.close()
    assert names == {"customers"}


def test_a_database_from_a_newer_aictl_names_both_versions(
    aictl: Callable[..., Result], workspace: Workspace
) -> None:
    connection = sqlite3.connect(workspace.db_path)
    connection.execute("PRAGMA user_version = 999")
    connection.close()
    refused(aictl("task", "list"), 1, "999", f"{latest_version()}", "newer")


@pytest.mark.parametrize(
    "args",
    [
        ["task", "show", TOO_BIG],
        ["task", "heartbeat", "1", "--lease", f"1:{TOO_BIG}:x"],
        ["task", "create", "x", "--depends-on", TOO_BIG],
        ["workflow", "status", TOO_BIG],
        ["audit", "log", "--task", TOO_BIG],
        ["task", "evidence", "1", "--attempt", TOO_BIG],
    ],
    ids=lambda args: " ".join(args[:2]),
)
def test_numbers_past_sqlites_integers_are_invalid_input(
    aictl: Callable[..., Result], args: list[str]
) -> None:
    assert aictl("task", "create", "one")[0] == 0
    exit_code, _, err = aictl(*args)
    assert exit_code == 2, err
    assert "internal error" not in err
    assert TOO_BIG in err or "9223372036854775807" in err


def test_the_audit_chain_is_intact_after_every_refusal(
    aictl: Callable[..., Result], workspace: Workspace
) -> None:
    assert aictl("task", "create", "one")[0] == 0
    aictl("task", "show", TOO_BIG)
    aictl("task", "heartbeat", "1", "--lease", f"1:{TOO_BIG}:x")
    exit_code, _, err = aictl("audit", "verify")
    assert exit_code == 0, err
    assert os.path.getsize(workspace.db_path) > 0
