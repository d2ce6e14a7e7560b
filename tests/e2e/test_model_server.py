"""The project's scripted Messages API server: first with a plain HTTP client, then driving the
real Claude Code CLI (the one the claude-agent-sdk wheel carries) end to end, offline."""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from aictl.errors import InvalidInput
from aictl.model_server import SIDE_REPLY, load_script, serve
from tests.real_claude import claude_binary

ROOT = Path(__file__).resolve().parents[2]
TOOLS = [{"name": "Write", "description": "write a file", "input_schema": {"type": "object"}}]

Event = tuple[str, dict[str, Any]]


def request_body(
    assistant_turns: int, *, stream: bool = True, tools: bool = True
) -> dict[str, Any]:
    """A Messages API request whose conversation already holds ``assistant_turns`` replies."""
    messages: list[dict[str, Any]] = [{"role": "user", "content": "go"}]
    for turn in range(assistant_turns):
        messages.append({"role": "assistant", "content": [{"type": "text", "text": f"t{turn}"}]})
        messages.append({"role": "user", "content": "next"})
    body: dict[str, Any] = {"model": "claude-test", "max_tokens": 100, "messages": messages}
    body["stream"] = stream
    if tools:
        body["tools"] = TOOLS
    body["system"] = [{"type": "text", "text": "You are a scripted test."}]
    return body


def post(url: str, body: Mapping[str, Any], path: str = "/v1/messages?beta=true") -> Any:
    """POST JSON; returns the open response (an ``HTTPError`` for 4xx/5xx): close it."""
    request = urllib.request.Request(
        url + path, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"}
    )
    try:
        return urllib.request.urlopen(request, timeout=10)
    except urllib.error.HTTPError as error:
        return error


def sse(url: str, body: Mapping[str, Any]) -> list[Event]:
    """The events of one streamed reply, checking the framing of each on the way."""
    with post(url, body) as response:
        assert response.status == 200
        assert response.headers["Content-Type"] == "text/event-stream"
        raw = response.read().decode()
    assert raw.endswith("\n\n")
    events = []
    for frame in raw[:-2].split("\n\n"):
        name_line, data_line = frame.split("\n")
        assert name_line.startswith("event: ") and data_line.startswith("data: ")
        data = json.loads(data_line.removeprefix("data: "))
        assert data["type"] == name_line.removeprefix("event: ")
        events.append((data["type"], data))
    return events


def text_of(events: list[Event]) -> str:
    return "".join(e["delta"]["text"] for name, e in events if name == "content_block_delta")


# --- the server, with a plain HTTP client ---------------------------------------------------


def test_a_text_step_streams_the_events_in_order() -> None:
    with serve([{"text": "Hello from the script", "usage": {"output_tokens": 7}}]) as server:
        events = sse(server.url, request_body(0))
    names = [name for name, _ in events]
    deltas = names.count("content_block_delta")
    assert deltas > 1  # the client must reassemble
    assert names == [
        "message_start",
        "content_block_start",
        *["content_block_delta"] * deltas,
        "content_block_stop",
        "message_delta",
        "message_stop",
    ]
    start = events[0][1]["message"]
    assert start["role"] == "assistant" and start["model"] == "claude-test"
    assert start["content"] == [] and start["stop_reason"] is None
    assert events[1][1]["content_block"] == {"type": "text", "text": ""}
    assert text_of(events) == "Hello from the script"
    final = events[-2][1]
    assert final["delta"]["stop_reason"] == "end_turn"
    assert final["usage"]["output_tokens"] == 7 and final["usage"]["input_tokens"] == 100


def test_the_step_is_chosen_by_the_assistant_messages_already_sent() -> None:
    script = [{"text": "one"}, {"text": "two"}, {"text": "three"}]
    with serve(script) as server:
        replies = [text_of(sse(server.url, request_body(turns))) for turns in (0, 1, 2, 0, 3)]
    assert replies[:4] == ["one", "two", "three", "one"]  # stateless: a retry replays its step
    assert replies[4] == "end of script: no step 4 in 3 steps"


