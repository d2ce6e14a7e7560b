"""`aictl dashboard`: serve the live dashboard on 127.0.0.1 and open it in the browser."""

from __future__ import annotations

import sys
import threading
from typing import TYPE_CHECKING, Annotated

import typer

from aictl.cli import output
from aictl.cli.common import state

if TYPE_CHECKING:
    from aictl.dashboard.app import DashboardApp


def dashboard(
    ctx: typer.Context,
    port: Annotated[
        int, typer.Option("--port", min=0, max=65535, help="Port on 127.0.0.1 (0: any free one).")
    ] = 0,
    no_browser: Annotated[
        bool, typer.Option("--no-browser", help="Print the URL only; do not open a browser.")
    ] = False,
) -> None:
    """Serve the live dashboard (tasks and their graph, running agents, locks, approvals,
    decisions and the audit log, money) from the state database until Ctrl-C; no daemon
    needed. The URL printed carries a secret token: with it the page can approve and reject
    (recorded as you, as `aictl task approve` would); without it the page is read-only.
    When a daemon serves this database, its dashboard is already there: the command prints
    (and opens) the daemon's URL and exits; the token is the one `aictl daemon start` printed.

    Example: aictl dashboard --port 8765 --no-browser
    """
    from aictl.daemon.status import daemon_dashboard
    from aictl.dashboard.auth import new_token
    from aictl.dashboard.server import open_browser, serve
    from aictl.workspace import locate

    workspace = locate(state(ctx).db)
    running = daemon_dashboard(workspace)
    if running is not None:
        pid, url = running
        output.line(f"dashboard: {url}  (served by the running daemon {pid})")
        output.note(
            "read-only without the token: open the URL `aictl daemon start` printed to approve"
        )
        if not no_browser and not open_browser(url):
            output.note("no browser found: open the URL above")
        return
    stop = threading.Event()

    def ready(app: DashboardApp) -> None:
        url = app.url()
        output.line(f"dashboard: {url}  (Ctrl-C stops it)")
        sys.stdout.flush()
        if not no_browser and not open_browser(url):
            output.note("no browser found: open the URL above")

    try:
        serve(workspace, port=port, token=new_token(), ready=ready, stop=stop)
    except KeyboardInterrupt:
        stop.set()
        output.line("dashboard stopped")
