"""The real Claude Code CLI for tests: installed by `make tools` into `.tools/`."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
BINARY = ROOT / ".tools" / "node_modules" / ".bin" / "claude"


def claude_binary() -> Path:
    """The CLI installed by `make tools`; under CI its absence fails the test instead of
    skipping it, so a broken install cannot pass as a green run."""
    if not os.access(BINARY, os.X_OK):
        message = f"the Claude Code CLI is missing at {BINARY}: `make tools` installs it"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return BINARY
