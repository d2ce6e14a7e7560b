"""What one run changed and what the project's tests say about it: the executor's evidence,
read from git and from aictl's own run of the policy's ``test_command`` (never from the
model's words). Every command goes through ``run_process``."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from aictl.domain.tasks import Task
from aictl.domain.toolcalls import outside_paths
from aictl.services.tasks import TaskService
from connectors import RunResult
from connectors.process import run_process

TEST_OUTPUT_LINES = 200
GIT_TIMEOUT = 60.0
#: Paths of aictl's own state, never counted as the agent's changes.
OWN_PATHS = (
    ".ai/runs/",
    ".ai/state.db",
    ".ai/logs/",
    ".ai/cache/",
    ".ai/daemon.",
    ".ai/worktrees/",
    ".ai/integrate.lock",
)


class Inspector:
    """Reads a run's working tree (the repository's, or its task's worktree) before and after
    the agent, and runs the tests there."""

    def __init__(
        self,
        service: TaskService,
        environ: Mapping[str, str],
        progress: Callable[[str], None],
    ) -> None:
        self.service = service
        self.workspace = service.workspace
        self.environ = environ
        self.progress = progress

    def run(
        self, argv: list[str], timeout: float | None = GIT_TIMEOUT, cwd: Path | None = None
    ) -> tuple[int | None, str, str] | None:
        lines: list[str] = []
        try:
            outcome = run_process(
                argv,
                cwd=cwd or self.workspace.root,
                env=self.environ,
                idle_timeout=None,
                total_timeout=timeout,
                on_line=lines.append,
                grace=2.0,
            )
        except OSError:
            return None
        return outcome.exit_code, "\n".join(lines), outcome.stderr

    def head(self, root: Path) -> str | None:
        """The commit checked out at ``root`` (None without one)."""
        ran = self.git(["rev-parse", "HEAD"], root)
        return ran[1].strip() if ran and ran[0] == 0 else None

    def git(self, args: list[str], cwd: Path | None = None) -> tuple[int | None, str, str] | None:
        return self.run(["git", *args], cwd=cwd)

    def dirty(self, root: Path) -> dict[str, tuple[str, str | None]]:
        """Every changed or untracked file against HEAD in the working tree at ``root``
        (aictl's own state aside): its git status code and a hash of its content (None when
        deleted)."""
        status = self.git(["status", "--porcelain=v1", "-z", "--untracked-files=all"], root)
        if not status or status[0] != 0:
            return {}
        found: dict[str, tuple[str, str | None]] = {}
        entries = iter(status[1].split("\0"))
        for entry in entries:
            if len(entry) < 4:
                continue
            code, path = entry[:2], entry[3:]
            if "R" in code or "C" in code:
                moved_from = next(entries, "")  # -z: the source follows as its own entry
                if moved_from and not moved_from.startswith(OWN_PATHS):
                    found[moved_from] = ("D ", None)
            if not path.startswith(OWN_PATHS):
                found[path] = (code, _hash(root / path))
        return found

    def evidence(
        self,
        task: Task,
        ai_id: str,
        attempt: int,
        base: str | None,
        dirty_before: Mapping[str, tuple[str, str | None]],
        result: RunResult,
        test_timeout: float | None,
        *,
        root: Path,
    ) -> dict[str, Any]:
        """What the run changed and, given a ``test_timeout``, what the project's tests say.

        Changed files are those whose state differs from before the run (a file the user had
        already changed counts only if the run changed it again). With several agents in one
        working tree, changes outside the task's paths are listed apart: the path locks say
        they are some other task's (or a shell write policy let through)."""
        changed: list[str] = []
        elsewhere: list[str] = []
        diff = ""
        if base is not None:
            after = self.dirty(root)
            for path in sorted(set(dirty_before) | set(after)):
                if dirty_before.get(path, ("", ""))[1:] == after.get(path, ("", ""))[1:]:
                    continue
                covered = not task.paths or not outside_paths([path], task.paths)
                (changed if covered else elsewhere).append(path)
            diff = self._diff(base, changed, after, root)
        isolated = root != self.workspace.root  # in its own worktree: every change is its own
        outside, others = (elsewhere, {}) if isolated else self._attribute(task, elsewhere)
        return {
            "task_id": task.id,
            "ai": ai_id,
            "attempt": attempt,
            "base_commit": base,
            "files_changed": changed,
            "changes_outside_paths": outside,
            "changes_of_other_tasks": others,
            "diff": diff,
            "isolation": "worktree" if isolated else "shared",
            "tests": {"status": "not run"}
            if test_timeout is None
            else self.tests(test_timeout, root),
            "agent": {
                "status": result.status,
                "reason": result.reason,
                "retryable": result.retryable,
                "detail": result.detail,
                "session_id": result.session_id,
                "num_turns": result.num_turns,
                "total_cost_usd": result.total_cost_usd,
                "usage": dict(result.usage),
                "permission_denials": [dict(d) for d in result.permission_denials],
                "api_error_status": result.api_error_status,
                "exit_code": result.exit_code,
                "duration": round(result.duration, 3),
            },
            "transcript": "transcript.jsonl",
        }

    def _attribute(self, task: Task, paths: list[str]) -> tuple[list[str], dict[str, list[int]]]:
        """Split changes outside ``task``'s paths into those no other task accounts for (the
        run's own escapes: they fail the task under ``outside_changes: fail``) and those inside
        the paths of a task that held a lease during this run (several agents share one working
        tree; the path locks kept that task's paths apart from this one's), by path."""
        if not paths or task.claimed_at is None:
            return paths, {}
        leased = self.service.store.leased_since(task.claimed_at, exclude=task.id)
        outside: list[str] = []
        others: dict[str, list[int]] = {}
        for path in paths:
            owners = [
                other for other, globs in sorted(leased.items()) if not outside_paths([path], globs)
            ]
            if owners:
                others[path] = owners
            else:
                outside.append(path)
        return outside, others

    def _diff(
        self,
        base: str,
        files: list[str],
        status: Mapping[str, tuple[str, str | None]],
        root: Path,
    ) -> str:
        """``git diff`` of the tracked ``files`` against ``base``, then untracked ones whole."""
        tracked = [f for f in files if status.get(f, ("", None))[0] != "??"]
        diff = ""
        if tracked:
            ran = self.git(["diff", base, "--", *(f":(literal){f}" for f in tracked)], root)
            diff = ran[1] if ran and ran[0] == 0 else ""
        for path in files:
            if status.get(path, ("", None))[0] != "??":
                continue
            try:
                content = (root / path).read_text(errors="replace")
            except OSError:
                continue
            diff += f"\n--- /dev/null\n+++ b/{path} (untracked)\n" + "".join(
                f"+{line}\n" for line in content.splitlines()
            )
        return diff

    def tests(self, timeout: float, root: Path) -> dict[str, Any]:
        command = self.service.enforcer.policy(None).setting("test_command")
        if not command:
            return {"status": "not configured"}
        self.progress(f"running tests: {command}")
        ran = self.run(["/bin/sh", "-c", str(command)], timeout=timeout, cwd=root)
        if ran is None:
            return {"status": "failed", "command": command, "exit_code": None, "output": ""}
        code, out, err = ran
        tail = (out + ("\n" + err if err else "")).splitlines()[-TEST_OUTPUT_LINES:]
        return {
            "status": "passed" if code == 0 else "failed",
            "command": command,
            "exit_code": code,
            "output": "\n".join(tail),
        }


