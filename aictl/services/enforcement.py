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


def _stat(path: Any) -> tuple[int, int] | None:
    try:
        status = path.stat()
    except OSError:
        return None
    return (status.st_mtime_ns, status.st_size)


class Enforcer:
    def __init__(self, workspace: Workspace, store: TaskStore) -> None:
        self.workspace = workspace
        self.store = store
        self._policies: dict[str | None, tuple[Any, Policy]] = {}

    def sibling(self, store: TaskStore) -> Enforcer:
        """An enforcer that decides as this one does, on another connection (``store``): the
        tool gate answers from the agent's reader thread, which needs a connection of its own.
        """
        return Enforcer(self.workspace, store)

    def policy(self, ai: str | None) -> Policy:
        """The effective policy for ``ai`` (files, then the overrides in force). Raises
        ``InvalidPolicy`` listing every problem: an invalid policy fails closed.

        Kept per AI while nothing it was built from changes: the layer files (size and
        modification time) and the overrides in force, which an override set by another
        process, or one expiring, changes. Checking costs a few stat calls and one query.
        """
        from aictl.policy import layer_paths, load_policy

        now = self.store.clock.now()
        overrides = {
            o.key: o.value for o in self.store.decisions.overrides(now=now) if o.ai in ("", ai)
        }
        files = tuple(_stat(path) for _, path in layer_paths(self.workspace.root, ai))
        signature = (files, repr(sorted(overrides.items())))
        cached = self._policies.get(ai)
        if cached is None or cached[0] != signature:
            policy = load_policy(self.workspace.root, ai=ai, overrides=overrides)
            self._policies[ai] = (signature, policy)
            return policy
        return cached[1]

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
