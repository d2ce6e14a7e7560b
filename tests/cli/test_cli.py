"""The CLI through `run()`: output forms, exit codes, and "bad input changes nothing"."""

from __future__ import annotations

import json
import re
import sqlite3
from collections.abc import Callable
from pathlib import Path

import pytest
import typer

from aictl.cli import run
from aictl.workspace import Workspace
from tests.cli.conftest import Result


def dump(workspace: Workspace) -> list[tuple[object, ...]]:
    with sqlite3.connect(workspace.db_path) as connection:
        rows = []
        for table in ("tasks", "task_deps", "path_locks"):
            rows += [(table, *r) for r in connection.execute(f"SELECT * FROM {table} ORDER BY 1")]
    connection.close()
    return rows


def test_create_prints_the_task_in_three_forms(aictl: Callable[..., Result]) -> None:
    code, out, _ = aictl(
        "task",
        "create",
        "Add login",
        "--path",
        "src/api/**",
        "--label",
        "area=api",
        "--requires",
        "python",
        "--priority",
        "3",
        "--json",
    )
    assert code == 0
    task = json.loads(out)
    assert (task["id"], task["title"], task["status"]) == (1, "Add login", "queued")
    assert (task["paths"], task["labels"], task["requires"]) == (
        ["src/api/**"],
        {"area": "api"},
        ["python"],
    )
    assert aictl("task", "create", "Second", "-q")[1] == "2\n"
    code, out, _ = aictl("task", "create", "Third", "--depends-on", "1")
    assert (code, out) == (0, "Created task 3 (queued)\n")


def test_list_forms_and_filters(aictl: Callable[..., Result]) -> None:
    aictl("task", "create", "api", "--label", "area=api")
    aictl("task", "create", "web", "--label", "area=web", "--depends-on", "1")
    code, out, _ = aictl("task", "list", "--json")
    tasks = json.loads(out)
    assert code == 0 and [t["id"] for t in tasks] == [1, 2]
    assert set(tasks[0]) >= {
        "id",
        "title",
        "status",
        "priority",
        "labels",
        "paths",
        "depends_on",
        "lease_holder",
        "lease_epoch",
        "lease_expires_at",
    }
    assert aictl("task", "list", "-q", "--ready")[1] == "1\n"
    assert aictl("task", "list", "-q", "--label", "area=web")[1] == "2\n"
    assert aictl("task", "list", "-q", "--status", "done")[1] == ""
    code, out, _ = aictl("task", "list")
    assert code == 0 and "STATUS" in out and "api" in out and "area=web" in out


def test_full_lifecycle_through_the_cli(aictl: Callable[..., Result], tmp_path: Path) -> None:
    aictl("task", "create", "t", "--path", "src/**")
    code, out, _ = aictl("task", "claim", "--as", "w1", "--ttl", "5m", "--json")
    claim = json.loads(out)
    token = claim["lease_token"]
    assert code == 0 and token.startswith("1:1:") and claim["task"]["status"] == "claimed"
    assert aictl("task", "heartbeat", "1", "--lease", token, "-q") == (0, "1\n", "")
    code, out, _ = aictl("task", "start", "1", "--lease", token)
    assert code == 0 and out.startswith("Task 1 is running")
    code, out, _ = aictl("lock", "list", "--json")
    assert [(lock["task_id"], lock["glob"], lock["holder"]) for lock in json.loads(out)] == [
        (1, "src/**", "w1")
    ]
    evidence = tmp_path / "evidence.json"
    evidence.write_text(json.dumps({"files_changed": ["src/a.py"]}))
    code, out, _ = aictl(
        "task",
        "complete",
        "1",
        "--lease",
        token,
        "--result",
        "did it",
        "--evidence",
        str(evidence),
        "--json",
    )
    done = json.loads(out)
    assert code == 0 and done["status"] == "done" and done["result"] == "did it"
    assert done["evidence"] == {"files_changed": ["src/a.py"]}
    assert aictl("lock", "list", "-q")[1] == ""


def test_claim_quiet_prints_only_the_token(aictl: Callable[..., Result]) -> None:
    aictl("task", "create", "t")
    code, out, err = aictl("task", "claim", "--as", "w", "-q")
    assert (code, err) == (0, "") and re.fullmatch(r"1:1:[A-Za-z0-9_-]{24}\n", out)


