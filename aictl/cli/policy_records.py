"""`aictl policy decisions` and `aictl policy override`: the recorded side of the policy."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Annotated

import typer

from aictl.cli import output
from aictl.cli.common import JsonOption, QuietOption, Typer, one_of, parse_task_id, task_service
from aictl.errors import InvalidInput
from aictl.policy.vocabulary import ACTIONS, EFFECTS
from aictl.services.decisions import DecisionService

override_app = Typer(help="Recorded overrides applied on top of the policy files.")

AiOption = Annotated[str | None, typer.Option("--ai", help="Only for this AI.", metavar="ID")]


@contextmanager
def decision_service(ctx: typer.Context) -> Iterator[DecisionService]:
    with task_service(ctx) as tasks:
        yield DecisionService(tasks)


def decisions(
    ctx: typer.Context,
    task_id: Annotated[
        int | None,
        typer.Option("--task", help="Only this task.", parser=parse_task_id, metavar="ID"),
    ] = None,
    ai: Annotated[
        str | None, typer.Option("--ai", help="Only this subject (AI or user).", metavar="ID")
    ] = None,
    effect: Annotated[
        str | None,
        typer.Option(help="allow, deny or require_approval.", parser=one_of(EFFECTS)),
    ] = None,
    action: Annotated[
        str | None,
        typer.Option(
            help="create, claim, execute, tool, approve, override.", parser=one_of(ACTIONS)
        ),
    ] = None,
    json_output: JsonOption = False,
    quiet: QuietOption = False,
) -> None:
    """List policy decision records: what was decided, by which rules, under which policy.

    Example: aictl policy decisions --task 12 --json
    """
    with decision_service(ctx) as service:
        records = service.records(task_id=task_id, ai=ai, effect=effect, action=action)
    fmt = output.pick(json_output, quiet)
    if fmt is output.Format.JSON:
        output.emit_json([record.to_dict() for record in records])
    elif fmt is output.Format.QUIET:
        for record in records:
            output.line(record.id)
    elif not records:
        output.note("no decisions")
    else:
        output.table(
            None,
            [
                "ID",
                f"TIME ({output.zone()})",
                "ACTION",
                "SUBJECT",
                "TASK",
                "EFFECT",
                "RULES",
                "POLICY",
            ],
            (
                (
                    r.id,
                    output.when(r.at),
                    r.action,
                    r.subject,
                    r.task_id or "",
                    r.effect,
                    ", ".join(f"{x.get('layer', '')}:{x['id']}".lstrip(":") for x in r.rules)
                    or "(default)",
                    r.policy_hash[:12],
                )
                for r in records
            ),
        )


@override_app.command("set")
def set_(
    ctx: typer.Context,
    key: Annotated[str, typer.Argument(help="settings.NAME, ais.ID.NAME, or NAME.")],
    value: Annotated[str, typer.Argument(help="A YAML scalar or list: 15m, 30, [Read, Edit].")],
    reason: Annotated[str, typer.Option(help="Why (recorded).")] = "",
    ai: AiOption = None,
    expires: Annotated[
        str | None, typer.Option(help="Lapses after this long: 2h, 1d.", metavar="DURATION")
    ] = None,
    json_output: JsonOption = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="Print the key only.")] = False,
) -> None:
    """Override a policy setting, recorded as a decision; policy itself may deny it (exit 3).

    Example: aictl policy override set lease_ttl 30m --reason "long migration" --expires 1d
    """
    with decision_service(ctx) as service:
        override = service.set_override(key, value, ai=ai, reason=reason, expires=expires)
    if json_output:
        output.emit_json(override.to_dict())
    elif quiet:
        output.line(override.key)
    else:
        until = (
            f" until {output.when(override.expires_at, zoned=True)}" if override.expires_at else ""
        )
        output.line(f"override {override.key} = {override.value!r}{until}")


@override_app.command("list")
def list_(
    ctx: typer.Context,
    all_of_them: Annotated[bool, typer.Option("--all", help="Include expired ones.")] = False,
    json_output: JsonOption = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="Print keys only.")] = False,
) -> None:
    """List the overrides in force (or all of them).

    Example: aictl policy override list --json
    """
    with decision_service(ctx) as service:
        overrides = service.overrides(all_of_them=all_of_them)
    if json_output:
        output.emit_json([o.to_dict() for o in overrides])
    elif quiet:
        for item in overrides:
            output.line(item.key)
    elif not overrides:
        output.note("no overrides")
    else:
        output.table(
            None,
            ["KEY", "VALUE", "REASON", "SET BY", f"EXPIRES ({output.zone()})"],
            (
                (
                    o.key,
                    output.compact(o.value),
                    o.reason,
                    o.set_by,
                    output.when(o.expires_at) if o.expires_at else "never",
                )
                for o in overrides
            ),
        )


@override_app.command()
def unset(
    ctx: typer.Context,
    key: Annotated[str, typer.Argument(help="The key as it was set.")],
    reason: Annotated[str, typer.Option(help="Why (recorded).")] = "",
    ai: AiOption = None,
    json_output: JsonOption = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="Print the key only.")] = False,
) -> None:
    """Remove an override, recorded as a decision. Exit 2 if there is no such override.

    Example: aictl policy override unset lease_ttl --reason "migration done"
    """
    with decision_service(ctx) as service:
        removed = service.unset_override(key, ai=ai, reason=reason or "unset")
    if not removed:  # it existed when looked up, and was gone by the time of the delete
        raise InvalidInput(
            f"no override {key!r}" + (f" for {ai}" if ai else "") + ": it was removed meanwhile",
            hint="`aictl policy override list --all` shows the overrides there are",
        )
    if json_output:
        output.emit_json({"key": key, "ai": ai, "removed": True})
    else:
        output.line(key if quiet else f"override {key} removed")
