"""`aictl task`: create, claim and drive tasks through their lease lifecycle."""

from __future__ import annotations

import json
import math
import threading
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import typer

from aictl.cli import output
from aictl.cli.common import (
    JsonOption,
    LeaseOption,
    QuietOption,
    Typer,
    interrupt_cancels,
    lease_for,
    parse_count,
    parse_task_id,
    paths_from_here,
    task_service,
)
from aictl.errors import REQUEUED, InvalidInput

app = Typer(help="Create tasks, claim them under a lease, and finish them.")

TaskId = Annotated[
    int, typer.Argument(help="The task id.", metavar="ID", parser=parse_task_id, show_default=False)
]


@app.command()
def create(
    ctx: typer.Context,
    title: Annotated[
        str, typer.Argument(help="A short title.", metavar="TITLE", show_default=False)
    ],
    description: Annotated[
        str, typer.Option(help="Longer text for the agent.", metavar="TEXT")
    ] = "",
    type: Annotated[str, typer.Option("--type", help="A kind: task, bug, review...")] = "task",
    priority: Annotated[int, typer.Option(help="Higher runs first.", metavar="N")] = 0,
    depends_on: Annotated[
        list[int] | None,
        typer.Option(
            "--depends-on", help="A task this one waits for.", parser=parse_task_id, metavar="ID"
        ),
    ] = None,
    path: Annotated[
        list[str] | None,
        typer.Option("--path", help="A glob of files this task will edit.", metavar="GLOB"),
    ] = None,
    label: Annotated[
        list[str] | None, typer.Option("--label", help="KEY=VALUE.", metavar="KEY=VALUE")
    ] = None,
    requires: Annotated[
        list[str] | None,
        typer.Option("--requires", help="A capability the agent needs.", metavar="CAPABILITY"),
    ] = None,
    max_attempts: Annotated[
        int | None,
        typer.Option(
            help="Claims before it fails for good (default: policy, else 3).", metavar="N"
        ),
    ] = None,
    skill: Annotated[
        list[str] | None,
        typer.Option(
            "--skill", help="A skill the agent needs (`aictl skill list`).", metavar="NAME"
        ),
    ] = None,
    json_output: JsonOption = False,
    quiet: QuietOption = False,
) -> None:
    """Create a task. Nothing is written if any option is invalid.

    Example: aictl task create "Add login endpoint" --path 'src/api/**' --depends-on 3
    """
    with task_service(ctx) as service:
        task = service.create(
            title,
            description=description,
            type=type,
            priority=priority,
            depends_on=depends_on or [],
            paths=paths_from_here(service, path or []),
            labels=label or [],
            requires=requires or [],
            max_attempts=max_attempts,
            skills=skill or [],
        )
    output.task(
        task, output.pick(json_output, quiet), headline=f"Created task {task.id} ({task.status})"
    )


@app.command("list")
def list_(
    ctx: typer.Context,
    status: Annotated[
        list[str] | None,
        typer.Option(
            "--status",
            help="Only tasks in this status: queued, claimed, running, done, failed, blocked "
            "or cancelled (repeat for several).",
        ),
    ] = None,
    ready: Annotated[bool, typer.Option("--ready", help="Only tasks claimable now.")] = False,
    label: Annotated[
        list[str] | None, typer.Option("--label", help="KEY=VALUE.", metavar="KEY=VALUE")
    ] = None,
    json_output: JsonOption = False,
    quiet: QuietOption = False,
) -> None:
    """List tasks in id order.

    Example: aictl task list --status queued --label area=api --json
    """
    with task_service(ctx) as service:
        tasks = service.list_tasks(statuses=status or [], ready=ready, labels=label or [])
    output.tasks(tasks, output.pick(json_output, quiet))


