"""The fast path of ``task list`` and ``task create`` (``aictl.cli.fast``) answers exactly as
the full CLI does: each command line runs the console script's way (the fast path, then the
full CLI when it declines) in one repository and through the full CLI alone in its twin, and
the exit codes, stdout and stderr must be the same."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

import pytest

from aictl.cli import fast, output, run
from aictl.services.tasks import TaskService
from aictl.workspace import Workspace, initialise
from tests.gitrepo import git_init

Result = tuple[int, str, str]
_TIME = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z")

#: (command line, answered by the fast path itself). Run in this order, in both repositories.
LINES: list[tuple[list[str], bool]] = [
    (["task", "list"], True),
    (["task", "list", "--json"], True),
    (["task", "list", "-q"], True),
    (["task", "list", "--quiet", "--ready"], True),
    (["task", "list", "--status", "queued", "--status=claimed", "--json"], True),
    (["task", "list", "--label", "area=api", "-q"], True),
    (["task", "list", "--label=area=web", "--json", "--json"], True),
    (["task", "list", "--ready", "--label", "area=api", "--status", "queued", "-q"], True),
    (["--db", ".ai/state.db", "task", "list", "-q"], True),
    (["--db=.ai/state.db", "task", "list", "--json"], True),
    (["task", "create", "Add login", "--path", "src/api/**", "--label", "area=api",
      "--requires", "python", "--priority", "3", "--json"], True),
    (["task", "create", "Second", "-q"], True),
    (["task", "create", "Third", "--depends-on", "1"], True),
    (["task", "create", "--priority=-2", "Fourth", "--description", "d", "--type", "bug",
      "--max-attempts", "5", "--quiet"], True),
    (["task", "create", "Many", "--depends-on", "1", "--depends-on=2", "--path", "a/**",
      "--path", "b/**", "--label", "k=v", "--requires", "go", "--requires", "c", "--json"], True),
    (["task", "create", "Negative", "--priority", "-5"], True),
    (["task", "create", "-"], True),
    (["task", "create", "--json", "--", "-dash"], False),
    (["task", "list"], True),
    # declined by the parser: the full CLI answers
    (["task", "list", "extra"], False),
    (["task", "list", "--help"], False),
    (["task", "list", "--status"], False),
    (["task", "list", "--json=1"], False),
    (["task", "list", "-qq"], False),
    (["task", "list", "--jsn"], False),
    (["task", "list", "--", "-q"], False),
    (["task", "create"], False),
    (["task", "create", "a", "b"], False),
    (["task", "create", "--help"], False),
    (["task", "create", "x", "--bogus"], False),
    (["task", "create", "x", "--priority"], False),
    (["task", "create", "x", "--priority", "1.5"], False),
    (["task", "create", "x", "--depends-on", "abc"], False),
    (["task", "create", "x", "--depends-on", "0"], False),
    (["task", "create", "x", "-q=1"], False),
    (["--db", "task", "list"], False),
    (["--dbx", "task", "list"], False),
    (["--db", "", "task", "list"], False),
    (["--version"], False),
    (["task"], False),
    (["task", "show", "1", "--json"], False),
    ([], False),
    # declined after the service refused: nothing written, the full CLI reports it
    (["task", "list", "--status", "weird"], False),
    (["task", "list", "--label", "novalue"], False),
    (["--db", "missing.db", "task", "list"], False),
    (["task", "create", " "], False),
    (["task", "create", "x", "--path", "../outside"], False),
    (["task", "create", "x", "--path", "/etc/passwd"], False),
    (["task", "create", "x", "--depends-on", "99"], False),
    (["task", "create", "x", "--priority", "99999999999999999999"], False),
    (["task", "create", "x", "--max-attempts", "0"], False),
    (["task", "create", "x", "--label", "novalue"], False),
    (["task", "create", "x", "--type", "bad type"], False),
    (["task", "create", "x", "--skill", "no-such-skill"], True),
    (["task", "create", "\udcff"], False),
    (["task", "list", "--json"], True),
]  # fmt: skip


def _twin(tmp_path: Path, name: str) -> Workspace:
    workspace, _ = initialise(git_init(tmp_path / name))
    (workspace.root / "src").mkdir()
    service = TaskService(workspace)
    try:
        service.create("api", paths=["src/api/**"], labels=["area=api"], priority=2)
        service.create("web", labels=["area=web"], depends_on=[1])
        service.claim("w1", ttl="1h", task_id=1)
    finally:
        service.close()
    return workspace


def _console_script(args: Sequence[str]) -> tuple[int, bool]:
    """What ``aictl.entry.main`` does: the fast path, else the full CLI; and whether the fast
    path answered."""
    code = fast.attempt(args)
    return (run(args), False) if code is None else (code, True)


@pytest.fixture
def twins(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> Callable[[Sequence[str], Path], tuple[Result, Result, bool]]:
    """Run a line in the first repository the console script's way and in the second through
    the full CLI, from the same folder (relative to each root)."""
    first, second = _twin(tmp_path, "first"), _twin(tmp_path, "second")
    monkeypatch.delenv("AICTL_DB", raising=False)

    def both(args: Sequence[str], where: Path = Path()) -> tuple[Result, Result, bool]:
        monkeypatch.chdir(first.root / where)
        code, answered = _console_script(list(args))
        one = (code, *capsys.readouterr())
        monkeypatch.chdir(second.root / where)
        try:
            code = run(list(args))
        except SystemExit as exit_:  # typer's answer to a closed pipe
            code = int(exit_.code or 0)
        other = (code, *capsys.readouterr())
        return _alike(one, first), _alike(other, second), answered

    return both


def _alike(result: Result, workspace: Workspace) -> Result:
    """``result`` with times and the repository's folder replaced by placeholders."""
    code, *texts = result
    out, err = (_TIME.sub("<time>", text).replace(str(workspace.root), "<root>") for text in texts)
    return code, out, err


