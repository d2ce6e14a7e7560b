"""`workflow suggest`: deterministic, always valid, and it follows the repository's history."""

from __future__ import annotations

from aictl.services.tasks import TaskService
from aictl.workflows.loader import load_text
from aictl.workflows.suggest import suggest
from aictl.workspace import Workspace

POLICY = """version: 1
settings:
  test_command: "make test"
rules:
  - id: gate-prod
    actions: [claim]
    when: '"env" in task.labels && task.labels.env == "prod"'
    effect: require_approval
    reason: production work needs a person
"""


def fail_tests(service: TaskService, task_id: int) -> None:
    claim = service.claim("w1", task_id=task_id)
    service.start(claim.token)
    service.fail(claim.token, reason="tests failed: `make test` exited 1", retry=False)


def test_the_suggestion_is_valid_and_changes_with_the_history(
    service: TaskService, workspace: Workspace
) -> None:
    empty = suggest(service)
    assert load_text(empty.text, display="s").ok
    assert "fixing" not in empty.text and "no fix loop" in empty.text
    assert suggest(service).text == empty.text  # deterministic

    (workspace.state_dir / "policy.yaml").write_text(POLICY)
    first = service.create("Add login", paths=["src/api/**"], requires=["edit"])
    second = service.create("Add logout", paths=["src/api/**"], depends_on=[first.id])
    service.create("Wire both", paths=["src/web/**"], depends_on=[first.id, second.id])
    fail_tests(service, first.id)
    service.retry(first.id)
    fail_tests(service, first.id)
    service.retry(first.id)
    fail_tests(service, first.id)

    later = suggest(service, name="learned")
    workflow = load_text(later.text, display="s").workflow
    assert workflow is not None and workflow.name == "learned"
    ids = [step.id for step in workflow.steps]
    assert ids == ["plan", "implement", "fixing", "integrate", "review"]
    loop = workflow.step("fixing").loop
    assert loop is not None and loop.max == 3  # retried twice: one more round than that
    assert workflow.step("review").approval
    assert [t.source for t in workflow.step("implement").task.paths] == ["src/api/**"]  # type: ignore[union-attr]
    assert any("1 task(s) failed their tests" in reason for reason in later.reasons)
    assert any("gate-prod" in reason for reason in later.reasons)
    assert later.text.startswith("# Suggested by `aictl workflow suggest`. Why:")
