"""The Claude Code connector without the real binary: the stream-json parser, the judge, the
command and environment it builds, the connector registry, and the process runner driven by
small ``python -c`` children."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path
from typing import Any

import pytest

import connectors
from connectors import Detection, RunRequest, RunResult, UnknownConnector
from connectors.claude_code import ClaudeCodeConnector
from connectors.claude_code.command import build_command, find_binary, scrub_env
from connectors.claude_code.judge import judge
from connectors.claude_code.stream import (
    AssistantTurn,
    Init,
    Parsed,
    Result,
    StreamParser,
    SystemNote,
    ToolResult,
)
from connectors.process import ProcessOutcome, run_process

SESSION = "5d0c1c36-2b4e-4c51-9f7e-0a8f6f2b1a11"
BASE_ENV = {"PATH": os.environ.get("PATH", "/usr/bin:/bin")}

# --- recorded lines (shapes observed with Claude Code 2.1.197) --------------------------------

INIT = {
    "type": "system",
    "subtype": "init",
    "cwd": "/tmp/repo",
    "session_id": SESSION,
    "tools": ["Bash", "Edit", "Read", "Write"],
    "model": "claude-sonnet-4-5",
    "permissionMode": "acceptEdits",
    "claude_code_version": "2.1.197",
}
TOOL_USE = {
    "type": "assistant",
    "message": {
        "role": "assistant",
        "content": [
            {
                "type": "tool_use",
                "id": "toolu_1",
                "name": "Write",
                "input": {"file_path": "a.txt", "content": "hi"},
            }
        ],
    },
    "session_id": SESSION,
}
TOOL_RESULT = {
    "type": "user",
    "message": {
        "role": "user",
        "content": [
            {"type": "tool_result", "tool_use_id": "toolu_1", "content": "File created"},
        ],
    },
}
TEXT = {
    "type": "assistant",
    "message": {"role": "assistant", "content": [{"type": "text", "text": "I wrote a.txt."}]},
}


def result_line(**overrides: Any) -> dict[str, Any]:
    line = {
        "type": "result",
        "subtype": "success",
        "is_error": False,
        "num_turns": 2,
        "result": "I wrote a.txt.",
        "session_id": SESSION,
        "total_cost_usd": 0.0123,
        "usage": {"input_tokens": 1300, "output_tokens": 60},
        "permission_denials": [],
        "terminal_reason": "completed",
    }
    line.update(overrides)
    return line


def parse(*lines: dict[str, Any] | str) -> Parsed:
    parser = StreamParser()
    for line in lines:
        parser.feed(line if isinstance(line, str) else json.dumps(line))
    return parser.parsed


def outcome(
    exit_code: int | None = 0,
    *,
    sig: int | None = None,
    timed_out: Any = None,
    cancelled: bool = False,
    stderr: str = "",
) -> ProcessOutcome:
    return ProcessOutcome(
        argv=("claude",),
        pid=1,
        exit_code=exit_code,
        signal=sig,
        timed_out=timed_out,
        cancelled=cancelled,
        stderr=stderr,
        duration=1.5,
        lines=0,
    )


# --- the parser --------------------------------------------------------------------------------


def test_a_full_run_parses_into_init_turns_tool_results_and_the_result() -> None:
    parser = StreamParser()
    events = [parser.feed(json.dumps(line)) for line in (INIT, TOOL_USE, TOOL_RESULT, TEXT)]
    events.append(parser.feed(json.dumps(result_line())))
    assert [type(e[0]) for e in events] == [Init, AssistantTurn, ToolResult, AssistantTurn, Result]
    parsed = parser.parsed
    assert parsed.init == Init(
        SESSION, "claude-sonnet-4-5", "2.1.197", ("Bash", "Edit", "Read", "Write"), "/tmp/repo",
        "acceptEdits",
    )  # fmt: skip
    assert [use.name for use in parsed.tool_uses] == ["Write"]
    assert parsed.tool_uses[0].input == {"file_path": "a.txt", "content": "hi"}
    assert parsed.tool_results == [ToolResult("toolu_1", False, "File created")]
    assert parsed.turns[1].text == "I wrote a.txt."
    assert parsed.result is not None
    assert parsed.result.num_turns == 2 and parsed.result.total_cost_usd == 0.0123
    assert parsed.result.usage["output_tokens"] == 60 and parsed.result.is_error is False
    assert parsed.malformed == [] and parsed.after_result == 0


def test_system_lines_after_the_result_are_kept_and_do_not_replace_it() -> None:
    parsed = parse(INIT, TEXT, result_line(), {"type": "system", "subtype": "hook_response"}, "")
    assert parsed.result is not None and parsed.result.subtype == "success"
    assert parsed.after_result == 1
    assert parsed.notes == [
        SystemNote("hook_response", {"type": "system", "subtype": "hook_response"})
    ]


def test_malformed_lines_are_recorded_not_fatal() -> None:
    parsed = parse(INIT, "{not json", "[1, 2]", '{"no": "type"}', "x" * 5000, result_line())
    assert [m.line_number for m in parsed.malformed] == [2, 3, 4, 5]
    assert parsed.malformed[0].problem.startswith("not JSON")
    assert len(parsed.malformed[3].excerpt) == 200
    assert parsed.result is not None


def test_a_line_over_one_megabyte_parses_whole() -> None:
    content = "y" * (3 * 1024 * 1024)
    text = [{"type": "text", "text": content}]
    block: dict[str, Any] = {"type": "tool_result", "tool_use_id": "toolu_1", "content": text}
    big = {"type": "user", "message": {"role": "user", "content": [block]}}
    line = json.dumps(big)
    assert len(line) > 1024 * 1024
    parsed = parse(INIT, line, result_line())
    assert parsed.tool_results[0].content == content and parsed.malformed == []


def test_odd_fields_do_not_break_the_parser() -> None:
    parsed = parse(
        {"type": "system", "subtype": "init", "tools": "Bash"},
        {"type": "assistant", "message": "text"},
        {"type": "stream_event", "event": {}},
        {"type": "result", "num_turns": True, "total_cost_usd": "1", "permission_denials": ["x"]},
    )
    assert parsed.init is not None and parsed.init.tools == () and parsed.init.session_id is None
    assert parsed.turns == [AssistantTurn("", ())]
    result = parsed.result
    assert result is not None
    assert result.is_error is True  # absent is_error is never a success
    assert result.num_turns is None and result.total_cost_usd is None
    assert result.permission_denials == ({"denial": "x"},)


# --- the judge ---------------------------------------------------------------------------------


def test_success_needs_a_result_line_saying_no_error_and_no_denials() -> None:
    judged = judge(outcome(0), parse(INIT, TOOL_USE, TOOL_RESULT, TEXT, result_line()))
    assert judged.ok and judged.reason is None
    assert judged.session_id == SESSION and judged.num_turns == 2
    assert judged.total_cost_usd == 0.0123 and judged.usage["input_tokens"] == 1300
    assert judged.result_text == "I wrote a.txt." and judged.exit_code == 0


def test_exit_zero_without_a_result_line_is_a_retryable_crash() -> None:
    judged = judge(outcome(0, stderr="boom"), parse(INIT, TEXT))
    assert (judged.status, judged.reason, judged.retryable) == ("failed", "crashed", True)
    assert "boom" in judged.detail and judged.session_id == SESSION


@pytest.mark.parametrize(
    ("ended", "reason"),
    [
        (outcome(143), "interrupted"),  # SIGTERM: exit 143, no result line
        (outcome(None, sig=signal.SIGKILL), "interrupted"),
        (outcome(None, sig=signal.SIGINT, timed_out="idle"), "idle_timeout"),
        (outcome(None, sig=signal.SIGTERM, timed_out="total"), "total_timeout"),
    ],
)
def test_no_result_line_is_a_retryable_failure(ended: ProcessOutcome, reason: str) -> None:
    judged = judge(ended, parse(INIT, TOOL_USE))
    assert (judged.status, judged.reason, judged.retryable) == ("failed", reason, True)


def test_a_cancelled_run_is_not_retried() -> None:
    judged = judge(outcome(None, sig=signal.SIGINT, cancelled=True), parse(INIT))
    assert (judged.reason, judged.retryable) == ("cancelled", False)


def test_permission_denials_fail_even_with_exit_zero_and_subtype_success() -> None:
    denial = {"tool_name": "Write", "tool_use_id": "toolu_1", "tool_input": {"file_path": "/x"}}
    parsed = parse(INIT, TOOL_USE, result_line(permission_denials=[denial], result="Done!"))
    judged = judge(outcome(0), parsed)
    assert (judged.status, judged.reason, judged.retryable) == (
        "failed",
        "permission_denied",
        False,
    )
    assert "Write" in judged.detail and judged.permission_denials == (denial,)


@pytest.mark.parametrize(
    ("subtype", "reason", "words"),
    [
        ("error_max_turns", "max_turns", "max turns"),
        ("error_max_budget_usd", "max_budget", "budget"),
    ],
)
def test_limits_reached_are_not_retryable_and_say_which(
    subtype: str, reason: str, words: str
) -> None:
    judged = judge(outcome(1), parse(INIT, result_line(subtype=subtype, is_error=True)))
    assert (judged.status, judged.reason, judged.retryable) == ("failed", reason, False)
    assert words in judged.detail


@pytest.mark.parametrize(
    ("status", "text", "retryable"),
    [
        (500, "API Error: 500 boom", True),
        (529, "API Error: 529 Overloaded", True),
        (429, "API Error: 429 rate limited", True),
        (400, "API Error: 400 bad request", False),
        (None, "API Error: Overloaded", True),
        (None, "API Error: Connection error.", False),
    ],
)
def test_api_errors_are_classified_by_status(
    status: int | None, text: str, retryable: bool
) -> None:
    # Observed: an API error ends with exit 1, is_error true, yet subtype "success".
    line = result_line(is_error=True, result=text, api_error_status=status)
    judged = judge(outcome(1), parse(INIT, line))
    assert (judged.status, judged.reason, judged.retryable) == ("failed", "api_error", retryable)
    assert judged.api_error_status == status


def test_other_errors_and_unknown_subtypes_are_agent_errors() -> None:
    during = judge(outcome(1), parse(result_line(subtype="error_during_execution", is_error=True)))
    odd = judge(outcome(0), parse(result_line(subtype="something_new")))
    assert (during.reason, odd.reason) == ("agent_error", "agent_error")
    assert not during.ok and not odd.ok


def test_a_result_written_because_we_stopped_the_run_keeps_the_stop_reason() -> None:
    # Observed with 2.1.197: SIGINT during a stalled stream still writes a result line, exit 0.
    aborted = result_line(
        subtype="error_during_execution", is_error=True, terminal_reason="aborted_streaming"
    )
    judged = judge(outcome(0, timed_out="idle"), parse(INIT, aborted))
    assert (judged.status, judged.reason, judged.retryable) == ("failed", "idle_timeout", True)
    assert "aborted_streaming" in judged.detail and judged.session_id == SESSION
    cancelled = judge(outcome(0, cancelled=True), parse(INIT, aborted))
    assert (cancelled.reason, cancelled.retryable) == ("cancelled", False)
    limited = judge(outcome(1, timed_out="total"), parse(result_line(subtype="error_max_turns")))
    assert limited.reason == "max_turns"


def test_a_success_result_wins_over_a_later_hang() -> None:
    judged = judge(outcome(None, sig=signal.SIGINT, timed_out="idle"), parse(INIT, result_line()))
    assert judged.ok and judged.signal == signal.SIGINT


# --- command, environment, binary lookup --------------------------------------------------------


def test_the_command_uses_flag_equals_value_and_keeps_the_prompt_off_argv(tmp_path: Path) -> None:
    request = RunRequest(
        prompt="do it",
        cwd=tmp_path,
        run_dir=tmp_path,
        context="Task T-1: only docs/**",
        model="sonnet",
        max_turns=3,
        max_budget_usd=0.5,
        permission_mode="acceptEdits",
        allowed_tools=("Write", "Read"),
        disallowed_tools=("Bash",),
    )
    argv = build_command(request, "/bin/claude")
    assert argv[:4] == ["/bin/claude", "-p", "--output-format=stream-json", "--verbose"]
    assert {
        "--setting-sources=", "--strict-mcp-config", "--no-session-persistence", "--max-turns=3",
        "--max-budget-usd=0.5", "--model=sonnet", "--permission-mode=acceptEdits",
        "--allowedTools=Write,Read", "--disallowedTools=Bash",
        "--append-system-prompt=Task T-1: only docs/**",
    } <= set(argv)  # fmt: skip
    assert "do it" not in argv
    assert all(arg.startswith("-") for arg in argv[1:])  # no value could swallow the prompt
    bare = build_command(RunRequest(prompt="x", cwd=tmp_path, run_dir=tmp_path))
    assert not [arg for arg in bare if arg.startswith(("--max-turns", "--model", "--allowed"))]


def test_the_environment_is_built_from_an_allow_list(tmp_path: Path) -> None:
    base = {
        "PATH": "/opt/bin:/usr/bin",
        "HOME": "/home/me",
        "ANTHROPIC_API_KEY": "sk-test",
        "ANTHROPIC_BASE_URL": "http://127.0.0.1:9",
        "AWS_SECRET_ACCESS_KEY": "secret",
        "GITHUB_TOKEN": "ghp",
        "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "0",
    }
    home, config = tmp_path / "home", tmp_path / "config"
    environment = scrub_env(base, home=home, config_dir=config)
    assert environment == {
        "PATH": "/opt/bin:/usr/bin",
        "HOME": str(home),
        "CLAUDE_CONFIG_DIR": str(config),
        "ANTHROPIC_API_KEY": "sk-test",
        "ANTHROPIC_BASE_URL": "http://127.0.0.1:9",
        "LANG": "C.UTF-8",
        "TERM": "dumb",
        "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
        "DISABLE_TELEMETRY": "1",
    }
    allowed = scrub_env(base, home=home, config_dir=config, allow=("GITHUB_TOKEN", "HOME", "NOPE"))
    assert allowed["GITHUB_TOKEN"] == "ghp" and "AWS_SECRET_ACCESS_KEY" not in allowed
    assert allowed["HOME"] == str(home) and "NOPE" not in allowed  # HOME stays private


def make_executable(path: Path, script: str = "#!/bin/sh\necho '9.9.9 (Claude Code)'\n") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(script)
    path.chmod(0o755)
    return path


def test_the_binary_is_looked_up_configured_then_the_sdks_then_path(tmp_path: Path) -> None:
    on_path = make_executable(tmp_path / "bin" / "claude")
    bundled = make_executable(tmp_path / "sdk" / "_bundled" / "claude")
    configured = make_executable(tmp_path / "mine")
    path = f"{tmp_path / 'empty'}:{tmp_path / 'bin'}"
    assert (
        find_binary({"AICTL_CLAUDE_BIN": str(configured), "PATH": path}, bundled)[0] == configured
    )
    assert find_binary({"PATH": path}, bundled)[0] == bundled
    gone = tmp_path / "sdk" / "gone"
    found, searched = find_binary({"PATH": path}, gone)
    assert found == on_path
    assert searched == [str(gone), str(tmp_path / "empty" / "claude"), str(on_path)]


def test_the_sdks_binary_is_found_without_importing_the_sdk() -> None:
    import sys

    from connectors.claude_code.command import sdk_binary

    found = sdk_binary()
    assert found is not None and found.parts[-3:] == ("claude_agent_sdk", "_bundled", "claude")
    assert "claude_agent_sdk" not in sys.modules


def test_detect_reports_the_version_or_where_it_looked(tmp_path: Path) -> None:
    fake = make_executable(tmp_path / "claude")
    found = ClaudeCodeConnector(environ={"AICTL_CLAUDE_BIN": str(fake)}).detect()
    assert found == Detection("claude-code", fake, "9.9.9", searched=(f"AICTL_CLAUDE_BIN={fake}",))
    assert found.ok
    broken = make_executable(tmp_path / "broken", "#!/bin/sh\necho nope >&2\nexit 3\n")
    failed = ClaudeCodeConnector(environ={"AICTL_CLAUDE_BIN": str(broken)}).detect()
    assert not failed.ok and "exit 3" in str(failed.error) and "nope" in str(failed.error)
    missing = ClaudeCodeConnector(
        environ={"PATH": str(tmp_path / "none")}, bundled=tmp_path / "sdk" / "claude"
    )
    detection = missing.detect()
    assert detection.binary is None and detection.error is not None
    assert str(tmp_path / "none" / "claude") in detection.error
    assert str(tmp_path / "sdk" / "claude") in detection.error
    assert "pip install claude-agent-sdk" in detection.error
    with pytest.raises(connectors.ConnectorError, match="not found"):
        missing.run(RunRequest(prompt="x", cwd=tmp_path, run_dir=tmp_path))


def test_a_run_with_a_fake_cli_is_parsed_and_judged(tmp_path: Path) -> None:
    lines = [INIT, TOOL_USE, TOOL_RESULT, TEXT, result_line()]
    script = "#!/bin/sh\n" + "".join(f"echo '{json.dumps(line)}'\n" for line in lines)
    script += 'cat > "$HOME/prompt.txt"\nenv > "$HOME/env.txt"\n'
    fake = make_executable(tmp_path / "claude", script)
    seen: list[object] = []
    request = RunRequest(
        prompt="the prompt",
        cwd=tmp_path,
        run_dir=tmp_path / "run",
        base_env={**BASE_ENV, "AWS_SECRET_ACCESS_KEY": "secret"},
        idle_timeout=30,
        total_timeout=30,
        on_event=seen.append,
    )
    connector = ClaudeCodeConnector(environ={"AICTL_CLAUDE_BIN": str(fake)})
    judged = connector.run(request)
    assert isinstance(judged, RunResult) and judged.ok and judged.session_id == SESSION
    assert [type(event).__name__ for event in seen] == [
        "Init", "AssistantTurn", "ToolResult", "AssistantTurn", "Result"
    ]  # fmt: skip
    home = tmp_path / "run" / "home"
    assert (home / "prompt.txt").read_text() == "the prompt"
    assert "AWS_SECRET_ACCESS_KEY" not in (home / "env.txt").read_text()
    connector.cancel()  # nothing running: a no-op


# --- the registry -------------------------------------------------------------------------------


class FakeConnector:
    name = "fake"
    capabilities = frozenset({"edit"})

    def detect(self) -> Detection:
        return Detection("fake", error="never there")

    def run(self, request: RunRequest) -> RunResult:
        return RunResult(status="failed", reason="crashed")

    def cancel(self) -> None:
        pass


def test_the_registry_finds_connectors_by_name_and_lists_the_valid_ones() -> None:
    assert isinstance(connectors.get("claude-code"), ClaudeCodeConnector)
    assert isinstance(connectors.get("claude-code"), connectors.Connector)
    connectors.register("fake", FakeConnector)
    assert connectors.get("fake").detect().error == "never there"
    assert {"claude-code", "fake"} <= set(connectors.names())
    with pytest.raises(UnknownConnector, match=r"unknown connector 'codex'; valid: .*claude-code"):
        connectors.get("codex")


def test_entry_points_in_the_group_are_loaded_lazily(monkeypatch: pytest.MonkeyPatch) -> None:
    from importlib.metadata import EntryPoint

    group = "aictl.connectors"
    plugged = EntryPoint("plugged", "tests.unit.test_stream_json:FakeConnector", group)
    hijack = EntryPoint("claude-code", "tests.unit.test_stream_json:FakeConnector", group)
    asked: list[str] = []

    def fake_entry_points(*, group: str) -> list[EntryPoint]:
        asked.append(group)
        return [plugged, hijack]

    import importlib.metadata

    monkeypatch.setattr(importlib.metadata, "entry_points", fake_entry_points)
    monkeypatch.setattr(connectors, "_loaded", threading.Event())
    monkeypatch.setattr(connectors, "_registry", connectors._built_ins())
    assert asked == []  # nothing read until a name is needed
    assert isinstance(connectors.get("claude-code"), ClaudeCodeConnector)
    assert asked == []  # a built-in name does not read them either
    assert connectors.get("plugged").name == "fake"
    assert asked == ["aictl.connectors"]
    assert connectors.names() == ["claude-code", "plugged"] and asked == ["aictl.connectors"]
    # an entry point cannot take over a built-in name
    assert isinstance(connectors.get("claude-code"), ClaudeCodeConnector)


# --- the process runner -------------------------------------------------------------------------


def python(code: str) -> list[str]:
    return [sys.executable, "-c", textwrap.dedent(code)]


def runs(pid: int) -> bool:
    """``pid`` exists and is not a zombie."""
    try:
        state = Path(f"/proc/{pid}/stat").read_bytes().rsplit(b")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != b"Z"


def group_gone(pgid: int) -> bool:
    """No member of the group runs: none left, or only zombies that PID 1 has yet to reap
    (in a container it may take seconds)."""
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return True
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_bytes().rsplit(b")", 1)[1].split()
            except (OSError, IndexError):
                continue
            if int(fields[2]) == pgid and fields[0] != b"Z":
                return False
    return True


def test_stdin_is_delivered_and_closed_and_lines_arrive_in_order(tmp_path: Path) -> None:
    lines: list[str] = []
    ended = run_process(
        python("""
            import sys
            data = sys.stdin.read()  # returns only once stdin is closed
            print("got", len(data)); print(data.upper(), end="")
            print("oops", file=sys.stderr); sys.exit(7)
        """),
        cwd=tmp_path,
        env=BASE_ENV,
        stdin_text="hello\nworld\n",
        idle_timeout=30,
        total_timeout=30,
        on_line=lines.append,
    )
    assert lines == ["got 12", "HELLO", "WORLD"]
    assert (ended.exit_code, ended.signal, ended.timed_out) == (7, None, None)
    assert ended.stderr == "oops\n" and ended.lines == 3 and not ended.stopped


def test_the_exit_watch_leaks_no_descriptor_and_has_a_fallback(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The runner waits on a pidfd where the kernel has one, closes it, and works the same
    (exit code, idle timeout) where it has none."""

    def open_descriptors() -> int:
        """This process's pidfds (counting every descriptor would count other threads' too)."""
        count = 0
        for name in os.listdir("/proc/self/fd"):
            try:
                count += os.readlink(f"/proc/self/fd/{name}") == "anon_inode:[pidfd]"
            except OSError:  # closed in the meantime (the listing's own, for one)
                continue
        return count

    def run(code: str) -> ProcessOutcome:
        return run_process(
            python(code), cwd=tmp_path, env=BASE_ENV, idle_timeout=0.5, total_timeout=30
        )

    before = open_descriptors()
    for _ in range(5):
        assert run("raise SystemExit(3)").exit_code == 3
    assert open_descriptors() == before

    def no_pidfd(pid: int, flags: int = 0) -> int:
        raise OSError(38, "Function not implemented")

    monkeypatch.setattr(os, "pidfd_open", no_pidfd)
    assert run("raise SystemExit(4)").exit_code == 4
    assert run("import time; time.sleep(30)").timed_out == "idle"
    assert open_descriptors() == before


