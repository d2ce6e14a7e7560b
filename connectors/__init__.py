"""The connector interface and the registry of connectors by name.

A connector turns one request ("do this, here, under these limits") into one agent run and
reports a structured ``RunResult``. v1 connectors drive an agent's CLI as a subprocess through
``connectors.process.run_process`` (the only place aictl starts processes); v2 connectors
(later) speak MCP. See ``docs/connectors.md``.

Connectors are registered by name: the built-in ones here, others from any installed package
that declares an entry point in the group ``aictl.connectors``::

    [project.entry-points."aictl.connectors"]
    my-agent = "my_package.connector:MyConnector"

The entry point names a zero-argument callable returning a ``Connector`` (usually the class).
Entry points are read lazily, the first time a name is looked up or listed.
"""

from __future__ import annotations

import importlib
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Protocol, runtime_checkable

from aictl.errors import AictlError, InvalidInput

ENTRY_POINT_GROUP = "aictl.connectors"

Status = Literal["success", "failed"]


class ConnectorError(AictlError):
    """A connector could not do its job (for example its binary is missing)."""


class UnknownConnector(InvalidInput):
    """No connector has that name."""


@dataclass(frozen=True)
class Detection:
    """What ``detect()`` found: the program, its version and the tools it offers its model
    (when it can tell), or why it cannot run.

    ``ok`` is true exactly when ``error`` is ``None``.
    """

    connector: str
    binary: Path | None = None
    version: str | None = None
    error: str | None = None
    searched: tuple[str, ...] = ()
    tools: tuple[str, ...] = ()

    @property
    def ok(self) -> bool:
        return self.error is None


@dataclass(frozen=True)
class ToolCall:
    """A tool call the agent wants to make, put to the request's ``gate`` before it runs.
    ``input`` is the tool's input as the agent gave it (file paths may be absolute)."""

    name: str
    input: Mapping[str, Any]
    tool_use_id: str | None = None


@dataclass(frozen=True)
class Verdict:
    """The gate's answer. A denial's ``message`` is what the agent is told."""

    allow: bool
    message: str = ""

    @classmethod
    def deny(cls, message: str) -> Verdict:
        return cls(False, message)


#: Decides each tool call while the agent runs; called from a reader thread of the run.
Gate = Callable[[ToolCall], Verdict]


@dataclass(frozen=True)
class Sandbox:
    """An OS sandbox around every process the agent's shell starts: it may write only under
    ``allow_write`` (absolute paths) and never under ``deny_write`` (a deny wins over an allow),
    and may not read under ``deny_read`` except under ``allow_read``.
    A connector that cannot honour it must refuse to run rather than run unconfined."""

    allow_write: tuple[str, ...] = ()
    deny_write: tuple[str, ...] = ()
    deny_read: tuple[str, ...] = ()
    allow_read: tuple[str, ...] = ()


@dataclass(frozen=True)
class RunRequest:
    """One agent run. ``base_env`` is the environment the connector may draw from (usually
    aictl's own); a connector passes on only what its allow-list and ``allow_env`` name.
    ``run_dir`` is a private folder for the run (the agent's HOME and config live there).
    ``on_line`` gets every raw output line (a transcript); ``on_event`` the parsed events.

    With a ``gate``, every tool call is put to it while the agent runs, whatever the agent's
    own permission settings say, and a call it denies never runs (the agent is told why). A
    gate that raises denies the call: enforcement fails closed. With a ``sandbox``, the
    agent's shell runs confined (see ``Sandbox``). ``setting_sources`` names the agent's own
    settings to load (``project``, ``user``, ``local``; none by default: hermetic).
    ``user_login`` keeps the user's HOME and agent configuration, so an agent logged in
    with a subscription can run without an API key."""

    prompt: str
    cwd: Path
    run_dir: Path
    base_env: Mapping[str, str] = field(default_factory=dict)
    allow_env: tuple[str, ...] = ()
    context: str | None = None
    model: str | None = None
    max_turns: int | None = None
    max_budget_usd: float | None = None
    permission_mode: str | None = None
    allowed_tools: tuple[str, ...] = ()
    disallowed_tools: tuple[str, ...] = ()
    idle_timeout: float | None = 300.0
    total_timeout: float | None = 3600.0
    grace: float = 5.0
    on_event: Callable[[Any], None] | None = None
    on_line: Callable[[str], None] | None = None
    gate: Gate | None = None
    sandbox: Sandbox | None = None
    setting_sources: tuple[str, ...] = ()
    user_login: bool = False


