"""Deciding whether a request comes from an agent, with a fake /proc (aictl.domain.actors)."""

from __future__ import annotations

from aictl.domain.actors import (
    AGENT_RUN_ENV,
    actor_is_ai,
    command_name,
    find_agent,
    marker_in,
    parent_pid,
)


class FakeProc:
    """A process table: pid -> (command, parent pid, environment or None when unreadable)."""

    def __init__(self, table: dict[int, tuple[str, int, dict[str, str] | None]]) -> None:
        self.table = table
        self.read: list[int] = []

    def stat(self, pid: int) -> str | None:
        if pid not in self.table:
            return None
        name, ppid, _ = self.table[pid]
        return f"{pid} ({name}) S {ppid} {pid} {pid} 0 -1 4194560 5186"

    def environ(self, pid: int) -> bytes | None:
        self.read.append(pid)
        entry = self.table.get(pid)
        if entry is None or entry[2] is None:
            return None
        return b"".join(f"{k}={v}".encode() + b"\0" for k, v in entry[2].items())


def decide(proc: FakeProc, *, pid: int = 40, actor: str = "user:ann", environ=None):  # type: ignore[no-untyped-def]
    return find_agent(
        actor=actor,
        registered={"claude-1"},
        environ=environ or {},
        pid=pid,
        read_stat=proc.stat,
        read_environ=proc.environ,
    )


# A person's shell: init -> sshd -> bash -> aictl (pid 40), no marker anywhere.
PERSON = {
    1: ("systemd", 0, {"PATH": "/bin"}),
    10: ("sshd", 1, {"PATH": "/bin"}),
    20: ("bash", 10, {"HOME": "/root"}),
    40: ("aictl", 20, {"HOME": "/root"}),
}


def test_a_person_s_process_tree_is_a_person() -> None:
    proc = FakeProc(PERSON)
    assert decide(proc) is None
    assert proc.read == [40, 20, 10, 1]  # walked up to init


def test_the_marker_in_an_ancestor_is_found_though_our_own_environment_dropped_it() -> None:
    """The agent's shell ran `env -u AICTL_AGENT_RUN aictl task approve 3`: our environment
    has no marker, but the claude process two levels up still does."""
    proc = FakeProc(
        {
            **PERSON,
            30: ("claude", 20, {AGENT_RUN_ENV: "3:1", "PATH": "/bin"}),
            35: ("bash", 30, {"PATH": "/bin"}),
            40: ("aictl", 35, {"PATH": "/bin"}),
        }
    )
    sign = decide(proc)
    assert sign is not None and (sign.pid, sign.run) == (30, "3:1")
    assert "pid 30 (claude)" in sign.reason and "AICTL_AGENT_RUN=3:1" in sign.reason


def test_the_marker_in_our_own_environment_is_enough() -> None:
    sign = decide(FakeProc(PERSON), environ={AGENT_RUN_ENV: "7:2"})
    assert sign is not None and sign.run == "7:2" and sign.pid is None
    assert "this process's environment" in sign.reason


def test_an_empty_marker_is_no_marker() -> None:
    assert decide(FakeProc(PERSON), environ={AGENT_RUN_ENV: ""}) is None


def test_an_unreadable_environment_is_skipped_and_the_walk_goes_on() -> None:
    """Another user's process (environ unreadable) between us and the agent does not hide it."""
    proc = FakeProc(
        {
            **PERSON,
            30: ("claude", 20, {AGENT_RUN_ENV: "3:1"}),
            35: ("sudo", 30, None),
            40: ("aictl", 35, {}),
        }
    )
    sign = decide(proc)
    assert sign is not None and sign.pid == 30
    assert 35 in proc.read


def test_a_vanished_parent_ends_the_walk() -> None:
    proc = FakeProc({40: ("aictl", 39, {}), 1: ("init", 0, {AGENT_RUN_ENV: "1:1"})})
    assert decide(proc) is None
    assert proc.read == [40, 39]


def test_a_loop_in_the_table_ends_the_walk() -> None:
    proc = FakeProc({40: ("aictl", 41, {}), 41: ("odd", 40, {})})
    assert decide(proc) is None
    assert proc.read == [40, 41]


def test_an_actor_that_is_a_registered_ai_or_says_ai_is_an_agent() -> None:
    for actor in ("claude-1", "ai:claude-1", "ai:anyone"):
        sign = decide(FakeProc(PERSON), actor=actor)
        assert sign is not None and sign.actor == actor
        assert "is an AI" in sign.reason
    assert decide(FakeProc(PERSON), actor="user:claude-2") is None
    assert actor_is_ai("claude-1", {"claude-1"}) and not actor_is_ai("user:x", {"claude-1"})


def test_stat_lines_with_awkward_command_names() -> None:
    line = "77 (a) b (c) S 12 77 77 0 -1"
    assert parent_pid(line) == 12 and command_name(line) == "a) b (c"
    assert parent_pid("garbage") is None and parent_pid("1 (x) S notanumber") is None
    assert command_name("garbage") == "?"


def test_marker_in_a_block() -> None:
    assert marker_in(b"A=1\0AICTL_AGENT_RUN=4:2\0B=2\0") == "4:2"
    assert marker_in(b"XAICTL_AGENT_RUN=4:2\0") is None
    assert marker_in(b"") is None