def test_a_child_dies_with_its_killed_parent(tmp_path: Path) -> None:
    """A parent killed with SIGKILL cannot stop its child: the kernel does (the parent-death
    signal ``setpriv`` sets), so an agent never runs on with nobody supervising it."""
    pid_file = tmp_path / "child.pid"
    parent = subprocess.Popen(
        python(f"""
            import sys
            sys.path.insert(0, {str(Path(__file__).resolve().parents[2])!r})
            from connectors.process import run_process
            child = ["sh", "-c", "echo $$ > {pid_file}; exec sleep 300"]
            run_process(child, cwd=".", env={{"PATH": "/usr/bin:/bin"}},
                        idle_timeout=None, total_timeout=None)
        """),
        cwd=tmp_path,
    )
    deadline = time.monotonic() + 30
    while not pid_file.is_file() or not pid_file.read_text().strip():
        assert time.monotonic() < deadline, "the child never started"
        time.sleep(0.05)
    child = int(pid_file.read_text())
    os.kill(child, 0)  # alive
    parent.kill()
    parent.wait()
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            os.kill(child, 0)
        except ProcessLookupError:
            break
        time.sleep(0.05)
    with pytest.raises(ProcessLookupError):
        os.kill(child, 0)


def test_a_program_is_looked_up_as_popen_would(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Behind ``setpriv`` or not, a missing program is FileNotFoundError, one that cannot be
    run is PermissionError, and a relative path is relative to ``cwd``."""
    script = tmp_path / "bin" / "hello"
    script.parent.mkdir()
    script.write_text("#!/bin/sh\necho hello from $0\n")

    def run(argv: list[str]) -> list[str]:
        lines: list[str] = []
        run_process(
            argv, cwd=tmp_path, env=BASE_ENV, idle_timeout=30, total_timeout=30,
            on_line=lines.append,
        )  # fmt: skip
        return lines

    for setpriv in (True, False):
        if not setpriv:
            monkeypatch.setattr("connectors.process._setpriv", lambda: None)
        with pytest.raises(FileNotFoundError):
            run(["no-such-program-anywhere"])
        with pytest.raises(FileNotFoundError):
            run(["./bin/missing"])
        with pytest.raises(PermissionError):
            run(["./bin/hello"])  # not executable yet
        with pytest.raises(PermissionError):
            run(["./bin"])
        script.chmod(0o755)
        (said,) = run(["./bin/hello"])  # $0 is the path as given, or as resolved
        assert said.startswith("hello from ") and said.endswith("/bin/hello")
        (said,) = run(["sh", "-c", "echo $0"])
        assert said == "sh" or said.endswith("/sh")
        script.chmod(0o644)


def test_a_line_over_one_megabyte_is_delivered_whole(tmp_path: Path) -> None:
    lines: list[str] = []
    run_process(
        python("import sys; sys.stdout.write('z' * (3 * 1024 * 1024) + '\\nend\\n')"),
        cwd=tmp_path,
        env=BASE_ENV,
        idle_timeout=30,
        total_timeout=30,
        on_line=lines.append,
    )
    assert [len(line) for line in lines] == [3 * 1024 * 1024, 3]


def test_only_the_explicit_environment_reaches_the_child(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "secret")
    lines: list[str] = []
    run_process(
        python("import json, os; print(json.dumps(dict(os.environ)))"),
        cwd=tmp_path,
        env={"ONLY": "this"},
        idle_timeout=30,
        total_timeout=30,
        on_line=lines.append,
    )
    child = json.loads(lines[0])
    child.pop("LC_CTYPE", None)  # Python may set it for itself (PEP 538)
    assert child == {"ONLY": "this"}


# A child that starts a grandchild ``sleep 300`` in its own group, prints its pid and goes
# silent, ignoring SIGINT so that the runner must escalate.
SILENT_PARENT = """
    import signal, subprocess, sys, time
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    child = subprocess.Popen(["sleep", "300"])
    print(child.pid, flush=True)
    time.sleep(300)
"""


def test_the_idle_timeout_kills_the_whole_group(tmp_path: Path) -> None:
    lines: list[str] = []
    ended = run_process(
        python(SILENT_PARENT),
        cwd=tmp_path,
        env=BASE_ENV,
        idle_timeout=0.5,
        total_timeout=60,
        on_line=lines.append,
        grace=0.3,
    )
    assert ended.timed_out == "idle" and ended.signal == signal.SIGTERM
    assert group_gone(ended.pid) and not ended.group_left
    assert int(lines[0]) > 0


def test_the_total_timeout_fires_even_while_output_flows(tmp_path: Path) -> None:
    ended = run_process(
        python("""
            import time
            while True:
                print("tick", flush=True); time.sleep(0.05)
        """),
        cwd=tmp_path,
        env=BASE_ENV,
        idle_timeout=5,
        total_timeout=0.5,
        grace=0.3,
    )
    assert ended.timed_out == "total" and ended.signal in (signal.SIGINT, signal.SIGTERM)
    assert ended.lines > 1 and group_gone(ended.pid)


def test_a_child_deaf_to_sigint_and_sigterm_gets_sigkill(tmp_path: Path) -> None:
    ended = run_process(
        python("""
            import signal, time
            signal.signal(signal.SIGINT, signal.SIG_IGN)
            signal.signal(signal.SIGTERM, signal.SIG_IGN)
            print("ready", flush=True)
            time.sleep(300)
        """),
        cwd=tmp_path,
        env=BASE_ENV,
        idle_timeout=0.3,
        total_timeout=60,
        grace=0.2,
    )
    assert ended.signal == signal.SIGKILL and ended.timed_out == "idle"


def test_background_processes_left_by_a_finished_leader_are_killed(tmp_path: Path) -> None:
    lines: list[str] = []
    ended = run_process(
        ["sh", "-c", "sleep 300 & echo $!; echo done"],
        cwd=tmp_path,
        env=BASE_ENV,
        idle_timeout=30,
        total_timeout=30,
        on_line=lines.append,
    )
    assert ended.exit_code == 0 and lines[1] == "done"
    assert group_gone(ended.pid)  # the background sleep included
    assert not runs(int(lines[0]))


def test_cancel_stops_the_run_and_an_unknown_program_raises(tmp_path: Path) -> None:
    cancel = threading.Event()
    cancel.set()
    ended = run_process(
        python("import time; time.sleep(300)"),
        cwd=tmp_path,
        env=BASE_ENV,
        idle_timeout=None,
        total_timeout=None,
        cancel=cancel,
        grace=0.3,
    )
    assert ended.cancelled and ended.stopped
    assert ended.exit_code != 0  # killed by a signal, or exit 1 if Python was still starting
    with pytest.raises(FileNotFoundError):
        run_process(
            [str(tmp_path / "nothing")], cwd=tmp_path, env=BASE_ENV, idle_timeout=1,
            total_timeout=1,
        )  # fmt: skip


def test_an_error_in_the_line_callback_is_raised_after_cleanup(tmp_path: Path) -> None:
    def explode(line: str) -> None:
        raise ValueError(line)

    with pytest.raises(ValueError, match="first"):
        run_process(
            python("print('first'); print('second')"),
            cwd=tmp_path,
            env=BASE_ENV,
            idle_timeout=30,
            total_timeout=30,
            on_line=explode,
        )


def test_a_run_works_with_descriptors_numbered_past_1024(tmp_path: Path) -> None:
    """A busy daemon holds many descriptors; select() fails for one numbered 1024 or more,
    which made every execution crash. The exit watch polls instead."""
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = 2048
    assert hard == resource.RLIM_INFINITY or hard >= wanted, "the test needs 2048 descriptors"
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, wanted), hard))
    held = [os.open(os.devnull, os.O_RDONLY) for _ in range(1100)]
    try:
        assert max(held) >= 1024
        ended = run_process(
            python("raise SystemExit(5)"), cwd=tmp_path, env=BASE_ENV, idle_timeout=5,
            total_timeout=30,
        )  # fmt: skip
        assert ended.exit_code == 5
    finally:
        for descriptor in held:
            os.close(descriptor)
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def test_a_killed_orphan_left_a_zombie_does_not_hold_up_the_run(tmp_path: Path) -> None:
    """Claude Code's sandbox leaves an orphan (socat) in the group; once killed it stays a
    zombie until PID 1 reaps it, which in a container took over a second per run. The runner
    counts only members that still run. Here this test process stands in for a slow PID 1: a
    subreaper that reaps the orphan only after the run."""
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    set_child_subreaper = 36
    assert libc.prctl(set_child_subreaper, 1, 0, 0, 0) == 0
    code = (
        "import os, time\n"
        "if os.fork() == 0:\n"
        "    if os.fork() == 0:\n"
        "        time.sleep(30)\n"
        "    os._exit(0)\n"
        "os.wait()\n"
    )
    try:
        ended = run_process(
            python(code), cwd=tmp_path, env=BASE_ENV, idle_timeout=None, total_timeout=30
        )
    finally:
        libc.prctl(set_child_subreaper, 0, 0, 0, 0)
        with contextlib.suppress(ChildProcessError):
            while os.waitpid(-1, os.WNOHANG)[0] > 0:  # the orphan, reaped at last
                pass
    assert ended.exit_code == 0
    assert not ended.group_left  # the zombie does not count, and the run did not wait on it


def test_a_descendant_that_left_the_group_is_killed_with_the_run(tmp_path: Path) -> None:
    """Claude Code's sandbox starts its network proxies in sessions of their own (setsid),
    out of the run's process group, and they outlived every run. The runner lists the child's
    descendants while it runs and kills those still there when it ends."""
    lines: list[str] = []
    ended = run_process(
        python("""
            import subprocess, sys, time
            stray = subprocess.Popen(["sleep", "300"], start_new_session=True)
            print(stray.pid, flush=True)
            time.sleep(1.2)  # long enough to be seen by a listing
        """),
        cwd=tmp_path,
        env=BASE_ENV,
        idle_timeout=30,
        total_timeout=30,
        on_line=lines.append,
    )
    assert ended.exit_code == 0
    stray = int(lines[0])
    deadline = time.monotonic() + 5
    while runs(stray) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not runs(stray)
