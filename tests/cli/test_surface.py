"""One consistent CLI surface (issue 15): a walk over every leaf command of the CLI.

Each command is run with ``--help`` (a usage line, an example, placeholders in one style),
with ``--json`` (stdout is one JSON document whatever the exit code: the answer, or an error
object carrying the exit code and its meaning), with ``-q`` where it lists or returns ids,
and with a bad argument (exit 2, ``Error:`` on stderr, a JSON error object under ``--json``).
A new command must be added to ``SAMPLES`` or ``NOT_JSON`` below, or this test fails.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import typer.main

from aictl.cli import build
from aictl.errors import EXIT_CODES
from tests.cli.conftest import Result, installed


def _leaves(command: Any, path: tuple[str, ...]) -> Iterator[tuple[str, Any]]:
    children = getattr(command, "commands", None)
    if children is None:
        yield " ".join(path), command
        return
    for name in sorted(children):
        yield from _leaves(children[name], (*path, name))


LEAVES = dict(_leaves(typer.main.get_command(build()), ()))

#: A line of arguments for every command that answers in JSON, for a repository holding
#: task 1 (queued, paths src/**), task 2 (waits on 1), task 3 and the AI claude-1. Many
#: are refused (a bad lease, an unknown name): the error object is JSON all the same.
SAMPLES: dict[str, list[str]] = {
    "ai edit": ["claude-1", "--model", "opus"],
    "backup": ["{outside}/backup.db"],
    "prune": ["--dry-run"],
    "restore": ["{outside}/no-such-backup.db"],
    "task comment": ["1", "looks good"],
    "task edit": ["1", "--title", "renamed"],
    "task import": ["{outside}/no-such-file.yaml"],
    "ai label": ["claude-1", "team=web"],
    "ai list": [],
    "ai register": ["claude-2", "--connector", "claude-code", "--no-check"],
    "ai remove": ["nobody"],
    "ai show": ["claude-1"],
    "ai status": ["claude-1"],
    "audit checkpoint": ["--to", "{outside}/checkpoint.json"],
    "audit log": [],
    "audit verify": [],
    "version": [],
    "daemon status": [],
    "daemon stop": [],
    "doctor": [],
    "init": [],
    "lock check": ["src/a.py"],
    "lock list": [],
    "policy decisions": [],
    "policy explain": ["--task", "1", "--action", "claim"],
    "policy override list": [],
    "policy override set": ["lease_ttl", "30m"],
    "policy override unset": ["lease_ttl"],
    "policy show": [],
    "policy validate": [],
    "route explain": ["1"],
    "setup claude": ["--dry-run"],
    "skill add": ["{outside}/no-such-skill"],
    "skill disable": ["no-such-skill"],
    "skill enable": ["no-such-skill"],
    "skill list": [],
    "skill show": ["no-such-skill"],
    "skill test": ["no-such-skill"],
    "task approve": ["1"],
    "task cancel": ["3", "--reason", "not needed"],
    "task claim": ["--as", "worker-1"],
    "task complete": ["1", "--lease", "1:1:stale"],
    "task create": ["another"],
    "task deps": ["2"],
    "task evidence": ["1"],
    "task execute": ["999"],
    "task fail": ["1", "--lease", "1:1:stale"],
    "task graph": [],
    "task heartbeat": ["1", "--lease", "1:1:stale"],
    "task integrate": ["1"],
    "task link": ["3", "1"],
    "task list": [],
    "task reject": ["1"],
    "task release": ["1", "--lease", "1:1:stale"],
    "task retry": ["3"],
    "task show": ["1"],
    "task start": ["1", "--lease", "1:1:stale"],
    "task unlink": ["2", "1"],
    "task watch": ["--once"],
    "workflow approve": ["99", "review"],
    "workflow cancel": ["99"],
    "workflow create": ["--example", "implement-and-fix"],
    "workflow examples": [],
    "workflow execute": ["no-such-workflow"],
    "workflow list": [],
    "workflow resume": ["99"],
    "workflow show": ["no-such-workflow"],
    "workflow status": ["99"],
    "workflow suggest": [],
    "worktree list": [],
    "worktree prune": ["--dry-run"],
}

#: Commands whose stdout is not one JSON document, and why.
NOT_JSON = {
    "completion": "prints a shell script",
    "audit export": "always JSON Lines, one row per line",
    "daemon logs": "--json prints the log's JSON lines as written",
    "daemon start": "has --json; starting a daemon is covered by tests/cli/test_daemon_cli.py",
    "dashboard": "serves the dashboard until Ctrl-C",
    "hook pre-tool-use": "speaks Claude Code's hook protocol on stdin and stdout",
    "mcp serve": "speaks MCP on stdin and stdout",
    "prime": "text for an agent's context at the start of a session",
}

#: Commands whose answer is a report rather than ids, so ``-q`` has nothing to print.
NO_QUIET = {
    "audit checkpoint",
    "audit export",
    "audit verify",
    "completion",
    "daemon logs",
    "dashboard",
    "doctor",
    "hook pre-tool-use",
    "init",
    "lock check",
    "mcp serve",
    "policy explain",
    "policy show",
    "policy validate",
    "prime",
    "route explain",
    "setup claude",
    "skill show",
    "skill test",
    "task evidence",
    "task graph",
    "task watch",
    "version",
    "workflow show",
    "workflow suggest",
}

PLACEHOLDER = re.compile(r"\[?[A-Z][A-Z0-9]*(?:[-_=][A-Z0-9]+)*(?:\.\.\.)?\]?")
ISO_UTC = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z")
LOOKS_LIKE_TIME = re.compile(r"\d{4}-\d\d-\d\d[T ]\d\d:\d\d")


def test_every_command_is_walked() -> None:
    assert len(LEAVES) >= 65
    unknown = set(LEAVES) - set(SAMPLES) - set(NOT_JSON)
    assert not unknown, f"add these commands to SAMPLES or NOT_JSON: {sorted(unknown)}"
    assert not (set(SAMPLES) | set(NOT_JSON)) - set(LEAVES), "a listed command does not exist"


@pytest.mark.parametrize("name", sorted(LEAVES))
def test_help_has_usage_an_example_and_one_placeholder_style(
    name: str, aictl: Callable[..., Result]
) -> None:
    code, out, err = aictl(*name.split(), "--help")
    assert code == 0, err
    assert out.startswith(f"Usage: aictl {name} ")
    assert "Example: aictl" in out
    assert not re.search(r"<[\w ]+>|\{\w+\}", out), f"a type or internal name in:\n{out}"
    for param in LEAVES[name].params:
        if getattr(param, "is_flag", False) or param.name == "help":
            continue
        assert PLACEHOLDER.fullmatch(param.metavar or ""), f"{name}: {param.name} {param.metavar}"


def test_the_root_help_has_the_same_placeholders(aictl: Callable[..., Result]) -> None:
    code, out, _ = aictl("--help")
    assert code == 0 and "--db FILE" in out
    assert not re.search(r"<[\w ]+>|\{\w+\}", out)


def _opts(name: str) -> set[str]:
    return {opt for param in LEAVES[name].params for opt in param.opts}


@pytest.mark.parametrize("name", sorted(LEAVES))
def test_json_and_quiet_are_everywhere_they_apply(name: str) -> None:
    if name not in NOT_JSON:
        assert "--json" in _opts(name), f"{name} has no --json"
    if name not in NO_QUIET:
        assert {"-q", "--quiet"} <= _opts(name), f"{name} has no -q"


@pytest.fixture
def seeded(aictl: Callable[..., Result]) -> Callable[..., Result]:
    for line in (
        ["task", "create", "first", "--path", "src/**"],
        ["task", "create", "second", "--depends-on", "1"],
        ["task", "create", "third"],
        ["ai", "register", "claude-1", "--connector", "claude-code", "--no-check"],
    ):
        code, _, err = aictl(*line)
        assert code == 0, err
    return aictl


def _check_keys(value: Any, where: str) -> None:
    """The shared vocabulary of every JSON answer: ``task`` holds a task object (never an
    id: that is ``task_id``), and every time is ISO 8601 UTC."""
    if isinstance(value, dict):
        for key, item in value.items():
            assert key != "task" or item is None or isinstance(item, dict), f"{where}.{key}"
            if key != "resource":  # a decision record as audited: the policy's own words
                _check_keys(item, f"{where}.{key}")
    elif isinstance(value, list):
        for index, item in enumerate(value):
            _check_keys(item, f"{where}[{index}]")
    elif isinstance(value, str) and LOOKS_LIKE_TIME.match(value) and len(value) < 40:
        assert ISO_UTC.fullmatch(value), f"{where}: {value!r} is not ISO 8601 UTC"


@pytest.mark.parametrize("name", sorted(SAMPLES))
def test_json_answers_are_one_document_with_the_shared_keys(
    name: str, seeded: Callable[..., Result], tmp_path: Path
) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    args = [arg.replace("{outside}", str(outside)) for arg in SAMPLES[name]]
    code, out, err = seeded(*name.split(), *args, "--json")
    data = json.loads(out)
    if isinstance(data, dict) and "error" in data:
        assert data["exit_code"] == code != 0 and data["kind"] == EXIT_CODES[code].kind, out
        assert err.startswith("Error: ") and data["error"] in err
    _check_keys(data, name)


@pytest.mark.parametrize("name", sorted(set(LEAVES) - NO_QUIET - set(NOT_JSON)))
def test_quiet_prints_ids_only(name: str, seeded: Callable[..., Result], tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    args = [arg.replace("{outside}", str(outside)) for arg in SAMPLES[name]]
    _, out, err = seeded(*name.split(), *args, "-q")
    assert "No such option" not in err
    for line in out.splitlines():
        assert re.fullmatch(r"\S+", line), f"{name} -q printed {line!r}"


@pytest.mark.parametrize("name", sorted(LEAVES))
def test_a_bad_argument_exits_2_with_a_json_error(name: str, aictl: Callable[..., Result]) -> None:
    code, out, err = aictl(*name.split(), "--no-such-option")
    assert code == 2 and out == "" and "Error:" in err and "--no-such-option" in err
    if "--json" not in _opts(name):
        return
    code, out, err = aictl(*name.split(), "--json", "--no-such-option")
    assert code == 2 and "Error:" in err
    answer = json.loads(out)
    assert answer.pop("error").startswith("No such option: --no-such-option")
    assert answer == {
        "hint": f"`aictl {name} --help` shows the usage",
        "exit_code": 2,
        "kind": "invalid_input",
        "meaning": EXIT_CODES[2].meaning,
    }


@pytest.mark.parametrize(
    "line",
    [
        ["task", "show", "not-an-id"],
        ["task", "deps", "0"],
        ["route", "explain", "x"],
        ["workflow", "status", "-1"],
        ["task", "evidence", "1", "--attempt", "many"],
    ],
)
def test_a_bad_value_exits_2(line: list[str], aictl: Callable[..., Result]) -> None:
    code, out, err = aictl(*line, "--json")
    assert code == 2 and "Error:" in err
    assert json.loads(out)["kind"] == "invalid_input"


@pytest.mark.parametrize(
    ("line", "code", "message"),
    [
        (["policy", "decisions", "--effect", "bogus"], 2, "'bogus' is not one of: allow, deny"),
        (["policy", "decisions", "--action", "fly"], 2, "'fly' is not one of: create, claim"),
        (["task", "list", "--status", "bogus"], 2, "bogus"),
        (["ai", "list", "--status", "bogus"], 2, "bogus"),
        (["ai", "status", "claude-1", "--set", "busy"], 2, "busy"),
        (["task", "graph", "--format", "svg"], 2, "svg"),
        (["audit", "export", "--format", "csv"], 2, "csv"),
    ],
)
def test_every_option_with_a_vocabulary_refuses_an_unknown_value(
    line: list[str], code: int, message: str, seeded: Callable[..., Result]
) -> None:
    found, out, err = seeded(*line)
    assert (found, out) == (code, "") and message in err


def test_the_statuses_listed_in_help_are_the_vocabulary() -> None:
    from aictl.domain.ais import AIStatus
    from aictl.domain.tasks import Status

    for name, values in (("task list", Status), ("ai list", AIStatus)):
        (status,) = [param for param in LEAVES[name].params if param.name == "status"]
        assert all(value.value in (status.help or "") for value in values), name


def test_the_installed_aictl_answers_errors_in_json(tmp_path: Path) -> None:
    """Through the console script (aictl.entry), not only through run()."""
    outside = installed(tmp_path, "aictl", "task", "list", "--json")
    answer = json.loads(outside.stdout)
    assert outside.returncode == 2 == answer["exit_code"] and answer["kind"] == "invalid_input"
    assert answer["error"].startswith("not inside an aictl repository")
    assert outside.stderr.startswith("Error: not inside an aictl repository")
    usage = installed(tmp_path, "aictl", "task", "show", "twelve", "--json")
    assert (
        usage.returncode == 2 and "'twelve' is not a task id" in json.loads(usage.stdout)["error"]
    )
    plain = installed(tmp_path, "aictl", "task", "show", "twelve")
    assert plain.returncode == 2 and plain.stdout == "" and "Usage: aictl task show" in plain.stderr
