"""6. Claims per second through the full path, with a 50-rule policy and without rules.

What is measured: tasks finished per second (claim + start + complete) through
``TaskService``, the path every command and the daemon take: the holder's name is validated,
the policy is evaluated for the claim (``Enforcer.ruling``), the decision record and its
``policy.decision`` audit row are written in the claim's transaction, then the lease and the
path lock are taken (the ``task.claimed`` row), and ``start`` and ``complete`` follow (two more
transactions, two more audit rows). Worker processes (spawn), each with its own
``TaskService``, open the repository, load its policy and decide one claim untimed (the policy
is cached per process, as in a daemon), then wait at a start barrier and loop until the queue is
empty or the time limit passes. The figure is all tasks completed over the wall time from the
first worker leaving the barrier to the last one finishing.

Two arms, in the same run, in ABBA order (rules, none, none, rules, ...) so that a drift in
the machine's load falls on both alike, each run on a fresh copy of its repository
(``aictl.workspace.initialise``; tasks created through the store):

- **rules**: ``.ai/policy.yaml`` holds 50 rules as a project's policy divides them: 20 about
  claims, 14 about tool calls, 6 about creation, 5 about approvals, 5 about overrides. The
  claim rules mix path globs (``touches`` and ``within``, one with a leading ``**``), labels,
  priority, type, requirements and ``ai.id``. None of them denies or holds the benchmark's
  tasks (their conditions are false for them), three ``warn`` rules match every claim or some,
  one ``allow`` rule matches some: every claim is allowed and its record lists warnings.
- **no rules**: the same repository with ``version: 1`` only. Decision records and their audit
  rows are written all the same (aictl records every decision), so the ratio is the price of
  evaluating the rules, and of the larger records that list what matched.

Every task locks a disjoint glob (``pkg{i}/**``), so locks never serialise the workers. At the
end of every run the bench checks that every claimed task was completed (no task left claimed
or running, as many ``done`` as the workers reported), that there is exactly one ``allow``
claim decision per completed task, made under the arm's policy (its hash), and that
``AuditLog.verify()`` passes; any failure makes the part an error rather than a figure.

Diagnostics: the mean time of one ``aictl.policy.evaluate`` of a claim under each policy,
in-process, over requests for distinct tasks (as in the run: each task's glob is new to the
process, so the glob helpers' caches are cold for it) and over the same requests again
(cached); the audit and decision rows written per task; in the notes, the costliest claim
conditions timed alone, each on task globs it has never seen.

Goal (issue 3): the 50-rule arm at least 0.7x the no-rules arm (``synchronous=FULL``).
"""

from __future__ import annotations

import os
import shutil
import sqlite3
import time
import traceback
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aictl.store.tasks import NewTask
from bench.common import (
    Goal,
    Measurement,
    Row,
    Settings,
    git_init,
    median,
    run_workers,
    scratch_dir,
)
from bench.fixtures import create_in_batches, open_store

GOAL = Goal("ratio >= 0.70", "ratio", ">=", 0.7)
BARRIER_TIMEOUT_S = 120.0
RULES_ARM, BARE_ARM = "rules", "no rules"
ARMS = (RULES_ARM, BARE_ARM)
HOLDER = "agent-{index}"
NO_RULES_POLICY = "version: 1\n"

# --------------------------------------------------------------------------- the policy

