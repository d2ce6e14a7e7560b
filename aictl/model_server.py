"""A scripted stand-in for the Anthropic Messages API, so tests and the demo drive the real
Claude Code CLI with nothing leaving the machine.

It answers ``HEAD /`` and ``POST /v1/messages`` (``?beta=true`` too) on 127.0.0.1 only: with
Server-Sent Events when the request asks to stream, with one JSON message otherwise. The reply
follows a *script*, a JSON list of steps, one per model turn::

    [{"tool_use": {"name": "Write", "input": {"file_path": "a.txt", "content": "hi"}}},
     {"text": "Done.", "usage": {"input_tokens": 1200, "output_tokens": 40}}]

A step is ``{"text": ...}``, ``{"tool_use": {"name": ..., "input": {...}}}``, ``{"error":
{"status": 500, "type": "api_error", "message": ...}}`` (a JSON error with that status) or
``{"stall": true}`` (``message_start``, then silence until the server stops); ``"usage"`` is
optional. The step is chosen statelessly: the number of assistant messages already in the
request. The CLI resends the whole conversation each turn, so retries replay the same step and
concurrent runs do not disturb each other. In a tool step's input, ``{task}`` is replaced with
the task id the conversation's first prompt names (aictl's prompts begin ``Task N:``), so one
script can serve many tasks, each writing its own files. Requests without ``tools`` (side
requests such as a session title) get a short text and consume no step; a request past the end
of the script gets a text saying so. Every request body is recorded in memory and, optionally,
appended to a JSON lines log.

Run ``python -m aictl.model_server --script FILE.json [--port 0] [--port-file PATH] [--log
FILE]``, or from Python: ``with serve(script) as server: ... server.url ... server.requests``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import signal
import socket
import sys
import threading
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

from aictl.errors import AictlError, InvalidInput

HOST = "127.0.0.1"
SIDE_REPLY = "Scripted session"
DEFAULT_USAGE: Mapping[str, int] = {
    "input_tokens": 100,
    "output_tokens": 20,
    "cache_creation_input_tokens": 0,
    "cache_read_input_tokens": 0,
}
_KINDS = ("text", "tool_use", "error", "stall")
_DEFAULT_ERROR_TYPES = {
    529: "overloaded_error",
    429: "rate_limit_error",
    400: "invalid_request_error",
}

Event = tuple[str, dict[str, Any]]


@dataclass(frozen=True)
class Step:
    """One scripted model turn; only the fields of its ``kind`` matter."""

    kind: Literal["text", "tool_use", "error", "stall"]
    text: str = ""
    tool_name: str = ""
    tool_input: Mapping[str, Any] = field(default_factory=dict)
    status: int = 200
    error_type: str = ""
    message: str = ""
    usage: Mapping[str, int] = field(default_factory=lambda: dict(DEFAULT_USAGE))


def load_script(steps: object, *, source: str = "script") -> list[Step]:
    """Validate a parsed JSON script; raise ``InvalidInput`` naming the step and field."""
    if not isinstance(steps, list):
        raise InvalidInput(f"{source}: expected a JSON list of steps")
    return [_step(raw, f"{source}: step {number}") for number, raw in enumerate(steps, start=1)]


def _step(raw: object, where: str) -> Step:
    if not isinstance(raw, dict):
        raise InvalidInput(f"{where}: expected an object")
    kinds = [key for key in _KINDS if key in raw]
    unknown = sorted(set(raw) - {*_KINDS, "usage"})
    if unknown or len(kinds) != 1:
        raise InvalidInput(
            f"{where}: needs exactly one of {', '.join(_KINDS)} (plus optional usage)"
            + (f"; unknown: {', '.join(unknown)}" if unknown else "")
        )
    usage = dict(DEFAULT_USAGE)
    given = raw.get("usage", {})
    if not isinstance(given, dict) or any(
        key not in DEFAULT_USAGE or not isinstance(value, int) or value < 0
        for key, value in given.items()
    ):
        raise InvalidInput(f"{where}: usage maps {', '.join(DEFAULT_USAGE)} to counts >= 0")
    usage.update(given)
    kind, value = kinds[0], raw[kinds[0]]
    if kind == "text" and isinstance(value, str):
        return Step("text", text=value, usage=usage)
    if kind == "stall" and value is True:
        return Step("stall", usage=usage)
    if (
        kind == "tool_use"
        and isinstance(value, dict)
        and isinstance(value.get("name"), str)
        and isinstance(value.get("input"), dict)
    ):
        return Step("tool_use", tool_name=value["name"], tool_input=value["input"], usage=usage)
    if kind == "error" and isinstance(value, dict) and value.get("status") in range(400, 600):
        status = value["status"]
        default_type = _DEFAULT_ERROR_TYPES.get(status, "api_error")
        error_type, message = value.get("type", default_type), value.get("message", "scripted")
        if isinstance(error_type, str) and isinstance(message, str):
            return Step("error", status=status, error_type=error_type, message=message)
    shapes = {
        "text": '"text": "..."',
        "stall": '"stall": true',
        "tool_use": '"tool_use": {"name": "...", "input": {...}}',
        "error": '"error": {"status": 400-599, "type": "...", "message": "..."}',
    }
    raise InvalidInput(f"{where}: expected {shapes[kind]}")


def choose_step(script: Sequence[Step], body: Mapping[str, Any]) -> Step:
    """The step a request gets: side requests (no tools) and overruns get a plain text."""
    if not body.get("tools"):
        return Step("text", text=SIDE_REPLY)
    messages = body.get("messages")
    if not isinstance(messages, list):
        messages = []
    turn = sum(
        1
        for message in messages
        if isinstance(message, dict) and message.get("role") == "assistant"
    )
    if turn < len(script):
        return _for_task(script[turn], messages)
    return Step("text", text=f"end of script: no step {turn + 1} in {len(script)} steps")


_TASK_NAMED = re.compile(r"\bTask (\d+):")


def _for_task(step: Step, messages: Sequence[Any]) -> Step:
    """``step`` with ``{task}`` in its tool input replaced by the task the first prompt names."""
    if step.kind != "tool_use" or "{task}" not in json.dumps(step.tool_input):
        return step
    first = next((m for m in messages if isinstance(m, dict) and m.get("role") == "user"), {})
    named = _TASK_NAMED.search(json.dumps(first.get("content", "")))
    task = named.group(1) if named else "0"
    filled = json.loads(json.dumps(step.tool_input).replace("{task}", task))
    return replace(step, tool_input=filled)


def _pieces(text: str, count: int = 3) -> list[str]:
    """Split into up to ``count`` non-empty pieces, so clients must reassemble deltas."""
    size = max(1, -(-len(text) // count))
    return [text[start : start + size] for start in range(0, len(text), size)] or [""]


def _block(step: Step) -> dict[str, Any]:
    if step.kind == "tool_use":
        tool_id = f"toolu_{uuid.uuid4().hex[:24]}"
        return {"type": "tool_use", "id": tool_id, "name": step.tool_name, "input": step.tool_input}
    return {"type": "text", "text": step.text}


def message_for(step: Step, model: str) -> dict[str, Any]:
    """The complete assistant message a text or tool_use step stands for."""
    return {
        "id": f"msg_{uuid.uuid4().hex[:24]}",
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": [_block(step)],
        "stop_reason": "tool_use" if step.kind == "tool_use" else "end_turn",
        "stop_sequence": None,
        "usage": dict(step.usage),
    }


def stream_events(message: Mapping[str, Any]) -> list[Event]:
    """The SSE events that deliver ``message``, in the order the Messages API sends them."""
    start = {**message, "content": [], "stop_reason": None}
    start["usage"] = {**message["usage"], "output_tokens": 1}
    events: list[Event] = [("message_start", {"type": "message_start", "message": start})]
    for index, block in enumerate(message["content"]):
        if block["type"] == "tool_use":
            opening = {**block, "input": {}}
            delta_type, key, whole = "input_json_delta", "partial_json", json.dumps(block["input"])
        else:
            opening = {**block, "text": ""}
            delta_type, key, whole = "text_delta", "text", block["text"]
        events.append(
            (
                "content_block_start",
                {"type": "content_block_start", "index": index, "content_block": opening},
            )
        )
        events.extend(
            (
                "content_block_delta",
                {
                    "type": "content_block_delta",
                    "index": index,
                    "delta": {"type": delta_type, key: piece},
                },
            )
            for piece in _pieces(whole)
        )
        events.append(("content_block_stop", {"type": "content_block_stop", "index": index}))
    delta = {"stop_reason": message["stop_reason"], "stop_sequence": None}
    events.append(
        ("message_delta", {"type": "message_delta", "delta": delta, "usage": message["usage"]})
    )
    events.append(("message_stop", {"type": "message_stop"}))
    return events


def error_body(error_type: str, message: str) -> dict[str, Any]:
    return {"type": "error", "error": {"type": error_type, "message": message}}


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive; streams use chunked transfer encoding
    server: _HTTPServer

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: the request log is ``Server.requests`` and ``--log``."""

    def do_HEAD(self) -> None:
        self.send_response(200 if urlsplit(self.path).path == "/" else 404)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def do_POST(self) -> None:
        path = urlsplit(self.path).path
        raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        if path != "/v1/messages":
            self._send_json(404, error_body("not_found_error", f"no such endpoint: {path}"))
            return
        try:
            body = json.loads(raw)
        except ValueError:
            body = None
        if not isinstance(body, dict):
            self._send_json(400, error_body("invalid_request_error", "body is not a JSON object"))
            return
        self.server.record(body)
        step = choose_step(self.server.script, body)
        streaming = body.get("stream") is True
        if step.kind == "error":
            self._send_json(step.status, error_body(step.error_type, step.message))
            return
        message = message_for(step, str(body.get("model", "scripted")))
        if step.kind == "stall":
            if streaming:
                self._start_stream()
                self._send_event(*stream_events(message)[0])
            self.close_connection = True
            self.server.stopping.wait()  # until Server.stop(); the client sees the socket close
            return
        if not streaming:
            self._send_json(200, message)
            return
        self._start_stream()
        for event in stream_events(message):
            self._send_event(*event)
        self.wfile.write(b"0\r\n\r\n")

    def _send_json(self, status: int, payload: Mapping[str, Any]) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _start_stream(self) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Cache-Control", "no-cache")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()

    def _send_event(self, name: str, data: Mapping[str, Any]) -> None:
        frame = f"event: {name}\ndata: {json.dumps(data)}\n\n".encode()
        self.wfile.write(b"%x\r\n%s\r\n" % (len(frame), frame))
        self.wfile.flush()


