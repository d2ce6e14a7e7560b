"""Per-call permission decisions over Claude Code's stdio control protocol.

Observed with 2.1.197: started with ``--input-format=stream-json
--permission-prompt-tool=stdio``, the CLI reads its input as JSON lines. The parent first sends
an ``initialize`` control request, then the prompt as a ``user`` message. Before each tool call
that needs permission, the CLI writes::

    {"type": "control_request", "request_id": "...",
     "request": {"subtype": "can_use_tool", "tool_name": "Write", "input": {...}, ...}}

and waits for ``{"type": "control_response", "response": {"subtype": "success",
"request_id": "...", "response": {"behavior": "allow", "updatedInput": {...}}}}`` or
``{"behavior": "deny", "message": "..."}``. A denial reaches the model as an error tool result
and shows in the ``result`` line's ``permission_denials``. The CLI keeps reading input after
the ``result`` line: stdin must be closed then, or it never exits.

``can_use_tool`` is asked only for calls that would prompt: a call pre-allowed by
``--allowedTools``, by a ``permissions.allow`` rule in any settings file or by ``acceptEdits``
never reaches it. So aictl also registers a ``PreToolUse`` hook callback in the ``initialize``
request; the CLI then sends a ``hook_callback`` control request for *every* tool call, before
its own permission rules, and a ``deny`` answer wins over any allow rule (observed with
2.1.332, the CLI that claude-agent-sdk 0.2.189 ships, and the same protocol the SDK's Python
client speaks). The gate is asked there; ``can_use_tool`` stays answered by the gate too, for
a call the hook left undecided. A gated run still uses ``default`` mode and never pre-allows
the tools that write files, so nothing depends on the hook alone.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from connectors import Gate, ToolCall, Verdict

#: Permission modes in which the CLI approves calls itself; a gated run uses ``default``.
SELF_APPROVING = frozenset({"acceptEdits", "bypassPermissions"})
#: Tools that write files: never pre-allowed in a gated run, so every call reaches the gate.
WRITING_TOOLS = frozenset({"Write", "Edit", "MultiEdit", "NotebookEdit"})
INITIALIZE_ID = "aictl-initialize"
#: The id of aictl's ``PreToolUse`` hook callback, registered at ``initialize``.
HOOK_ID = "aictl-pre-tool-use"


@dataclass(frozen=True)
class PermissionRequest:
    """A ``can_use_tool`` control request."""

    request_id: str
    call: ToolCall


def gated_mode(mode: str | None) -> str:
    """The permission mode a gated run uses: the requested one unless it approves by itself."""
    return "default" if mode is None or mode in SELF_APPROVING else mode


def pre_allowed(tools: tuple[str, ...]) -> tuple[str, ...]:
    """``--allowedTools`` entries a gated run keeps: none that writes files (``Edit`` or
    ``Edit(src/**)`` alike)."""
    return tuple(tool for tool in tools if tool.split("(", 1)[0].strip() not in WRITING_TOOLS)


def initialize_line() -> str:
    """The ``initialize`` request: registers aictl's hook for every tool call (no matcher)."""
    hook = {"matcher": None, "hookCallbackIds": [HOOK_ID]}
    request = {"subtype": "initialize", "hooks": {"PreToolUse": [hook]}}
    return json.dumps({"type": "control_request", "request_id": INITIALIZE_ID, "request": request})


def prompt_line(prompt: str) -> str:
    return json.dumps(
        {
            "type": "user",
            "message": {"role": "user", "content": prompt},
            "parent_tool_use_id": None,
            "session_id": "",
        }
    )


def control_request(message: Mapping[str, Any]) -> tuple[str, Mapping[str, Any]] | None:
    """``(request_id, request)`` when ``message`` is a control request, else None."""
    if message.get("type") != "control_request":
        return None
    request = message.get("request")
    request_id = message.get("request_id")
    if not isinstance(request, dict) or not isinstance(request_id, str):
        return None
    return request_id, request


def permission_request(request_id: str, request: Mapping[str, Any]) -> PermissionRequest | None:
    if request.get("subtype") != "can_use_tool":
        return None
    tool_input = request.get("input")
    tool_use_id = request.get("tool_use_id")
    return PermissionRequest(
        request_id,
        ToolCall(
            name=str(request.get("tool_name", "")),
            input=tool_input if isinstance(tool_input, dict) else {},
            tool_use_id=tool_use_id if isinstance(tool_use_id, str) else None,
        ),
    )


def hook_request(request_id: str, request: Mapping[str, Any]) -> PermissionRequest | None:
    """The tool call of a ``hook_callback`` request for aictl's ``PreToolUse`` hook."""
    if request.get("subtype") != "hook_callback" or request.get("callback_id") != HOOK_ID:
        return None
    hook_input = request.get("input")
    if not isinstance(hook_input, dict) or hook_input.get("hook_event_name") != "PreToolUse":
        return None
    tool_input = hook_input.get("tool_input")
    tool_use_id = hook_input.get("tool_use_id") or request.get("tool_use_id")
    return PermissionRequest(
        request_id,
        ToolCall(
            name=str(hook_input.get("tool_name", "")),
            input=tool_input if isinstance(tool_input, dict) else {},
            tool_use_id=tool_use_id if isinstance(tool_use_id, str) else None,
        ),
    )


def hook_response_line(request_id: str, verdict: Verdict) -> str:
    """The hook's answer: ``allow`` or ``deny`` with the reason the agent is told."""
    output: dict[str, Any] = {
        "hookEventName": "PreToolUse",
        "permissionDecision": "allow" if verdict.allow else "deny",
        "permissionDecisionReason": verdict.message
        or ("allowed by aictl" if verdict.allow else "denied by aictl"),
    }
    return json.dumps(
        {
            "type": "control_response",
            "response": {
                "subtype": "success",
                "request_id": request_id,
                "response": {"hookSpecificOutput": output},
            },
        }
    )


def ask(gate: Gate, call: ToolCall) -> Verdict:
    """The gate's verdict; a gate that raises denies (enforcement fails closed)."""
    try:
        return gate(call)
    except Exception as error:  # any failure to decide is a denial
        return Verdict.deny(f"aictl could not decide this call, so it is denied: {error}")


def response_line(request_id: str, call: ToolCall, verdict: Verdict) -> str:
    decision: dict[str, Any] = (
        {"behavior": "allow", "updatedInput": dict(call.input)}
        if verdict.allow
        else {"behavior": "deny", "message": verdict.message or "denied by aictl"}
    )
    return json.dumps(
        {
            "type": "control_response",
            "response": {"subtype": "success", "request_id": request_id, "response": decision},
        }
    )


def error_line(request_id: str, message: str) -> str:
    """The answer to a control request aictl does not serve (hooks, MCP messages...)."""
    return json.dumps(
        {
            "type": "control_response",
            "response": {"subtype": "error", "request_id": request_id, "error": message},
        }
    )