# (id, effect, condition): 20 rules about claims. None denies or holds a benchmark task (see
# ``task_specs``): `lockfiles` and `without-description` match every claim and `urgent` some
# (warn), `core-teams` some (allow). `lockfiles` (a leading ``**``) and `documentation-is-free`
# (``within``) are the two whose globs need an automaton for a task glob never seen before.
_CLAIM_RULES = (
    ("migrations-need-approval", "require_approval", 'touches(task.paths, "db/migrations/**")'),
    ("prod-infra-ops-only", "deny",
     'touches(task.paths, "infra/prod/**") && !ai.id.startsWith("ops-")'),
    ("prod-needs-priority", "deny", 'get(task.labels, "env", "") == "prod" && task.priority < 5'),
    ("incidents-need-oncall", "require_approval",
     'task.type == "incident" && !("oncall" in ai.capabilities)'),
    ("no-untrusted-agents", "deny", 'ai.id.startsWith("untrusted-")'),
    ("gpu-tasks-need-gpu", "deny", '"gpu" in task.requires && !("gpu" in ai.capabilities)'),
    ("lockfiles", "warn", 'touches(task.paths, "**/*.lock")'),
    ("urgent", "warn", "task.priority >= 3"),
    ("core-teams", "allow",
     'has(task.labels.team) && task.labels.team in ["team-0", "team-1", "team-2"]'),
    ("no-secrets", "deny",
     'task.paths.exists(p, p.startsWith("secrets/") || p.startsWith(".github/"))'),
    ("third-attempt-needs-review", "require_approval", "task.attempts >= 3"),
    ("probation-agent", "warn", 'ai.id == "agent-new"'),
    ("vendor-is-read-only", "deny", 'touches(task.paths, "vendor/**")'),
    ("documentation-is-free", "allow", 'within(task.paths, "docs/**")'),
    ("attempts-cap", "deny", "task.max_attempts > 10"),
    ("unlocked-work", "warn", "size(task.paths) == 0"),
    ("owner-only", "deny", 'get(task.labels, "owner", ai.id) != ai.id'),
    ("urgent-docker", "require_approval",
     'task.priority > 8 && touches(task.paths, "**/Dockerfile")'),
    ("do-not-claim", "deny", 'task.title.contains("DO NOT CLAIM")'),
    ("without-description", "warn", 'task.description == ""'),
)  # fmt: skip
_COMMAND = 'tool.name == "Bash" && get(tool.input, "command", "")'
_EDIT = 'tool.name in ["Edit", "Write", "NotebookEdit"]'
_TOOL_RULES = (
    ("agents-never-push", "deny", f'{_COMMAND}.contains("git push")'),
    ("no-rm-rf", "deny", f'{_COMMAND}.contains("rm -rf")'),
    ("no-sudo", "deny", f'{_COMMAND}.contains("sudo")'),
    ("docker-needs-approval", "require_approval", f'{_COMMAND}.contains("docker ")'),
    ("curl-warn", "warn", f'{_COMMAND}.startsWith("curl ")'),
    ("test-commands", "allow", f'{_COMMAND}.matches("^(make|pytest|ruff)( |$)")'),
    ("read-only-tools", "allow", 'tool.name in ["Read", "Glob", "Grep"]'),
    ("web-needs-approval", "require_approval", 'tool.name == "WebFetch"'),
    ("untrusted-read-only", "deny", 'ai.id.startsWith("untrusted-") && tool.name != "Read"'),
    ("no-ci-edits", "deny", f'{_EDIT} && touches(paths, ".github/**")'),
    ("no-vendor-edits", "deny", f'{_EDIT} && touches(paths, "vendor/**")'),
    ("migration-edits", "require_approval", f'{_EDIT} && touches(paths, "db/migrations/**")'),
    ("lockfile-edits", "warn", f'{_EDIT} && touches(paths, "**/*.lock")'),
    ("subagents-watched", "warn", 'tool.name == "Task" && ai.id == "agent-new"'),
)
_CREATE_RULES = (
    ("new-migrations-need-approval", "require_approval", 'touches(task.paths, "db/migrations/**")'),
    ("priority-cap", "deny", "task.priority > 100"),
    ("prod-tasks-need-approval", "require_approval", 'get(task.labels, "env", "") == "prod"'),
    ("wide-tasks", "warn", "size(task.paths) > 20"),
    ("low-priority-incident", "warn", 'task.type == "incident" && task.priority < 3'),
    ("no-wip-tasks", "deny", 'task.title.startsWith("WIP")'),
)
_APPROVE_RULES = (
    ("agents-do-not-approve", "deny", 'ai.id.startsWith("agent-")'),
    ("prod-approval-priority", "deny",
     'get(task.labels, "env", "") == "prod" && task.priority < 5'),
    ("infra-approvals", "warn", 'touches(task.paths, "infra/**")'),
    ("incidents-approvable", "allow", 'task.type == "incident"'),
    ("many-attempts", "warn", "task.attempts >= 5"),
)  # fmt: skip
_OVERRIDE_RULES = (
    ("agents-do-not-override", "deny", 'ai.id.startsWith("agent-")'),
    ("overrides-reviewed", "warn", None),
    ("untrusted-override", "deny", 'ai.id == "untrusted-bot"'),
    ("admins-override", "allow", 'has(ai.labels.role) && ai.labels.role == "admin"'),
    ("contractors-no-override", "deny", 'get(ai.labels, "team", "") == "contractors"'),
)
_POLICY = (
    ("claim", _CLAIM_RULES),
    ("tool", _TOOL_RULES),
    ("create", _CREATE_RULES),
    ("approve", _APPROVE_RULES),
    ("override", _OVERRIDE_RULES),
)
RULES = sum(len(rules) for _, rules in _POLICY)


