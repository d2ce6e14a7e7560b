"""5. Policy decisions per second, in-process, with a 50-rule policy.

What is measured: ``aictl.policy.evaluate(policy, request)`` in batches of 1,000 decisions,
for two requests: a claim (a task with three paths and two labels, an AI with labels and
capabilities) and a Bash tool call made while working on that task. The project policy has 50
rules divided as a project's policy divides: 20 about claims, 20 about tool calls, 5 about
creation, 5 about execution. Evaluation runs only the rules indexed under the request's action,
so a claim runs 20 conditions. Their mix: ``touches`` and ``within`` on globs, a list macro,
label and priority tests, capability tests, and one condition that raises at run time (a
missing label read without ``get``) so that the fail-closed path is measured too.

Baseline: the same request against a policy with no rules (the default applied, the decision
value built). Batches go round-robin over the figures, so a noisy moment hits all alike. The
worst case is measured too, without a goal: the same 50 rules all about claims, so that a claim
runs every condition. The policy is loaded once, as a daemon or a claim would; the extra rows
give the staged load of the 50-rule file (YAML, pydantic, 50 CEL compilations and field checks),
the fast path of a project whose policy is the commented template, and ``validate`` with lint.

What the figures are made of (measured with common-expression-language 0.10): about 40 us to
convert the request into a CEL context (about 1.4 us per string or container; only the fields
the conditions read are converted), 0.4-3 us per condition (a call into a Python helper costs
about 2 us), a few us of Python around them.

Goal (issue 3): at least 10,000 decisions per second with 50 rules.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path

from bench.common import Goal, Measurement, Row, Settings, median, scratch_dir, summary_ms

GOAL = Goal(">= 10,000 /s", "value", ">=", 10_000.0)
RULES = 50
BATCH = 1_000

# (actions, condition template, effect): the realistic policy cycles through these.
_TASK_RULES = (
    ('touches(task.paths, "db/migrations/m{i}/**")', "require_approval"),
    ('has(task.labels.team) && task.labels.team == "team-{i}" && task.priority > {i}', "allow"),
    ('task.type == "kind-{i}" || "cap-{i}" in ai.capabilities', "deny"),
    ('task.paths.exists(p, p.startsWith("vendor/lib{i}/"))', "warn"),
    ('within(task.paths, "docs/part{i}/**")', "allow"),
    ("size(task.requires) > {i} && task.attempts >= 2", "deny"),
    ('task.labels.missing{i} == "x"', "require_approval"),  # raises: no such label (fail closed)
    ('get(ai.labels, "zone", "") == "zone-{i}" && !touches(paths, "src/**")', "deny"),
    ('task.priority >= {i} && task.type in ["bug", "incident"]', "warn"),
)
_TOOL_RULES = (
    ('tool.name == "Bash" && get(tool.input, "command", "").contains("cmd-{i}")', "deny"),
    ('tool.name in ["Edit", "Write"] && touches(paths, "generated/g{i}/**")', "deny"),
    ('tool.name == "Tool{i}"', "require_approval"),
    ('tool.name == "Bash" && get(tool.input, "command", "").startsWith("make t{i}")', "allow"),
)
SPREAD = (("claim", 20), ("tool", 20), ("create", 5), ("execute", 5))
"""How the realistic policy's 50 rules divide between actions."""


def policy_text(rules: int, *, spread: bool = True) -> str:
    """A project policy of ``rules`` rules. Spread: 20 about claims, 20 about tool calls, 5
    about creation and 5 about execution, as a project's policy divides; not spread: every
    rule about claims (the worst case for a claim: the action index spares none)."""
    plan = SPREAD if spread else (("claim", rules),)
    lines = ["version: 1", "default: allow", "rules:"]
    index = 0
    for action, count in plan:
        table = _TOOL_RULES if action == "tool" else _TASK_RULES
        for _ in range(count):
            condition, effect = table[index % len(table)]
            lines += [
                f"  - id: rule-{index}",
                f"    actions: [{action}]",
                f"    when: '{condition.format(i=index)}'",
                f"    effect: {effect}",
                f"    reason: benchmark rule {index}",
            ]
            index += 1
    return "\n".join(lines) + "\n"


def _requests() -> dict[str, dict[str, object]]:
    """A claim of a task with three paths and two labels, and a Bash call while working on it."""
    from aictl.policy import build_request

    task = {
        "id": 42,
        "title": "Add the login endpoint",
        "type": "feature",
        "priority": 5,
        "labels": {"team": "api", "area": "auth"},
        "requires": ["python"],
        "paths": ["src/api/login/**", "tests/api/test_login.py", "docs/api.md"],
    }
    ai = {"id": "claude-1", "labels": {"zone": "eu"}, "capabilities": ["python", "web"]}
    return {
        "claim": build_request("claim", task=task, ai=ai),
        "tool": build_request(
            "tool", task=task, ai=ai, tool="Bash", tool_input={"command": "make test"}
        ),
    }


