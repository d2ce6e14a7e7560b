"""Fixtures shared by the layers: a repository with aictl initialised, a manual clock, a service."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from aictl.clock import ManualClock
from aictl.services.tasks import TaskService
from aictl.workspace import Workspace, initialise
from tests.gitrepo import git_init


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    return git_init(tmp_path / "repo")


@pytest.fixture
def workspace(repo: Path) -> Workspace:
    workspace, _ = initialise(repo)
    return workspace


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
