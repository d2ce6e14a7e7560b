"""A policy replaced by something hostile while the daemon runs: the daemon answers, refuses
the file with its errors, and goes on with the last valid policy (and the audit chain stays
intact). Before, a billion-laughs file took gigabytes and a panicking condition killed it."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from aictl.daemon.runtime import DaemonPaths, write_atomically
from aictl.daemon.status import log_lines
from aictl.services.audit import AuditService
from aictl.workspace import Workspace
from tests.daemon_fakes import register_ai, reset_recorder, running_daemon, wait_for
from tests.unit.test_expression_bounds import PANICKING
from tests.unit.test_yaml_bounds import laughs


def refusals(workspace: Workspace) -> list[dict[str, Any]]:
    log = DaemonPaths.of(workspace).log
    return [record for record in log_lines(log) if record.get("event") == "policy.refused"]


def replace(path: Path, content: str | bytes) -> None:
    """As an editor saves: a new file renamed over the old one."""
    if isinstance(content, str):
        write_atomically(path, content)
        return
    temporary = path.with_name(".policy.tmp")
    temporary.write_bytes(content)
    os.replace(temporary, path)


def test_hostile_policies_are_refused_and_the_daemon_goes_on(workspace: Workspace) -> None:
    reset_recorder()
    register_ai(workspace)
    policy = workspace.state_dir / "policy.yaml"
    hostile = [
        laughs(),
        "version: 1\nrules:\n  - id: r\n    actions: [claim]\n"
        f"    when: '{PANICKING}'\n    effect: deny\n    reason: no\n",
        b"version: 1\nrules:\n  - id: r\n    actions: [claim]\n    when: 'true'\n"
        b"    effect: deny\n    reason: \xff\n",
    ]
    with running_daemon(workspace) as daemon:
        wait_for(lambda: daemon.health()["status"] == "ok", "the daemon ticking")
        for number, text in enumerate(hostile, start=1):
            replace(policy, text)
            wait_for(lambda n=number: len(refusals(workspace)) >= n, f"refusal {number}")
            assert daemon.health()["status"] == "ok"
    found = refusals(workspace)
    messages = [" ".join(error["message"] for error in record["errors"]) for record in found]
    assert "expand to more than" in messages[0]
    assert "characters long" in messages[1]
    assert "not UTF-8 text" in messages[2]
    assert len(found) == 3
    service = AuditService(workspace)
    try:
        assert service.verify().ok
    finally:
        service.close()
