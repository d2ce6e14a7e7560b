"""The Claude Code stdio permission protocol, line by line, and the gated command line."""

from __future__ import annotations

import json
from pathlib import Path

from connectors import RunRequest, ToolCall, Verdict
from connectors.claude_code import permissions
from connectors.claude_code.command import build_command


def request(**fields: object) -> RunRequest:
    return RunRequest(prompt="do it", cwd=Path("/r"), run_dir=Path("/r/run"), **fields)  # type: ignore[arg-type]


def allow_all(call: ToolCall) -> Verdict:
    return Verdict(True)


def test_a_gated_command_reads_stream_json_and_asks_over_stdio() -> None:
    argv = build_command(request(gate=allow_all, permission_mode="acceptEdits"))
    assert "--input-format=stream-json" in argv
    assert "--permission-prompt-tool=stdio" in argv
    assert "--permission-mode=default" in argv  # acceptEdits would approve edits by itself
    ungated = build_command(request(permission_mode="acceptEdits"))
    assert "--permission-mode=acceptEdits" in ungated
    assert not any(flag.startswith("--input-format") for flag in ungated)


def test_a_gated_command_never_pre_allows_a_writing_tool() -> None:
    tools = ("Read", "Write", "Edit(src/**)", "Bash(git diff:*)", "NotebookEdit")
    argv = build_command(request(gate=allow_all, allowed_tools=tools))
    assert "--allowedTools=Read,Bash(git diff:*)" in argv
    assert "--allowedTools=" + ",".join(tools) in build_command(request(allowed_tools=tools))


def test_modes_stricter_than_asking_are_kept() -> None:
    assert permissions.gated_mode("plan") == "plan"
    assert permissions.gated_mode("bypassPermissions") == "default"
    assert permissions.gated_mode(None) == "default"


def test_the_opening_lines_initialise_then_send_the_prompt() -> None:
    init = json.loads(permissions.initialize_line())
    assert init["type"] == "control_request" and init["request"]["subtype"] == "initialize"
    # aictl's hook is registered for every tool call: no matcher
    assert init["request"]["hooks"] == {
        "PreToolUse": [{"matcher": None, "hookCallbackIds": [permissions.HOOK_ID]}]
    }
    prompt = json.loads(permissions.prompt_line("Task 1: go"))
    assert prompt["type"] == "user"
    assert prompt["message"] == {"role": "user", "content": "Task 1: go"}


CAN_USE = {
    "type": "control_request",
    "request_id": "r-1",
    "request": {
        "subtype": "can_use_tool",
        "tool_name": "Write",
        "input": {"file_path": "/r/a.txt", "content": "x"},
        "tool_use_id": "toolu_1",
    },
}


def test_a_permission_request_is_parsed_and_answered() -> None:
    found = permissions.control_request(CAN_USE)
    assert found is not None
    asked = permissions.permission_request(*found)
    assert asked is not None and asked.request_id == "r-1"
    assert asked.call == ToolCall("Write", {"file_path": "/r/a.txt", "content": "x"}, "toolu_1")
    allowed = json.loads(permissions.response_line("r-1", asked.call, Verdict(True)))
    assert allowed["response"]["request_id"] == "r-1"
    assert allowed["response"]["response"] == {
        "behavior": "allow",
        "updatedInput": {"file_path": "/r/a.txt", "content": "x"},
    }
    denied = json.loads(permissions.response_line("r-1", asked.call, Verdict.deny("no")))
    assert denied["response"]["response"] == {"behavior": "deny", "message": "no"}


def test_other_messages_and_subtypes_are_not_permission_requests() -> None:
    assert permissions.control_request({"type": "assistant"}) is None
    assert permissions.control_request({"type": "control_request", "request": "x"}) is None
    assert permissions.permission_request("r-2", {"subtype": "hook_callback"}) is None
    refused = json.loads(permissions.error_line("r-2", "not served"))
    assert refused["response"] == {"subtype": "error", "request_id": "r-2", "error": "not served"}


