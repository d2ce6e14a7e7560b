"""The AI registry service: validates a request, checks the connector, makes one store call.

Connector detection is delegated to the connector package (``connectors``), through one small
function per connector in the ``CONNECTORS`` table: the table is
the only place that knows which connectors exist.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aictl.clock import Clock, SystemClock
from aictl.domain.ais import AI, SETTABLE_STATUSES, AIStatus, check_ai_id, fresh_health
from aictl.domain.routing import Route, route
from aictl.domain.tasks import check_text, parse_label
from aictl.errors import InvalidInput
from aictl.services.tasks import check_name, default_actor
from aictl.store.ais import AIExists, AIStore
from aictl.store.db import Database, connect
from aictl.store.tasks import TaskStore
from aictl.workspace import Workspace


class ConnectorUnavailable(InvalidInput):
    """The connector's program is missing or does not run."""


@dataclass(frozen=True)
class Detection:
    """What a connector's check found: the program and the version it reports."""

    binary: str
    version: str
    tools: tuple[str, ...] = ()


def detect_claude_code(root: Path, environ: Mapping[str, str]) -> Detection:
    """Ask the Claude Code connector to find ``claude`` and report its version and tools.

    The connector looks at ``AICTL_CLAUDE_BIN``, the binary of ``claude-agent-sdk``, then
    ``PATH``, and
    runs ``claude --version`` through the connector process runner (the only place aictl
    starts processes). Raises ``ConnectorUnavailable`` naming every place it looked.
    """
    from connectors.claude_code import ClaudeCodeConnector

    found = ClaudeCodeConnector(environ=environ).detect()
    if not found.ok or found.binary is None or found.version is None:
        raise ConnectorUnavailable(
            found.error or "the Claude Code CLI did not report a version",
            hint="`pip install claude-agent-sdk` brings it (an aictl dependency); "
            "or set AICTL_CLAUDE_BIN to its path, or register with --no-check",
        )
    return Detection(str(found.binary), found.version, found.tools)


Detector = Callable[[Path, Mapping[str, str]], Detection]
CONNECTORS: dict[str, Detector] = {"claude-code": detect_claude_code}
"""Known connector names and their detection. An unknown name lists these."""


def check_connector(name: str) -> Detector:
    try:
        return CONNECTORS[name]
    except KeyError:
        raise InvalidInput(
            f"unknown connector {name!r}", hint="known connectors: " + ", ".join(sorted(CONNECTORS))
        ) from None


def parse_status(text: str) -> AIStatus:
    try:
        return AIStatus(text.lower())
    except ValueError:
        raise InvalidInput(
            f"unknown AI status {text!r}",
            hint="one of: " + ", ".join(status.value for status in AIStatus),
        ) from None


def parse_label_changes(items: Sequence[str]) -> tuple[dict[str, str], list[str]]:
    """``K=V`` items to add and ``K-`` items to remove."""
    add: dict[str, str] = {}
    remove: list[str] = []
    for item in items:
        if "=" not in item and item.endswith("-"):
            key, _ = parse_label(item[:-1] + "=")
            remove.append(key)
        else:
            key, value = parse_label(item)
            add[key] = value
    if not add and not remove:
        raise InvalidInput("no label changes given", hint="aictl ai label claude-1 team=web gpu-")
    return add, remove


def apply_label_changes(labels: Mapping[str, str], items: Sequence[str]) -> dict[str, str]:
    """``labels`` with the ``K=V`` items set and the ``K-`` items removed."""
    add, remove = parse_label_changes(items)
    merged = {**labels, **add}
    for key in remove:
        merged.pop(key, None)
    return merged


