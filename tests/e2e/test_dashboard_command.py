"""The installed ``aictl dashboard``: it serves without a daemon, prints a URL with its token,
stays read-only without the token, stops cleanly on Ctrl-C, and with a daemon running points
at the daemon's dashboard instead of serving a second one."""

from __future__ import annotations

import json
import re
import signal
import socket
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

import pytest

from tests.e2e.test_execute import Repo, kill, make_repo
from tests.unit.test_dashboard_http import GATE

pytestmark = pytest.mark.e2e

PAGES = ("/", "/agents", "/locks", "/approvals", "/decisions", "/money", "/task/1")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


def get(url: str) -> tuple[int, str]:
    with urllib.request.urlopen(url, timeout=30) as response:
        return response.status, response.read().decode()


def post(url: str, form: dict[str, str]) -> tuple[int, str]:
    data = urllib.parse.urlencode(form).encode()
    try:
        with urllib.request.urlopen(urllib.request.Request(url, data=data), timeout=30) as answer:
            return answer.status, answer.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()


def gated(tmp_path: Path) -> Repo:
    """A repository whose task 1 waits for a person's approval."""
    repo = make_repo(
        tmp_path, "http://127.0.0.1:9", GATE.removeprefix("version: 1\n"), register=False
    )
    assert repo.aictl("task", "create", "Migrate", "--path", "db/m.sql").returncode == 0
    assert repo.aictl("task", "claim", "1", "--as", "w1").returncode == 3
    assert repo.task(1)["approval"] == "pending"
    return repo


def test_it_serves_without_a_daemon_read_only_without_the_token_and_stops_on_ctrl_c(
    tmp_path: Path,
) -> None:
    repo = gated(tmp_path)
    port = free_port()
    served = repo.start("dashboard", "--no-browser", "--port", str(port))
    try:
        assert served.stdout is not None
        first = served.stdout.readline()
        found = re.search(r"dashboard: (http://127\.0\.0\.1:(\d+)/\?token=([\w-]{20,}))", first)
        assert found and int(found.group(2)) == port, first
        url, token = found.group(1), found.group(3)
        base = f"http://127.0.0.1:{port}"
        assert "no daemon is running" in repo.aictl("daemon", "status").stdout
        for page in PAGES:
            status, body = get(base + page)
            assert status == 200 and "<html" in body, page
        _, readable = get(base + "/approvals")
        assert "Migrate" in readable and "read-only" in readable and "<button" not in readable
        _, writable = get(url.replace("/?", "/approvals?"))
        assert "<button" in writable and 'class="approve"' in writable
        for form in ({"task": "1"}, {"task": "1", "token": token[::-1]}):
            status, text = post(base + "/approve", form)
            assert status == 403 and "read-only without its token" in text
        assert repo.task(1)["approval"] == "pending"
        served.send_signal(signal.SIGINT)
        out, err = served.communicate(timeout=30)
    finally:
        kill(served)
    assert served.returncode == 0, err
    assert "dashboard stopped" in out and "Traceback" not in err
    with pytest.raises(OSError):
        get(base + "/")


def test_with_a_daemon_running_it_prints_the_daemons_url(tmp_path: Path) -> None:
    repo = gated(tmp_path)
    port = free_port()
    started = repo.aictl("daemon", "start", "--port", str(port), "--grace", "1s", "--json")
    assert started.returncode == 0, started.stderr
    try:
        daemon = json.loads(started.stdout)
        shown = repo.aictl("dashboard", "--no-browser")
        assert shown.returncode == 0, shown.stderr
        assert (
            f"dashboard: http://127.0.0.1:{port}/  (served by the running daemon " in shown.stdout
        )
        assert str(daemon["pid"]) in shown.stdout and "token=" not in shown.stdout
        assert "aictl daemon start" in shown.stderr  # where the token-bearing URL was printed
        status, body = get(f"http://127.0.0.1:{port}/approvals")
        assert status == 200 and "Migrate" in body
    finally:
        stopped = repo.aictl("daemon", "stop")
    assert stopped.returncode == 0, stopped.stderr
