"""``aictl mcp serve``: a stdio MCP server over one agent's ``PeerSession``.

The only module that imports ``mcp`` (about half a second): no other command pays for it.
Eight tools with one-line descriptions and few parameters, so that the whole tool list costs
the agent's context well under 2,000 tokens (``tests/unit/test_mcp_tools.py`` counts it).
Every tool calls the session, which calls the same ``TaskService`` as the CLI. A refusal
(``AictlError``) comes back as a tool error the model reads: the message, the hint, and the
CLI's exit code, so an agent can tell contention (4) from a policy denial (3).

Session-long leases: a thread renews the session's leases every third of their length while
the server runs. When the client closes the connection (or dies, closing the pipe), the
server returns, the thread stops, and the leases expire after their TTL as any other lease.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from typing import Annotated, Any

from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from pydantic import Field

from aictl.errors import AictlError
from aictl.services.peers import PeerSession, lease_interval

INSTRUCTIONS = (
    "aictl coordinates agents in this repository. Claim a task before changing files, write "
    "only inside its paths, then complete, fail or release it. Leases last as long as this "
    "session."
)

TaskId = Annotated[int, Field(description="task id")]


def _answer(call: Callable[[], dict[str, Any]]) -> str:
    try:
        return json.dumps(call(), separators=(",", ":"))
    except AictlError as error:
        hint = f" Hint: {error.hint}" if error.hint else ""
        raise ToolError(
            f"{error.message}.{hint} (exit {error.exit_code}: {type(error).__name__})"
        ) from None


def build_server(session: PeerSession) -> MCPServer[Any]:
    """The MCP server with its tools bound to ``session``."""
    server: MCPServer[Any] = MCPServer("aictl", instructions=INSTRUCTIONS)
    tool = server.tool

    @tool(description="Tasks you can claim now, and the ones you hold.", structured_output=False)
    def ready() -> str:
        return _answer(session.ready)

    @tool(
        description="Claim the next ready task, or the given one; you hold it for this session.",
        structured_output=False,
    )
    def claim(task: Annotated[int | None, Field(description="task id")] = None) -> str:
        return _answer(lambda: session.claim(task))

    @tool(description="Finish a task you hold.", structured_output=False)
    def complete(
        task: TaskId,
        result: str | None = None,
        evidence: Annotated[dict[str, Any] | None, Field(description="JSON object")] = None,
    ) -> str:
        return _answer(lambda: session.complete(task, result, evidence))

    @tool(
        description="Give up a task you hold; requeued while attempts remain unless retry=false.",
        structured_output=False,
    )
    def fail(task: TaskId, reason: str, retry: bool = True) -> str:
        return _answer(lambda: session.fail(task, reason, retry))

    @tool(description="Hand a task you hold back to the queue, untouched.", structured_output=False)
    def release(task: TaskId) -> str:
        return _answer(lambda: session.release(task))

    @tool(description="Create a task.", structured_output=False)
    def create(
        title: str,
        paths: Annotated[list[str], Field(description="globs it may write")] = [],  # noqa: B006
        depends_on: list[int] = [],  # noqa: B006
        priority: int = 0,
        description: str = "",
    ) -> str:
        return _answer(lambda: session.create(title, paths, depends_on, priority, description))

    @tool(
        description="Which locks held by other agents these globs would meet.",
        structured_output=False,
    )
    def check_paths(paths: list[str]) -> str:
        return _answer(lambda: session.check_paths(paths))

    @tool(description="Show a task.", structured_output=False)
    def show(task: TaskId) -> str:
        return _answer(lambda: session.show(task))

    return server


class Heartbeats:
    """Renews the session's leases every third of their length until ``stop``."""

    def __init__(self, session: PeerSession, seconds: float) -> None:
        self.session = session
        self.interval = lease_interval(seconds).total_seconds()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="aictl-heartbeats", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.session.heartbeat()
            except AictlError:  # a busy or failing database: the next beat tries again
                continue

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)


def serve(session: PeerSession) -> None:
    """Serve MCP on stdin/stdout until the client goes away, renewing the leases meanwhile."""
    beats = Heartbeats(session, session.lease_seconds())
    beats.start()
    try:
        build_server(session).run("stdio")
    finally:
        beats.stop()
        session.close()