def test_tool_use_input_arrives_as_json_deltas_that_reassemble() -> None:
    tool_input = {"file_path": "docs/a b.txt", "content": 'line "one"\nline two\n'}
    with serve([{"tool_use": {"name": "Write", "input": tool_input}}]) as server:
        events = sse(server.url, request_body(0))
    block = events[1][1]["content_block"]
    assert block["type"] == "tool_use" and block["name"] == "Write" and block["input"] == {}
    assert block["id"].startswith("toolu_")
    pieces = [e["delta"] for name, e in events if name == "content_block_delta"]
    assert len(pieces) > 1 and {p["type"] for p in pieces} == {"input_json_delta"}
    assert json.loads("".join(p["partial_json"] for p in pieces)) == tool_input
    assert events[-2][1]["delta"]["stop_reason"] == "tool_use"


@pytest.mark.parametrize(("status", "error_type"), [(500, "api_error"), (529, "overloaded_error")])
def test_error_steps_return_the_status_and_anthropic_error_json(
    status: int, error_type: str
) -> None:
    script = [{"error": {"status": status, "type": error_type, "message": "scripted failure"}}]
    with serve(script) as server, post(server.url, request_body(0)) as response:
        assert response.status == status
        assert response.headers["Content-Type"] == "application/json"
        assert json.load(response) == {
            "type": "error",
            "error": {"type": error_type, "message": "scripted failure"},
        }


def test_side_requests_without_tools_consume_no_step() -> None:
    with serve([{"text": "step one"}]) as server:
        title = text_of(sse(server.url, request_body(0, tools=False)))
        first = text_of(sse(server.url, request_body(0)))
    assert title == SIDE_REPLY
    assert first == "step one"


def test_every_request_body_is_recorded_in_memory_and_in_the_log(tmp_path: Path) -> None:
    log = tmp_path / "requests.jsonl"
    bodies = [request_body(0, tools=False), request_body(0), request_body(1, stream=False)]
    with serve([{"text": "a"}, {"text": "b"}], log=log) as server:
        for body in bodies:
            post(server.url, body).close()
        recorded = server.requests
    assert recorded == bodies
    assert [json.loads(line) for line in log.read_text().splitlines()] == bodies
    assert recorded[1]["system"][0]["text"] == "You are a scripted test."


def test_a_request_that_does_not_stream_gets_one_json_message() -> None:
    tool_input = {"file_path": "a.txt", "content": "x"}
    with (
        serve([{"tool_use": {"name": "Write", "input": tool_input}}]) as server,
        post(server.url, request_body(0, stream=False), path="/v1/messages") as response,
    ):
        assert response.headers["Content-Type"] == "application/json"
        message = json.load(response)
    assert message["type"] == "message" and message["stop_reason"] == "tool_use"
    assert message["content"][0]["input"] == tool_input


def test_head_answers_and_unknown_endpoints_are_404() -> None:
    with serve([]) as server:
        head = urllib.request.Request(server.url + "/", method="HEAD")
        with urllib.request.urlopen(head, timeout=10) as response:
            assert response.status == 200
        with post(server.url, request_body(0), path="/v1/complete") as response:
            assert response.status == 404
            assert json.load(response)["error"]["type"] == "not_found_error"


def test_it_listens_on_loopback_only() -> None:
    with serve([]) as server:
        address = urlsplit(server.url)
        assert address.hostname == "127.0.0.1" and address.port
        # Bound to 0.0.0.0 it would also accept on 127.0.0.2 (all of 127/8 is loopback on Linux).
        with pytest.raises(OSError), socket.create_connection(("127.0.0.2", address.port), 2):
            pass


def test_stop_does_not_hang_on_a_stalled_stream() -> None:
    server = serve([{"stall": True}])
    address = urlsplit(server.url)
    assert address.hostname and address.port
    connection = http.client.HTTPConnection(address.hostname, address.port, timeout=10)
    try:
        connection.request("POST", "/v1/messages?beta=true", json.dumps(request_body(0)))
        response = connection.getresponse()
        assert response.status == 200
        assert response.readline() == b"event: message_start\n"
        started = time.monotonic()
        server.stop()
        assert time.monotonic() - started < 2
        with pytest.raises((http.client.IncompleteRead, ConnectionError)):
            response.read()  # the stream never finished: the client sees it cut
    finally:
        connection.close()
        server.stop()  # idempotent


