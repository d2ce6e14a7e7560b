"""Finding the ``claude`` binary, building its command line and its environment.

Every flag with a value is written ``--flag=value``: ``--allowedTools Write "do it"`` would
swallow the prompt as a second tool name. The prompt itself goes on stdin, which is then
closed (an open stdin costs Claude Code a 3 s wait and a warning).
"""

from __future__ import annotations

import importlib.util
import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path

from connectors import RunRequest, Sandbox
from connectors.claude_code.permissions import gated_mode, pre_allowed

BINARY_VARIABLE = "AICTL_CLAUDE_BIN"
#: Where the official Python SDK keeps the native CLI it ships, inside its package.
SDK_PACKAGE = "claude_agent_sdk"
INSTALL_HINT = (
    "`pip install claude-agent-sdk` brings it (aictl depends on it), "
    "or set AICTL_CLAUDE_BIN to a claude binary"
)

#: Names passed from aictl's environment when present. Everything else is dropped unless the
#: request allows it by name: a secret in aictl's environment must not reach the agent.
PASSED = ("PATH", "LANG", "TERM", "ANTHROPIC_BASE_URL", "ANTHROPIC_API_KEY")
#: Always set: without the first the CLI tries to reach outside hosts.
FIXED = {"CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1", "DISABLE_TELEMETRY": "1"}
#: Kept from aictl's environment for an agent that uses the user's own login.
LOGIN = ("HOME", "CLAUDE_CONFIG_DIR")
DEFAULTS = {"PATH": "/usr/local/bin:/usr/bin:/bin", "LANG": "C.UTF-8", "TERM": "dumb"}


def sdk_binary() -> Path | None:
    """The ``claude`` that the installed ``claude-agent-sdk`` wheel carries, without importing
    the SDK (its import costs about 0.6 s: it loads ``mcp`` and its models)."""
    try:
        spec = importlib.util.find_spec(SDK_PACKAGE)
    except (ImportError, ValueError):
        return None
    if spec is None or spec.origin is None:
        return None
    return Path(spec.origin).parent / "_bundled" / "claude"


def _executable(path: Path) -> bool:
    return path.is_file() and os.access(path, os.X_OK)


def find_binary(
    environ: Mapping[str, str], bundled: Path | None = None
) -> tuple[Path | None, list[str]]:
    """The ``claude`` to run and the places looked at, in order: ``$AICTL_CLAUDE_BIN`` (when
    set it is the only candidate: a configured path that is wrong is an error, not a reason to
    run some other claude), then the binary the ``claude-agent-sdk`` wheel ships (``bundled``;
    by default found in the installed SDK), then each ``PATH`` entry."""
    configured = environ.get(BINARY_VARIABLE)
    if configured:
        path = Path(configured).expanduser()
        return (path if _executable(path) else None), [f"{BINARY_VARIABLE}={configured}"]
    searched: list[str] = []
    candidate = bundled if bundled is not None else sdk_binary()
    if candidate is not None:
        searched.append(str(candidate))
        if _executable(candidate):
            return candidate, searched
    else:
        searched.append(f"the {SDK_PACKAGE} package (not installed)")
    for folder in environ.get("PATH", "").split(os.pathsep):
        if folder:
            candidate = Path(folder) / "claude"
            searched.append(str(candidate))
            if _executable(candidate):
                return candidate, searched
    return None, searched


def build_command(request: RunRequest, binary: Path | str = "claude") -> list[str]:
    """The argv for ``request``; hermetic by default (only the setting sources the request
    names, no MCP servers but those given, no session saved). A request with a gate reads
    stream-json on stdin, registers aictl's ``PreToolUse`` hook and asks its parent before
    each tool call (see ``permissions``); one with a sandbox passes it as settings given on
    the command line, which outrank every settings file."""
    argv = [
        str(binary),
        "-p",
        "--output-format=stream-json",
        "--verbose",
        "--setting-sources=" + ",".join(request.setting_sources),
        "--strict-mcp-config",
        "--no-session-persistence",
    ]
    gated = request.gate is not None
    if gated:
        argv += ["--input-format=stream-json", "--permission-prompt-tool=stdio"]
    if request.sandbox is not None:
        argv.append("--settings=" + json.dumps(sandbox_settings(request.sandbox)))
    if request.max_turns is not None:
        argv.append(f"--max-turns={request.max_turns}")
    if request.max_budget_usd is not None:
        argv.append(f"--max-budget-usd={request.max_budget_usd}")
    if request.model:
        argv.append(f"--model={request.model}")
    mode = gated_mode(request.permission_mode) if gated else request.permission_mode
    if mode:
        argv.append(f"--permission-mode={mode}")
    allowed = pre_allowed(request.allowed_tools) if gated else request.allowed_tools
    if allowed:
        argv.append("--allowedTools=" + ",".join(allowed))
    if request.disallowed_tools:
        argv.append("--disallowedTools=" + ",".join(request.disallowed_tools))
    if request.context:
        argv.append(f"--append-system-prompt={request.context}")
    return argv


def sandbox_settings(sandbox: Sandbox) -> dict[str, object]:
    """Claude Code's sandbox settings for ``sandbox`` (bubblewrap and socat on Linux).

    The run fails rather than run a command unconfined (``failIfUnavailable``), a command may
    not ask to leave the sandbox (``allowUnsandboxedCommands``), and no shell command is
    approved for being sandboxed: aictl's gate decides each one."""
    return {
        "sandbox": {
            "enabled": True,
            "failIfUnavailable": True,
            "allowUnsandboxedCommands": False,
            "autoAllowBashIfSandboxed": False,
            "filesystem": {
                "allowWrite": list(sandbox.allow_write),
                "denyWrite": list(sandbox.deny_write),
                "denyRead": list(sandbox.deny_read),
                "allowRead": list(sandbox.allow_read),
            },
        }
    }


def scrub_env(
    base_env: Mapping[str, str],
    *,
    home: Path,
    config_dir: Path,
    allow: Sequence[str] = (),
    user_login: bool = False,
) -> dict[str, str]:
    """The child's whole environment, built from an allow-list only.

    ``PASSED`` names and ``allow`` names are copied from ``base_env`` when present; ``HOME``
    and ``CLAUDE_CONFIG_DIR`` are the run's private folders (so no user settings, credentials
    or history leak in or out), unless ``user_login`` keeps the user's own (a subscription
    login lives there); ``FIXED`` values are always set and win over ``allow``.
    """
    environment = dict(DEFAULTS)
    kept = LOGIN if user_login else ()
    for name in (*PASSED, *allow, *kept):
        if name in base_env:
            environment[name] = base_env[name]
    environment.update(FIXED)
    if not user_login:
        environment["HOME"] = str(home)
        environment["CLAUDE_CONFIG_DIR"] = str(config_dir)
    environment.setdefault("HOME", str(home))
    return environment
