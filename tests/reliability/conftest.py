"""Fixtures for the reliability tests: a state database file, worker processes that are always
reaped (even when a test fails while one is stopped), the installed ``aictl`` command, and a
byte-level snapshot of task rows."""

from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from aictl.store.db import Database, connect
from tests.conftest import postgres_wanted
from tests.reliability.workers import WORKERS_PY

Snapshot = Callable[..., list[tuple[object, ...]]]


ON_BOTH = {"tests.reliability.test_race", "tests.reliability.test_crash"}
"""Modules whose tests that use ``state_db`` run on SQLite and on PostgreSQL."""


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "backend" in metafunc.fixturenames and metafunc.module.__name__ in ON_BOTH:
        backends = ["sqlite", "postgresql"] if postgres_wanted() else ["sqlite"]
        metafunc.parametrize("backend", backends, indirect=True)


@pytest.fixture
def state_db(tmp_path: Path, backend: str, request: pytest.FixtureRequest) -> Path | str:
    """A migrated, empty state database (created before any worker opens it): a SQLite file,
    or on the PostgreSQL side a new database's URL. ``connect`` opens either."""
    if backend == "postgresql":
        url: str = request.getfixturevalue("pg_database")
        connect(url).close()
        return url
    path = tmp_path / "state.db"
    Database(path).close()
    return path


@pytest.fixture
def spawn(tmp_path: Path) -> Iterator[Callable[..., subprocess.Popen[bytes]]]:
    """Start ``workers.py`` with the given arguments; output goes to files under tmp_path.

    At teardown every process still alive is killed (SIGKILL ends a stopped process too) and
    reaped, so a failing test never leaks a process or a ResourceWarning.
    """
    started: list[subprocess.Popen[bytes]] = []
    outputs = tmp_path / "worker-output"
    outputs.mkdir()

    def start(*args: str, env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
        index = len(started)
        with (
            open(outputs / f"{index}.out", "wb") as stdout,
            open(outputs / f"{index}.err", "wb") as stderr,
        ):
            process = subprocess.Popen(
                [sys.executable, str(WORKERS_PY), *args],
                stdout=stdout,
                stderr=stderr,
                stdin=subprocess.DEVNULL,
                env={**os.environ, **(env or {})},
                cwd=tmp_path,
            )
        started.append(process)
        return process

    yield start
    for process in started:
        if process.poll() is None:
            process.kill()
        process.wait(timeout=60)


@pytest.fixture
def worker_stderr(tmp_path: Path) -> Callable[[int], str]:
    """The stderr text of the n-th process started by ``spawn`` (for failure messages)."""
    return lambda index: (tmp_path / "worker-output" / f"{index}.err").read_text()


@pytest.fixture
def aictl_exe() -> str:
    """The installed console script: on PATH, or beside the running interpreter (the venv)."""
    found = shutil.which("aictl") or shutil.which("aictl", path=str(Path(sys.executable).parent))
    if found is None:
        pytest.fail("the aictl console script is not installed (pip install -e .)")
    return found


@pytest.fixture
def snapshot() -> Snapshot:
    """Every column of a task's rows in tasks, path_locks and task_deps, read raw from SQLite
    (no parsing, so "unchanged" means byte for byte) or from PostgreSQL (a URL); with no task
    id, every row of every table."""

    def take(db_path: Path | str, task_id: int | None = None) -> list[tuple[object, ...]]:
        # PostgreSQL's side: values as the server returns them, through the store's connection
        database = connect(db_path) if isinstance(db_path, str) else None
        connection = database.connection if database else sqlite3.connect(db_path)
        try:
            rows: list[tuple[object, ...]] = []
            for table, key in (
                ("tasks", "id"),
                ("path_locks", "task_id"),
                ("task_deps", "task_id"),
            ):
                if task_id is None:
                    cursor = connection.execute(f"SELECT * FROM {table} ORDER BY 1, 2")
                else:
                    cursor = connection.execute(
                        f"SELECT * FROM {table} WHERE {key} = ? ORDER BY 1, 2", (task_id,)
                    )
                rows += [(table, *row) for row in cursor]
            return rows
        finally:
            (database or connection).close()

    return take
