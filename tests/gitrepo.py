"""A real, empty git repository for tests: `aictl init` refuses a folder outside one."""

from __future__ import annotations

import subprocess
from pathlib import Path


def git_init(root: Path) -> Path:
    """``git init`` in ``root`` (created if missing); returns ``root``."""
    root.mkdir(parents=True, exist_ok=True)
    subprocess.run(["git", "init", "-q", str(root)], check=True, capture_output=True)
    return root
