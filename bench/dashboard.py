"""14. The dashboard at 10,000 tasks: first paint, live-update latency, and the daemon's tick
rate with the dashboard open beside closed.

What is measured, in Debian's headless Chromium driven by Playwright (``make browser``):

- **first paint**: ``first-contentful-paint`` of the tasks page (``performance`` paint
  entries) on a database of 10,000 tasks, each load in a fresh page; baseline: the same page
  on 1,000 tasks, loads interleaved. Goal (issue 16): under 1 s.
- **server render**: the wall time of ``GET /`` from a plain HTTP client (no browser), same
  interleaving.
- **live update**: the time from the commit of a new task (in this process) until the open
  page shows it (polled by Playwright), on 10,000 tasks. Goal: within 1 s.
- **daemon tick rate**: a daemon with no AI, ticking as fast as it can (``tick=0.001``), on
  10,000 tasks while a writer commits a change every 0.2 s; ticks per second with three live
  pages open (streaming, refreshing on every change) against the same with none open.
"""

from __future__ import annotations

import os
import subprocess
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any

from bench.common import (
    Goal,
    Measurement,
    Row,
    Settings,
    median,
    percentile,
    scratch_dir,
    summary_ms,
)
from bench.fixtures import HistoryShape, build_history

CHROMIUM = "/usr/bin/chromium"
ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
PAINT_GOAL = Goal("first paint < 1000 ms", "value", "<", 1000.0)
UPDATE_GOAL = Goal("update visible < 1000 ms", "value", "<", 1000.0)


def _workspace(folder: Path, size: int) -> Any:
    from aictl.workspace import initialise

    root = folder / f"repo-{size}"
    root.mkdir()
    subprocess.run(["git", "init", "-q", str(root)], check=True)
    workspace, _ = initialise(root)
    build_history(workspace.db_path, HistoryShape(size=size))
    return workspace


def _first_paint(page: Any, url: str) -> float:
    page.goto(url, wait_until="load")
    page.wait_for_function(
        "() => performance.getEntriesByName('first-contentful-paint').length > 0", timeout=10_000
    )
    value = page.evaluate(
        "() => (performance.getEntriesByName('first-contentful-paint')[0] || {}).startTime"
    )
    return float(value) if value is not None else float("nan")


def _server_ms(url: str) -> float:
    started = time.perf_counter()
    with urllib.request.urlopen(url, timeout=30) as response:
        response.read()
    return (time.perf_counter() - started) * 1000


def _tick_rate(workspace: Any, browser: Any, pages: int, seconds: float) -> float:
    from aictl.daemon.scheduler import Daemon, DaemonConfig
    from aictl.services.tasks import TaskService

    daemon = Daemon(workspace, DaemonConfig(tick=0.001, dashboard_token="bench"))
    served = threading.Event()
    thread = threading.Thread(target=lambda: daemon.run(ready=lambda _: served.set()))
    thread.start()
    served.wait(60)
    opened = []
    try:
        for _ in range(pages):
            page = browser.new_page()
            page.goto(f"http://127.0.0.1:{daemon.port}/")
            page.wait_for_selector("#live-state.on")
            opened.append(page)
        service = TaskService(workspace)
        try:
            start_ticks, started = daemon.ticks, time.monotonic()
            while time.monotonic() - started < seconds:
                service.create("tick bench change")
                for page in opened:  # let the pages' fetches run
                    page.wait_for_timeout(1)
                time.sleep(0.2)
            rate = (daemon.ticks - start_ticks) / (time.monotonic() - started)
        finally:
            service.close()
    finally:
        for page in opened:
            page.close()
        daemon.request_stop()
        thread.join(60)
    return rate


def run(settings: Settings) -> Measurement:
    measurement = Measurement("dashboard", "Dashboard: first paint, live update, daemon ticks")
    if not os.access(CHROMIUM, os.X_OK):
        measurement.error = f"{CHROMIUM} is missing: `make browser` installs it"
        return measurement
    from playwright.sync_api import sync_playwright

    from aictl.daemon.http import StatusServer
    from aictl.dashboard.app import DashboardApp
    from aictl.services.tasks import TaskService

    loads = 5 if settings.quick else 15
    updates = 5 if settings.quick else 20
    tick_seconds = 3.0 if settings.quick else 10.0
    measurement.parameters = {
        "sizes": [1_000, 10_000],
        "loads": loads,
        "updates": updates,
        "tick_seconds": tick_seconds,
    }
    with scratch_dir("dashboard") as folder, sync_playwright() as playwright:
        spaces = {size: _workspace(folder, size) for size in (1_000, 10_000)}
        servers = {}
        for size, space in spaces.items():
            app = DashboardApp(space, "bench")
            servers[size] = StatusServer(0, lambda: {"status": "ok"}, lambda: b"", dashboard=app)
            servers[size].start()
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        try:
            paint: dict[int, list[float]] = {1_000: [], 10_000: []}
            render: dict[int, list[float]] = {1_000: [], 10_000: []}
            for _ in range(loads):
                for size, server in servers.items():
                    url = f"http://127.0.0.1:{server.port}/"
                    render[size].append(_server_ms(url))
                    page = browser.new_page()
                    paint[size].append(_first_paint(page, url))
                    page.close()
            latencies = []
            page = browser.new_page()
            page.goto(f"http://127.0.0.1:{servers[10_000].port}/")
            page.wait_for_selector("#live-state.on")
            service = TaskService(spaces[10_000])
            try:
                for number in range(updates):
                    marker = f"bench-marker-{number}"
                    started = time.perf_counter()
                    service.create(marker)
                    page.wait_for_function(
                        f"() => document.getElementById('live').textContent.includes('{marker}')",
                        polling=10,
                    )
                    latencies.append(time.perf_counter() - started)
                    time.sleep(0.3)
            finally:
                service.close()
                page.close()
            for server in servers.values():
                server.stop()
            closed = _tick_rate(spaces[10_000], browser, 0, tick_seconds)
            open_ = _tick_rate(spaces[10_000], browser, 3, tick_seconds)
        finally:
            browser.close()
    measurement.rows = [
        Row(
            "first paint, tasks page, 10k tasks (median)",
            median(paint[10_000]),
            "ms",
            "1k tasks",
            median(paint[1_000]),
            goal=PAINT_GOAL,
            detail={"10k": summary_ms([v / 1000 for v in paint[10_000]])},
        ),
        Row(
            "first paint, tasks page, 10k tasks (p95)",
            percentile(paint[10_000], 0.95),
            "ms",
            "1k tasks (p95)",
            percentile(paint[1_000], 0.95),
            goal=PAINT_GOAL,
        ),
        Row(
            "server render of GET /, 10k tasks (median)",
            median(render[10_000]),
            "ms",
            "1k tasks",
            median(render[1_000]),
        ),
        Row(
            "live update visible after a commit, 10k tasks (median)",
            median(latencies) * 1000,
            "ms",
            goal=UPDATE_GOAL,
            detail=summary_ms(latencies),
        ),
        Row(
            "live update visible, 10k tasks (p95)",
            summary_ms(latencies)["p95_ms"],
            "ms",
            goal=UPDATE_GOAL,
        ),
        Row(
            "daemon ticks/s with 3 live pages open",
            open_,
            "ticks/s",
            "no page open",
            closed,
        ),
    ]
    measurement.notes = [
        "the page lists the newest 500 matching tasks and draws the newest 150 in the graph;",
        "counts come from the status index: the page's cost is bounded, not linear in tasks",
    ]
    return measurement