def _rate(policy: object, request: dict[str, object], count: int) -> float:
    from aictl.policy import evaluate

    started = time.perf_counter()
    for _ in range(count):
        evaluate(policy, request)  # type: ignore[arg-type]
    return count / (time.perf_counter() - started)


def _timed(call: Callable[[], object], repeat: int) -> list[float]:
    samples = []
    for _ in range(repeat):
        started = time.perf_counter()
        call()
        samples.append(time.perf_counter() - started)
    return samples


def _write_projects(folder: Path) -> dict[str, Path]:
    roots = {name: folder / name for name in ("spread", "worst", "bare", "template")}
    for root in roots.values():
        (root / ".ai").mkdir(parents=True)
    (roots["spread"] / ".ai" / "policy.yaml").write_text(policy_text(RULES))
    (roots["worst"] / ".ai" / "policy.yaml").write_text(policy_text(RULES, spread=False))
    template = Path(__file__).resolve().parents[1] / "aictl" / "templates" / "policy.yaml"
    (roots["template"] / ".ai" / "policy.yaml").write_text(template.read_text())
    return roots


def run(settings: Settings) -> Measurement:
    from aictl.policy import evaluate, load_policy, validate_files

    rounds = 4 if settings.quick else 20
    measurement = Measurement(
        "policy",
        f"5. Policy decisions per second ({RULES} rules, in-process)",
        parameters={"rules": RULES, "spread": dict(SPREAD), "batch": BATCH, "rounds": rounds},
    )
    previous = os.environ.get("AICTL_GLOBAL_POLICY")
    os.environ["AICTL_GLOBAL_POLICY"] = ""  # the user's own global policy is not measured
    try:
        with scratch_dir("policy") as folder:
            roots = _write_projects(folder)
            spread_file = roots["spread"] / ".ai" / "policy.yaml"
            load_full = _timed(lambda: load_policy(roots["spread"]), 3 if settings.quick else 10)
            load_template = _timed(
                lambda: load_policy(roots["template"]), 50 if settings.quick else 500
            )
            lint = _timed(lambda: validate_files([spread_file]), 1 if settings.quick else 3)
            policies = {name: load_policy(roots[name]) for name in ("spread", "worst", "bare")}
    finally:
        if previous is None:
            os.environ.pop("AICTL_GLOBAL_POLICY", None)
        else:
            os.environ["AICTL_GLOBAL_POLICY"] = previous
    requests = _requests()
    plan = {
        "claim": (policies["spread"], requests["claim"]),
        "claim, no rules": (policies["bare"], requests["claim"]),
        "tool": (policies["spread"], requests["tool"]),
        "tool, no rules": (policies["bare"], requests["tool"]),
        "claim, worst": (policies["worst"], requests["claim"]),
    }
    for policy, request in plan.values():  # warm-up: glob caches, CEL
        _rate(policy, request, BATCH)
    rates: dict[str, list[float]] = {name: [] for name in plan}
    for _ in range(rounds):  # round-robin, so a noisy moment hits every figure alike
        for name, (policy, request) in plan.items():
            rates[name].append(_rate(policy, request, BATCH))
    rate = {name: median(samples) for name, samples in rates.items()}
    full_stats, template_stats = summary_ms(load_full), summary_ms(load_template)
    claim_rules = len(policies["spread"].rules_for("claim"))
    tool_rules = len(policies["spread"].rules_for("tool"))
    measurement.rows += [
        Row(
            f"claim decisions/s, {RULES}-rule policy ({claim_rules} about claims)",
            rate["claim"], "/s", "no rules", rate["claim, no rules"], goal=GOAL,
            detail={"samples": rates["claim"], "no_rules": rates["claim, no rules"]},
        ),
        Row(
            f"tool-call decisions/s, {RULES}-rule policy ({tool_rules} about tools)",
            rate["tool"], "/s", "no rules", rate["tool, no rules"],
            detail={"samples": rates["tool"], "no_rules": rates["tool, no rules"]},
        ),
        Row(
            f"claim decisions/s, all {RULES} rules about claims (worst case)",
            rate["claim, worst"], "/s", "no rules", rate["claim, no rules"],
            detail={"samples": rates["claim, worst"]},
        ),
        Row(
            f"load_policy, {RULES} rules (staged), median", full_stats["median_ms"], "ms",
            "template only", template_stats["median_ms"],
            detail={"rules": full_stats, "template": template_stats},
        ),
        Row(
            f"validate_files, {RULES} rules with lint", median(lint) * 1000, "ms",
            f"load_policy, {RULES} rules", full_stats["median_ms"],
        ),
    ]  # fmt: skip
    for name in ("claim", "tool", "claim, worst"):
        policy, request = plan[name]
        decision = evaluate(policy, request)
        measurement.notes.append(
            f"{name}: {decision.effect} by {decision.decided_by}; {len(decision.matched)} rules "
            f"applied, {len(decision.warnings)} warnings, {len(decision.errors)} condition "
            "errors (fail closed)"
        )
    measurement.notes.append(
        "load times are in-process and warm (modules imported); a CLI process also pays the "
        "imports once: PyYAML, pydantic and CEL for a policy with rules, none for the template"
    )
    return measurement