class AIService:
    def __init__(
        self,
        workspace: Workspace,
        *,
        clock: Clock | None = None,
        db: Database | None = None,
        environ: Mapping[str, str] | None = None,
    ) -> None:
        self.workspace = workspace
        self.db = db or connect(workspace.database)
        self.clock = clock or SystemClock()
        self.store = AIStore(self.db, self.clock, actor=default_actor())
        self.environ = environ if environ is not None else os.environ

    def close(self) -> None:
        self.db.close()

    def register(
        self,
        ai_id: str,
        *,
        connector: str,
        labels: Sequence[str] = (),
        capabilities: Sequence[str] = (),
        max_concurrency: int = 1,
        model: str | None = None,
        check: bool = True,
        replace: bool = False,
    ) -> AI:
        """Validate everything, detect the connector's program unless ``check`` is false, then
        insert (``AIExists`` for a known id unless ``replace``). Nothing is written on error."""
        check_ai_id(ai_id)
        detect = check_connector(connector)
        if max_concurrency < 1:
            raise InvalidInput(f"invalid --max-concurrency {max_concurrency}: must be 1 or more")
        if model is not None and not check_text(model, "model").strip():
            raise InvalidInput("--model must not be empty")
        parsed_labels = dict(parse_label(item) for item in labels)
        caps = sorted({check_name(item, "capability") for item in capabilities})
        if not replace:
            self._refuse_existing(ai_id)
        health = fresh_health()
        if check:
            found = detect(self.workspace.root, self.environ)
            health = fresh_health(found.version, found.binary, found.tools)
        now = self.clock.now()
        ai = AI(
            id=ai_id,
            connector=connector,
            labels=parsed_labels,
            capabilities=caps,
            max_concurrency=max_concurrency,
            model=model,
            health=health,
            created_at=now,
            updated_at=now,
        )
        return self.store.register(ai, replace=replace)

    def _refuse_existing(self, ai_id: str) -> None:
        """Fail before running detection (the store checks again under the write lock)."""
        if ai_id in self.store.ids():
            raise AIExists(
                f"AI {ai_id!r} is already registered",
                hint="pass --replace to overwrite it, or `aictl ai remove` it first",
            )

    def get(self, ai_id: str) -> AI:
        return self.store.get(ai_id)

    def list_ais(self, *, status: str | None = None) -> list[AI]:
        return self.store.list_ais(status=parse_status(status) if status else None)

    def known_ids(self) -> list[str]:
        return self.store.ids()

    def label(self, ai_id: str, changes: Sequence[str]) -> AI:
        add, remove = parse_label_changes(changes)
        return self.store.set_labels(ai_id, add, remove)

    def edit(
        self,
        ai_id: str,
        *,
        labels: Sequence[str] = (),
        add_capabilities: Sequence[str] = (),
        remove_capabilities: Sequence[str] = (),
        max_concurrency: int | None = None,
        model: str | None = None,
    ) -> AI:
        """Change an AI's labels (``K=V`` sets, ``K-`` removes), capabilities, concurrency or
        model, validated as ``register`` validates them; ``InvalidInput`` when nothing would
        change. Its status, connector and health stay as they are."""
        current = self.store.get(ai_id)
        fields: dict[str, Any] = {}
        if labels:
            fields["labels"] = apply_label_changes(current.labels, labels)
        if add_capabilities or remove_capabilities:
            added = {check_name(item, "capability") for item in add_capabilities}
            fields["capabilities"] = sorted(
                (set(current.capabilities) | added) - set(remove_capabilities)
            )
        if max_concurrency is not None:
            if max_concurrency < 1:
                raise InvalidInput(
                    f"invalid --max-concurrency {max_concurrency}: must be 1 or more"
                )
            fields["max_concurrency"] = max_concurrency
        if model is not None:
            if not check_text(model, "model").strip():
                raise InvalidInput("--model must not be empty")
            fields["model"] = model
        if not fields:
            raise InvalidInput(
                f"nothing to change in AI {ai_id!r}",
                hint="pass --label, --capability, --remove-capability, --max-concurrency "
                "or --model",
            )
        return self.store.update(ai_id, **fields)

    def set_status(self, ai_id: str, status: str) -> AI:
        """A person may set available or offline only; busy and quarantined are aictl's.
        Setting available clears the failure counters (it ends a quarantine)."""
        wanted = parse_status(status)
        if wanted not in SETTABLE_STATUSES:
            raise InvalidInput(
                f"cannot set status {wanted.value} by hand",
                hint="--set accepts available or offline; aictl sets busy and quarantined",
            )
        health = None
        if wanted is AIStatus.AVAILABLE:
            current = self.store.get(ai_id).health
            health = {**current, "consecutive_failures": 0, "last_error": None}
        return self.store.set_status(ai_id, wanted, health=health)

    def remove(self, ai_id: str) -> AI:
        return self.store.remove(ai_id)

    def explain_route(self, task_id: int) -> Route:
        """Where the router would send the task now, with every AI's reasons."""
        from aictl.services.skills import SkillService

        task = TaskStore(self.db, self.clock).get(task_id)
        skills = SkillService(self.workspace, db=self.db, clock=self.clock).checks_for(task)
        return route(task, self.store.list_ais(), self.store.load(), skills)
