"""``aictl workflow suggest``: propose a workflow from what the repository's history shows.

Deterministic heuristics over the task queue, each adding a piece only when the evidence for it
is there, and saying why:

- **paths and capabilities**: the globs and capabilities most tasks used become the steps'
  ``paths`` and ``requires``;
- **test failures** (tasks failed with ``tests failed``): a fix loop after the implement step,
  its maximum one more than the most times one task was retried (at least 2, at most 5); with
  no ``test_command`` in the policy there is no verdict to loop on, and the reasons say so;
- **retryable failures** (crashes, API errors: tasks that took more than one attempt):
  ``retry`` on the implement step;
- **dependency shapes**: chains of three or more tasks suggest a planning step first; a task
  waiting on two or more others (a fan-in) suggests a final integration step;
- **policy**: rules that ``require_approval`` suggest an approval gate on the last step.

The proposal is checked by the loader before it is returned: it is always a valid workflow.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Any

from aictl.services.tasks import TaskService


@dataclass(frozen=True)
class Proposal:
    text: str
    reasons: list[str]
    data: dict[str, Any]


def suggest(service: TaskService, *, name: str = "suggested") -> Proposal:  # noqa: PLR0915
    """The proposal (YAML text with the reasons as comments, the reasons, the data); one
    function on purpose: each heuristic reads like a paragraph, in the order of the YAML."""
    tasks = service.list_tasks()
    edges = service.store.edges()
    policy = service.enforcer.policy(None)
    reasons: list[str] = []
    total = len(tasks)

    paths = Counter(path for task in tasks for path in task.paths)
    top_paths = [path for path, count in paths.most_common(3) if count * 2 >= total or count > 1]
    if not top_paths:
        top_paths = ["{{ inputs.area }}/**"]
        reasons.append("no glob recurs in the tasks: the paths come from the `area` input")
    else:
        reasons.append(f"paths {', '.join(top_paths)}: the globs most of the {total} tasks lock")
    requires = [cap for cap, count in Counter(c for t in tasks for c in t.requires).most_common(2)]
    if requires:
        reasons.append(f"requires {', '.join(requires)}: the capabilities tasks asked for most")

    test_failures = [t for t in tasks if (t.failure_reason or "").startswith("tests failed")]
    retried = Counter(
        entry.task_id for entry in service.store.audit.entries(kinds=("task.retried",))
    )
    retryable = [t for t in tasks if t.attempts > 1]
    test_command = policy.setting("test_command")
    approval_rules = [rule.id for rule in policy.rules if rule.effect == "require_approval"]
    layers = _longest_chain(edges)
    fan_in = Counter(task for task, _ in edges)
    joins = sorted(task for task, count in fan_in.items() if count >= 2)

    steps: list[dict[str, Any]] = []
    implement_needs: list[str] = []
    if layers >= 3:
        steps.append(
            {
                "id": "plan",
                "task": {
                    "title": "Plan {{ inputs.feature }}",
                    "description": "Split {{ inputs.feature }} into small, ordered changes.",
                    "requires": requires,
                },
            }
        )
        implement_needs = ["plan"]
        reasons.append(f"a plan step first: the task graph has chains {layers} tasks long")
    implement: dict[str, Any] = {
        "id": "implement",
        "task": {
            "title": "Implement {{ inputs.feature }}",
            "description": "Implement {{ inputs.feature }}.",
            "paths": top_paths,
            "requires": requires,
        },
    }
    if implement_needs:
        implement["needs"] = implement_needs
    if retryable:
        worst = max(task.attempts for task in retryable)
        implement["retry"] = {"max": min(worst - 1, 3) or 1, "backoff": "30s"}
        reasons.append(
            f"retry on implement: {len(retryable)} task(s) needed more than one attempt "
            f"(up to {worst})"
        )
    steps.append(implement)
    last = "implement"
    if test_failures and test_command:
        rounds = max(2, min(5, 1 + max((retried[t.id] for t in test_failures), default=0)))
        implement["on_failure"] = "continue"
        steps.append(_fix_loop(rounds, top_paths, requires))
        last = "fixing"
        reasons.append(
            f"a fix loop of at most {rounds} rounds: {len(test_failures)} task(s) failed their "
            f"tests (`{test_command}`), retried up to "
            f"{max((retried[t.id] for t in test_failures), default=0)} time(s)"
        )
    elif test_failures:
        reasons.append(
            "no fix loop: tasks failed tests, but the policy has no test_command to judge a fix"
        )
    elif test_command:
        reasons.append("no fix loop: no task has failed its tests so far")
    else:
        reasons.append("no fix loop: the policy has no test_command")
    if joins:
        steps.append(
            {
                "id": "integrate",
                "needs": [last],
                "task": {
                    "title": "Integrate {{ inputs.feature }}",
                    "description": "Check that the pieces of {{ inputs.feature }} fit together.",
                    "requires": requires,
                },
            }
        )
        last = "integrate"
        reasons.append(
            f"an integrate step: task(s) {', '.join(map(str, joins[:5]))} waited on two or "
            "more others"
        )
    review: dict[str, Any] = {
        "id": "review",
        "needs": [last],
        "task": {"title": "Review {{ inputs.feature }}", "requires": ["review"]},
    }
    if approval_rules:
        review["approval"] = {"reason": f"the policy requires approvals ({approval_rules[0]})"}
        reasons.append(
            f"an approval gate on review: policy rules {', '.join(approval_rules)} require approval"
        )
    steps.append(review)
    if total == 0:
        reasons.insert(0, "the queue is empty: this is the plain implement-and-review shape")
    data: dict[str, Any] = {
        "version": 1,
        "name": name,
        "description": f"Suggested from {total} task(s) and the policy.",
        "inputs": {
            "feature": {"description": "What to build.", "required": True},
            "area": {"description": "The folder to work in.", "default": "src"},
        },
        "steps": steps,
    }
    text = _render(data, reasons)
    from aictl.workflows.loader import InvalidWorkflow, load_text

    loaded = load_text(text, display="suggestion")
    if loaded.workflow is None:  # pragma: no cover - a bug in the heuristics
        raise InvalidWorkflow(loaded.issues)
    return Proposal(text, reasons, data)


def _fix_loop(rounds: int, paths: list[str], requires: list[str]) -> dict[str, Any]:
    fix = {
        "id": "fix",
        "task": {
            "title": "Fix the failing tests (round {{ iteration }})",
            "description": "The tests failed:\n{{ iteration == 1 ? "
            "steps.implement.tests_output : steps.fix.tests_output }}\n",
            "paths": paths,
            "requires": requires,
        },
        "on_failure": "continue",
    }
    return {
        "id": "fixing",
        "needs": ["implement"],
        "when": 'steps.implement.tests == "failed"',
        "loop": {"max": rounds, "until": 'steps.fix.tests == "passed"', "steps": [fix]},
    }


def _render(data: dict[str, Any], reasons: list[str]) -> str:
    import yaml

    header = "# Suggested by `aictl workflow suggest`. Why:\n" + "".join(
        f"#  - {reason}\n" for reason in reasons
    )
    body: str = yaml.safe_dump(data, sort_keys=False, allow_unicode=True, width=100)
    return header + body


def _longest_chain(edges: list[tuple[int, int]]) -> int:
    """The number of tasks on the longest dependency chain (0 without edges)."""
    if not edges:
        return 0
    from aictl.domain.dag import topological_layers

    nodes = {node for edge in edges for node in edge}
    return len(topological_layers(sorted(nodes), edges))