def test_a_token_without_its_secret_is_refused_with_exit_4(
    aictl: Callable[..., Result], workspace: Workspace
) -> None:
    """The guessable `TASK:EPOCH` form, and a right-looking token with a made-up secret."""
    aictl("task", "create", "t")
    aictl("task", "claim", "--as", "w", "-q")
    before = dump(workspace)
    for lease in ("1:1", "1:1:madeup"):
        for verb in ("heartbeat", "start", "release"):
            code, _, err = aictl("task", verb, "1", "--lease", lease)
            assert code == 4 and "secret" in err, err
    assert dump(workspace) == before


def test_init_twice_changes_nothing(aictl: Callable[..., Result], workspace: Workspace) -> None:
    policy = workspace.state_dir / "policy.yaml"
    policy.write_text("# edited by the user\nversion: 1\n")
    aictl("task", "create", "keep me")
    code, out, _ = aictl("init")
    assert code == 0 and "nothing changed" in out
    assert policy.read_text() == "# edited by the user\nversion: 1\n"
    assert aictl("task", "list", "-q")[1] == "1\n"


def test_init_creates_state_at_the_repository_root(
    repo: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    nested = repo / "src" / "deep"
    nested.mkdir(parents=True)
    monkeypatch.chdir(nested)
    assert run(["init", "--json"]) == 0
    created = json.loads(capsys.readouterr().out)
    assert created["root"] == str(repo.resolve())
    assert set(created["created"]) == {".ai/", ".ai/policy.yaml", ".ai/.gitignore", ".ai/state.db"}
    assert (repo / ".ai" / "state.db").is_file()
    # any command run below the root finds the state by walking up
    assert run(["task", "create", "found", "-q"]) == 0
    assert capsys.readouterr().out == "1\n"


def test_init_outside_a_git_repository_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Evidence comes from git: without a repository aictl could not tell what an agent did."""
    bare = tmp_path / "not-a-repo"
    (bare / ".git").mkdir(parents=True)  # an empty folder named .git is not a repository
    monkeypatch.chdir(bare)
    assert run(["init"]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"Error: {bare.resolve()} is not inside a git repository")
    assert "git init" in err
    assert not (bare / ".ai").exists()


def test_init_in_a_linked_worktree_finds_its_root(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A linked worktree (or a submodule) has a `.git` file pointing at its git directory."""
    tree = tmp_path / "tree"
    (tree / "sub").mkdir(parents=True)
    (tree / ".git").write_text("gitdir: /somewhere/.git/worktrees/tree\n")
    monkeypatch.chdir(tree / "sub")
    assert run(["init", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["root"] == str(tree.resolve())


def test_outside_a_repository_says_to_run_init(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("AICTL_DB", raising=False)
    assert run(["task", "list"]) == 2
    err = capsys.readouterr().err
    assert "Error: not inside an aictl repository" in err and "aictl init" in err


def test_db_option_and_environment_override(
    workspace: Workspace,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    assert run(["--db", str(workspace.db_path), "task", "create", "via flag", "-q"]) == 0
    monkeypatch.setenv("AICTL_DB", str(workspace.db_path))
    assert run(["task", "list", "-q"]) == 0
    assert capsys.readouterr().out == "1\n1\n"
    monkeypatch.setenv("AICTL_DB", str(tmp_path / "missing.db"))
    assert run(["task", "list"]) == 2
    assert "no state database at" in capsys.readouterr().err


# ------------------------------------------------------------- the exit codes

BAD_INPUTS = [
    (["task", "create", "x", "--path", "../outside"], "'../outside': it is outside the repository"),
    (["task", "create", "x", "--path", "/etc/passwd"], "/etc/passwd"),
    (["task", "create", "x", "--path", "src/\x00"], "NUL"),
    (
        ["task", "create", "x", "--path", "a/" * 600],
        "1,200 characters long, over the limit of 1,024",
    ),
    (
        ["task", "create", "x", "--path", "src/" + "x" * 256],
        "256 characters long, over the limit of 255",
    ),
    (["task", "create", "x", "--label", "novalue"], "invalid label 'novalue'"),
    (["task", "create", "x", "--depends-on", "99"], "unknown task id(s): 99"),
    (["task", "create", " "], "needs a title"),
    (["task", "create", "x", "--max-attempts", "0"], "--max-attempts"),
    (["task", "create", "x", "--type", "bad type"], "invalid task type"),
    (["task", "claim", "--as", "w", "--ttl", "soon"], "invalid --ttl 'soon'"),
    (["task", "claim", "--as", "w", "--ttl", "-5s"], "invalid --ttl"),
    (["task", "claim", "--as", "w", "--ttl", "10"], "needs a unit\nHint: 10s? 10m?"),
    (["task", "heartbeat", "1", "--lease", "1:1:x", "--ttl", "10"], "invalid --ttl '10'"),
    (["daemon", "stop", "--timeout", "60"], "invalid --timeout '60': a duration needs a unit"),
    (["daemon", "start", "--grace", "30"], "invalid --grace '30': a duration needs a unit"),
    (["task", "claim", "--as", "bad holder!"], "invalid holder"),
    (["task", "show", "abc"], "abc"),
    (["task", "show", "42"], "no task 42"),
    (["task", "heartbeat", "1", "--lease", "nonsense"], "invalid lease token"),
    (["task", "heartbeat", "1", "--lease", "2:1:x"], "belongs to task 2"),
    (["task", "list", "--status", "weird"], "unknown status 'weird'"),
    (["task", "retry", "1"], "cannot retry a queued task"),
    (["task", "link", "1", "1"], "dependency cycle: 1 -> 1"),
    (["task", "create", "p", "--priority", "99999999999999999999"], "invalid --priority 9999"),
    (["task", "create", "p", "--priority", "-1000001"], "invalid --priority -1000001"),
    (["task", "create", "x", "--max-attempts", "99999999999999999999"], "invalid --max-attempts"),
    # A byte that is not UTF-8 in argv arrives as a lone surrogate.
    (["task", "create", "\udcff"], "invalid title '\\udcff'"),
    (["task", "create", "x", "--description", "a\udcff"], "invalid description"),
    (["task", "create", "x", "--label", "k=\udcff"], "invalid label 'k=\\udcff'"),
    (["task", "create", "x", "--path", "src/\udcff"], "invalid path"),
    (["task", "cancel", "1", "--reason", "\udcff"], "invalid reason"),
    (["task", "claim", "--as", "w", "--ttl", "9999999d"], "'9999999d': at most 365 days"),
    (["task", "claim", "--as", "w", "--ttl", "0.0000001s"], "'0.0000001s': at least 1ms"),
    (["audit", "log", "--kind", "\udcff"], "invalid --kind"),
    (["policy", "decisions", "--ai", "\udcff"], "invalid --ai"),
    (["task", "nonsense"], "No such command"),
    (["task", "create"], "Missing argument"),
]


@pytest.mark.parametrize(("args", "message"), BAD_INPUTS)
def test_bad_input_exits_2_names_the_problem_and_changes_nothing(
    aictl: Callable[..., Result], workspace: Workspace, args: list[str], message: str
) -> None:
    aictl("task", "create", "existing", "--path", "src/**")
    before = dump(workspace)
    code, out, err = aictl(*args)
    assert code == 2, err
    assert message in err
    assert "Traceback" not in err and out == ""
    assert dump(workspace) == before


def test_cycle_through_the_cli_names_the_whole_cycle(aictl: Callable[..., Result]) -> None:
    aictl("task", "create", "a")
    aictl("task", "create", "b", "--depends-on", "1")
    aictl("task", "create", "c", "--depends-on", "2")
    code, _, err = aictl("task", "link", "1", "3")
    assert code == 2 and "dependency cycle: 1 -> 3 -> 2 -> 1" in err


def test_contention_exits_4(aictl: Callable[..., Result], workspace: Workspace) -> None:
    aictl("task", "create", "a", "--path", "src/*/a.py")
    aictl("task", "create", "b", "--path", "src/x/*.py")
    token = aictl("task", "claim", "1", "--as", "w1", "-q")[1].strip()
    code, _, err = aictl("task", "claim", "1", "--as", "w2")
    assert code == 4 and "claimed by w1" in err
    code, _, err = aictl("task", "claim", "2", "--as", "w2")
    assert code == 4 and "held by task 1" in err and "src/x/a.py" in err
    code, out, _ = aictl("lock", "check", "src/x/*.py", "docs/**")
    assert code == 4 and "src/x/*.py conflicts with src/*/a.py held by task 1 (w1)" in out
    assert aictl("lock", "check", "docs/**")[0] == 0
    aictl("task", "release", "1", "--lease", token)
    before = dump(workspace)
    code, _, err = aictl("task", "start", "1", "--lease", token)
    assert code == 4 and "Error: lease 1:1 is no longer valid: task 1 is queued" in err
    assert dump(workspace) == before


def test_nothing_ready_exits_5_with_the_reason(aictl: Callable[..., Result]) -> None:
    code, _, err = aictl("task", "claim", "--as", "w")
    assert code == 5 and "the queue is empty" in err
    aictl("task", "create", "a")
    aictl("task", "create", "b", "--depends-on", "1")
    aictl("task", "claim", "--as", "w")
    code, _, err = aictl("task", "claim", "--as", "w")
    assert code == 5 and "wait on dependencies" in err


def test_fail_cancel_retry_and_blocking(aictl: Callable[..., Result]) -> None:
    aictl("task", "create", "a")
    aictl("task", "create", "b", "--depends-on", "1")
    token = aictl("task", "claim", "--as", "w", "-q")[1].strip()
    code, out, _ = aictl(
        "task", "fail", "1", "--lease", token, "--reason", "broken", "--no-retry", "--json"
    )
    assert code == 0 and json.loads(out)["failure_reason"] == "broken"
    blocked = json.loads(aictl("task", "show", "2", "--json")[1])
    assert (blocked["status"], blocked["blocked_reason"]) == ("blocked", "dependency 1 is failed")
    assert aictl("task", "retry", "1")[1] == "Task 1 is queued\n"
    assert json.loads(aictl("task", "show", "2", "--json")[1])["status"] == "queued"
    assert aictl("task", "cancel", "2", "--reason", "dropped")[0] == 0
    assert aictl("task", "cancel", "2")[0] == 2


def test_evidence_file_errors_name_the_file(
    aictl: Callable[..., Result], tmp_path: Path, workspace: Workspace
) -> None:
    aictl("task", "create", "t")
    token = aictl("task", "claim", "--as", "w", "-q")[1].strip()
    aictl("task", "start", "1", "--lease", token)
    broken = tmp_path / "broken.json"
    broken.write_text('{"a": 1,\n  oops}')
    before = dump(workspace)
    code, _, err = aictl("task", "complete", "1", "--lease", token, "--evidence", str(broken))
    assert code == 2 and f"{broken}:2:3: evidence is not valid JSON" in err
    code, _, err = aictl("task", "complete", "1", "--lease", token, "--evidence", "missing.json")
    assert code == 2 and "cannot read evidence file missing.json" in err
    listing = tmp_path / "list.json"
    listing.write_text("[1, 2]")
    code, _, err = aictl("task", "complete", "1", "--lease", token, "--evidence", str(listing))
    assert code == 2 and "evidence must be a JSON object" in err
    assert dump(workspace) == before


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ('{"x": NaN}', "evidence is not valid JSON: NaN is not a JSON number"),
        ('{"x": [-Infinity]}', "evidence is not valid JSON: -Infinity is not a JSON number"),
        ('{"x": 1e999}', "evidence is not valid JSON: 1e999 is not a JSON number"),
        (b'{"x": "\xff"}', "evidence is not UTF-8 text (byte 8"),
        ('{"x": "\\ud800"}', "invalid evidence.x '\\ud800'"),
    ],
)
def test_evidence_that_sqlite_would_refuse_is_invalid_input(
    aictl: Callable[..., Result],
    tmp_path: Path,
    workspace: Workspace,
    content: str | bytes,
    message: str,
) -> None:
    aictl("task", "create", "t")
    token = aictl("task", "claim", "--as", "w", "-q")[1].strip()
    aictl("task", "start", "1", "--lease", token)
    evidence = tmp_path / "evidence.json"
    if isinstance(content, bytes):
        evidence.write_bytes(content)
    else:
        evidence.write_text(content)
    before = dump(workspace)
    code, _, err = aictl("task", "complete", "1", "--lease", token, "--evidence", str(evidence))
    assert code == 2, err
    assert message in err and (str(evidence) in err or "evidence.x" in err)
    assert dump(workspace) == before


def test_holder_text_and_actor_that_is_not_utf8(
    aictl: Callable[..., Result], workspace: Workspace, monkeypatch: pytest.MonkeyPatch
) -> None:
    aictl("task", "create", "t")
    token = aictl("task", "claim", "--as", "w", "-q")[1].strip()
    aictl("task", "start", "1", "--lease", token)
    before = dump(workspace)
    code, _, err = aictl("task", "complete", "1", "--lease", token, "--result", "ok\udcff")
    assert code == 2 and "invalid result 'ok\\udcff'" in err
    code, _, err = aictl("task", "fail", "1", "--lease", token, "--reason", "\udcff")
    assert code == 2 and "invalid reason" in err
    monkeypatch.setenv("AICTL_ACTOR", "ops\udcff")
    code, _, err = aictl("task", "create", "u")
    assert code == 2 and "invalid AICTL_ACTOR 'ops\\udcff'" in err
    assert dump(workspace) == before


def test_deps_and_graph_renderings(aictl: Callable[..., Result]) -> None:
    aictl("task", "create", "root")
    aictl("task", "create", "left", "--depends-on", "1")
    aictl("task", "create", "right", "--depends-on", "1")
    aictl("task", "create", 'join "q"', "--depends-on", "2", "--depends-on", "3")
    code, out, _ = aictl("task", "deps", "2")
    assert code == 0
    assert out.splitlines() == [
        "2 left [queued]",
        "waits on:",
        "  └── 1 root [queued]",
        "needed by:",
        '  └── 4 join "q" [queued]',
    ]
    deps = json.loads(aictl("task", "deps", "4", "--json")[1])
    assert {(e["task_id"], e["depends_on"]) for e in deps["upstream"]} == {
        (4, 2),
        (4, 3),
        (2, 1),
        (3, 1),
    }
    tree = aictl("task", "graph")[1].splitlines()
    assert tree[0] == "layer 0" and tree[-1] == '  4 join "q" [queued]  <- 2, 3'
    mermaid = aictl("task", "graph", "--format", "mermaid")[1]
    assert mermaid.startswith("graph TD\n") and "t1 --> t2" in mermaid
    assert 't4["4 join \\"q\\" [queued]"]' in mermaid
    dot = aictl("task", "graph", "--format", "dot")[1]
    assert dot.startswith("digraph tasks {") and "t3 -> t4;" in dot
    graph = json.loads(aictl("task", "graph", "--format", "json")[1])
    assert graph["layers"] == [[1], [2, 3], [4]]
    assert aictl("task", "graph", "--format", "png")[0] == 2


def test_show_renders_every_set_field(aictl: Callable[..., Result]) -> None:
    aictl("task", "create", "t", "--description", "details", "--label", "k=v")
    code, out, _ = aictl("task", "show", "1")
    assert code == 0
    for text in ("details", "k=v", "0 of 3", "queued"):
        assert text in out


def test_internal_errors_are_reported_as_bugs_with_exit_1(
    aictl: Callable[..., Result], monkeypatch: pytest.MonkeyPatch
) -> None:
    def explode(*args: object, **kwargs: object) -> None:
        raise RuntimeError("boom")

    monkeypatch.setattr("aictl.services.tasks.TaskService.list_tasks", explode)
    code, _, err = aictl("task", "list")
    assert code == 1 and "internal error: RuntimeError: boom" in err and "AICTL_DEBUG" in err
    monkeypatch.setenv("AICTL_DEBUG", "1")
    with pytest.raises(RuntimeError, match="boom"):
        run(["task", "list"])


def test_interrupt_exits_130(aictl: Callable[..., Result], monkeypatch: pytest.MonkeyPatch) -> None:
    def interrupt(*args: object, **kwargs: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr("aictl.services.tasks.TaskService.list_tasks", interrupt)
    assert aictl("task", "list")[0] == 130


def test_help_and_no_arguments(aictl: Callable[..., Result]) -> None:
    code, out, _ = aictl("--help")
    assert code == 0 and "task" in out and "lock" in out
    code, out, _ = aictl("task", "claim", "--help")
    assert code == 0 and "Example: aictl task claim" in out


def test_a_command_line_builds_only_the_command_it_names(aictl: Callable[..., Result]) -> None:
    """Typer converts each command before parsing, so `aictl task list` builds the task group
    with `list` alone; a group's help, a typo and a subgroup still see every command."""
    from aictl import cli

    def commands(app: typer.Typer) -> set[str | None]:
        (group,) = [info.typer_instance for info in app.registered_groups]
        assert group is not None
        return {cli._command_name(info) for info in group.registered_commands}

    assert commands(cli.build(*cli._named(["--db", "x.db", "task", "list", "--json"]))) == {"list"}
    every = commands(cli.build("task"))
    assert {"list", "create", "execute", "watch"} <= every
    assert commands(cli.build(*cli._named(["task", "--help"]))) == every
    assert commands(cli.build(*cli._named(["task", "lst"]))) == every
    assert cli._named(["init"]) == (None, None) and cli._named(["--version"]) == (None, None)
    assert cli._named(["policy", "override", "set"]) == ("policy", "override")

    code, out, _ = aictl("task", "--help")
    assert code == 0 and "execute" in out and "watch" in out
    code, _, err = aictl("task", "lst")
    assert code == 2 and "No such command 'lst'" in err
    code, out, _ = aictl("task", "execute", "--help")
    assert code == 0 and "aictl task execute" in out
    code, out, _ = aictl("policy", "override", "list")
    assert code == 0
    code, out, _ = aictl("--db", ".ai/state.db", "task", "list", "--json")
    assert code == 0 and out.strip() == "[]"
