"""`aictl policy`: validate policy files, show the layers and the effective policy, explain a
decision without acting on it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from aictl.cli import output
from aictl.cli.common import JsonOption, Typer, parse_task_id, state, task_service
from aictl.errors import InvalidInput, NotInitialised

if TYPE_CHECKING:
    from aictl.policy import Explanation, Policy, PolicyIssue

app = Typer(help="Check the policy files, show the effective policy, explain decisions.")

HASH_WIDTH = 12


def _root(ctx: typer.Context) -> Path:
    """The repository root: where the state database is, else the enclosing git work tree
    (so that a fresh clone, whose state database is not committed, can be validated)."""
    from aictl.workspace import locate, repository_root

    try:
        return locate(state(ctx).db).root
    except NotInitialised:
        return repository_root(Path.cwd().resolve())


def _load(ctx: typer.Context, root: Path, ai: str | None) -> Policy:
    """The policy exactly as enforcement sees it: in an initialised repository the files plus
    the recorded overrides in force (so hashes match the decision records); else the files."""
    from aictl.workspace import locate

    try:
        locate(state(ctx).db)
    except NotInitialised:
        from aictl.policy import load_policy

        return load_policy(root, ai=ai)
    from aictl.cli.common import task_service

    with task_service(ctx) as service:
        return service.enforcer.policy(ai)


@app.command()
def validate(
    ctx: typer.Context,
    files: Annotated[
        list[Path] | None,
        typer.Argument(
            help="Policy files to check (default: every layer file of this repository).",
            show_default=False,
        ),
    ] = None,
    json_output: JsonOption = False,
) -> None:
    """Check policy files: YAML, structure, schema, and every rule condition; then warn about
    conflicting rules (with an example request), shadowed rules and, once an AI is
    registered, per-AI files and `ais:` keys naming an AI the registry does not know.

    Every problem of every file is reported, as FILE:LINE: error|warning: FIELD: message on
    stderr, followed by a summary on stdout. Exit 2 when any error, else 0 (warnings do not
    fail). Without FILE it checks the global, project and every per-AI file of the repository;
    with FILEs it also works outside an initialised repository (as a pre-commit hook).

    Example: aictl policy validate .ai/policy.yaml .ai/policies/claude-1.yaml
    """
    from aictl.policy import validate_files, validate_repository

    known_ais = _known_ais(ctx)
    if files:
        checked = [str(path) for path in files]
        issues = validate_files(files, known_ais=known_ais)
    else:
        checked, issues = validate_repository(_root(ctx), known_ais=known_ais)
    errors = sum(1 for issue in issues if issue.is_error)
    warnings = len(issues) - errors
    if json_output:
        output.emit_json(
            {
                "files": checked,
                "errors": errors,
                "warnings": warnings,
                "issues": [issue.to_dict() for issue in issues],
            }
        )
    else:
        for issue in issues:
            output.note(_issue_line(issue))
        output.line(_summary(checked, errors, warnings))
    if errors:
        raise typer.Exit(2)


def _known_ais(ctx: typer.Context) -> list[str] | None:
    """The registered AI ids, or ``None`` (skip the unknown-AI check) outside an initialised
    repository or while the registry is empty: before any AI is registered, every per-AI
    file would otherwise be reported as unknown."""
    from aictl.cli.ai import ai_service

    try:
        with ai_service(ctx) as service:
            ids = service.known_ids()
    except NotInitialised:
        return None
    return ids or None


def _issue_line(issue: PolicyIssue) -> str:
    where = f"{issue.file}:{issue.line}: {issue.severity}:"
    return f"{where} {issue.field}: {issue.message}" if issue.field else f"{where} {issue.message}"


def _plural(count: int, word: str) -> str:
    return f"{count} {word}{'' if count == 1 else 's'}"


def _summary(checked: list[str], errors: int, warnings: int) -> str:
    if not checked:
        return "no policy files found: everything is allowed (default allow, no rules)"
    files = _plural(len(checked), "policy file")
    if not errors and not warnings:
        return f"{files} checked: valid"
    verdict = "invalid" if errors else "valid"
    return f"{files} checked: {verdict}, {_plural(errors, 'error')}, {_plural(warnings, 'warning')}"


@app.command()
def show(
    ctx: typer.Context,
    ai: Annotated[
        str | None, typer.Option("--ai", help="Include this AI's per-AI layer.", metavar="ID")
    ] = None,
    effective: Annotated[
        bool,
        typer.Option("--effective", help="Also show the merged settings, per-AI settings, rules."),
    ] = False,
    json_output: JsonOption = False,
) -> None:
    """Show the policy layers (name, file, hash, rule count) and the effective policy's hash;
    with --effective, the merged result: default, settings, per-AI settings and every rule.

    Layers are global, project and (with --ai) the AI's own file; missing files are absent
    layers. An invalid file is an error listing every problem (exit 2).

    Example: aictl policy show --ai claude-1 --effective
    """
    from aictl.services.confinement import sandbox_mode

    policy = _load(ctx, _root(ctx), ai)
    sandbox = sandbox_mode(policy)
    if json_output:
        data = policy.to_dict()
        if not effective:
            data = {key: data[key] for key in ("ai", "hash", "layers", "default")}
        output.emit_json({**data, "sandbox": sandbox})
        return
    _layers_table(policy)
    set_here = "set by the policy" if policy.setting("sandbox") is not None else "the default"
    output.line(f"sandbox: {sandbox} ({set_here})")
    if not effective:
        return
    source = f"from the {policy.default_source} layer" if policy.default_source else "built in"
    output.line(f"\ndefault: {policy.default} ({source})")
    settings = list(_flatten(policy.settings))
    if settings:
        output.line()
        output.table("Settings", ["SETTING", "VALUE"], settings)
    rows = [
        (ai_id, key, value)
        for ai_id, values in policy.ais.items()
        for key, value in _flatten(values)
    ]
    if rows:
        output.line()
        output.table("Per-AI settings", ["AI", "SETTING", "VALUE"], rows)
    output.line()
    if not policy.rules:
        output.line("no rules: the default decides every action")
        return
    output.table(
        "Rules",
        ["RULE", "ACTIONS", "EFFECT", "WHEN", "REASON"],
        (
            (
                rule.qualified_id,
                ",".join(rule.actions),
                rule.effect,
                rule.when or "(always)",
                rule.reason,
            )
            for rule in policy.rules
        ),
    )


def _flatten(values: Any, prefix: str = "") -> list[tuple[str, str]]:
    rows: list[tuple[str, str]] = []
    for key, value in values.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            rows += _flatten(value, name + ".")
        else:
            rows.append((name, json.dumps(value) if not isinstance(value, str) else value))
    return rows


def _layers_table(policy: Policy) -> None:
    rows: list[tuple[str, str, str, str, str]] = [
        (
            layer.name,
            layer.path,
            layer.hash[:HASH_WIDTH],
            str(len(layer.rules)),
            layer.default or "",
        )
        for layer in policy.layers
    ]
    if policy.overrides_hash:
        rows.append(
            (
                "overrides",
                f"{len(policy.overrides)} set",
                policy.overrides_hash[:HASH_WIDTH],
                "",
                "",
            )
        )
    if not rows:
        output.note("no policy files: everything is allowed (default allow, no rules)")
    else:
        output.table(None, ["LAYER", "PATH", "HASH", "RULES", "DEFAULT"], rows)
    output.line(f"effective policy hash: {policy.hash}")


@app.command()
def explain(
    ctx: typer.Context,
    task_id: Annotated[
        int,
        typer.Option(
            "--task", help="The task the action is about.", metavar="ID", parser=parse_task_id
        ),
    ],
    action: Annotated[
        str,
        typer.Option(
            "--action", help="create, claim, execute, tool, approve or override.", metavar="ACTION"
        ),
    ],
    ai: Annotated[
        str | None, typer.Option("--ai", help="The AI that would act.", metavar="ID")
    ] = None,
    tool: Annotated[
        str | None,
        typer.Option("--tool", help="The tool called (for --action tool).", metavar="NAME"),
    ] = None,
    tool_input: Annotated[
        str | None,
        typer.Option("--input", help="The tool call's input, a JSON object.", metavar="JSON"),
    ] = None,
    json_output: JsonOption = False,
) -> None:
    """Evaluate the policy for an action without acting: show the layers with their hashes,
    every rule (matched, or why not: action not listed, condition false, condition error) and
    the outcome with the rule, or the default, that decided it.

    Exit 0 whatever the outcome: nothing is changed and nothing is recorded.

    Example: aictl policy explain --task 12 --ai claude-1 --action claim
    """
    from aictl.policy import build_request
    from aictl.policy import explain as explain_request

    arguments = _tool_input(tool_input)
    with task_service(ctx) as service:
        task = service.get(task_id)
        root = service.workspace.root
    policy = _load(ctx, root, ai)
    subject = {"id": ai, "labels": {}, "capabilities": []} if ai else None
    request = build_request(
        action, task=task, ai=subject, tool=tool, tool_input=arguments, root=root
    )
    explanation = explain_request(policy, request)
    if json_output:
        output.emit_json(
            {
                "request": request,
                "layers": [layer.to_dict() for layer in policy.layers],
                "policy_hash": policy.hash,
                **explanation.to_dict(),
            }
        )
        return
    _layers_table(policy)
    _explanation(explanation)


def _tool_input(text: str | None) -> dict[str, Any] | None:
    if text is None:
        return None
    try:
        value = json.loads(text)
    except json.JSONDecodeError as error:
        raise InvalidInput(
            f"--input is not valid JSON: {error.msg} at column {error.colno}",
            hint='pass a JSON object, for example --input \'{"file_path": "src/app.py"}\'',
        ) from None
    if not isinstance(value, dict):
        raise InvalidInput(
            f"--input must be a JSON object, not {type(value).__name__}",
            hint='pass a JSON object, for example --input \'{"command": "make test"}\'',
        )
    return value


def _explanation(explanation: Explanation) -> None:
    decision = explanation.decision
    output.line()
    if explanation.trace:
        rows = []
        for item in explanation.trace:
            result = item.outcome
            if item.error is not None:
                closed = "counts as matched" if item.counted_as_match else "counts as not matched"
                result = f"{item.outcome} (fail closed: {closed}): {item.error}"
            rows.append(
                (item.rule.qualified_id, ",".join(item.rule.actions), item.rule.effect, result)
            )
        output.table(None, ["RULE", "ACTIONS", "EFFECT", "RESULT"], rows)
    else:
        output.line("no rules")
    for warning in decision.warnings:
        output.note(f"warning: {warning.qualified_id}: {warning.reason}")
    if decision.default_applied:
        output.line(f"\noutcome: {decision.effect} by default ({decision.reason})")
    else:
        output.line(
            f"\noutcome: {decision.effect}, decided by {decision.decided_by}: {decision.reason}"
        )


# Decision records and overrides live in their own module; they are policy commands.
from aictl.cli import policy_records  # noqa: E402

app.command("decisions")(policy_records.decisions)
app.add_typer(policy_records.override_app, name="override")
