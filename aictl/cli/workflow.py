"""`aictl workflow`: register workflow definitions, run them, watch, resume and cancel runs."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from aictl.cli import output
from aictl.cli.common import JsonOption, QuietOption, Typer, parse_count, task_service

if TYPE_CHECKING:
    from aictl.services.workflows import RunReport, WorkflowService

app = Typer(help="Workflows: YAML graphs of steps run as tasks, with loops and gates.")

RunOnly = Annotated[bool, typer.Option("--quiet", "-q", help="Print the run id only.")]
RunId = Annotated[
    int,
    typer.Argument(help="The run id.", metavar="RUN", show_default=False, parser=parse_count),
]


@contextmanager
def workflow_service(ctx: typer.Context, *, progress: bool = False) -> Iterator[WorkflowService]:
    from aictl.services.workflows import WorkflowService

    with task_service(ctx) as service:
        yield WorkflowService(service, progress=output.note if progress else None)


@app.command()
def create(
    ctx: typer.Context,
    file: Annotated[
        Path | None,
        typer.Argument(help="A workflow YAML file.", metavar="FILE", show_default=False),
    ] = None,
    example: Annotated[
        str | None,
        typer.Option(
            "--example",
            metavar="NAME",
            help="Register a shipped example instead of a file (see `aictl workflow examples`).",
            show_default=False,
        ),
    ] = None,
    replace: Annotated[
        bool, typer.Option("--replace", help="Replace a workflow of the same name.")
    ] = False,
    json_output: JsonOption = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="Print the name only.")] = False,
) -> None:
    """Validate a workflow file (or a shipped example) and register it as
    .ai/workflows/NAME.yaml. Every error is reported at once with its file, line and field
    (exit 2); nothing is written then.

    Example: aictl workflow create --example implement-and-fix
    """
    from aictl.errors import InvalidInput

    if (file is None) == (example is None):
        raise InvalidInput(
            "give a workflow FILE or --example NAME (one of the two)",
            hint="aictl workflow examples lists the shipped examples",
        )
    if example is not None:
        from aictl.workflows.examples import path_of

        file = path_of(example)
    assert file is not None
    with workflow_service(ctx) as service:
        workflow = service.register(file, replace=replace)
    if json_output:
        output.emit_json(workflow.summary())
    elif quiet:
        output.line(workflow.name)
    else:
        output.line(f"Registered workflow {workflow.name} ({len(workflow.steps)} steps)")


@app.command("examples")
def examples(json_output: JsonOption = False, quiet: QuietOption = False) -> None:
    """List the example workflows shipped with aictl, usable from any repository with
    `aictl workflow create --example NAME`.

    Example: aictl workflow examples
    """
    from aictl.workflows.examples import names, path_of
    from aictl.workflows.loader import load

    found = [load(path_of(name)) for name in names()]
    if json_output:
        output.emit_json(
            [
                {"name": flow.name, "description": flow.description, "steps": len(flow.steps)}
                for flow in found
            ]
        )
    elif quiet:
        for flow in found:
            output.line(flow.name)
    else:
        output.table(
            None,
            ["NAME", "STEPS", "DESCRIPTION"],
            [[flow.name, str(len(flow.steps)), flow.description or ""] for flow in found],
        )


@app.command("list")
def list_workflows(
    ctx: typer.Context,
    runs: Annotated[bool, typer.Option("--runs", help="List runs instead of workflows.")] = False,
    json_output: JsonOption = False,
    quiet: QuietOption = False,
) -> None:
    """List the registered workflows (and whether each is valid), or their runs.

    Example: aictl workflow list --runs
    """
    fmt = output.pick(json_output, quiet)
    with workflow_service(ctx) as service:
        if runs:
            items = [run.to_dict() for run in service.runs()]
            if fmt is output.Format.JSON:
                output.emit_json(items)
            elif fmt is output.Format.QUIET:
                for item in items:
                    output.line(str(item["id"]))
            else:
                output.table(
                    "Workflow runs",
                    ["run", "workflow", "status", "reason", f"started ({output.zone()})"],
                    [
                        [
                            i["id"],
                            i["workflow"],
                            i["status"],
                            i["reason"] or "",
                            output.when(i["created_at"]),
                        ]
                        for i in items
                    ],
                )
            return
        found = service.definitions()
    rows = [
        {
            "name": name,
            "valid": loaded.ok,
            "steps": len(loaded.workflow.steps) if loaded.workflow else None,
            "description": loaded.workflow.description if loaded.workflow else "",
            "errors": [str(issue) for issue in loaded.issues if issue.is_error],
        }
        for name, loaded in found
    ]
    if fmt is output.Format.JSON:
        output.emit_json(rows)
    elif fmt is output.Format.QUIET:
        for row in rows:
            output.line(str(row["name"]))
    else:
        output.table(
            "Workflows",
            ["name", "valid", "steps", "description"],
            [
                [r["name"], "yes" if r["valid"] else "NO", r["steps"], r["description"]]
                for r in rows
            ],
        )


@app.command()
def show(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="A registered workflow.", show_default=False)],
    json_output: JsonOption = False,
) -> None:
    """Show a workflow's inputs and steps (needs, conditions, loops, gates).

    Example: aictl workflow show implement-and-fix
    """
    with workflow_service(ctx) as service:
        summary = service.get(name).summary()
    if json_output:
        output.emit_json(summary)
        return
    output.line(f"{summary['name']}: {summary['description']}")
    for item in summary["inputs"]:
        default = "required" if item["required"] else f"default {item['default']!r}"
        output.line(f"  input {item['name']} ({default}) {item['description']}")
    for line in _step_lines(summary["steps"], "  "):
        output.line(line)


def _step_lines(steps: list[dict[str, Any]], indent: str) -> Iterator[str]:
    for step in steps:
        extra = []
        if step["needs"]:
            extra.append("needs " + ", ".join(step["needs"]))
        if step.get("when"):
            extra.append(f"when {step['when']}")
        if step.get("approval"):
            extra.append("approval")
        if step.get("retry"):
            extra.append(f"retry {step['retry']}")
        if step["on_failure"] != "fail":
            extra.append(f"on failure {step['on_failure']}")
        head = f"{indent}{step['id']}: " + (step.get("title") or "loop")
        yield head + (f"  [{'; '.join(extra)}]" if extra else "")
        if "loop" in step:
            loop = step["loop"]
            yield f"{indent}  until {loop['until']} (at most {loop['max']} rounds)"
            yield from _step_lines(loop["steps"], indent + "    ")


def _report(report: RunReport, json_output: bool, quiet: bool = False) -> None:
    if json_output:
        output.emit_json(report.to_dict())
        return
    if quiet:
        output.line(str(report.run.id))
        return
    run = report.run
    state = run.status
    if report.driven is False and state == "running":
        state += " (no process drives it: `aictl workflow resume` continues it)"
    output.line(f"Run {run.id} of {run.workflow}: {state}")
    if run.reason:
        output.line(f"reason: {run.reason}")
    rows = []
    for record in report.steps:
        item = record.to_dict()
        name = item["step"] + (f"#{item['iteration']}" if item["iteration"] else "")
        why = item["outcome"].get("reason") or ""
        if item["decided"] and "values" in item["decided"]:
            why = f"{why} {output.compact(item['decided']['values'], 60)}".strip()
        rows.append(
            [
                name,
                item["status"],
                item["task_id"] or "",
                item["task_status"] or "",
                item["executions"],
                item["outcome"].get("tests") or "",
                why,
            ]
        )
    output.table(None, ["step", "status", "task", "task status", "runs", "tests", "why"], rows)


def _finish(report: RunReport, json_output: bool, quiet: bool) -> None:
    _report(report, json_output, quiet)
    if report.run.status == "failed":
        raise typer.Exit(1)


@app.command()
def execute(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="A registered workflow.", show_default=False)],
    input: Annotated[
        list[str] | None,
        typer.Option("--input", help="NAME=VALUE for a declared input.", metavar="NAME=VALUE"),
    ] = None,
    json_output: JsonOption = False,
    quiet: RunOnly = False,
) -> None:
    """Start a run and drive it until it ends or waits for an approval; progress goes to
    stderr. Exit 1 when the run failed.

    Example: aictl workflow execute implement-and-fix --input feature="a login page"
    """
    with workflow_service(ctx, progress=True) as service:
        report = service.execute(name, input or [])
    _finish(report, json_output, quiet)


@app.command()
def status(
    ctx: typer.Context, run_id: RunId, json_output: JsonOption = False, quiet: RunOnly = False
) -> None:
    """Show a run: its status, every step's record, and whether a process drives it.

    Example: aictl workflow status 3
    """
    with workflow_service(ctx) as service:
        report = service.report(run_id)
    _report(report, json_output, quiet)


@app.command()
def resume(
    ctx: typer.Context, run_id: RunId, json_output: JsonOption = False, quiet: RunOnly = False
) -> None:
    """Continue a run that was interrupted (even by SIGKILL) or that waited for an approval.
    Finished steps are not run again. Exit 4 when another process drives the run.

    Example: aictl workflow resume 3
    """
    with workflow_service(ctx, progress=True) as service:
        report = service.resume(run_id)
    _finish(report, json_output, quiet)


@app.command()
def cancel(
    ctx: typer.Context, run_id: RunId, json_output: JsonOption = False, quiet: RunOnly = False
) -> None:
    """Cancel a run and the unfinished tasks of its steps.

    Example: aictl workflow cancel 3
    """
    with workflow_service(ctx) as service:
        report = service.cancel(run_id)
    _report(report, json_output, quiet)


@app.command()
def approve(
    ctx: typer.Context,
    run_id: RunId,
    step: Annotated[
        str, typer.Argument(help="The gated step's id.", metavar="STEP", show_default=False)
    ],
    json_output: JsonOption = False,
    quiet: QuietOption = False,
) -> None:
    """Approve the task of a step with an approval gate (same as `aictl task approve` on it);
    then `aictl workflow resume RUN` continues the run.

    Example: aictl workflow approve 3 review
    """
    with workflow_service(ctx) as service:
        task = service.approve(run_id, step)
    output.task(
        task,
        output.pick(json_output, quiet),
        headline=f"Approved task {task.id} of step {step}; `aictl workflow resume {run_id}` next",
    )


@app.command()
def suggest(
    ctx: typer.Context,
    name: Annotated[str, typer.Option(help="The suggested workflow's name.")] = "suggested",
    json_output: JsonOption = False,
) -> None:
    """Propose a workflow from this repository's tasks, their dependency shapes, their
    failure and retry history, and the policy: YAML to stdout (`workflow create` accepts it),
    the reasons as comments at its top.

    Example: aictl workflow suggest > flow.yaml && aictl workflow create flow.yaml
    """
    from aictl.workflows.suggest import suggest as propose

    with task_service(ctx) as service:
        proposal = propose(service, name=name)
    if json_output:
        output.emit_json({"yaml": proposal.text, "reasons": proposal.reasons})
    else:
        output.line(proposal.text.rstrip("\n"))
