"""`aictl mcp serve` over stdio, driven by the official MCP client in a subprocess."""

from __future__ import annotations

import json
import math
import os
import time
from pathlib import Path
from typing import Any

import anyio
import pytest
from mcp import Client
from mcp.client.stdio import StdioServerParameters

from aictl.services.mcp_server import INSTRUCTIONS, build_server
from aictl.services.peers import PeerSession
from tests.e2e.test_installed_cli import aictl_binary, run
from tests.gitrepo import git_init

pytestmark = pytest.mark.e2e

TOOL_BUDGET = 2000
CHARACTERS_PER_TOKEN = 3
"""A pessimistic rate for JSON schemas (English prose runs near 4 characters a token)."""


def test_the_tool_list_is_small() -> None:
    """At most ten tools, and their whole listing (names, descriptions, schemas) plus the
    server's instructions under 2,000 tokens counted at 3 characters a token."""
    server = build_server(PeerSession.__new__(PeerSession))
    tools = anyio.run(server.list_tools)
    listing = json.dumps(
        [tool.model_dump(mode="json", by_alias=True, exclude_none=True) for tool in tools]
    )
    tokens = math.ceil((len(listing) + len(INSTRUCTIONS)) / CHARACTERS_PER_TOKEN)
    assert len(tools) <= 10
    assert tokens < TOOL_BUDGET, f"the tool list costs about {tokens} tokens"
    assert {tool.name for tool in tools} == {
        "ready", "claim", "complete", "fail", "release", "create", "check_paths", "show",
    }  # fmt: skip


def server(repo: Path, agent: str, *extra: str) -> StdioServerParameters:
    env = {k: v for k, v in os.environ.items() if k != "AICTL_DB"}
    env["AICTL_AGENT"] = agent
    return StdioServerParameters(
        command=aictl_binary(), args=["mcp", "serve", *extra], env=env, cwd=str(repo)
    )


async def call(client: Client, tool: str, **arguments: Any) -> tuple[bool, str]:
    result = await client.call_tool(tool, arguments)
    text = "".join(getattr(block, "text", "") for block in result.content)
    return bool(result.is_error), text


def test_claim_and_complete_over_stdio_and_errors_the_agent_can_act_on(tmp_path: Path) -> None:
    repo = git_init(tmp_path / "repo")
    assert run(repo, "init").returncode == 0
    assert run(repo, "task", "create", "api", "--path", "src/api/**").returncode == 0

    async def scenario() -> None:
        async with (
            Client(server(repo, "a1"), read_timeout_seconds=60) as a1,
            Client(server(repo, "b2"), read_timeout_seconds=60) as b2,
        ):
            error, text = await call(a1, "claim")
            assert not error and json.loads(text)["id"] == 1, text
            error, text = await call(b2, "claim")
            assert error and "exit 5" in text, text  # nothing ready: the only task is held
            error, text = await call(b2, "complete", task=1, result="stolen")
            assert error and "b2 holds no lease on task 1" in text and "exit 4" in text, text
            error, text = await call(b2, "check_paths", paths=["src/**"])
            assert json.loads(text)["conflicts"][0]["holder"] == "a1"
            error, text = await call(a1, "complete", task=1, result="done", evidence={"n": 1})
            assert not error and json.loads(text)["status"] == "done", text

    anyio.run(scenario)
    shown = json.loads(run(repo, "task", "show", "1", "--json").stdout)
    assert (shown["status"], shown["lease_holder"], shown["result"]) == ("done", "a1", "done")


def test_the_session_heartbeats_its_leases_and_they_expire_after_it(tmp_path: Path) -> None:
    repo = git_init(tmp_path / "repo")
    assert run(repo, "init").returncode == 0
    assert run(repo, "task", "create", "api", "--path", "src/api/**").returncode == 0

    def beats() -> str:
        return json.loads(run(repo, "task", "show", "1", "--json").stdout)["heartbeat_at"]

    async def scenario() -> None:
        async with Client(server(repo, "a1", "--ttl", "3s"), read_timeout_seconds=60) as a1:
            error, text = await call(a1, "claim")
            assert not error, text
            first = beats()
            with anyio.fail_after(60):
                while beats() == first:  # a beat every second (a third of the TTL)
                    await anyio.sleep(0.2)

    anyio.run(scenario)
    # The session is over: nobody renews the lease, so it runs out and another agent claims.
    claim = run(repo, "task", "claim", "1", "--as", "b2", "--json")
    for _ in range(600):
        if claim.returncode == 0:
            break
        assert claim.returncode == 4, claim.stderr  # still held by a1 until the TTL is over
        time.sleep(0.1)
        claim = run(repo, "task", "claim", "1", "--as", "b2", "--json")
    assert claim.returncode == 0, "the ended session's lease never expired"
    assert json.loads(claim.stdout)["task"]["attempts"] == 2
