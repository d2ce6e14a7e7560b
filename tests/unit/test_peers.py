"""Agents as peers, pure parts: the agent's name and the hook's judgement of a write."""

from __future__ import annotations

from aictl.domain.peers import Lease, agent_name, check_agent_name, judge_write

ROOT = "/repo"
MINE = Lease(1, "api", ("src/api/**",), "a1", 1)
THEIRS = Lease(2, "web", ("src/web/**",), "b2", 3)


def stat_line(pid: int, name: str, parent: int) -> str:
    return f"{pid} ({name}) S {parent} 1 1 0"


def test_aictl_agent_wins() -> None:
    assert agent_name({"AICTL_AGENT": "builder"}, 10, lambda pid: None, 7) == "builder"


def test_default_is_the_nearest_claude_ancestor_shared_by_server_and_hooks() -> None:
    """The hook runs under a shell that claude started; the MCP server directly under claude:
    both find the same claude process, so both name the same agent."""
    tree = {
        50: stat_line(50, "aictl", 49),  # the hook process
        49: stat_line(49, "sh", 40),
        40: stat_line(40, "claude", 30),
        30: stat_line(30, "bash", 1),
        60: stat_line(60, "aictl", 40),  # the MCP server
    }
    hook = agent_name({}, 50, tree.get, 99)
    server = agent_name({}, 60, tree.get, 99)
    assert hook == server == "claude-40"


def test_without_claude_the_session_names_the_agent() -> None:
    tree = {50: stat_line(50, "aictl", 30), 30: stat_line(30, "bash", 1)}
    assert agent_name({}, 50, tree.get, 30) == "agent-30"


def test_invalid_names_are_named() -> None:
    assert check_agent_name("a1") is None
    problem = check_agent_name("bad name")
    assert problem is not None and "AICTL_AGENT" in problem


def test_a_write_inside_a_held_task_is_allowed_and_names_that_task() -> None:
    verdict = judge_write("a1", "Write", {"file_path": "src/api/x.py"}, [MINE, THEIRS], ROOT)
    assert verdict.denial is None and verdict.task == MINE


def test_a_write_into_paths_another_agent_holds_names_task_and_holder() -> None:
    verdict = judge_write("a1", "Edit", {"file_path": "/repo/src/web/a.ts"}, [MINE, THEIRS], ROOT)
    assert verdict.rule == "held-by-other"
    assert verdict.denial is not None
    assert (
        "task 2" in verdict.denial and "b2" in verdict.denial and "src/web/a.ts" in verdict.denial
    )


def test_a_write_outside_every_held_task_is_denied() -> None:
    verdict = judge_write("a1", "Write", {"file_path": "docs/x.md"}, [MINE, THEIRS], ROOT)
    assert verdict.rule == "task-paths" and verdict.denial is not None
    assert "outside task 1's paths" in verdict.denial


def test_an_agent_holding_nothing_may_write_nothing() -> None:
    verdict = judge_write("c3", "Write", {"file_path": "free/x"}, [MINE, THEIRS], ROOT)
    assert verdict.denial is not None and "holds no task" in verdict.denial


def test_several_tasks_any_one_covering_the_write_allows_it() -> None:
    second = Lease(5, "docs", ("docs/**",), "a1", 1)
    verdict = judge_write("a1", "Write", {"file_path": "docs/x.md"}, [MINE, second], ROOT)
    assert verdict.denial is None and verdict.task == second


def test_tools_that_write_no_file_are_left_to_the_policy() -> None:
    for tool in ("Bash", "Read", "Grep"):
        verdict = judge_write("a1", tool, {"command": "rm -rf src/web"}, [MINE, THEIRS], ROOT)
        assert verdict.denial is None and verdict.task is None
