"""Enforcement: evaluate the effective policy for an action and hand the store a ``Ruling``.

The store records the ruling in the transaction of the action it decides (see
``aictl.store.decisions``). The policy is loaded once per AI per process, with the recorded
overrides that are in force, and only when a decision is actually needed.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from aictl.domain.tasks import Task
from aictl.store.decisions import Ruling
from aictl.store.tasks import TaskStore
from aictl.workspace import Workspace

if TYPE_CHECKING:
    from aictl.policy import Policy


class Enforcer:
    def __init__(self, workspace: Workspace, store: TaskStore) -> None:
        self.workspace = workspace
        self.store = store
        self._policies: dict[str | None, Policy] = {}

    def policy(self, ai: str | None) -> Policy:
        """The effective policy for ``ai`` (files, then overrides in force). Raises
        ``InvalidPolicy`` listing every problem: an invalid policy fails closed."""
        if ai not in self._policies:
            from aictl.policy import load_policy

            now = self.store.clock.now()
            overrides = {o.key: o.value for o in self.store.decisions.overrides(now=now)}
            self._policies[ai] = load_policy(self.workspace.root, ai=ai, overrides=overrides)
        return self._policies[ai]

    def ruling(
        self,
        action: str,
        *,
        subject: str,
        task: Task | Mapping[str, Any] | None = None,
        ai: str | None = None,
        resource: Mapping[str, Any] | None = None,
        tool: str | None = None,
        tool_input: Mapping[str, Any] | None = None,
    ) -> Ruling:
        """Evaluate ``action`` by ``subject`` and package the decision for the store."""
        from aictl.policy import build_request, evaluate

        request = build_request(
            action, task=task, ai=ai, tool=tool, tool_input=tool_input, root=self.workspace.root
        )
        decision = evaluate(self.policy(ai), request)
        if resource is None:
            resource = {"task": request["task"].get("id"), "paths": request["paths"]}
        return Ruling(
            decision.effect,
            f"{decision.decided_by}: {decision.reason}",
            {
                "action": action,
                "subject": subject,
                "rules": [rule.to_dict() for rule in decision.matched],
                "warnings": [rule.to_dict() for rule in decision.warnings]
                + [error.to_dict() for error in decision.errors],
                "layers": dict(decision.layer_hashes),
                "policy_hash": decision.policy_hash,
                "request": request,
                "resource": dict(resource),
            },
        )