def policy_text() -> str:
    """The rules arm's ``.ai/policy.yaml``: 50 rules, divided between actions."""
    lines = ["version: 1", "default: allow", "rules:"]
    for action, rules in _POLICY:
        for rule_id, effect, condition in rules:
            lines += [f"  - id: {rule_id}", f"    actions: [{action}]"]
            if condition is not None:
                lines.append(f"    when: '{condition}'")
            lines += [f"    effect: {effect}", f"    reason: benchmark rule {rule_id}"]
    return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------- the plan


@dataclass(frozen=True)
class Plan:
    """The sizes of one run of this part."""

    process_counts: tuple[int, ...]
    tasks: int
    repeats: int
    time_limit_s: float
    normal_at: int
    evaluations: int


FULL_PLAN = Plan(
    process_counts=(1, 4), tasks=3_000, repeats=4, time_limit_s=2.5, normal_at=4,
    evaluations=2_000,
)  # fmt: skip
QUICK_PLAN = Plan(
    process_counts=(1, 4), tasks=600, repeats=2, time_limit_s=0.6, normal_at=4, evaluations=300
)


def task_specs(count: int) -> list[NewTask]:
    """``count`` independent tasks, each locking its own glob ``pkg{i}/**``, with the fields the
    rules read varied (type, priority 0-4, team and env labels, sometimes a requirement)."""
    types = ("feature", "bug", "chore", "refactor")
    return [
        NewTask(
            title=f"bench task {i}",
            type=types[i % len(types)],
            priority=i % 5,
            labels={"team": f"team-{i % 8}", "env": ("dev", "staging")[i % 2]},
            requires=["python"] if i % 3 == 0 else [],
            paths=[f"pkg{i}/**"],
        )
        for i in range(count)
    ]


@contextmanager
def no_global_policy() -> Iterator[None]:
    """The user's own global policy layer is not what is measured."""
    previous = os.environ.get("AICTL_GLOBAL_POLICY")
    os.environ["AICTL_GLOBAL_POLICY"] = ""
    try:
        yield
    finally:
        if previous is None:
            os.environ.pop("AICTL_GLOBAL_POLICY", None)
        else:
            os.environ["AICTL_GLOBAL_POLICY"] = previous


def build_repository(root: Path, policy: str, tasks: int) -> None:
    """An initialised repository at ``root`` with ``policy`` and ``tasks`` queued tasks.

    The git repository anchors ``initialise`` (it walks up to the enclosing work tree).
    """
    from aictl.workspace import initialise

    git_init(root)
    workspace, _ = initialise(root)
    if workspace.root != root:
        raise RuntimeError(f"initialise chose {workspace.root}, not {root}")
    (workspace.state_dir / "policy.yaml").write_text(policy)
    store = open_store(workspace.db_path, synchronous="OFF")
    try:
        create_in_batches(store, task_specs(tasks))
    finally:
        store.db.close()  # the last connection: the WAL is checkpointed into the file


def db_path(root: Path) -> Path:
    from aictl.workspace import STATE_DB, STATE_DIR

    return root / STATE_DIR / STATE_DB


# --------------------------------------------------------------------------- processes


def worker(
    root: str,
    synchronous: str,
    index: int,
    time_limit_s: float,
    barrier: Any,
    results: Any,
) -> None:
    """A worker process: open a ``TaskService``, decide one claim untimed (loads the policy and
    CEL), wait for the others, loop claim -> start -> complete, report.

    Reports ``(index, completed, started, ended)`` with ``time.perf_counter`` stamps, or
    ``(index, "error", text)``; an error before the barrier breaks it, so the others stop too.
    """
    try:
        os.environ["AICTL_GLOBAL_POLICY"] = ""
        from aictl.errors import NothingReady
        from aictl.services.tasks import TaskService
        from aictl.store.db import Database
        from aictl.workspace import Workspace

        workspace = Workspace(Path(root), db_path(Path(root)))
        service = TaskService(workspace, db=Database(workspace.db_path, synchronous=synchronous))
        try:
            holder = HOLDER.format(index=index)
            service.enforcer.ruling("claim", subject=holder, task=service.get(1), ai=holder)
            barrier.wait(BARRIER_TIMEOUT_S)
            started = time.perf_counter()
            deadline = started + time_limit_s
            completed = 0
            while time.perf_counter() < deadline:
                try:
                    claim = service.claim(holder)
                except NothingReady:
                    break
                service.start(claim.token)
                service.complete(claim.token)
                completed += 1
            results.put((index, completed, started, time.perf_counter()))
        finally:
            service.close()
    except BaseException:
        barrier.abort()
        results.put((index, "error", traceback.format_exc()))


