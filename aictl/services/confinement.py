"""The OS sandbox of an agent run: whether it is required, whether it can be had, and where
the agent's shell may write (planned by ``aictl.domain.sandbox``, listed here).

The policy setting ``sandbox`` is ``required`` by default. A required sandbox that this
machine cannot provide refuses the run before its claim is spent: an agent never runs
unconfined because a package is missing.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

from aictl.domain.sandbox import plan_sandbox
from aictl.errors import AictlError
from aictl.policy.layers import Policy
from aictl.workspace import Workspace
from connectors import Sandbox

#: What Claude Code's sandbox needs on Linux: program -> the Debian/Ubuntu package.
SANDBOX_PROGRAMS = {"bwrap": "bubblewrap", "socat": "socat"}
DEFAULT_MODE = "required"
DEFAULT_SETTING_SOURCES = ("project",)


class SandboxUnavailable(AictlError):
    """The policy requires the OS sandbox and this machine lacks what it needs."""


def sandbox_mode(policy: Policy) -> str:
    """``required`` or ``off`` (the policy's explicit choice; YAML reads a bare ``off`` as
    false, which the policy's schema accepts as ``off``)."""
    value = policy.setting("sandbox")
    return "off" if value in (False, "off") else DEFAULT_MODE


def setting_sources(policy: Policy) -> tuple[str, ...]:
    """The Claude Code settings an agent loads: the project's by default."""
    chosen = policy.setting("claude_settings")
    return DEFAULT_SETTING_SOURCES if chosen is None else tuple(chosen)


def user_login(policy: Policy) -> bool:
    return bool(policy.setting("claude_login") == "subscription")


def missing_packages(path: str | None = None) -> list[str]:
    """The packages whose programs are not on ``path`` (default: aictl's PATH)."""
    return [
        package
        for program, package in SANDBOX_PROGRAMS.items()
        if shutil.which(program, path=path) is None
    ]


def require_sandbox(policy: Policy, task_id: int, path: str | None = None) -> str:
    """The policy's sandbox mode; raises ``SandboxUnavailable`` naming the missing packages
    when the mode is ``required`` and they are missing."""
    mode = sandbox_mode(policy)
    missing = missing_packages(path) if mode == "required" else []
    if missing:
        raise SandboxUnavailable(
            f"task {task_id} was not run: the policy requires the agent's sandbox, and "
            f"{' and '.join(missing)} {'is' if len(missing) == 1 else 'are'} not installed",
            hint=f"install them (Debian/Ubuntu: sudo apt-get install {' '.join(missing)}), "
            "or set `sandbox: off` under settings in .ai/policy.yaml at your own risk",
        )
    return mode


#: Under ``reads: repository``, what the agent's shell may not read in the user's home: where
#: credentials live. (Not the whole home: toolchains such as pyenv or nvm live there too.)
CREDENTIALS = (
    ".ssh", ".aws", ".azure", ".gnupg", ".config", ".docker", ".kube", ".claude",
    ".netrc", ".git-credentials", ".npmrc", ".pypirc", ".pgpass", ".terraform.d",
)  # fmt: skip


def private_reads(home: str | None, root: Path) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """The paths under the user's ``home`` the shell may not read, and the repository carved
    out again when it lies in one of them."""
    if not home:
        return (), ()
    denied = tuple(
        str(Path(home) / name) for name in CREDENTIALS if os.path.lexists(Path(home) / name)
    )
    inside = any(root.is_relative_to(path) for path in denied)
    return denied, (str(root),) if inside else ()


def _listing(root: Path) -> Callable[[str], list[str]]:
    def listing(folder: str) -> list[str]:
        try:
            return sorted(os.listdir(root / folder if folder else root))
        except (FileNotFoundError, NotADirectoryError):
            return []

    return listing


def sandbox_for(
    workspace: Workspace,
    task_paths: Sequence[str],
    held_by_others: Iterable[str],
    home: str | None = None,
) -> Sandbox:
    """The sandbox of a run of a task with ``task_paths`` in ``workspace``; denies of paths
    that do not exist are left out (bubblewrap mounts only what exists). With ``home`` (the
    user's, under ``reads: repository``) its credential folders are unreadable."""
    root = workspace.root.resolve()
    state = workspace.db_path.resolve().parent
    state_folder = str(state.relative_to(root)) if state.is_relative_to(root) else None
    plan = plan_sandbox(
        list(task_paths), list(held_by_others), _listing(root), state_folder=state_folder
    )
    allow, deny = plan.absolute(str(root))
    deny_read, allow_read = private_reads(home, root)
    return Sandbox(
        allow_write=allow,
        deny_write=tuple(path for path in deny if os.path.lexists(path)),
        deny_read=deny_read,
        allow_read=allow_read,
    )