def test_both_paths_answer_every_line_alike(
    twins: Callable[..., tuple[Result, Result, bool]],
) -> None:
    differences = []
    for args, expected_fast in LINES:
        mine, full, answered = twins(args)
        if mine != full or answered != expected_fast:
            differences.append((args, mine, full, answered))
    assert differences == []


def test_from_a_subfolder_and_through_the_environment(
    twins: Callable[..., tuple[Result, Result, bool]], monkeypatch: pytest.MonkeyPatch
) -> None:
    lines = [
        ["task", "create", "here", "--path", "util.py", "--json"],
        ["task", "list", "--json"],
    ]
    for args in lines:
        mine, full, answered = twins(args, Path("src"))
        assert (mine, answered) == (full, True)
    monkeypatch.setenv("AICTL_DB", "../.ai/state.db")
    mine, full, answered = twins(["task", "list", "-q"], Path("src"))
    assert (mine, answered) == (full, True) and mine[1] == "1\n2\n3\n"
    monkeypatch.setenv("AICTL_DB", "")  # empty: as if unset
    mine, full, answered = twins(["task", "create", "empty env", "-q"])
    assert (mine, answered) == (full, True) and mine[1] == "4\n"
    monkeypatch.setenv("AICTL_DB", "missing.db")
    mine, full, answered = twins(["task", "list"])
    assert (mine, answered) == (full, False) and mine[0] == 2
    mine, full, answered = twins(["--db", ".ai/state.db", "task", "list", "-q"])
    assert (mine, answered) == (full, True) and mine[1] == "1\n2\n3\n4\n"


def test_a_failure_of_the_service_goes_to_the_full_cli(
    twins: Callable[..., tuple[Result, Result, bool]], monkeypatch: pytest.MonkeyPatch
) -> None:
    def explode(*args: object, **kwargs: object) -> None:
        raise RuntimeError("boom")

    monkeypatch.setattr(TaskService, "list_tasks", explode)
    mine, full, answered = twins(["task", "list", "--json"])
    assert (mine, answered) == (full, False)
    assert mine[0] == 1 and "internal error: RuntimeError: boom" in mine[2]