def verify_run(
    root: Path, completed: int, policy_hash: str, seeded_audit_rows: int
) -> dict[str, Any]:
    """Check that the run did what it reports; returns the rows it wrote. Raises on any
    discrepancy: a benchmark that silently measures failures is worthless."""
    from aictl.domain.tasks import Status
    from aictl.store.audit import AuditLog

    store = open_store(db_path(root), synchronous="OFF")
    try:
        counts = store.count_by_status()
        leased = counts.get("claimed", 0) + counts.get("running", 0)
        if leased or counts.get("done", 0) != completed:
            raise RuntimeError(
                f"{root.name}: workers reported {completed} tasks completed, the database "
                f"says {counts}"
            )
        records = store.decisions.records(action="claim")
        effects = {record.effect for record in records}
        hashes = {record.policy_hash for record in records}
        done_ids = {task.id for task in store.list_tasks(statuses=[Status.DONE])}
        if (
            len(records) != completed
            or effects - {"allow"}
            or hashes - {policy_hash}
            or {record.task_id for record in records} != done_ids
        ):
            raise RuntimeError(
                f"{root.name}: {len(records)} claim decisions for {completed} completed tasks, "
                f"effects {sorted(effects)}, policy hashes {sorted(hashes)} "
                f"(expected {policy_hash})"
            )
        verification = AuditLog(store.db.connection).verify()
        if not verification.ok:
            raise RuntimeError(
                f"{root.name}: the audit log does not verify: {verification.problem}"
            )
        return {
            "audit_rows": verification.rows - seeded_audit_rows,
            "decision_rows": len(records),
            "warnings": sum(len(record.warnings) for record in records),
        }
    finally:
        store.db.close()


@dataclass
class Arm:
    """One arm's seed repository (copied for every run) and what its runs are checked against."""

    name: str
    seed: Path
    policy_hash: str
    seeded_audit_rows: int


def run_once(
    arm: Arm, processes: int, synchronous: str, plan: Plan, folder: Path, number: int
) -> dict[str, Any]:
    """One timed run on a fresh copy of the arm's repository; checked, then removed."""
    root = folder / f"run-{number}"
    shutil.copytree(arm.seed, root)
    try:
        completed, wall = run_workers(
            worker,
            (str(root), synchronous),
            processes,
            plan.time_limit_s,
            f"{arm.name} x{processes}",
            BARRIER_TIMEOUT_S,
        )
        rows = verify_run(root, completed, arm.policy_hash, arm.seeded_audit_rows)
        if completed == 0:
            raise RuntimeError(f"{arm.name} x{processes}: no task was completed")
        return {"completed": completed, "wall_s": wall, "rate": completed / wall, **rows}
    finally:
        shutil.rmtree(root, ignore_errors=True)


def _compare(
    arms: Mapping[str, Arm],
    processes: int,
    synchronous: str,
    plan: Plan,
    folder: Path,
    *,
    goal: Goal | None,
) -> Row:
    """The rules arm beside the no-rules arm at one process count; the median rate of each,
    runs in ABBA order."""
    runs: dict[str, list[dict[str, Any]]] = {name: [] for name in ARMS}
    for repeat in range(plan.repeats):
        order = ARMS if repeat % 2 == 0 else ARMS[::-1]
        for name in order:
            number = sum(len(done) for done in runs.values())
            runs[name].append(run_once(arms[name], processes, synchronous, plan, folder, number))
    rates = {name: median([run["rate"] for run in done]) for name, done in runs.items()}
    noun = "process" if processes == 1 else "processes"
    return Row(
        label=f"{RULES} rules, {processes} {noun}, {synchronous}",
        value=rates[RULES_ARM],
        unit="tasks/s",
        baseline_label=BARE_ARM,
        baseline=rates[BARE_ARM],
        goal=goal,
        detail={
            "processes": processes,
            "synchronous": synchronous,
            "runs": {
                name: [{k: round(v, 4) for k, v in run.items()} for run in done]
                for name, done in runs.items()
            },
        },
    )


