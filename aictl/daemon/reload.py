"""Policy hot reload: a changed policy takes effect on the next tick; a broken one is refused.

Every ``Enforcer`` already reloads the policy when a layer file changes (it compares their
size and modification time on each use), so a valid edit is in force within one tick. What the
daemon adds is the refusal: while the files do not validate, the ``KeptEnforcer`` of every
execution thread goes on deciding with the last valid policy (per AI), and the loop logs the
errors once per broken version (``policy.refused``) instead of failing every claim.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Any

from aictl.daemon.jsonlog import JsonLog
from aictl.policy.issues import InvalidPolicy
from aictl.services.enforcement import Enforcer
from aictl.store.tasks import TaskStore
from aictl.workspace import Workspace

if TYPE_CHECKING:
    from aictl.policy import Policy


class PolicyKeeper:
    """The last valid policy per AI (``None``: no per-AI layer), shared by every thread."""

    def __init__(self, journal: JsonLog) -> None:
        self.journal = journal
        self._lock = threading.Lock()
        self._valid: dict[str | None, Policy] = {}
        self._refused: str | None = None
        self.hash: str | None = None

    def accepted(self, ai: str | None, policy: Policy) -> None:
        with self._lock:
            self._valid[ai] = policy

    def fallback(self, ai: str | None, error: InvalidPolicy) -> Policy:
        """The last valid policy for ``ai``; re-raise ``error`` when there never was one (a
        policy that never validated is not in force: fail closed)."""
        with self._lock:
            kept = self._valid.get(ai)
        if kept is None:
            raise error
        return kept

    def check(self, enforcer: Enforcer) -> str:
        """Load the project's policy; log a change or a refusal. Returns ``loaded``,
        ``unchanged``, ``reloaded`` or ``refused``."""
        try:
            policy = enforcer.policy(None)
        except InvalidPolicy as error:
            text = error.message
            if text != self._refused:
                self._refused = text
                self.journal.error(
                    "policy.refused",
                    "the changed policy is invalid and was refused; the previous policy "
                    f"({self.hash or 'none'}) stays in force",
                    errors=[issue.to_dict() for issue in error.issues],
                    kept_hash=self.hash,
                )
                return "refused"
            return "unchanged"
        self._refused = None
        self.accepted(None, policy)
        if policy.hash == self.hash:
            return "unchanged"
        previous, self.hash = self.hash, policy.hash
        if previous is None:
            self.journal.info("policy.loaded", f"policy {policy.hash} in force", hash=policy.hash)
            return "loaded"
        self.journal.info(
            "policy.reloaded",
            f"policy changed: {previous} -> {policy.hash}",
            hash=policy.hash,
            previous=previous,
        )
        return "reloaded"


class KeptEnforcer(Enforcer):
    """An ``Enforcer`` that decides with the keeper's last valid policy while the files are
    invalid."""

    def __init__(self, workspace: Workspace, store: TaskStore, keeper: PolicyKeeper) -> None:
        super().__init__(workspace, store)
        self.keeper = keeper

    def sibling(self, store: TaskStore) -> KeptEnforcer:
        return KeptEnforcer(self.workspace, store, self.keeper)

    def policy(self, ai: str | None) -> Any:
        try:
            found = super().policy(ai)
        except InvalidPolicy as error:
            return self.keeper.fallback(ai, error)
        self.keeper.accepted(ai, found)
        return found
