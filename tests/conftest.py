"""Fixtures shared by the layers: a repository with aictl initialised, a manual clock, a service."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from aictl.clock import ManualClock
from aictl.services.tasks import TaskService
from aictl.workspace import Workspace, initialise
from tests import pgserver
from tests.gitrepo import git_init

PG_ENV = pgserver.ENV


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    return git_init(tmp_path / "repo")


@pytest.fixture
def backend(request: pytest.FixtureRequest) -> str:
    """The store backend under test: "sqlite" unless a conftest parametrises it (see
    tests/store/conftest.py: the store's tests run on both)."""
    return str(getattr(request, "param", "sqlite"))


@pytest.fixture
def workspace(repo: Path, backend: str, request: pytest.FixtureRequest) -> Workspace:
    if backend == "postgresql":
        workspace, _ = initialise(repo, database=request.getfixturevalue("pg_database"))
    else:
        workspace, _ = initialise(repo)
    return workspace


@pytest.fixture(scope="session")
def pg_server() -> Iterator[str]:
    """The URL of a PostgreSQL server for the session: ``AICTL_TEST_PG`` when set (CI, or a
    server of yours), else a throw-away one started here (tests/pgserver.py) and stopped at
    the end. Fails (never skips) when there is none: a PostgreSQL test that cannot run is a
    failure, in CI above all."""
    try:
        with pgserver.serving() as url:
            yield url
    except pgserver.NoPostgres as error:
        pytest.fail(f"{error}; `make test` installs it, or set {PG_ENV} to a server's URL")


@pytest.fixture
def pg_database(pg_server: str) -> Iterator[str]:
    """A new, empty database on the session's server (dropped after the test)."""
    with pgserver.new_database(pg_server) as url:
        yield url


def postgres_wanted() -> bool:
    """Whether the suite runs the PostgreSQL side of the store's tests: always under CI (where
    a missing server must fail), else when a server is named or installed."""
    if os.environ.get("CI") or os.environ.get(PG_ENV):
        return True
    try:
        pgserver.binaries()
    except pgserver.NoPostgres:
        return False
    return True


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
def service(workspace: Workspace, clock: ManualClock) -> Iterator[TaskService]:
    service = TaskService(workspace, clock=clock)
    yield service
    service.close()


@pytest.fixture(autouse=True)
def no_global_policy(
    monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """Tests must not read the developer's ~/.config/aictl/policy.yaml, nor write ~/.cache,
    nor create or use the developer's audit key."""
    monkeypatch.setenv("AICTL_GLOBAL_POLICY", "")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path_factory.mktemp("user-cache")))
    monkeypatch.setenv("AICTL_AUDIT_KEY_FILE", str(tmp_path_factory.mktemp("audit-key") / "key"))
