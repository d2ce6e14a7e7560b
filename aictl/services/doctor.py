"""``aictl doctor``: is everything aictl needs here, and in order? One check per line.

Each check says what it found and, when something is wrong, what to do. A check never changes
anything (the policy is loaded, not saved; the agent's binary is asked for its version against
an address that refuses at once). ``ok`` is false only for what stops aictl from doing its job
(``error``); a ``warning`` is worth knowing, not fatal.
"""

from __future__ import annotations

import platform
import shutil
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

from aictl.errors import AictlError
from aictl.workspace import Workspace, git_root, locate

Level = Literal["ok", "warning", "error"]
#: Below this much free space where the state lives, a warning (SQLite needs room to commit).
LOW_DISK_BYTES = 200 * 1024 * 1024


@dataclass(frozen=True)
class Check:
    name: str
    level: Level
    found: str
    hint: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def diagnose(cwd: Path, environ: Mapping[str, str], db: Path | str | None = None) -> list[Check]:
    """Every check, in the order a user would fix them."""
    checks = [_python(), _git(cwd, environ)]
    try:
        workspace: Workspace | None = locate(db, cwd)
    except AictlError as error:
        workspace = None
        checks.append(Check("state", "error", error.message, error.hint or "aictl init"))
    if workspace is not None:
        checks += [_database(workspace), _policy(workspace), _daemon(workspace)]
        checks.append(_disk(workspace.db_path.parent))
    checks += [_sandbox(workspace, environ), _agent(environ)]
    return checks


def _guard(name: str, check: Callable[[], Check]) -> Check:
    try:
        return check()
    except AictlError as error:
        return Check(name, "error", error.message, error.hint)


def _python() -> Check:
    return Check("python", "ok", f"{platform.python_implementation()} {platform.python_version()}")


def _git(cwd: Path, environ: Mapping[str, str]) -> Check:
    if shutil.which("git", path=environ.get("PATH")) is None:
        return Check("git", "error", "git is not installed", "install git: evidence comes from it")
    root = git_root(cwd.resolve())
    if root is None:
        return Check("git", "error", f"{cwd} is not in a git repository", "git init")
    return Check("git", "ok", f"repository at {root}")


def _database(workspace: Workspace) -> Check:
    def check() -> Check:
        from aictl.store.db import connect, latest_version, shown
        from aictl.store.failures import damaged

        database = connect(workspace.database)
        try:
            version = database.schema_version()
            problems = database.quick_check()
        finally:
            database.close()
        if problems:
            error = damaged(workspace.db_path, "; ".join(problems))
            return Check("database", "error", error.message, error.hint)
        latest = latest_version()
        found = f"{shown(workspace.database)}, schema {version} of {latest}"
        return Check("database", "ok" if version == latest else "warning", found)

    return _guard("database", check)


def _policy(workspace: Workspace) -> Check:
    def check() -> Check:
        from aictl.policy.service import load_policy

        policy = load_policy(workspace.root)
        layers = ", ".join(layer.name for layer in policy.layers) or "none (built-in default)"
        return Check("policy", "ok", f"valid; layers: {layers}; hash {policy.hash[:12]}")

    return _guard("policy", check)


def _daemon(workspace: Workspace) -> Check:
    from aictl.daemon.runtime import DaemonPaths, is_running

    running = is_running(DaemonPaths.of(workspace))
    return Check("daemon", "ok", "running" if running else "not running (aictl daemon start)")


def _disk(folder: Path) -> Check:
    free = shutil.disk_usage(folder).free
    found = f"{free / 1024**3:.1f} GiB free in {folder}"
    if free < LOW_DISK_BYTES:
        return Check("disk", "warning", found, "free some space: a full disk stops every write")
    return Check("disk", "ok", found)


def _sandbox(workspace: Workspace | None, environ: Mapping[str, str]) -> Check:
    from aictl.services.confinement import missing_packages

    mode = "required"
    if workspace is not None:
        try:
            from aictl.policy.service import load_policy
            from aictl.services.confinement import sandbox_mode

            mode = sandbox_mode(load_policy(workspace.root))
        except AictlError:
            pass  # the policy check says what is wrong with it
    missing = missing_packages(environ.get("PATH"))
    if mode == "off":
        return Check("sandbox", "warning", "off by the policy: agents' shells run unconfined")
    if missing:
        return Check(
            "sandbox",
            "error",
            f"required, and {' and '.join(missing)} missing: agents will not run",
            f"sudo apt-get install {' '.join(missing)} (or make sandbox)",
        )
    return Check("sandbox", "ok", "required; bubblewrap and socat found")


def _agent(environ: Mapping[str, str]) -> Check:
    from connectors.claude_code import ClaudeCodeConnector

    found = ClaudeCodeConnector(environ=environ).detect()
    if not found.ok:
        return Check("claude", "error", found.error or "not found", "pip install claude-agent-sdk")
    return Check("claude", "ok", f"{found.version} at {found.binary}")


def healthy(checks: list[Check]) -> bool:
    return all(check.level != "error" for check in checks)


__all__ = ["Check", "diagnose", "healthy"]