# --------------------------------------------------------------------------- diagnostics


def evaluation_times(roots: Mapping[str, Path], count: int) -> dict[str, dict[str, float]]:
    """Mean seconds of one ``evaluate`` of a claim under each arm's policy, in-process.

    The requests are built as ``Enforcer.ruling`` builds them, for ``count`` distinct tasks (as
    in a run, each task's glob is new to the process), round-robin in chunks of 50 over the
    arms; then the same requests again (``warm``: every glob answer cached).
    """
    from aictl.policy import build_request, evaluate, load_policy

    with no_global_policy():
        policies = {
            name: load_policy(root, ai=HOLDER.format(index=0)) for name, root in roots.items()
        }
    holder = HOLDER.format(index=0)
    specs = task_specs(count)
    root = roots[RULES_ARM]
    requests = [
        build_request(
            "claim",
            task={"id": i + 1, "title": spec.title, "type": spec.type, "priority": spec.priority,
                  "labels": spec.labels, "requires": spec.requires, "paths": spec.paths,
                  "max_attempts": spec.max_attempts, "status": "queued"},
            ai=holder,
            root=root,
        )
        for i, spec in enumerate(specs)
    ]  # fmt: skip
    evaluate(policies[RULES_ARM], build_request("claim", task={"paths": ["warm/**"]}, ai=holder))
    totals = {name: {"cold": 0.0, "warm": 0.0} for name in policies}
    for phase in ("cold", "warm"):
        for start in range(0, count, 50):
            chunk = requests[start : start + 50]
            for name, policy in policies.items():
                began = time.perf_counter()
                for request in chunk:
                    evaluate(policy, request)
                totals[name][phase] += time.perf_counter() - began
    return {name: {k: v / count for k, v in phases.items()} for name, phases in totals.items()}


def rule_costs(root: Path, count: int) -> list[tuple[str, float]]:
    """Mean seconds of each claim rule's condition alone, over ``count`` requests whose task
    globs are new to the process (each rule gets its own, so none profits from another's
    cached answers), costliest first. The CEL context is built beforehand, not timed."""
    from aictl.policy import build_request, load_policy
    from aictl.policy.evaluate import context_for

    with no_global_policy():
        policy = load_policy(root, ai=HOLDER.format(index=0))
    needs = policy.needs.get("claim")
    costs = []
    for number, rule in enumerate(policy.rules_for("claim")):
        if rule.program is None:
            continue
        contexts = [
            context_for(
                build_request(
                    "claim",
                    task={"id": i + 1, "paths": [f"pkg{(number + 1) * 1_000_000 + i}/**"]},
                    ai=HOLDER.format(index=0),
                ),
                needs,
            )
            for i in range(count)
        ]
        began = time.perf_counter()
        for context in contexts:
            try:
                rule.program.execute(context)
            except Exception:  # a failing condition costs what it costs
                continue
        costs.append((rule.id, (time.perf_counter() - began) / count))
    return sorted(costs, key=lambda item: item[1], reverse=True)


def sample_decision(root: Path) -> str:
    """What the rules arm decides for the first benchmark task, for the notes."""
    from aictl.policy import build_request, evaluate, load_policy

    with no_global_policy():
        policy = load_policy(root, ai=HOLDER.format(index=0))
    spec = task_specs(1)[0]
    request = build_request(
        "claim",
        task={"id": 1, "priority": 3, "labels": spec.labels, "paths": spec.paths},
        ai=HOLDER.format(index=0),
        root=root,
    )
    decision = evaluate(policy, request)
    return (
        f"a claim under the {RULES}-rule policy ({len(policy.rules_for('claim'))} rules about "
        f"claims): {decision.effect} by {decision.decided_by}; rules applied: "
        f"{len(decision.matched)}, warnings: {len(decision.warnings)}, condition errors: "
        f"{len(decision.errors)}"
    )


def _seed(folder: Path, plan: Plan) -> dict[str, Arm]:
    from aictl.policy import load_policy
    from aictl.store.audit import AuditLog

    arms = {}
    for name, text in ((RULES_ARM, policy_text()), (BARE_ARM, NO_RULES_POLICY)):
        seed = folder / f"seed-{name.replace(' ', '-')}"
        build_repository(seed, text, plan.tasks)
        with no_global_policy():
            policy = load_policy(seed, ai=HOLDER.format(index=0))  # raises if the file is wrong
        connection = sqlite3.connect(db_path(seed))
        try:
            rows = AuditLog(connection).checkpoint().rows
        finally:
            connection.close()
        arms[name] = Arm(name, seed, policy.hash, rows)
    return arms


