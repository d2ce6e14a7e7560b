"""`aictl skill`: the skills agents get for a task (list, show, add, enable, disable, test)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from aictl.cli import output
from aictl.cli.common import JsonOption, Typer, state

if TYPE_CHECKING:
    from aictl.services.skills import SkillService

app = Typer(help="Skills: reusable know-how given to agents for the tasks that need it.")

SkillName = Annotated[str, typer.Argument(help="The skill's name.", metavar="NAME")]
NameOnly = Annotated[bool, typer.Option("--quiet", "-q", help="Print the skill's name only.")]
AiOption = Annotated[
    str | None, typer.Option("--ai", help="For this AI (default: the whole project).", metavar="ID")
]


@contextmanager
def skill_service(ctx: typer.Context) -> Iterator[SkillService]:
    from aictl.services.skills import SkillService
    from aictl.workspace import locate

    service = SkillService(locate(state(ctx).db))
    try:
        yield service
    finally:
        service.close()


@app.command("list")
def list_(
    ctx: typer.Context,
    ai: AiOption = None,
    json_output: JsonOption = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="Print names only.")] = False,
) -> None:
    """List the skill versions the project (or one AI) can see, whether each is enabled there,
    and which shared ones an AI's own skill overrides.

    Example: aictl skill list --ai claude-1 --json
    """
    with skill_service(ctx) as service:
        rows = service.list_skills(ai)
        issues = service.registry().issues
    if json_output:
        output.emit_json(rows)
    elif quiet:
        for name in dict.fromkeys(row["name"] for row in rows):
            output.line(name)
    elif not rows:
        output.note("no skills (`aictl skill add PATH` adds one)")
    else:
        output.table(
            None,
            ["NAME", "VERSION", "SCOPE", "ENABLED", "FORMAT", "DESCRIPTION"],
            (
                (
                    row["name"],
                    row["version"],
                    (row["scope"] or "shared") + (" (overridden)" if row["overridden"] else ""),
                    "yes" if row["enabled"] else "no",
                    row["format"],
                    row["description"],
                )
                for row in rows
            ),
        )
    for issue in issues:
        output.note(f"warning: skipped an invalid skill: {issue}")


@app.command()
def show(
    ctx: typer.Context, name: SkillName, ai: AiOption = None, json_output: JsonOption = False
) -> None:
    """Show every version of a skill, where it is enabled, and the version (with what it
    requires) the project or an AI would get, with its instructions.

    Example: aictl skill show db-migrations --ai claude-1
    """
    with skill_service(ctx) as service:
        shown = service.show(name, ai)
    if json_output:
        output.emit_json(shown)
        return
    output.table(
        None,
        ["VERSION", "SCOPE", "FORMAT", "REQUIRES", "SCRIPT", "FOLDER"],
        (
            (
                item["version"],
                item["scope"] or "shared",
                item["format"],
                ", ".join(f"{k} {v}" for k, v in item["requires"].items()),
                " ".join(item["script"] or []),
                item["folder"],
            )
            for item in shown["versions"]
        ),
    )
    settings = ", ".join(
        f"{scope}: {'enabled' if on else 'disabled'}" for scope, on in shown["settings"].items()
    )
    output.line(f"settings: {settings or 'not enabled anywhere'}")
    if shown["resolved"]:
        output.line("resolves to: " + ", ".join(shown["resolved"]))
    for problem in shown["problems"]:
        output.line(f"problem: {problem}")
    for issue in shown["issues"]:
        output.line(
            f"invalid: {issue['file']}:{issue['line']}: {issue['field']}: {issue['message']}"
        )
    if shown["instructions"]:
        output.line("")
        output.line(shown["instructions"].rstrip())


@app.command()
def add(
    ctx: typer.Context,
    path: Annotated[Path, typer.Argument(help="A skill folder.", show_default=False)],
    ai: AiOption = None,
    replace: Annotated[
        bool, typer.Option("--replace", help="Overwrite the same version if present.")
    ] = False,
    json_output: JsonOption = False,
    quiet: NameOnly = False,
) -> None:
    """Validate a skill folder (aictl's skill.yaml or Claude Code's SKILL.md), copy it into
    .ai/skills/NAME/VERSION/ (or .ai/skills/AI/NAME/VERSION/ with --ai) and enable
    it there. Every validation error is reported at once and nothing is copied.

    Example: aictl skill add ~/skills/db-migrations --ai claude-1
    """
    with skill_service(ctx) as service:
        skill = service.add(path, ai_id=ai, replace=replace)
    if json_output:
        output.emit_json(skill.to_dict())
    elif quiet:
        output.line(skill.name)
    else:
        where = f" for {ai}" if ai else ""
        output.line(f"Added skill {skill.key}{where} (enabled)")


def _switch(enabled: bool, example: str) -> Callable[..., None]:
    """``skill enable`` or ``skill disable``: the same command but for the setting it writes."""
    verb = "Enable" if enabled else "Disable"

    def switch(
        ctx: typer.Context,
        name: SkillName,
        ai: AiOption = None,
        json_output: JsonOption = False,
        quiet: NameOnly = False,
    ) -> None:
        with skill_service(ctx) as service:
            (service.enable if enabled else service.disable)(name, ai)
        if json_output:
            output.emit_json({"name": name, "ai": ai, "enabled": enabled})
        elif quiet:
            output.line(name)
        else:
            output.line(f"{verb}d skill {name}" + (f" for {ai}" if ai else ""))

    switch.__doc__ = (
        f"{verb} a skill for the project, or for one AI (an AI's own setting wins).\n\n"
        f"Example: {example}"
    )
    return switch


app.command("enable")(_switch(True, "aictl skill enable db-migrations --ai claude-1"))
app.command("disable")(_switch(False, "aictl skill disable db-migrations --ai claude-2"))


@app.command()
def test(
    ctx: typer.Context, name: SkillName, ai: AiOption = None, json_output: JsonOption = False
) -> None:
    """Validate a skill, resolve what it requires, print exactly what an agent would receive,
    and run the skill's own checks (its script under policy, with each check's input).
    Exit 2 when the skill is invalid or does not resolve, 1 when a check fails.

    Example: aictl skill test db-migrations
    """
    with skill_service(ctx) as service:
        report = service.test(name, ai)
    if json_output:
        output.emit_json(report.to_dict())
    else:
        output.line("resolves to: " + ", ".join(skill.key for skill in report.chosen))
        output.line("--- what the agent receives (appended to its system prompt) ---")
        output.line(report.context.rstrip())
        output.line("---")
        if not report.checks:
            output.line("no checks")
        for check in report.checks:
            verdict = "pass" if check.passed else f"FAIL: {check.why}"
            output.line(f"check {check.name}: {verdict}")
    if not report.passed:
        raise typer.Exit(1)
