"""`aictl mcp`: the MCP server agents started by people use to claim and finish work."""

from __future__ import annotations

from typing import Annotated

import typer

from aictl.cli.common import Typer, state
from aictl.workspace import locate

app = Typer(help="Serve aictl to agents over MCP (Model Context Protocol).")


@app.command()
def serve(
    ctx: typer.Context,
    ttl: Annotated[
        str | None,
        typer.Option(
            help="Lease length (renewed while the session lives); default: policy, 2m.",
            metavar="DURATION",
        ),
    ] = None,
) -> None:
    """Serve MCP on stdin/stdout for one agent session (AICTL_AGENT names the agent). Eight
    tools: ready, claim, complete, fail, release, create, check_paths, show. Leases granted
    here are renewed while the session lives and expire after it ends.

    Example: aictl mcp serve   (registered in .mcp.json by `aictl setup claude`)
    """
    from aictl.services.mcp_server import serve as run_server
    from aictl.services.peers import PeerSession, current_agent

    session = PeerSession(locate(state(ctx).db), current_agent(), ttl=ttl)
    run_server(session)
