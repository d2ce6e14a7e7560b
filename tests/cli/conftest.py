"""The CLI layer's runner: `aictl ARGS` through `run()` inside the initialised repository."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from aictl.cli import run
from aictl.workspace import Workspace

Result = tuple[int, str, str]
"""(exit code, stdout, stderr)"""

BIN = Path(sys.executable).parent
"""The virtual environment's bin folder, where `make install` put the `aictl` script."""


def installed(cwd: Path, *argv: str) -> subprocess.CompletedProcess[str]:
    """Run ``argv`` as a user's shell would: the installed `aictl` first on PATH, no AICTL_DB."""
    env = {k: v for k, v in os.environ.items() if k != "AICTL_DB"}
    env["PATH"] = f"{BIN}{os.pathsep}{env['PATH']}"
    return subprocess.run(
        list(argv), cwd=cwd, env=env, capture_output=True, text=True, timeout=120, check=False
    )


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