@app.command()
def show(
    ctx: typer.Context, task_id: TaskId, json_output: JsonOption = False, quiet: QuietOption = False
) -> None:
    """Show every field of a task.

    Example: aictl task show 12 --json
    """
    from aictl.services.task_changes import comments

    with task_service(ctx) as service:
        task = service.get(task_id)
        notes = comments(service, task_id)
    if json_output:
        output.emit_json({**task.to_dict(), "comments": [note.to_dict() for note in notes]})
        return
    if quiet:
        output.line(str(task.id))
        return
    output.task(task, output.Format.TABLE)
    if notes:
        output.table(
            "comments",
            ["ID", f"WHEN ({output.zone()})", "AUTHOR", "COMMENT"],
            [(n.id, output.when(n.created_at), n.author, n.body) for n in notes],
        )


@app.command()
def claim(
    ctx: typer.Context,
    task_id: Annotated[
        int | None,
        typer.Argument(
            help="A task id; default: the next ready task.", metavar="[ID]", parser=parse_task_id
        ),
    ] = None,
    holder: Annotated[
        str,
        typer.Option("--as", help="Who holds the lease (an agent or worker name).", metavar="NAME"),
    ] = ...,  # type: ignore[assignment]
    ttl: Annotated[
        str | None,
        typer.Option(
            help="Lease length without heartbeats, e.g. 90s (default: policy, else 10m).",
            metavar="DURATION",
        ),
    ] = None,
    json_output: JsonOption = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="Print the token only.")] = False,
) -> None:
    """Claim a task under a lease and lock its paths, in one step that succeeds or fails whole.

    Without an id, takes the highest-priority, oldest ready task whose paths conflict with no
    held lock. Exit 5 when nothing is ready (the message says why), 4 when held or locked.

    Example: aictl task claim --as worker-1 --ttl 15m
    """
    with task_service(ctx) as service:
        result = service.claim(holder, ttl=ttl, task_id=task_id)
    fmt = output.pick(json_output, quiet)
    if fmt is output.Format.JSON:
        output.emit_json({"task": result.task.to_dict(), "lease_token": str(result.token)})
    elif fmt is output.Format.QUIET:
        output.line(str(result.token))
    else:
        task = result.task
        output.line(f"Claimed task {task.id}: {task.title}")
        expires = output.when(task.lease_expires_at, zoned=True)
        output.line(f"lease token: {result.token}  (expires {expires})")


def _holder_write(
    ctx: typer.Context,
    task_id: int,
    lease: str,
    verb: str,
    json_output: bool,
    quiet: bool,
    **options: Any,
) -> None:
    token = lease_for(task_id, lease)
    with task_service(ctx) as service:
        task = getattr(service, verb)(token, **options)
    headline = f"Task {task.id} is {task.status}"
    if task.lease_expires_at:
        headline += f" (lease until {output.when(task.lease_expires_at, zoned=True)})"
    output.task(task, output.pick(json_output, quiet), headline=headline)


@app.command()
def heartbeat(
    ctx: typer.Context,
    task_id: TaskId,
    lease: LeaseOption,
    ttl: Annotated[
        str | None, typer.Option(help="New lease length; default: as claimed.", metavar="DURATION")
    ] = None,
    json_output: JsonOption = False,
    quiet: QuietOption = False,
) -> None:
    """Extend a live lease. Exit 4 if the lease was lost.

    Example: aictl task heartbeat 12 --lease 12:3:Xq7cWm2Pz
    """
    _holder_write(ctx, task_id, lease, "heartbeat", json_output, quiet, ttl=ttl)


@app.command()
def start(
    ctx: typer.Context,
    task_id: TaskId,
    lease: LeaseOption,
    json_output: JsonOption = False,
    quiet: QuietOption = False,
) -> None:
    """Mark a claimed task as running. Exit 4 if the lease was lost.

    Example: aictl task start 12 --lease 12:3:Xq7cWm2Pz
    """
    _holder_write(ctx, task_id, lease, "start", json_output, quiet)