def test_a_gate_that_raises_denies_the_call() -> None:
    def broken(call: ToolCall) -> Verdict:
        raise RuntimeError("database is locked")

    verdict = permissions.ask(broken, ToolCall("Write", {}))
    assert not verdict.allow and "database is locked" in verdict.message


def test_detection_probes_with_aictl_path_but_never_the_real_model_or_key(tmp_path: Path) -> None:
    from connectors.claude_code import ClaudeCodeConnector

    fake = tmp_path / "claude"
    fake.write_text(  # reports, as its tools, what its environment says
        "#!/bin/sh\n"
        'printf \'{"type":"system","subtype":"init","claude_code_version":"9.9.9",'
        '"tools":["%s","%s","%s"]}\\n\' "$ANTHROPIC_BASE_URL" "$ANTHROPIC_API_KEY" "$PATH"\n'
    )
    fake.chmod(0o755)
    environ = {
        "AICTL_CLAUDE_BIN": str(fake),
        "PATH": "/opt/node/bin:/usr/bin:/bin",
        "ANTHROPIC_BASE_URL": "https://api.anthropic.com",
        "ANTHROPIC_API_KEY": "sk-real-secret",
    }
    found = ClaudeCodeConnector(environ=environ).detect()
    assert found.ok and found.version == "9.9.9"
    assert found.tools == ("http://127.0.0.1:9", "aictl-detection-probe", environ["PATH"])


def hook_call(tool: str, tool_input: dict[str, object], callback: str = "") -> dict[str, object]:
    return {
        "subtype": "hook_callback",
        "callback_id": callback or permissions.HOOK_ID,
        "input": {
            "hook_event_name": "PreToolUse",
            "tool_name": tool,
            "tool_input": tool_input,
            "tool_use_id": "toolu_1",
        },
    }


def test_a_hook_callback_is_read_as_the_tool_call_it_announces() -> None:
    found = permissions.hook_request("7", hook_call("Bash", {"command": "ls"}))
    assert found is not None and found.request_id == "7"
    assert found.call.name == "Bash" and dict(found.call.input) == {"command": "ls"}
    assert found.call.tool_use_id == "toolu_1"
    # another callback, another event or a permission request are not aictl's hook
    assert permissions.hook_request("7", hook_call("Bash", {}, callback="hook_9")) is None
    other = hook_call("Bash", {})
    other["input"] = {"hook_event_name": "PostToolUse", "tool_name": "Bash"}
    assert permissions.hook_request("7", other) is None
    assert permissions.hook_request("7", {"subtype": "can_use_tool", "tool_name": "Bash"}) is None


def test_the_hook_answer_carries_the_verdict_and_its_reason() -> None:
    denied = json.loads(permissions.hook_response_line("7", Verdict.deny("outside src/**")))
    response = denied["response"]
    assert response["subtype"] == "success" and response["request_id"] == "7"
    output = response["response"]["hookSpecificOutput"]
    assert output == {
        "hookEventName": "PreToolUse",
        "permissionDecision": "deny",
        "permissionDecisionReason": "outside src/**",
    }
    allowed = json.loads(permissions.hook_response_line("8", Verdict(True)))
    assert allowed["response"]["response"]["hookSpecificOutput"]["permissionDecision"] == "allow"


def test_a_subscription_login_keeps_the_users_home_and_configuration() -> None:
    from connectors.claude_code.command import scrub_env

    base = {"HOME": "/home/me", "CLAUDE_CONFIG_DIR": "/home/me/.claude-work", "SECRET": "x"}
    private = scrub_env(base, home=Path("/run/home"), config_dir=Path("/run/config"))
    assert (private["HOME"], private["CLAUDE_CONFIG_DIR"]) == ("/run/home", "/run/config")
    login = scrub_env(base, home=Path("/run/home"), config_dir=Path("/run/config"), user_login=True)
    assert (login["HOME"], login["CLAUDE_CONFIG_DIR"]) == ("/home/me", "/home/me/.claude-work")
    assert "SECRET" not in login