@dataclass(frozen=True)
class RunResult:
    """The judged outcome of a run.

    ``status`` is ``success`` or ``failed``; a failure carries ``reason`` (a stable word such
    as ``max_turns`` or ``idle_timeout``), ``retryable`` and a human ``detail``. The rest is
    evidence reported by the agent (session, turns, cost, usage) and by the runner (exit code,
    signal, stderr, duration).
    """

    status: Status
    reason: str | None = None
    retryable: bool = False
    detail: str = ""
    session_id: str | None = None
    num_turns: int | None = None
    total_cost_usd: float | None = None
    usage: Mapping[str, Any] = field(default_factory=dict)
    permission_denials: tuple[Mapping[str, Any], ...] = ()
    api_error_status: int | None = None
    result_text: str | None = None
    exit_code: int | None = None
    signal: int | None = None
    stderr: str = ""
    duration: float = 0.0
    malformed_lines: int = 0

    @property
    def ok(self) -> bool:
        return self.status == "success"


@runtime_checkable
class Connector(Protocol):
    """What every connector provides.

    ``capabilities`` are the words the router matches against a task's needs (for example
    ``edit``, ``shell``). ``detect()`` never raises for a missing program: it returns a
    ``Detection`` with the error. ``run()`` blocks until the run ends and never leaves a
    process behind; it raises ``ConnectorError`` only when the run cannot start. ``cancel()``
    may be called from another thread and stops the run in progress (SIGINT, SIGTERM, SIGKILL).
    """

    name: str
    capabilities: frozenset[str]

    def detect(self) -> Detection: ...

    def run(self, request: RunRequest) -> RunResult: ...

    def cancel(self) -> None: ...


Factory = Callable[[], Connector]

_BUILT_IN: dict[str, str] = {"claude-code": "connectors.claude_code:ClaudeCodeConnector"}
_lock = threading.Lock()
_loaded = threading.Event()


def _lazy(target: str) -> Factory:
    """A factory that imports its module only when a connector is made."""

    def make() -> Connector:
        return _import(target)()

    return make


def _import(target: str) -> Factory:
    module_name, _, attribute = target.partition(":")
    factory: Factory = getattr(importlib.import_module(module_name), attribute)
    return factory


def _built_ins() -> dict[str, Factory]:
    return {name: _lazy(target) for name, target in _BUILT_IN.items()}


_registry: dict[str, Factory] = _built_ins()


def register(name: str, factory: Factory) -> None:
    """Register ``factory`` (a class or a zero-argument callable) under ``name``; a later
    registration of the same name replaces the earlier one."""
    with _lock:
        _registry[name] = factory


def _load() -> None:
    """Add the entry points of the group. A name already taken (a built-in connector, or one
    registered in this process) keeps its connector: an installed package cannot replace
    ``claude-code`` behind the user's back."""
    with _lock:
        if _loaded.is_set():
            return
        _loaded.set()
        from importlib.metadata import entry_points  # about 20 ms: only when a name is missing

        for point in entry_points(group=ENTRY_POINT_GROUP):
            _registry.setdefault(point.name, _lazy(point.value))


def names() -> list[str]:
    """Every registered connector name, sorted."""
    _load()
    with _lock:
        return sorted(_registry)


def get(name: str) -> Connector:
    """A new connector registered as ``name``; ``UnknownConnector`` lists the valid names.
    The entry points are read only for a name that is not built in or registered."""
    with _lock:
        factory = _registry.get(name)
    if factory is None:
        _load()
        with _lock:
            factory = _registry.get(name)
    if factory is None:
        valid = ", ".join(names()) or "none"
        raise UnknownConnector(f"unknown connector {name!r}; valid: {valid}")
    return factory()


__all__ = [
    "ENTRY_POINT_GROUP",
    "Connector",
    "ConnectorError",
    "Detection",
    "Gate",
    "RunRequest",
    "RunResult",
    "Sandbox",
    "ToolCall",
    "UnknownConnector",
    "Verdict",
    "get",
    "names",
    "register",
]