@app.command()
def complete(
    ctx: typer.Context,
    task_id: TaskId,
    lease: LeaseOption,
    result: Annotated[
        str | None, typer.Option(help="A short summary of the outcome.", metavar="TEXT")
    ] = None,
    evidence: Annotated[
        Path | None, typer.Option(help="A JSON file with evidence (an object).", metavar="FILE")
    ] = None,
    json_output: JsonOption = False,
    quiet: QuietOption = False,
) -> None:
    """Finish a running task and release its locks. Exit 4 if the lease was lost.

    Example: aictl task complete 12 --lease 12:3:Xq7cWm2Pz --result "done" --evidence e.json
    """
    _holder_write(
        ctx,
        task_id,
        lease,
        "complete",
        json_output,
        quiet,
        result=result,
        evidence=_read_evidence(evidence),
    )


def _read_evidence(path: Path | None) -> Any:
    """The evidence file's JSON value. Strict JSON only: Python would read ``NaN``,
    ``Infinity`` and ``1e999`` as floats that SQLite's ``json_valid`` then refuses."""
    if path is None:
        return None
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as error:
        raise InvalidInput(f"cannot read evidence file {path}: {error.strerror}") from None
    except UnicodeDecodeError as error:
        raise InvalidInput(
            f"{path}: evidence is not UTF-8 text (byte {error.start + 1}: {error.reason})"
        ) from None
    try:
        return json.loads(text, parse_constant=_not_a_number, parse_float=_finite)
    except json.JSONDecodeError as error:
        raise InvalidInput(
            f"{path}:{error.lineno}:{error.colno}: evidence is not valid JSON: {error.msg}"
        ) from None
    except _NotStrictJson as error:
        raise InvalidInput(
            f"{path}: evidence is not valid JSON: {error} is not a JSON number",
            hint='write a number, or a string such as "NaN"',
        ) from None


class _NotStrictJson(ValueError):
    """A number JSON has no way to write (json.loads accepts them; SQLite does not)."""


def _not_a_number(text: str) -> Any:
    raise _NotStrictJson(text)


def _finite(text: str) -> float:
    value = float(text)
    if math.isinf(value):
        raise _NotStrictJson(text)
    return value


@app.command()
def fail(
    ctx: typer.Context,
    task_id: TaskId,
    lease: LeaseOption,
    reason: Annotated[str, typer.Option(help="Why it failed.")] = "failed",
    no_retry: Annotated[
        bool, typer.Option("--no-retry", help="Fail for good, even with attempts left.")
    ] = False,
    json_output: JsonOption = False,
    quiet: QuietOption = False,
) -> None:
    """Record a failure: the task is queued again while attempts remain, else it fails and
    blocks its dependents. Exit 4 if the lease was lost.

    Example: aictl task fail 12 --lease 12:3:Xq7cWm2Pz --reason "tests fail" --no-retry
    """
    _holder_write(
        ctx, task_id, lease, "fail", json_output, quiet, reason=reason, retry=not no_retry
    )


@app.command()
def release(
    ctx: typer.Context,
    task_id: TaskId,
    lease: LeaseOption,
    json_output: JsonOption = False,
    quiet: QuietOption = False,
) -> None:
    """Give a claimed task back to the queue without counting the attempt.

    Example: aictl task release 12 --lease 12:3:Xq7cWm2Pz
    """
    _holder_write(ctx, task_id, lease, "release", json_output, quiet)


@app.command()
def cancel(
    ctx: typer.Context,
    task_id: TaskId,
    reason: Annotated[str | None, typer.Option(help="Why it is cancelled.")] = None,
    json_output: JsonOption = False,
    quiet: QuietOption = False,
) -> None:
    """Cancel a task; its dependents become blocked and a holder's lease ends.

    Example: aictl task cancel 12 --reason "superseded by 14"
    """
    with task_service(ctx) as service:
        task = service.cancel(task_id, reason=reason)
    output.task(task, output.pick(json_output, quiet), headline=f"Task {task.id} is cancelled")