@pytest.mark.parametrize(
    ("script", "complaint"),
    [
        ({"text": "a"}, "expected a JSON list"),
        ([{"text": 1}], 'step 1: expected "text": "..."'),
        ([{"text": "a"}, {"text": "b", "stall": True}], "step 2: needs exactly one of"),
        ([{"txt": "a"}], "unknown: txt"),
        ([{"tool_use": {"name": "Write"}}], 'step 1: expected "tool_use"'),
        ([{"error": {"status": 200}}], "status"),
        ([{"text": "a", "usage": {"output_tokens": -1}}], "usage"),
    ],
)
def test_a_bad_script_is_named_precisely(script: object, complaint: str) -> None:
    with pytest.raises(InvalidInput, match=r"^script: ") as raised:
        load_script(script)
    assert complaint in raised.value.message


def test_the_command_writes_its_port_and_stops_on_sigterm(tmp_path: Path) -> None:
    script, port_file = tmp_path / "script.json", tmp_path / "port"
    script.write_text(json.dumps([{"text": "hi"}]))
    command = [sys.executable, "-m", "aictl.model_server", "--script", str(script)]
    process = subprocess.Popen(
        [*command, "--port-file", str(port_file)], stdout=subprocess.PIPE, text=True, cwd=ROOT
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        assert line.startswith("listening on http://127.0.0.1:")
        port = int(port_file.read_text())
        assert line.strip().endswith(f":{port}")
        assert text_of(sse(f"http://127.0.0.1:{port}", request_body(0))) == "hi"
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=10) == 0
    finally:
        process.kill()
        process.wait()
        if process.stdout:
            process.stdout.close()
    bad = tmp_path / "bad.json"
    bad.write_text('[{"txt": "a"}]')
    refused = subprocess.run(
        [*command[:-1], str(bad)], capture_output=True, text=True, cwd=ROOT, check=False
    )
    assert refused.returncode == 2
    assert refused.stderr.startswith(f"Error: {bad}: step 1:")


# --- the real Claude Code CLI against it -----------------------------------------------------


class ClaudeRun:
    def __init__(self, returncode: int, stdout: str, stderr: str) -> None:
        self.returncode = returncode
        self.stderr = stderr
        self.lines: list[dict[str, Any]] = [
            json.loads(line) for line in stdout.splitlines() if line.strip()
        ]

    def result(self) -> dict[str, Any]:
        results = [line for line in self.lines if line["type"] == "result"]
        assert len(results) == 1, f"expected one result line: {self.lines} {self.stderr}"
        return results[0]


def run_claude(tmp_path: Path, server_url: str, prompt: str, timeout: float = 60) -> ClaudeRun:
    """`claude -p` in a fresh git repository (``tmp_path / "repo"``), hermetic: its own process
    group, an environment built from nothing, HOME and config in temporary folders."""
    repo, home, config = tmp_path / "repo", tmp_path / "home", tmp_path / "config"
    for folder in (home, config):
        folder.mkdir(exist_ok=True)
    subprocess.run(["git", "init", "-q", str(repo)], check=True)
    environment = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(home),
        "CLAUDE_CONFIG_DIR": str(config),
        "ANTHROPIC_BASE_URL": server_url,
        "ANTHROPIC_API_KEY": "dummy-key-for-the-local-model-server",
        "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
        "DISABLE_TELEMETRY": "1",
        "CLAUDE_CODE_MAX_RETRIES": "0",
        "API_TIMEOUT_MS": "10000",
    }
    command = [
        str(claude_binary()),
        "-p",
        "--output-format=stream-json",
        "--verbose",
        "--max-turns=3",
        "--permission-mode=acceptEdits",
        "--setting-sources=",
        "--strict-mcp-config",
        "--no-session-persistence",
    ]
    process = subprocess.Popen(
        command,
        cwd=repo,
        env=environment,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,  # its own process group, so the whole group can be killed
    )
    try:
        stdout, stderr = process.communicate(prompt, timeout=timeout)  # no line-length cap
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        stdout, stderr = process.communicate()
        pytest.fail(f"claude ran over {timeout} s and was killed: {stdout[-2000:]} {stderr}")
    finally:
        with contextlib.suppress(ProcessLookupError):  # the group is gone when nothing is left
            os.killpg(process.pid, signal.SIGKILL)  # whatever its tools left behind
    return ClaudeRun(process.returncode, stdout, stderr)


