"""The dashboard in a real headless Chromium (Debian's ``chromium``, driven by Playwright):
a running daemon's tasks on the page, updated live when a task finishes (no reload); an
approval clicked in the page releases the gated task and is recorded as the person; without
the token no button shows and a cross-site form post is refused; the cost chart equals the
evidence's sums. Each test writes screenshots to ``build/screenshots/dashboard/``.

Under CI a missing Chromium fails these tests (``make test`` installs it: ``make browser``).
"""

from __future__ import annotations

import os
import re
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import Any

import pytest

from aictl.services.executor import read_evidence
from aictl.services.tasks import TaskService
from aictl.workspace import Workspace
from tests.daemon_fakes import Recorder, register_ai, reset_recorder, running_daemon, wait_for
from tests.unit.test_dashboard_http import GATE

pytestmark = pytest.mark.e2e

CHROMIUM = Path("/usr/bin/chromium")
#: The flags that work as root on this kind of machine, without reaching the network.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
SCREENSHOTS = Path(__file__).resolve().parents[2] / "build" / "screenshots" / "dashboard"
TOKEN = "browser-test-token-0123456789abcdef"
WAIT_MS = 30_000


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    if not os.access(CHROMIUM, os.X_OK):
        message = f"Chromium is missing ({CHROMIUM}): `make browser` installs it"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            yield launched
        finally:
            launched.close()


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    opened = context.new_page()
    opened.set_default_timeout(WAIT_MS)
    try:
        yield opened
    finally:
        context.close()


@pytest.fixture
def recorder() -> Recorder:
    return reset_recorder()


def shot(page: Any, name: str) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=True)


def statuses(workspace: Workspace) -> dict[int, str]:
    service = TaskService(workspace)
    try:
        return {task.id: str(task.status) for task in service.list_tasks()}
    finally:
        service.close()


def create(workspace: Workspace, title: str, **fields: Any) -> int:
    service = TaskService(workspace)
    try:
        return service.create(title, **fields).id
    finally:
        service.close()


def status_cell(page: Any, task_id: int) -> str:
    return str(page.locator(f'table.tasks tr:has(a[href="/task/{task_id}"]) .status').inner_text())


def test_the_page_shows_the_daemons_tasks_and_updates_live(
    workspace: Workspace, recorder: Recorder, page: Any
) -> None:
    register_ai(workspace)
    first = create(workspace, "Schema [hold]", paths=["db/**"])
    second = create(workspace, "API", paths=["src/api/**"], depends_on=[first])
    with running_daemon(workspace, dashboard_token=TOKEN) as daemon:
        wait_for(lambda: statuses(workspace)[first] == "running", "the first task running")
        base = f"http://127.0.0.1:{daemon.port}"
        page.goto(f"{base}/?token={TOKEN}")
        assert status_cell(page, first) == "running"
        assert status_cell(page, second) == "queued"
        assert (
            "waiting for 1 dependency" in page.locator(f'g.node[data-task="{second}"]').inner_html()
        )
        page.wait_for_selector("#live-state.on")
        page.evaluate("window.notReloaded = true")
        shot(page, "tasks-running")
        for name in ("agents", "locks", "decisions"):
            page.goto(f"{base}/{name}")
            shot(page, name)
        page.goto(f"{base}/locks?path=db/0001.sql")
        assert "db/0001.sql: held by" in page.locator("p.answer").inner_text()
        shot(page, "locks-query")
        page.goto(f"{base}/")
        page.wait_for_selector("#live-state.on")
        page.evaluate("window.notReloaded = true")
        recorder.release.set()  # the held run finishes; the daemon then runs the second
        page.wait_for_function(
            f"""() => [...document.querySelectorAll('table.tasks tr')]
                .filter(r => r.querySelector('a[href="/task/{second}"]'))
                .some(r => r.querySelector('.status').textContent === 'done')"""
        )
        assert status_cell(page, first) == "done"
        assert page.evaluate("window.notReloaded") is True  # updated in place, not reloaded
        shot(page, "tasks-done")
        page.goto(f"{base}/task/{first}")
        assert "Diff" in page.content()
        shot(page, "task-evidence")