@app.command()
def retry(
    ctx: typer.Context, task_id: TaskId, json_output: JsonOption = False, quiet: QuietOption = False
) -> None:
    """Queue a failed or cancelled task again, with fresh attempts; unblocks its dependents.

    Example: aictl task retry 12
    """
    with task_service(ctx) as service:
        task = service.retry(task_id)
    output.task(task, output.pick(json_output, quiet), headline=f"Task {task.id} is {task.status}")


@app.command()
def approve(
    ctx: typer.Context, task_id: TaskId, json_output: JsonOption = False, quiet: QuietOption = False
) -> None:
    """Approve a task that policy sent to await approval; the approval is itself a recorded
    decision, which policy may deny (exit 3).

    Example: aictl task approve 12
    """
    with task_service(ctx) as service:
        task = service.approve(task_id)
    output.task(
        task, output.pick(json_output, quiet), headline=f"Task {task.id} approved: {task.status}"
    )


@app.command()
def reject(
    ctx: typer.Context,
    task_id: TaskId,
    reason: Annotated[str, typer.Option(help="Why (recorded).")] = "",
    json_output: JsonOption = False,
    quiet: QuietOption = False,
) -> None:
    """Reject a task awaiting approval: it is cancelled and its dependents blocked.

    Example: aictl task reject 12 --reason "migration not reviewed"
    """
    with task_service(ctx) as service:
        task = service.reject(task_id, reason=reason)
    output.task(task, output.pick(json_output, quiet), headline=f"Task {task.id} rejected")


@app.command()
def link(
    ctx: typer.Context,
    task_id: TaskId,
    depends_on: Annotated[
        list[int],
        typer.Argument(help="Tasks it must wait for.", parser=parse_task_id, metavar="ID..."),
    ],
    json_output: JsonOption = False,
    quiet: QuietOption = False,
) -> None:
    """Make a queued task depend on other tasks. A link that closes a cycle is refused, naming it.

    Example: aictl task link 12 10 11
    """
    with task_service(ctx) as service:
        task = service.link(task_id, depends_on)
    deps = ", ".join(map(str, task.depends_on))
    output.task(task, output.pick(json_output, quiet), headline=f"Task {task.id} depends on {deps}")


@app.command()
def unlink(
    ctx: typer.Context,
    task_id: TaskId,
    depends_on: Annotated[
        list[int],
        typer.Argument(help="Dependencies to remove.", parser=parse_task_id, metavar="ID..."),
    ],
    json_output: JsonOption = False,
    quiet: QuietOption = False,
) -> None:
    """Remove dependencies from a queued or blocked task.

    Example: aictl task unlink 12 10
    """
    with task_service(ctx) as service:
        task = service.unlink(task_id, depends_on)
    output.task(task, output.pick(json_output, quiet), headline=f"Task {task.id} is {task.status}")


@app.command()
def deps(
    ctx: typer.Context,
    task_id: TaskId,
    json_output: JsonOption = False,
    quiet: Annotated[
        bool, typer.Option("--quiet", "-q", help="Print the ids of the related tasks only.")
    ] = False,
) -> None:
    """Show what a task waits on (up the graph) and what waits on it (down); with -q, the
    ids of every task it waits on, directly or not, then those waiting on it.

    Example: aictl task deps 12
    """
    with task_service(ctx) as service:
        found = service.dependencies(task_id)
    from aictl.cli import graphs

    graphs.dependencies(found, output.pick(json_output, quiet))


class GraphFormat(StrEnum):
    tree = "tree"
    mermaid = "mermaid"
    dot = "dot"
    json = "json"


@app.command()
def graph(
    ctx: typer.Context,
    format: Annotated[
        GraphFormat,
        typer.Option("--format", help="tree, mermaid, dot, or json (the same as --json)."),
    ] = GraphFormat.tree,
    json_output: JsonOption = False,
    quiet: Annotated[
        bool, typer.Option("--quiet", "-q", help="Print task ids only, dependencies first.")
    ] = False,
) -> None:
    """Draw the whole dependency graph, dependencies before dependents.

    Example: aictl task graph --format mermaid > graph.mmd
    """
    with task_service(ctx) as service:
        tasks, edges, layers = service.graph()
    from aictl.cli import graphs

    chosen = "json" if json_output else "quiet" if quiet else format.value
    graphs.render(tasks, edges, layers, chosen)


