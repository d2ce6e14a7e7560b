"""One daemon per state database, whatever path names it: the lock follows the file's
identity (device and inode), so a hard link to ``state.db`` elsewhere cannot start a second
daemon on the same data. Before, the lock was a file beside the path, and a second daemon
started through the link."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from aictl.daemon.runtime import DaemonPaths, DaemonRunning, InstanceLock
from aictl.workspace import Workspace, locate


def test_a_hard_link_to_the_database_cannot_start_a_second_daemon(
    workspace: Workspace, tmp_path: Path
) -> None:
    other = tmp_path / "elsewhere" / ".ai"
    other.mkdir(parents=True)
    os.link(workspace.db_path, other / "state.db")
    linked = locate(other / "state.db")
    assert DaemonPaths.of(linked).lock != DaemonPaths.of(workspace).lock
    first = InstanceLock(DaemonPaths.of(workspace))
    first.acquire()
    try:
        with pytest.raises(DaemonRunning) as refused:
            InstanceLock(DaemonPaths.of(linked)).acquire()
        assert refused.value.exit_code == 4
        assert "same database" in refused.value.message
        assert str(os.getpid()) in refused.value.message
    finally:
        first.release()
    second = InstanceLock(DaemonPaths.of(linked))
    second.acquire()  # free again once the first is released
    second.release()


def test_two_different_databases_get_two_daemons(workspace: Workspace, tmp_path: Path) -> None:
    other = tmp_path / "other" / ".ai"
    other.mkdir(parents=True)
    (other / "state.db").write_bytes(workspace.db_path.read_bytes())  # a copy: another inode
    first = InstanceLock(DaemonPaths.of(workspace))
    second = InstanceLock(DaemonPaths.of(locate(other / "state.db")))
    first.acquire()
    try:
        second.acquire()
        second.release()
    finally:
        first.release()