def test_an_interrupt_exits_130_on_both_paths(
    twins: Callable[..., tuple[Result, Result, bool]], monkeypatch: pytest.MonkeyPatch
) -> None:
    def interrupt(*args: object, **kwargs: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(TaskService, "create", interrupt)
    mine, full, answered = twins(["task", "create", "x", "-q"])
    assert (mine, answered) == (full, True) and mine == (130, "", "")


@pytest.mark.parametrize(
    ("error", "message"),
    [(OSError(28, "No space left on device"), "internal error: OSError"),
     (BrokenPipeError(32, "Broken pipe"), "")],
)  # fmt: skip
def test_a_failure_after_the_write_is_reported_and_the_task_made_once(
    twins: Callable[..., tuple[Result, Result, bool]],
    monkeypatch: pytest.MonkeyPatch,
    error: OSError,
    message: str,
) -> None:
    def fails(*args: object, **kwargs: object) -> None:
        raise error

    with monkeypatch.context() as patched:
        patched.setattr(output, "task", fails)
        patched.setattr(sys, "stdout", sys.stdout)  # the closed pipe's wrapper goes after
        patched.setattr(sys, "stderr", sys.stderr)
        mine, full, answered = twins(["task", "create", "once", "--json"])
    assert (mine, answered) == (full, True)
    assert mine[0] == 1 and message in mine[2] and (message or mine[2] == "")
    mine, full, _ = twins(["task", "list", "-q"])
    assert mine == full and mine[1] == "1\n2\n3\n"


ENTRY = """
import gc
import sys
already = set(sys.modules)  # what the interpreter (and coverage, under make test) loaded first
from aictl.entry import main
try:
    main()
except SystemExit as done:
    code = done.code
heavy = ("typer", "click", "rich", "pydantic", "yaml", "networkx", "aictl.cli.task")
loaded = [name for name in heavy if name in sys.modules and name not in already]
print(code, loaded, "gc on" if gc.isenabled() else "gc off", gc.get_freeze_count() > 0)
"""


@pytest.mark.parametrize(
    "args",
    [
        ["task", "list", "--json"],
        ["task", "list", "-q", "--status", "queued"],
        ["task", "create", "fast", "--path", "src/**", "--json"],
        ["task", "create", "quiet", "-q"],
    ],
)
def test_the_fast_path_imports_no_cli_framework(workspace: Workspace, args: list[str]) -> None:
    """Nor anything else heavy; it runs with the cyclic collector off, and what is left is
    frozen before the interpreter exits (its last collection would walk every object)."""
    env = {key: value for key, value in os.environ.items() if key != "AICTL_DB"}
    done = subprocess.run(
        [sys.executable, "-c", ENTRY, *args], cwd=workspace.root, env=env,
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    *answer, last = done.stdout.splitlines()
    assert last == "0 [] gc off True", done.stdout + done.stderr
    if "--json" in args:
        json.loads("\n".join(answer))


def test_a_declined_line_gets_the_full_cli_in_the_same_process(workspace: Workspace) -> None:
    """With the collector back on: the full CLI runs long commands too (the daemon)."""
    done = subprocess.run(
        [sys.executable, "-c", ENTRY, "task", "list", "--status"], cwd=workspace.root,
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert done.stdout.splitlines()[-1] == "2 ['typer', 'aictl.cli.task'] gc on True"
    assert "requires an argument" in done.stderr


def test_the_fast_path_takes_the_options_the_full_cli_has() -> None:
    """The same names, each taking a value or not, once or many times: an option renamed or
    removed in ``aictl.cli.task`` must not live on in the fast path. Nor may an option read
    an environment variable the fast path does not (it reads ``AICTL_DB`` alone); another
    option of the root is declined by the fast path, whatever it is."""
    import typer.main

    from aictl.cli import build
    from aictl.cli.task import app

    root = typer.main.get_command(build("task", "list"))
    assert [(param.opts, param.envvar) for param in root.params if param.envvar] == [
        (["--db"], "AICTL_DB")
    ]
    group = typer.main.get_command(app)
    for name, spec in (("list", fast._LIST), ("create", fast._CREATE)):
        assert not [p.envvar for p in group.commands[name].params if p.envvar], name  # type: ignore[attr-defined]
        full = {
            option: "flag" if param.is_flag else "many" if param.multiple else "one"
            for param in group.commands[name].params  # type: ignore[attr-defined]
            if param.param_type_name == "option"
            for option in [*param.opts, *param.secondary_opts]
        }
        mine = {
            option: "many" if kind == "id" else "one" if kind.startswith("int") else kind
            for option, (_, kind) in spec.items()
        }
        assert mine == full, name
