"""Task worktrees, pure: names, the commit message and its trailers, and which worktrees
``aictl worktree prune`` may remove.

Each attempt of an executed task (under ``isolation: worktree``) runs in its own git worktree
``.ai/worktrees/task-<id>-<attempt>`` on the branch ``aictl/task-<id>``. The rule that matters
most is ``prune_verdict``: work that is not in the target branch is never removed.
"""

from __future__ import annotations

from dataclasses import dataclass

from aictl.domain.tasks import Task

WORKTREES_FOLDER = ".ai/worktrees"
BRANCH_PREFIX = "aictl/task-"
ISOLATIONS = ("worktree", "shared")
INTEGRATIONS = ("merge", "rebase", "branch")
DEFAULT_ISOLATION = "worktree"
DEFAULT_INTEGRATION = "merge"


#: The label by which a task continues another's unmerged work: its worktree starts from that
#: task's last commit instead of the target's head (a workflow's fix step after a failed step
#: sets it; anyone can, with ``--label continues=ID``).
CONTINUES_LABEL = "continues"


def continued(task: Task) -> int | None:
    """The id of the task whose work ``task`` continues (its ``continues`` label), or None
    (no label, or a value that is not a task id)."""
    value = task.labels.get(CONTINUES_LABEL, "")
    return int(value) if value.isdigit() and value != str(task.id) else None


def branch_name(task_id: int) -> str:
    return f"{BRANCH_PREFIX}{task_id}"


def kept_branch_name(task_id: int, attempt: int) -> str:
    """Where an earlier attempt's unmerged commits are kept when a new attempt takes
    ``branch_name``: renamed, never reset."""
    return f"{BRANCH_PREFIX}{task_id}-attempt-{attempt}"


def worktree_path(task_id: int, attempt: int) -> str:
    """The attempt's worktree, relative to the repository root."""
    return f"{WORKTREES_FOLDER}/task-{task_id}-{attempt}"


def commit_message(
    *, task_id: int, title: str, attempt: int, epoch: int, decision: str | None
) -> str:
    """The message of the commit aictl makes of a run's changes: a subject naming the task,
    then git trailers a reviewer (or ``git log --format=%(trailers)``) can query."""
    trailers = {
        "Aictl-Task": str(task_id),
        "Aictl-Attempt": str(attempt),
        "Aictl-Lease-Epoch": str(epoch),
        "Aictl-Decision": decision or "none",
    }
    subject = f"task {task_id}: {title}".replace("\n", " ")[:200]
    return subject + "\n\n" + "\n".join(f"{k}: {v}" for k, v in trailers.items()) + "\n"


def merge_message(task_id: int, title: str, branch: str) -> str:
    return f"Merge task {task_id} ({branch}): {title}".replace("\n", " ")[:200] + "\n"


@dataclass(frozen=True)
class WorktreeState:
    """What prune needs to know of one attempt's worktree and branch.

    ``unmerged_commits``: commits on the branch not in the target (None when it cannot be
    told, for example the target is gone: then it counts as unmerged). ``uncommitted``: files
    changed in the worktree and not committed (None when the worktree cannot be read).
    ``live``: its task is claimed or running with this attempt."""

    exists: bool
    unmerged_commits: int | None
    uncommitted: int | None
    live: bool


def prune_verdict(state: WorktreeState) -> tuple[bool, str]:
    """``(remove, why)``. Removes only a worktree whose every commit is in the target and
    which holds no uncommitted change, and never that of a live run; anything aictl cannot
    read is kept (a doubt keeps the work)."""
    if state.live:
        return False, "its run is still going"
    if state.unmerged_commits is None:
        return False, "cannot tell whether its commits are in the target branch"
    if state.unmerged_commits > 0:
        return False, f"{state.unmerged_commits} commit(s) not merged into the target branch"
    if state.exists and state.uncommitted is None:
        return False, "cannot read its working tree"
    if state.exists and state.uncommitted:
        return False, f"{state.uncommitted} uncommitted change(s) (a failed or killed run)"
    return True, "merged" if state.exists else "worktree already gone; branch merged"