@app.command()
def execute(
    ctx: typer.Context,
    task_id: Annotated[
        int | None,
        typer.Argument(
            help="A task id; default: the next ready task.", metavar="[ID]", parser=parse_task_id
        ),
    ] = None,
    ai: Annotated[
        str | None,
        typer.Option("--ai", help="A registered AI; default: the router's choice.", metavar="ID"),
    ] = None,
    timeout: Annotated[
        str | None,
        typer.Option(
            help="Longest the run may take, e.g. 10m (default: policy, else 5m).",
            metavar="DURATION",
        ),
    ] = None,
    json_output: JsonOption = False,
    quiet: QuietOption = False,
) -> None:
    """Run a task with an AI: claim, run its connector, gather evidence, run the tests, then
    complete or fail it. Progress goes to stderr. Exit 1 when the task failed for good, 6 when
    it failed and is queued again for a retry, 5 when no task or no AI is eligible, 3 when
    policy denies the execution. A retryable failure is queued again not before a backoff
    (`retry_backoff`, doubled per attempt, with jitter); `quarantine_after` failed runs in a
    row quarantine the AI.
    Ctrl-C stops the agent, releases the task and its locks at once (no attempt counted), keeps
    the evidence so far and exits 130; a second Ctrl-C aborts at once.

    Example: aictl task execute 12 --ai claude-1 --timeout 10m
    """
    from aictl.services.executor import Executor

    with task_service(ctx) as service, interrupt_cancels(threading.Event()) as cancel:
        done = Executor(service, progress=output.note).execute(
            task_id, ai=ai, timeout=timeout, cancel=cancel
        )
    if json_output:
        output.emit_json(done.to_dict())
    elif quiet:
        output.line(str(done.task.id))
    else:
        _execution_summary(done)
    if done.outcome == "released":
        output.note(f"Interrupted: task {done.task.id} was released, its evidence kept")
        raise typer.Exit(130)
    if done.outcome == "requeued":
        raise typer.Exit(REQUEUED)
    if done.outcome != "done":
        raise typer.Exit(1)


def _execution_summary(done: Any) -> None:
    output.line(f"Task {done.task.id} {done.outcome} (attempt {done.attempt}, AI {done.ai})")
    if done.reason:
        output.line(f"reason: {done.reason}")
    if done.task.not_before is not None and str(done.task.status) == "queued":
        output.line(f"retry not before: {output.when(done.task.not_before, zoned=True)}")
    if done.quarantined:
        output.line(f"AI {done.ai} is quarantined: `aictl ai status {done.ai} --set available`")
    _outside_changes(done.evidence)
    changed = done.evidence["files_changed"]
    output.line(f"files changed: {', '.join(changed) if changed else 'none'}")
    output.line(f"tests: {done.evidence['tests']['status']}")
    _integration(done.evidence)
    output.line(f"evidence: {done.evidence_path}")


def _integration(evidence: Any) -> None:
    """Where a worktree run's work went (nothing for a run in the shared tree)."""
    if evidence.get("isolation") != "worktree":
        return
    state = (evidence.get("integration") or {}).get("status") or "not integrated"
    commit = evidence.get("merge_commit") or evidence.get("task_commit")
    shown = f" ({str(commit)[:12]})" if commit else ""
    output.line(f"branch: {evidence.get('branch')} -> {evidence.get('target')}: {state}{shown}")


