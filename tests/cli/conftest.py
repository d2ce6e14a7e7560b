"""The CLI layer's runner: `aictl ARGS` through `run()` inside the initialised repository."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from aictl.cli import run
from aictl.workspace import Workspace

Result = tuple[int, str, str]
"""(exit code, stdout, stderr)"""


@pytest.fixture
def aictl(
    workspace: Workspace, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> Callable[..., Result]:
    """Run `aictl ARGS` inside the initialised repository; returns (exit code, stdout, stderr).

    Test files that need more (a policy, an actor, some tasks) override this fixture and
    build on it by taking it as a parameter.
    """
    monkeypatch.chdir(workspace.root)
    monkeypatch.delenv("AICTL_DB", raising=False)

    def invoke(*args: str) -> Result:
        code = run(list(args))
        out, err = capsys.readouterr()
        return code, out, err

    return invoke