class _HTTPServer(ThreadingHTTPServer):
    """Tracks open connections so ``stop()`` can cut them: a stalled or idle keep-alive
    connection would otherwise hold its handler thread (and socket) forever."""

    daemon_threads = True
    block_on_close = False

    def __init__(self, script: Sequence[Step], port: int, log: Path | None) -> None:
        super().__init__((HOST, port), _Handler)
        self.script = list(script)
        self.log = log
        self.requests: list[dict[str, Any]] = []
        self.stopping = threading.Event()
        self._lock = threading.Lock()
        self._open: dict[socket.socket, threading.Thread] = {}

    def record(self, body: dict[str, Any]) -> None:
        with self._lock:
            self.requests.append(body)
            if self.log is not None:
                with self.log.open("a", encoding="utf-8") as log:
                    log.write(json.dumps(body) + "\n")

    def recorded(self) -> list[dict[str, Any]]:
        with self._lock:
            return list(self.requests)

    def process_request(self, request: Any, client_address: Any) -> None:
        thread = threading.Thread(
            target=self.process_request_thread, args=(request, client_address), daemon=True
        )
        with self._lock:
            self._open[request] = thread
        thread.start()

    def shutdown_request(self, request: Any) -> None:
        with self._lock:
            self._open.pop(request, None)
        super().shutdown_request(request)

    def handle_error(self, request: Any, client_address: Any) -> None:
        if not isinstance(sys.exc_info()[1], OSError):  # a client gone mid-reply is normal
            super().handle_error(request, client_address)

    def cut_connections(self, timeout: float) -> None:
        with self._lock:
            still_open = list(self._open.items())
        for connection, _ in still_open:
            with contextlib.suppress(OSError):
                connection.shutdown(socket.SHUT_RDWR)
        for _, thread in still_open:
            thread.join(timeout)