@pytest.mark.e2e
def test_the_real_cli_writes_a_file_the_script_asks_for(tmp_path: Path) -> None:
    content = "hello from the script\n"
    script: list[dict[str, Any]] = [
        {"tool_use": {"name": "Write", "input": {"file_path": "hello.txt", "content": content}}},
        {"text": "I wrote hello.txt.", "usage": {"input_tokens": 1200, "output_tokens": 40}},
    ]
    with serve(script) as server:
        run = run_claude(tmp_path, server.url, "Write hello.txt.")
        requests = server.requests
    assert (tmp_path / "repo" / "hello.txt").read_text() == content
    assert run.returncode == 0, run.stderr
    init = run.lines[0]
    assert (init["type"], init["subtype"]) == ("system", "init")
    assert init["cwd"] == str(tmp_path / "repo") and init["permissionMode"] == "acceptEdits"
    result = run.result()
    assert result["is_error"] is False and result["subtype"] == "success"
    assert result["num_turns"] == 2 and result["result"] == "I wrote hello.txt."
    assert result["permission_denials"] == []
    agent = [body for body in requests if body.get("tools")]
    assert len(agent) == 2
    assert "Write" in {tool["name"] for tool in agent[0]["tools"]}
    assert agent[0]["stream"] is True and agent[0]["system"]  # the system prompt reached us
    assert "Write hello.txt." in json.dumps(agent[0]["messages"])
    tool_use = next(line for line in run.lines if line["type"] == "assistant")
    tool_id = tool_use["message"]["content"][0]["id"]
    results = [
        block
        for message in agent[1]["messages"]
        if message["role"] == "user" and isinstance(message["content"], list)
        for block in message["content"]
        if block.get("type") == "tool_result"
    ]
    assert [block["tool_use_id"] for block in results] == [tool_id]


@pytest.mark.e2e
def test_an_api_error_without_retries_ends_the_run_as_an_error(tmp_path: Path) -> None:
    script = [{"error": {"status": 500, "type": "api_error", "message": "scripted failure"}}]
    with serve(script) as server:
        run = run_claude(tmp_path, server.url, "Write hello.txt.")
        requests = server.requests
    assert run.returncode != 0
    result = run.result()
    assert result["is_error"] is True and result["api_error_status"] == 500
    assert result["subtype"] == "success"  # the facts: success is not judged by subtype alone
    assert "scripted failure" in result["result"]
    assert len([body for body in requests if body.get("tools")]) == 1  # CLAUDE_CODE_MAX_RETRIES=0
    assert not (tmp_path / "repo" / "hello.txt").exists()


def test_task_in_a_tool_input_is_the_task_the_first_prompt_names() -> None:
    script = [{"tool_use": {"name": "Write", "input": {"file_path": "out/{task}/r.txt"}}}]
    with serve(script) as server:
        inputs = []
        for prompt in ("Task 12: write it", "no task named here"):
            body = request_body(0)
            body["messages"][0]["content"] = [{"type": "text", "text": prompt}]
            events = sse(server.url, body)
            deltas = [e[1]["delta"]["partial_json"] for e in events[2:-3]]
            inputs.append(json.loads("".join(deltas)))
    assert inputs == [{"file_path": "out/12/r.txt"}, {"file_path": "out/0/r.txt"}]
