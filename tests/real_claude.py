"""The real Claude Code CLI for tests: the binary that the ``claude-agent-sdk`` wheel ships,
installed with aictl by ``make install``."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from connectors.claude_code.command import sdk_binary

#: The version the pinned SDK carries (pyproject.toml pins claude-agent-sdk).
VERSION = "2.1.332"


def claude_binary() -> Path:
    """The SDK's binary; under CI its absence fails the test instead of skipping it, so a
    broken install cannot pass as a green run."""
    binary = sdk_binary()
    if binary is None or not os.access(binary, os.X_OK):
        message = f"the Claude Code CLI is missing ({binary}): `make install` installs it"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return binary
