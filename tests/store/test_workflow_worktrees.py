"""A workflow's fix step in its own worktree continues the failed step's work: under
``isolation: worktree`` (the default) a failed step's commit is not merged, so without the
``continues`` label the fix step would start from the target's head and never see what it is
to fix. (The real Claude Code CLI does the same in tests/e2e/test_workflow_e2e.py.)"""

from __future__ import annotations

from collections.abc import Iterator
from typing import ClassVar

import pytest

import connectors
from aictl.domain.tasks import Task
from aictl.services.tasks import TaskService
from aictl.services.workflows import WorkflowService
from aictl.services.worktrees import list_worktrees, prune_worktrees
from aictl.workspace import Workspace
from connectors import Detection, RunRequest, RunResult
from tests.store.test_worktrees import git
from tests.workflow_fakes import register_ai


class Appender:
    """Each run appends one line to a log in its working directory: the fix steps' log is
    ``fix_log`` (by default the same file as the implement step's)."""

    name = "fake"
    capabilities = frozenset({"edit"})
    seen: ClassVar[list[str]] = []
    fix_log: ClassVar[str] = "src/log.txt"

    def detect(self) -> Detection:
        return Detection("fake")

    def run(self, request: RunRequest) -> RunResult:
        log = request.cwd / (Appender.fix_log if "Fix round" in request.prompt else "src/log.txt")
        log.parent.mkdir(parents=True, exist_ok=True)
        before = log.read_text() if log.exists() else ""
        Appender.seen.append(before)
        log.write_text(before + "line\n")
        return RunResult(status="success", num_turns=1)

    def cancel(self) -> None:
        pass


POLICY = """version: 1
settings:
  test_command: '{test}'
  retry_backoff: 1ms
  retry_backoff_max: 1ms
"""

FLOW = """version: 1
name: fix-it
steps:
  - id: implement
    task: {title: Implement, paths: ["src/**"]}
    on_failure: continue
  - id: fixing
    needs: [implement]
    when: steps.implement.tests == "failed"
    loop:
      max: 3
      until: steps.fix.tests == "passed"
      steps:
        - id: fix
          task: {title: "Fix round {{ iteration }}", paths: ["src/**"]}
          on_failure: continue
"""


@pytest.fixture
def engine(workspace: Workspace) -> Iterator[WorkflowService]:
    root = workspace.root
    git(root, "init", "-q")
    git(root, "checkout", "-q", "-B", "main")
    (root / "README.md").write_text("hello\n")
    git(root, "add", "README.md")
    git(root, "commit", "-q", "-m", "base")
    Appender.seen, Appender.fix_log = [], "src/log.txt"
    connectors.register("fake", Appender)
    register_ai(workspace.database)
    service = TaskService(workspace)
    yield WorkflowService(service)
    service.close()


def execute(engine: WorkflowService, test: str, flow: str = FLOW) -> dict[str, dict[str, object]]:
    root = engine.service.workspace.root
    (root / ".ai" / "policy.yaml").write_text(POLICY.format(test=test))
    (root / "flow.yaml").write_text(flow)
    report = engine.execute(engine.register(root / "flow.yaml", replace=True).name)
    assert report.run.status == "done", report.run
    return {f"{r.state.step}#{r.state.iteration}": r.to_dict() for r in report.steps}


def tasks(engine: WorkflowService, steps: dict[str, dict[str, object]], *names: str) -> list[Task]:
    return [engine.service.get(int(str(steps[name]["task_id"]))) for name in names]


def test_each_fix_round_starts_from_the_failed_work_and_the_last_merges_it_all(
    engine: WorkflowService,
) -> None:
    # implement fails (1 line), fix 1 fails (2 lines), fix 2 passes (3 lines)
    steps = execute(engine, 'test "$(wc -l < src/log.txt)" -ge 3')
    assert [steps[s]["status"] for s in ("implement#0", "fix#1", "fix#2")] == [
        "failed",
        "failed",
        "done",
    ]
    # each round saw the failed work of the round before it, in its own worktree
    assert Appender.seen == ["", "line\n", "line\nline\n"]
    implement, fix1, fix2 = tasks(engine, steps, "implement#0", "fix#1", "fix#2")
    assert fix1.labels["continues"] == str(implement.id)
    assert fix2.labels["continues"] == str(fix1.id)
    # the target holds all three commits through the last round's merge, and nothing is lost
    root = engine.service.workspace.root
    assert (root / "src" / "log.txt").read_text() == "line\n" * 3
    subjects = git(root, "log", "--format=%s", "main").splitlines()
    assert [s for s in subjects if s.startswith("task ")] == [
        f"task {fix2.id}: Fix round 2",
        f"task {fix1.id}: Fix round 1",
        f"task {implement.id}: Implement",
    ]
    # the failed rounds' work is merged now, so prune may remove their worktrees
    rows = {row["task_id"]: row for row in list_worktrees(engine.service)}
    assert all(rows[t.id]["merged"] for t in (implement, fix1, fix2))
    pruned = prune_worktrees(engine.service, dry_run=False)
    assert {row["action"] for row in pruned} == {"removed"}


def test_work_outside_the_fix_steps_paths_is_not_continued(engine: WorkflowService) -> None:
    Appender.fix_log = "src/sub/log.txt"
    fixing = 'round {{ iteration }}", paths: '
    flow = FLOW.replace(fixing + '["src/**"]', fixing + '["src/sub/**"]')
    steps = execute(engine, "test -f src/sub/log.txt", flow)
    implement, fix = tasks(engine, steps, "implement#0", "fix#1")
    # the globs overlap, so the step is labelled; but the failed work changed src/log.txt,
    # which the fix step's lease does not lock: it starts from the target's head instead
    assert fix.labels["continues"] == str(implement.id)
    assert Appender.seen == ["", ""]
    root = engine.service.workspace.root
    assert (root / "src" / "sub" / "log.txt").exists()
    assert not (root / "src" / "log.txt").exists()  # the failed implementation stayed out
    rows = {row["task_id"]: row for row in list_worktrees(engine.service)}
    assert rows[implement.id]["merged"] is False  # and is still kept, unmerged