def test_an_approval_in_the_page_releases_the_gated_task_as_the_person(
    workspace: Workspace,
    recorder: Recorder,
    page: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("AICTL_ACTOR", "user:alice")
    (workspace.state_dir / "policy.yaml").write_text(GATE)
    register_ai(workspace)
    gated = create(workspace, "Migrate", paths=["db/m.sql"])
    with running_daemon(workspace, dashboard_token=TOKEN) as daemon:
        wait_for(lambda: statuses(workspace)[gated] == "blocked", "the gated task parked")
        page.goto(f"http://127.0.0.1:{daemon.port}/approvals?token={TOKEN}")
        section = page.locator(f'section.approval[data-task="{gated}"]')
        assert "gate: migrations need a person" in section.inner_text()
        shot(page, "approvals")
        section.locator("button.approve").click()
        page.wait_for_url(re.compile(r".*/approvals$"))
        wait_for(lambda: statuses(workspace)[gated] == "done", "the approved task done")
        assert recorder.runs == [gated]
    service = TaskService(workspace)
    try:
        task = service.get(gated)
        approvals = [
            (r.subject, r.effect)
            for r in service.store.decisions.records(task_id=gated)
            if r.action == "approve"
        ]
    finally:
        service.close()
    assert task.approval_by == "user:alice"
    assert approvals == [("user:alice", "allow")]


class _Attacker(BaseHTTPRequestHandler):
    """Another site on another port: its page posts a form to the dashboard at once."""

    target = ""

    def do_GET(self) -> None:
        body = (
            f'<form id=f method=post action="{self.target}/approve">'
            '<input name=task value="1"><input name=token value="guessed"></form>'
            "<script>document.getElementById('f').submit()</script>"
        ).encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/html")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


def test_without_the_token_no_button_and_a_forged_post_is_refused(
    workspace: Workspace, recorder: Recorder, page: Any
) -> None:
    (workspace.state_dir / "policy.yaml").write_text(GATE)
    register_ai(workspace)
    gated = create(workspace, "Migrate", paths=["db/m.sql"])
    assert gated == 1
    with running_daemon(workspace, dashboard_token=TOKEN) as daemon:
        wait_for(lambda: statuses(workspace)[gated] == "blocked", "the gated task parked")
        base = f"http://127.0.0.1:{daemon.port}"
        page.goto(f"{base}/approvals")
        assert page.locator(f'section.approval[data-task="{gated}"]').count() == 1
        assert page.locator("button").count() == 0
        assert "read-only" in page.locator("header").inner_text()
        shot(page, "approvals-read-only")
        _Attacker.target = base
        attacker = HTTPServer(("127.0.0.1", 0), _Attacker)
        thread = threading.Thread(target=attacker.serve_forever, daemon=True)
        thread.start()
        try:
            with page.expect_response(f"{base}/approve") as answer:
                page.goto(f"http://127.0.0.1:{attacker.server_address[1]}/")
            assert answer.value.status == 403
            shot(page, "forged-post-refused")
        finally:
            attacker.shutdown()
            attacker.server_close()
        assert statuses(workspace)[gated] == "blocked"
        assert recorder.runs == []


def test_the_cost_chart_matches_the_evidence(
    workspace: Workspace, recorder: Recorder, page: Any
) -> None:
    register_ai(workspace, "fake-1")
    ids = [create(workspace, f"Job {n}", paths=[f"src/{n}/**"]) for n in range(3)]
    with running_daemon(workspace, dashboard_token=TOKEN) as daemon:
        wait_for(lambda: set(statuses(workspace).values()) == {"done"}, "every task done")
        wait_for(lambda: not daemon.running, "the runs reaped")
        page.goto(f"http://127.0.0.1:{daemon.port}/money")
        bars = {
            bar.get_attribute("data-label"): float(bar.get_attribute("data-value") or "nan")
            for bar in page.locator('svg[data-chart="ai"] g.bar').all()
        }
        per_task = {
            bar.get_attribute("data-label"): float(bar.get_attribute("data-value") or "nan")
            for bar in page.locator('svg[data-chart="task"] g.bar').all()
        }
        shot(page, "money")
    evidence = {task_id: read_evidence(workspace, task_id)[1] for task_id in ids}
    costs = {task_id: float(e["agent"]["total_cost_usd"]) for task_id, e in evidence.items()}
    assert bars == {"fake-1": pytest.approx(sum(costs.values()))}
    assert sorted(per_task.values()) == pytest.approx(sorted(costs.values()))
    assert all(cost > 0 for cost in costs.values())