class Server:
    """A running model server; a context manager that stops it on exit."""

    def __init__(self, script: Sequence[Step], *, port: int = 0, log: Path | None = None) -> None:
        self._httpd = _HTTPServer(script, port, log)
        self.port: int = self._httpd.server_address[1]
        self.url = f"http://{HOST}:{self.port}"
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()
        self._stopped = False

    @property
    def requests(self) -> list[dict[str, Any]]:
        """The parsed bodies received so far, oldest first (a copy)."""
        return self._httpd.recorded()

    def stop(self) -> None:
        """Stop serving and close every connection; idempotent, returns within about a second."""
        if self._stopped:
            return
        self._stopped = True
        self._httpd.stopping.set()
        self._httpd.shutdown()
        self._httpd.cut_connections(timeout=1.0)
        self._httpd.server_close()
        self._thread.join()

    def __enter__(self) -> Server:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


def serve(script: Sequence[Mapping[str, Any]], *, log: Path | None = None) -> Server:
    """Validate ``script`` (raising ``InvalidInput``) and start a server on a port the OS
    chooses; use as ``with serve(script) as server:``."""
    return Server(load_script(list(script)), log=log)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m aictl.model_server", description=__doc__)
    parser.add_argument("--script", type=Path, required=True, help="JSON list of steps")
    parser.add_argument("--port", type=int, default=0, help="0 (default): the OS chooses")
    parser.add_argument("--port-file", type=Path, help="write the port here once listening")
    parser.add_argument("--log", type=Path, help="append each request body as a JSON line")
    args = parser.parse_args(argv)
    try:
        script = load_script(json.loads(args.script.read_text()), source=str(args.script))
    except (OSError, ValueError, AictlError) as error:
        print(f"Error: {getattr(error, 'message', error)}", file=sys.stderr)
        return 2
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())  # handlers only set flags
    with Server(script, port=args.port, log=args.log) as server:
        if args.port_file:  # written whole, then renamed: a poller never reads half a number
            partial = args.port_file.with_name(args.port_file.name + ".partial")
            partial.write_text(f"{server.port}\n")
            os.replace(partial, args.port_file)
        print(f"listening on {server.url}", flush=True)
        with contextlib.suppress(KeyboardInterrupt):
            while not stop.wait(0.5):
                pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
