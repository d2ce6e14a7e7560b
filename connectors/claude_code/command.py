"""Finding the ``claude`` binary, building its command line and its environment.

Every flag with a value is written ``--flag=value``: ``--allowedTools Write "do it"`` would
swallow the prompt as a second tool name. The prompt itself goes on stdin, which is then
closed (an open stdin costs Claude Code a 3 s wait and a warning).
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path

from connectors import RunRequest
from connectors.claude_code.permissions import gated_mode, pre_allowed

BINARY_VARIABLE = "AICTL_CLAUDE_BIN"
#: The checkout this package lives in; ``make tools`` installs the CLI under its ``.tools/``.
REPO_ROOT = Path(__file__).resolve().parents[2]

#: Names passed from aictl's environment when present. Everything else is dropped unless the
#: request allows it by name: a secret in aictl's environment must not reach the agent.
PASSED = ("PATH", "LANG", "TERM", "ANTHROPIC_BASE_URL", "ANTHROPIC_API_KEY")
#: Always set: without the first the CLI tries to reach outside hosts.
FIXED = {"CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1", "DISABLE_TELEMETRY": "1"}
DEFAULTS = {"PATH": "/usr/local/bin:/usr/bin:/bin", "LANG": "C.UTF-8", "TERM": "dumb"}


def tools_binary(repo_root: Path) -> Path:
    return repo_root / ".tools" / "node_modules" / ".bin" / "claude"


def _executable(path: Path) -> bool:
    return path.is_file() and os.access(path, os.X_OK)


def find_binary(
    environ: Mapping[str, str], repo_root: Path = REPO_ROOT
) -> tuple[Path | None, list[str]]:
    """The ``claude`` to run and the places looked at, in order: ``$AICTL_CLAUDE_BIN`` (when
    set it is the only candidate: a configured path that is wrong is an error, not a reason to
    run some other claude), then each ``PATH`` entry, then ``<repo>/.tools``."""
    configured = environ.get(BINARY_VARIABLE)
    if configured:
        path = Path(configured).expanduser()
        return (path if _executable(path) else None), [f"{BINARY_VARIABLE}={configured}"]
    searched: list[str] = []
    for folder in environ.get("PATH", "").split(os.pathsep):
        if folder:
            candidate = Path(folder) / "claude"
            searched.append(str(candidate))
            if _executable(candidate):
                return candidate, searched
    candidate = tools_binary(repo_root)
    searched.append(str(candidate))
    return (candidate if _executable(candidate) else None), searched


def build_command(request: RunRequest, binary: Path | str = "claude") -> list[str]:
    """The argv for ``request``; hermetic by default (no user or project settings, no MCP
    servers but those given, no session saved). A request with a gate reads stream-json on
    stdin and asks its parent before each tool call (see ``permissions``)."""
    argv = [
        str(binary),
        "-p",
        "--output-format=stream-json",
        "--verbose",
        "--setting-sources=",
        "--strict-mcp-config",
        "--no-session-persistence",
    ]
    gated = request.gate is not None
    if gated:
        argv += ["--input-format=stream-json", "--permission-prompt-tool=stdio"]
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


def scrub_env(
    base_env: Mapping[str, str],
    *,
    home: Path,
    config_dir: Path,
    allow: Sequence[str] = (),
) -> dict[str, str]:
    """The child's whole environment, built from an allow-list only.

    ``PASSED`` names and ``allow`` names are copied from ``base_env`` when present; ``HOME``
    and ``CLAUDE_CONFIG_DIR`` are the run's private folders (so no user settings, credentials
    or history leak in or out); ``FIXED`` values are always set and win over ``allow``.
    """
    environment = dict(DEFAULTS)
    for name in (*PASSED, *allow):
        if name in base_env:
            environment[name] = base_env[name]
    environment.update(FIXED)
    environment["HOME"] = str(home)
    environment["CLAUDE_CONFIG_DIR"] = str(config_dir)
    return environment
