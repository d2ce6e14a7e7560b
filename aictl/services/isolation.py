"""The worktree side of an executed attempt (``isolation: worktree``, the default): make the
attempt's worktree before the agent starts, then commit what it did on the task's branch, run
the tests there and integrate the branch into the target under the lease (see
``aictl.services.worktrees`` for the git steps and what a kill at each leaves)."""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from aictl.domain.tasks import LeaseToken, Task
from aictl.domain.worktrees import (
    DEFAULT_INTEGRATION,
    DEFAULT_ISOLATION,
    commit_message,
    continued,
)
from aictl.errors import AictlError, LeaseLost
from aictl.policy.layers import Policy
from aictl.services.evidence import Inspector, judge_outcome
from aictl.services.tasks import TaskService
from aictl.services.worktrees import GitFailed, Worktrees, remote_of
from aictl.store.branches import BranchRecord, BranchStore
from connectors import RunResult


class Isolation:
    """Makes, commits, tests and integrates the worktrees of one executor's attempts."""

    def __init__(
        self,
        service: TaskService,
        inspector: Inspector,
        environ: Mapping[str, str],
        progress: Callable[[str], None],
    ) -> None:
        self.service = service
        self.workspace = service.workspace
        self.inspector = inspector
        self.environ = environ
        self.progress = progress

    def worktrees(self) -> Worktrees:
        clock = self.service.store.clock
        return Worktrees(
            self.workspace,
            BranchStore(self.service.db, clock),
            self.environ,
            self.progress,
            remote=remote_of(self.service),
        )

    def isolate(
        self, task: Task, token: LeaseToken, attempt: int, policy: Policy
    ) -> tuple[BranchRecord | None, Path]:
        """The attempt's own worktree under ``isolation: worktree`` (the default) and the
        agent's working directory; no worktree (the repository's root) under ``shared``, or in
        a repository without a commit to branch from (said in the progress). A worktree that
        cannot be made releases the task (no attempt counted)."""
        shared = None, self.workspace.root
        if (policy.setting("isolation") or DEFAULT_ISOLATION) == "shared":
            return shared
        head = self.inspector.git(["rev-parse", "--verify", "--quiet", "HEAD"])
        if not head or head[0] != 0:
            self.progress(
                f"task {task.id}: no commit to branch from, so the agent works in the shared "
                "working tree (commit your files to get a worktree per task)"
            )
            return shared
        mode = str(policy.setting("integrate") or DEFAULT_INTEGRATION)
        try:
            record = self.worktrees().create(
                task.id, attempt, mode, continues=continued(task), paths=task.paths
            )
        except AictlError as error:
            self.service.release(token)
            error.hint = error.hint or f"task {task.id} was released; no attempt was counted"
            raise
        self.progress(f"task {task.id}: working in {record.worktree} on {record.branch}")
        return record, self.workspace.root / record.worktree

    def finish(
        self,
        record: BranchRecord,
        task: Task,
        ai_id: str,
        token: LeaseToken,
        decision: str,
        result: RunResult,
        evidence: dict[str, Any],
        test_timeout: float | None,
        lost: threading.Event,
    ) -> None:
        """After an isolated run: commit its changes on its branch, run the tests in its
        worktree and, when the run is judged done, integrate it into the target branch.
        Nothing is committed or integrated for a failed or stopped run, or one that changed
        files outside its task's paths (its worktree is kept for inspection). Fills the
        evidence (commits, diffstat, diff from git, tests, ``integration``)."""
        worktrees = self.worktrees()
        root = self.workspace.root / record.worktree
        outside = evidence.get("changes_outside_paths") or []
        why_not = None
        if test_timeout is None:
            why_not = "the run did not succeed"
        elif outside:
            why_not = "the run changed files outside the task's paths"
        try:
            if why_not is None:
                message = commit_message(
                    task_id=task.id,
                    title=task.title,
                    attempt=record.attempt,
                    epoch=token.epoch,
                    decision=decision,
                )
                record, changed = worktrees.commit(record, author=ai_id, message=message)
                if record.task_commit is not None:
                    stat, diff = worktrees.diffstat(record.base_commit, record.task_commit)
                    evidence.update(files_changed=changed, diff=diff, diffstat=stat)
                assert test_timeout is not None
                evidence["tests"] = self.inspector.tests(test_timeout, root)
                verdict, reason = judge_outcome(result, evidence["tests"])
                if verdict != "done":
                    why_not = reason
                elif record.task_commit is not None:
                    self.service.heartbeat(token)  # the lease must outlive the integration
                    record = self._integrate(worktrees, record, task, token, evidence)
            if why_not is not None:
                record = worktrees.branches.update(
                    task.id, record.attempt, status="failed", reason=why_not
                )
        except LeaseLost as error:
            lost.set()
            evidence["integration"] = {"status": "lease lost", "reason": str(error)}
        except GitFailed as error:
            evidence["integration"] = {"status": "failed", "reason": f"git failed: {error}"}
        evidence["worktree"] = record.worktree
        evidence.update(
            branch=record.branch,
            target=record.target,
            base_commit=record.base_commit,
            task_commit=record.task_commit,
            merge_commit=record.merge_commit,
        )

    def _integrate(
        self,
        worktrees: Worktrees,
        record: BranchRecord,
        task: Task,
        token: LeaseToken,
        evidence: dict[str, Any],
    ) -> BranchRecord:
        def fence() -> None:
            lost = self.service.store.lease_loss(token)
            if lost is not None:
                raise lost

        self.progress(f"task {task.id}: integrating {record.branch} into {record.target}")
        done = worktrees.integrate(record, title=task.title, fence=fence)
        evidence["integration"] = {"status": done.status, "reason": done.reason}
        shown = done.record.merge_commit or done.record.task_commit or ""
        self.progress(
            f"task {task.id}: {done.status} {shown[:12]}"
            + (f" ({done.reason})" if done.reason else "")
        )
        return done.record
