"""``aictl dashboard``'s own server: the dashboard without a daemon, read from the database.

It is the daemon's bounded loopback server (``aictl.daemon.http.StatusServer``) with only the
dashboard behind it, so both serve the same pages under the same bounds.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from aictl.daemon.http import StatusServer
from aictl.dashboard.app import DashboardApp
from aictl.workspace import Workspace


def serve(
    workspace: Workspace,
    *,
    port: int,
    token: str,
    ready: Callable[[DashboardApp], None],
    stop: threading.Event,
) -> None:
    """Serve the dashboard of ``workspace`` on 127.0.0.1:``port`` (0: any free port) until
    ``stop`` is set; ``ready`` gets the app once it listens (its ``url()`` carries the
    token)."""
    app = DashboardApp(workspace, token)

    def health() -> dict[str, Any]:
        return {"status": "ok", "dashboard": True, "root": str(workspace.root)}

    server = StatusServer(port, health, lambda: b"", dashboard=app)
    server.start()
    try:
        ready(app)
        while not stop.wait(0.5):
            pass
    finally:
        server.stop()


def open_browser(url: str) -> bool:
    """Ask the desktop's browser to open ``url`` (the standard library's ``webbrowser``,
    which starts the user's browser detached: not an agent process, so not through
    ``connectors.process``). False when no browser could be found."""
    import webbrowser

    try:
        return webbrowser.open(url, new=2)
    except webbrowser.Error:
        return False