def run(settings: Settings) -> Measurement:
    plan = QUICK_PLAN if settings.quick else FULL_PLAN
    measurement = Measurement(
        "enforcement",
        f"6. Claims per second through TaskService, {RULES}-rule policy vs no rules",
        parameters={
            "rules": RULES,
            "rules_by_action": {action: len(rules) for action, rules in _POLICY},
            "process_counts": list(plan.process_counts),
            "tasks_per_run": plan.tasks,
            "repeats": plan.repeats,
            "time_limit_s": plan.time_limit_s,
            "evaluations": plan.evaluations,
            "start_method": "spawn",
        },
    )
    with scratch_dir("enforcement") as folder:
        arms = _seed(folder, plan)
        for processes in plan.process_counts:
            measurement.rows.append(_compare(arms, processes, "FULL", plan, folder, goal=GOAL))
        measurement.rows.append(_compare(arms, plan.normal_at, "NORMAL", plan, folder, goal=None))
        times = evaluation_times({name: arm.seed for name, arm in arms.items()}, plan.evaluations)
        note = sample_decision(arms[RULES_ARM].seed)
        costs = rule_costs(arms[RULES_ARM].seed, plan.evaluations // 20)
    per_task: dict[str, dict[str, float]] = {name: {} for name in ARMS}
    for name in ARMS:
        runs = [run for row in measurement.rows for run in row.detail["runs"][name]]
        completed = sum(run["completed"] for run in runs)
        for key in ("audit_rows", "decision_rows", "warnings"):
            per_task[name][key] = sum(run[key] for run in runs) / completed
    rules, bare = times[RULES_ARM], times[BARE_ARM]
    measurement.rows += [
        Row(
            "policy evaluation of one claim, mean (task glob new, as in a run)",
            rules["cold"] * 1e6, "us", BARE_ARM, bare["cold"] * 1e6,
            detail={"rule_us": {rule: cost * 1e6 for rule, cost in costs}},
        ),
        Row(
            "policy evaluation of one claim, mean (same requests again, cached)",
            rules["warm"] * 1e6, "us", BARE_ARM, bare["warm"] * 1e6,
        ),
        Row(
            "audit rows written per task", per_task[RULES_ARM]["audit_rows"], "rows",
            BARE_ARM, per_task[BARE_ARM]["audit_rows"],
        ),
        Row(
            "decision rows written per task", per_task[RULES_ARM]["decision_rows"], "rows",
            BARE_ARM, per_task[BARE_ARM]["decision_rows"],
            detail={"warnings_per_task": {n: per_task[n]["warnings"] for n in ARMS}},
        ),
    ]  # fmt: skip
    full_rows = [row for row in measurement.rows if row.detail.get("synchronous") == "FULL"]
    slowest = min(full_rows, key=lambda row: row.baseline or 0.0)
    if slowest.baseline:
        share = rules["cold"] * slowest.baseline
        measurement.notes.append(
            f"at {slowest.baseline:,.0f} tasks/s ({slowest.label}, no rules) a task takes "
            f"{1000 / slowest.baseline:.1f} ms; one evaluation under the rules adds "
            f"{rules['cold'] * 1000:.2f} ms ({share:.0%} of that), inside the claim's write "
            "transaction, so the workers' evaluations do not overlap"
        )
    costliest = ", ".join(f"{rule} {cost * 1e6:,.0f} us" for rule, cost in costs[:3])
    measurement.notes += [
        note,
        f"costliest claim conditions alone, new task glob each time: {costliest}; the other "
        f"{len(costs) - 3} together {sum(cost for _, cost in costs[3:]) * 1e6:,.0f} us",
        f"each figure is the median of {plan.repeats} run(s) in ABBA order, each on a fresh "
        f"copy of its repository; a run stops when its {plan.tasks:,} tasks are done or after "
        f"{plan.time_limit_s:g} s",
        "every run is checked: all claimed tasks completed, one allow decision per task under "
        "the arm's policy hash, AuditLog.verify() passes",
        "the goal is judged on the FULL lines; NORMAL (no fsync per commit) shows the CPU cost",
    ]
    return measurement
