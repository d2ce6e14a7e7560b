"""The AI instance: a registered agent the router can hand tasks to.

A stdlib dataclass like ``Task`` (see ``aictl.domain.tasks`` for why not pydantic). Values are
validated where they enter, in ``aictl.services.ais``.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any

from aictl.domain.tasks import check_text, format_time
from aictl.errors import InvalidInput


class AIStatus(StrEnum):
    AVAILABLE = "available"
    BUSY = "busy"
    OFFLINE = "offline"
    QUARANTINED = "quarantined"


SETTABLE_STATUSES = (AIStatus.AVAILABLE, AIStatus.OFFLINE)
"""Statuses a person may set; aictl itself sets busy and quarantined."""

# The same rule as lease holders (``aictl.services.tasks``): an AI id is the holder name of
# the leases it takes, so every valid id must be a valid holder.
_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.:@/-]{0,127}")


def check_ai_id(value: str) -> str:
    """``value`` unchanged if it is a valid AI id; ``InvalidInput`` saying what is valid."""
    if not _ID.fullmatch(check_text(value, "AI id")):
        raise InvalidInput(
            f"invalid AI id {value!r}",
            hint="an AI id is 1-128 letters, digits or _ . : @ / -, first a letter or digit",
        )
    return value


def fresh_health(
    version: str | None = None, binary: str | None = None, tools: Sequence[str] = ()
) -> dict[str, Any]:
    """Health of a newly registered AI, or of one a person set back to available."""
    return {
        "consecutive_failures": 0,
        "last_error": None,
        "version": version,
        "binary": binary,
        "tools": list(tools),
    }


@dataclass(slots=True, kw_only=True)
class AI:
    """One registered agent instance. ``health`` holds ``consecutive_failures``,
    ``last_error``, and the connector's detected ``version`` and ``binary``."""

    id: str
    connector: str
    labels: dict[str, str] = field(default_factory=dict)
    capabilities: list[str] = field(default_factory=list)
    max_concurrency: int = 1
    model: str | None = None
    status: AIStatus = AIStatus.AVAILABLE
    health: dict[str, Any] = field(default_factory=fresh_health)
    created_at: datetime
    updated_at: datetime

    def to_dict(self) -> dict[str, Any]:
        """The `--json` form, with stable keys."""
        return {
            "id": self.id,
            "connector": self.connector,
            "labels": dict(self.labels),
            "capabilities": list(self.capabilities),
            "max_concurrency": self.max_concurrency,
            "model": self.model,
            "status": self.status.value,
            "health": dict(self.health),
            "created_at": format_time(self.created_at),
            "updated_at": format_time(self.updated_at),
        }
