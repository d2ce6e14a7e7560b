"""Claude Code's ``--output-format=stream-json --verbose`` output, one JSON object per line,
turned into typed events.

Observed with Claude Code 2.1.197: ``system``/``init`` comes first (session id, tools, model,
version), then ``assistant`` messages (text and ``tool_use`` blocks) and ``user`` messages
(``tool_result`` blocks), and finally one ``result`` line. ``system`` lines may still follow
the ``result`` line, and a line can be megabytes long. A line that is not a JSON object is
recorded as malformed and skipped: it never ends the parse.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

#: How much of a malformed line is kept for the report.
MALFORMED_EXCERPT = 200


@dataclass(frozen=True)
class Init:
    session_id: str | None
    model: str | None
    version: str | None
    tools: tuple[str, ...]
    cwd: str | None
    permission_mode: str | None


@dataclass(frozen=True)
class ToolUse:
    id: str
    name: str
    input: Mapping[str, Any]


@dataclass(frozen=True)
class AssistantTurn:
    """One assistant message: its text and the tool calls it makes."""

    text: str
    tool_uses: tuple[ToolUse, ...]


@dataclass(frozen=True)
class ToolResult:
    tool_use_id: str
    is_error: bool
    content: str


@dataclass(frozen=True)
class Result:
    """The ``result`` line: the agent's own account of how the run ended."""

    subtype: str
    is_error: bool
    num_turns: int | None
    session_id: str | None
    total_cost_usd: float | None
    usage: Mapping[str, Any]
    permission_denials: tuple[Mapping[str, Any], ...]
    api_error_status: int | None
    text: str | None
    terminal_reason: str | None


@dataclass(frozen=True)
class SystemNote:
    """A ``system`` line other than ``init`` (some arrive after ``result``)."""

    subtype: str | None
    data: Mapping[str, Any]


@dataclass(frozen=True)
class Malformed:
    line_number: int
    excerpt: str
    problem: str


Event = Init | AssistantTurn | ToolResult | Result | SystemNote


@dataclass
class Parsed:
    """Everything read so far. ``result`` is the last ``result`` line seen (normally the
    only one); ``after_result`` counts the events that followed it."""

    init: Init | None = None
    result: Result | None = None
    turns: list[AssistantTurn] = field(default_factory=list)
    tool_results: list[ToolResult] = field(default_factory=list)
    notes: list[SystemNote] = field(default_factory=list)
    malformed: list[Malformed] = field(default_factory=list)
    after_result: int = 0
    lines: int = 0

    @property
    def tool_uses(self) -> list[ToolUse]:
        return [use for turn in self.turns for use in turn.tool_uses]


def _text(content: object) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(
            str(block.get("text", ""))
            for block in content
            if isinstance(block, dict) and block.get("type") == "text"
        )
    return ""


def _int(value: object) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _mapping(value: object) -> Mapping[str, Any]:
    return value if isinstance(value, dict) else {}


def _str(value: object) -> str | None:
    return value if isinstance(value, str) else None


class StreamParser:
    """Feed it lines in order; read ``parsed`` at any time.

    ``feed`` returns the events a line produced (an ``assistant`` line can hold several
    blocks, a ``user`` line several tool results) and never raises on bad input.
    """

    def __init__(self) -> None:
        self.parsed = Parsed()

    def feed(self, line: str) -> list[Event]:
        self.parsed.lines += 1
        if not line.strip():
            return []
        try:
            message = json.loads(line)
        except ValueError as error:
            return self._malformed(line, f"not JSON: {error}")
        if not isinstance(message, dict) or not isinstance(message.get("type"), str):
            return self._malformed(line, "not a JSON object with a type")
        events = self._events(message)
        parsed = self.parsed
        for event in events:
            if parsed.result is not None:
                parsed.after_result += 1
            if isinstance(event, Init):
                parsed.init = event
            elif isinstance(event, AssistantTurn):
                parsed.turns.append(event)
            elif isinstance(event, ToolResult):
                parsed.tool_results.append(event)
            elif isinstance(event, SystemNote):
                parsed.notes.append(event)
            else:
                parsed.result, parsed.after_result = event, 0
        return events

    def _malformed(self, line: str, problem: str) -> list[Event]:
        excerpt = line[:MALFORMED_EXCERPT]
        self.parsed.malformed.append(Malformed(self.parsed.lines, excerpt, problem))
        return []

    def _events(self, message: dict[str, Any]) -> list[Event]:
        kind = message["type"]
        if kind == "system" and message.get("subtype") == "init":
            tools = message.get("tools")
            return [
                Init(
                    session_id=_str(message.get("session_id")),
                    model=_str(message.get("model")),
                    version=_str(message.get("claude_code_version")),
                    tools=tuple(t for t in tools if isinstance(t, str))
                    if isinstance(tools, list)
                    else (),
                    cwd=_str(message.get("cwd")),
                    permission_mode=_str(message.get("permissionMode")),
                )
            ]
        if kind == "system":
            return [SystemNote(_str(message.get("subtype")), message)]
        if kind == "result":
            return [_result(message)]
        body = message.get("message")
        content = body.get("content") if isinstance(body, dict) else None
        blocks = [block for block in content if isinstance(block, dict)] if content else []
        if kind == "assistant":
            uses = tuple(
                ToolUse(
                    id=str(block.get("id", "")),
                    name=str(block.get("name", "")),
                    input=_mapping(block.get("input")),
                )
                for block in blocks
                if block.get("type") == "tool_use"
            )
            return [AssistantTurn(text=_text(blocks), tool_uses=uses)]
        if kind == "user":
            return [
                ToolResult(
                    tool_use_id=str(block.get("tool_use_id", "")),
                    is_error=block.get("is_error") is True,
                    content=_text(block.get("content")),
                )
                for block in blocks
                if block.get("type") == "tool_result"
            ]
        return []  # other kinds (stream events, future additions) carry nothing we judge


def _result(message: Mapping[str, Any]) -> Result:
    cost = message.get("total_cost_usd")
    usage = message.get("usage")
    denials = message.get("permission_denials")
    return Result(
        subtype=str(message.get("subtype", "")),
        is_error=message.get("is_error") is not False,  # absent or odd: not a success
        num_turns=_int(message.get("num_turns")),
        session_id=_str(message.get("session_id")),
        total_cost_usd=float(cost)
        if isinstance(cost, int | float) and not isinstance(cost, bool)
        else None,
        usage=_mapping(usage),
        permission_denials=tuple(d if isinstance(d, dict) else {"denial": d} for d in denials)
        if isinstance(denials, list)
        else (),
        api_error_status=_int(message.get("api_error_status")),
        text=_str(message.get("result")),
        terminal_reason=_str(message.get("terminal_reason")),
    )
