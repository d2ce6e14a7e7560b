"""``prune_verdict``: over every state a worktree can be in, prune removes only work that is
all merged and clean, and never a live run's (hypothesis)."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from aictl.domain.worktrees import (
    WorktreeState,
    branch_name,
    commit_message,
    prune_verdict,
    worktree_path,
)

states = st.builds(
    WorktreeState,
    exists=st.booleans(),
    unmerged_commits=st.none() | st.integers(min_value=0, max_value=50),
    uncommitted=st.none() | st.integers(min_value=0, max_value=50),
    live=st.booleans(),
)


@given(states)
def test_prune_never_removes_unmerged_uncommitted_unknown_or_live_work(
    state: WorktreeState,
) -> None:
    remove, why = prune_verdict(state)
    if remove:
        assert not state.live
        assert state.unmerged_commits == 0
        assert not state.exists or state.uncommitted == 0
    else:
        assert why  # a kept worktree always says why


@given(states)
def test_merged_and_clean_work_is_removed(state: WorktreeState) -> None:
    clean = state.unmerged_commits == 0 and (not state.exists or state.uncommitted == 0)
    assert prune_verdict(state)[0] == (clean and not state.live)


def test_names_and_trailers() -> None:
    assert branch_name(7) == "aictl/task-7"
    assert worktree_path(7, 2) == ".ai/worktrees/task-7-2"
    message = commit_message(task_id=7, title="Fix\nit", attempt=2, epoch=3, decision="d-1")
    subject, _, trailers = message.partition("\n\n")
    assert subject == "task 7: Fix it"
    assert trailers.splitlines() == [
        "Aictl-Task: 7",
        "Aictl-Attempt: 2",
        "Aictl-Lease-Epoch: 3",
        "Aictl-Decision: d-1",
    ]
