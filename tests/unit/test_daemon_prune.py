"""The daemon prunes as the policy's settings.retention asks, at its first tick and hourly, and
rotates its own log; the runs of tasks still in play stay."""

from __future__ import annotations

from aictl.daemon.runtime import DaemonPaths
from aictl.daemon.status import log_lines
from aictl.services.executor import runs_dir
from aictl.services.tasks import TaskService
from aictl.workspace import Workspace
from tests.daemon_fakes import running_daemon, wait_for


def test_the_daemon_prunes_finished_runs_and_rotates_its_log(workspace: Workspace) -> None:
    service = TaskService(workspace)
    try:
        for title in ("old", "new"):
            service.cancel(service.create(title).id, reason="done with it")
        service.create("waiting", requires=["nobody-has-this"])
    finally:
        service.close()
    for task_id in (1, 2, 3):
        (runs_dir(workspace) / str(task_id) / "1").mkdir(parents=True)
    log = DaemonPaths.of(workspace).log
    log.parent.mkdir(parents=True, exist_ok=True)
    log.write_text('{"event": "filler"}\n' * 100)
    (workspace.state_dir / "policy.yaml").write_text(
        "version: 1\ndefault: allow\nsettings:\n  retention:\n    runs: 1\n"
        "    daemon_log_mb: 0.001\n",
        encoding="utf-8",
    )
    with running_daemon(workspace) as daemon:
        wait_for(lambda: not (runs_dir(workspace) / "1").exists(), "the old run pruned")
        wait_for(lambda: log.with_name("daemon.jsonl.1").exists(), "the log rotated")
        pruned_at = daemon._pruned_at
        ticks = daemon.ticks
        wait_for(lambda: daemon.ticks > ticks + 2, "more ticks")
        assert daemon._pruned_at == pruned_at  # not again before an hour
    assert (runs_dir(workspace) / "2").exists()  # the one finished last
    assert (runs_dir(workspace) / "3").exists()  # still queued
    events = [record.get("event") for record in log_lines(log)]
    rotated = [record.get("event") for record in log_lines(log.with_name("daemon.jsonl.1"))]
    assert "prune.runs" in events + rotated