def _hash(path: Path) -> str | None:
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()
    except OSError:  # deleted, or a folder (an untracked submodule)
        return None


def judge_outcome(
    result: RunResult,
    tests: Mapping[str, Any],
    *,
    outside: Sequence[str] = (),
    on_outside: str = "fail",
    paths: Sequence[str] = (),
) -> tuple[str, str | None]:
    """``("done", None)``, or ``("retry"|"fail", reason)``.

    Changes ``outside`` the task's ``paths`` with ``on_outside == "fail"`` decide first, and
    are not retryable: a run that wrote where it must not is not mended by running it again,
    whatever else happened."""
    if outside and on_outside == "fail":
        where = ", ".join(paths) or "(none)"
        return "fail", (
            f"outside_changes: {len(outside)} file(s) changed outside the task's paths "
            f"({where}): {listing(outside)}"
        )[:2000]
    if not result.ok:
        kind = "retry" if result.retryable else "fail"
        return kind, f"{result.reason}: {result.detail}"[:2000]
    if tests.get("status") == "failed":
        code = tests.get("exit_code")
        ended = (
            "did not finish (timed out or could not start)" if code is None else f"exited {code}"
        )
        return "fail", f"tests failed: `{tests.get('command')}` {ended}"
    return "done", None


def listing(paths: Sequence[str], limit: int = 20) -> str:
    shown = ", ".join(paths[:limit])
    return shown + (f" and {len(paths) - limit} more" if len(paths) > limit else "")