@app.command()
def integrate(
    ctx: typer.Context, task_id: TaskId, json_output: JsonOption = False, quiet: QuietOption = False
) -> None:
    """Integrate a task's committed worktree work into its target branch: after a refusal
    (your uncommitted edits on paths the merge touches, or a conflict), after a run killed
    while integrating (finished, never merged twice), or for a branch left by `integrate:
    branch`. The task is then done. Exit 1 when it is refused again (the reason says why), 4
    while a run of the task holds its lease, 2 when it has no committed work.

    Example: aictl task integrate 12
    """
    from aictl.services.worktrees import integrate_task

    with task_service(ctx) as service:
        done = integrate_task(service, task_id, progress=lambda text: typer.echo(text, err=True))
    if json_output:
        output.emit_json(done.to_dict())
    elif quiet:
        output.line(str(task_id))
    else:
        commit = done.record.merge_commit or done.record.task_commit or ""
        output.line(
            f"Task {task_id} {done.status}: {done.record.branch} -> {done.record.target}"
            + (f" ({commit[:12]})" if commit else "")
        )
        if done.reason:
            output.line(f"reason: {done.reason}")
    if done.status == "refused":
        raise typer.Exit(1)


@app.command()
def evidence(
    ctx: typer.Context,
    task_id: TaskId,
    attempt: Annotated[
        int | None,
        typer.Option(
            help="Which attempt; default: the latest with evidence.",
            parser=parse_count,
            metavar="N",
        ),
    ] = None,
    stat: Annotated[
        bool, typer.Option("--stat", help="Lines added and removed per file instead of the diff.")
    ] = False,
    json_output: JsonOption = False,
) -> None:
    """Show the evidence aictl stored for a task's execution (git changes, tests, agent run).
    The diff is coloured on a terminal (not in a pipe, nor under NO_COLOR).

    Example: aictl task evidence 12 --stat
    """
    import dataclasses

    from aictl.domain.budgets import format_usd
    from aictl.domain.diffs import diff_stat, stat_lines
    from aictl.services.executor import read_evidence

    with task_service(ctx) as service:
        chosen, data = read_evidence(service.workspace, task_id, attempt)
    changes = diff_stat(data.get("diff") or "") if stat else None
    if json_output:
        if changes is not None:
            data = {**data, "stat": [dataclasses.asdict(change) for change in changes]}
        output.emit_json(data)
        return
    agent = data.get("agent", {})
    tests = data.get("tests", {})
    _outside_changes(data)
    output.line(f"Task {task_id} attempt {chosen} by {data.get('ai')}")
    output.line(f"base commit: {data.get('base_commit') or 'none (not a git repository)'}")
    output.line(f"agent: {agent.get('status')} {agent.get('reason') or ''}".rstrip())
    cost = agent.get("total_cost_usd")
    output.line(
        f"turns: {agent.get('num_turns')}"
        f"  cost: {format_usd(cost) if isinstance(cost, (int, float)) else 'not reported'}"
        f"  session: {agent.get('session_id')}"
    )
    code = tests.get("exit_code")
    output.line(f"tests: {tests.get('status')}" + ("" if code is None else f" (exit {code})"))
    changed = data.get("files_changed") or []
    output.line(f"files changed: {', '.join(changed) if changed else 'none'}")
    if changes is not None:
        for line in stat_lines(changes):
            output.line(line)
    elif data.get("diff"):
        output.diff(data["diff"])


def _outside_changes(evidence: Any) -> None:
    """Changes outside the task's paths, first and in capitals (they fail the task under
    ``outside_changes: fail``), then those another task running at the time accounts for."""
    outside = evidence.get("changes_outside_paths") or []
    if outside:
        output.line(f"CHANGED OUTSIDE THE TASK'S PATHS ({len(outside)}): {', '.join(outside)}")
    others = evidence.get("changes_of_other_tasks") or {}
    if others:
        listed = ", ".join(
            f"{path} (task {', '.join(map(str, owners))})" for path, owners in others.items()
        )
        output.line(f"changes in paths of other tasks running at the time: {listed}")


# `task watch` lives in its own module (a live view); it is a task command all the same.
from aictl.cli.watch import watch as _watch  # noqa: E402

app.command("watch")(_watch)


# edit, comment and import live in their own module; importing it registers them on `app`
import aictl.cli.task_changes  # noqa: E402, F401
