"""Decision records and policy overrides: reading them, and changing overrides as decisions."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any, TypeVar

from aictl.domain.durations import parse_duration
from aictl.errors import AictlError, InvalidInput, PolicyDenied
from aictl.services.actors import refuse_agents
from aictl.services.tasks import TaskService
from aictl.store.decisions import DecisionRecord, Override

T = TypeVar("T")


def override_key(key: str, ai: str | None) -> tuple[str, str]:
    """The full key and the AI it is for (``""``: all). A bare ``X`` means ``settings.X``, or
    with ``--ai ID`` that AI's setting ``ais.ID.X``; a full ``ais.ID.X`` is for ID. Settings
    are not per AI, so ``settings.X`` with ``--ai`` is refused rather than silently widened."""
    if key.startswith("ais."):
        target = key.split(".")[1] if key.count(".") >= 2 else ""
        if ai and ai != target:
            raise InvalidInput(f"override key {key!r} is for AI {target!r}, not {ai!r}")
        return key, target
    if key.startswith("settings."):
        if ai:
            raise InvalidInput(
                f"{key!r} applies to every AI and cannot be overridden for one",
                hint="per-AI keys are ais.ID.NAME (allowed_tools, model, max_turns...)",
            )
        return key, ""
    return (f"ais.{ai}.{key}", ai) if ai else (f"settings.{key}", "")


class DecisionService:
    """Built on a TaskService: the same database, clock, actor and policy enforcer."""

    def __init__(self, tasks: TaskService) -> None:
        self.tasks = tasks
        self.store = tasks.store.decisions

    def records(
        self,
        *,
        task_id: int | None = None,
        ai: str | None = None,
        effect: str | None = None,
        action: str | None = None,
    ) -> list[DecisionRecord]:
        return self.store.records(task_id=task_id, subject=ai, effect=effect, action=action)

    def overrides(self, *, all_of_them: bool = False) -> list[Override]:
        now = None if all_of_them else self.tasks.store.clock.now()
        return self.store.overrides(now=now)

    def set_override(
        self, key: str, value: str, *, ai: str | None, reason: str, expires: str | None
    ) -> Override:
        """Validate the override against the schema, ask the policy (action ``override``),
        and record both in one transaction. Raises ``InvalidPolicy`` for a bad key or value,
        ``PolicyDenied`` when policy refuses (the refusal is recorded)."""
        from aictl.policy import check_overrides
        from aictl.policy.issues import InvalidPolicy

        if not reason.strip():
            raise InvalidInput("an override needs a --reason")
        full, ai = override_key(key, ai)
        checked, issues = check_overrides({full: value})
        if issues:
            raise InvalidPolicy(issues)
        clock = self.tasks.store.clock
        expires_at = clock.now() + parse_duration(expires, field="--expires") if expires else None
        resource = {"key": full, "value": checked[full], "ai": ai or ""}
        return self._decide(
            resource,
            lambda now: self.store.set_override(
                key=full,
                ai=ai or "",
                value=checked[full],
                reason=reason,
                set_by=self.tasks.store.actor,
                at=now,
                expires_at=expires_at,
            ),
        )

    def unset_override(self, key: str, *, ai: str | None, reason: str) -> bool:
        full, ai = override_key(key, ai)
        if not any(o.key == full and o.ai == (ai or "") for o in self.overrides(all_of_them=True)):
            raise InvalidInput(f"no override {full!r}" + (f" for {ai}" if ai else ""))
        resource = {"key": full, "ai": ai or "", "unset": True}
        return bool(
            self._decide(
                resource,
                lambda now: self.store.unset_override(
                    key=full, ai=ai or "", reason=reason, by=self.tasks.store.actor, at=now
                ),
            )
        )

    def _decide(self, resource: dict[str, Any], apply: Callable[[datetime], T]) -> T:
        """Record the override decision and, when allowed, apply it, in one transaction.
        Overrides are a person's: an agent's request is refused and recorded first."""
        actor = self.tasks.store.actor
        what = "unsetting" if resource.get("unset") else "setting"
        refuse_agents(
            self.tasks, "override", f"{what} the override {resource['key']!r}", resource=resource
        )
        ruling = self.tasks.enforcer.ruling("override", subject=actor, resource=resource)
        refusal: AictlError | None = None
        with self.tasks.db.transaction():
            now = self.tasks.store.clock.now()
            self.store.enforce(ruling, at=now, task_id=None)
            if ruling.effect == "allow":
                return apply(now)
            refusal = PolicyDenied(f"policy denies the override by {actor}: {ruling.reason}")
        raise refusal
