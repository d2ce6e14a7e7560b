"""A throw-away PostgreSQL server for the suite: Debian's binaries, a temporary data folder.

``start()`` runs ``initdb`` in a new folder (as the ``postgres`` user when we are root:
initdb refuses root), starts ``postgres`` listening on 127.0.0.1 on a free port with its unix
socket in the same folder, and returns a ``Server`` whose ``url`` the tests use
(``AICTL_TEST_PG``). ``stop()`` shuts it down (fast mode) and removes the folder.

Run as a script it starts a server, prints ``AICTL_TEST_PG=<url>`` and serves until killed:
``python -m tests.pgserver``.
"""

from __future__ import annotations

import itertools
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

ENV = "AICTL_TEST_PG"
PG_ROOT = Path("/usr/lib/postgresql")
READY_TIMEOUT_S = 60.0
_numbers = itertools.count(1)


class NoPostgres(RuntimeError):
    """The PostgreSQL server binaries are not installed (``make test`` installs them)."""


def binaries() -> Path:
    """The newest installed server's bin folder (Debian keeps one per major version)."""
    found = sorted(
        (entry for entry in PG_ROOT.glob("*/bin") if (entry / "initdb").is_file()),
        key=lambda entry: int(entry.parent.name) if entry.parent.name.isdigit() else 0,
    )
    if not found:
        raise NoPostgres(
            f"no PostgreSQL server under {PG_ROOT} (Debian/Ubuntu: apt-get install postgresql)"
        )
    return found[-1]


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _as_owner() -> list[str]:
    """argv prefix running a command as the data folder's owner (``postgres`` when root)."""
    return ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []


@dataclass
class Server:
    folder: Path
    port: int
    process: subprocess.Popen[bytes]

    @property
    def url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def stop(self) -> None:
        if self.process.poll() is None:
            # the group (runuser and postgres): SIGINT is postgres's fast shutdown
            os.killpg(self.process.pid, signal.SIGINT)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        shutil.rmtree(self.folder, ignore_errors=True)


def start() -> Server:
    """A new server, ready for connections. Raises ``NoPostgres`` when none is installed."""
    bin_folder = binaries()
    folder = Path(tempfile.mkdtemp(prefix="aictl-pg-"))
    data = folder / "data"
    if os.geteuid() == 0:
        shutil.chown(folder, "postgres", "postgres")
    folder.chmod(0o700)
    subprocess.run(
        [
            *_as_owner(),
            *(str(bin_folder / "initdb"), "-D", str(data), "-U", "postgres", "-A", "trust"),
            *("--no-sync", "-E", "UTF8", "--locale=C"),
        ],
        check=True,
        capture_output=True,
    )
    port = _free_port()
    process = subprocess.Popen(
        [
            *_as_owner(),
            *(str(bin_folder / "postgres"), "-D", str(data), "-p", str(port)),
            *("-c", "listen_addresses=127.0.0.1", "-c", f"unix_socket_directories={folder}"),
            *("-c", "fsync=off", "-c", "max_connections=200", "-c", "log_min_messages=fatal"),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    server = Server(folder, port, process)
    deadline = time.monotonic() + READY_TIMEOUT_S
    while True:
        ready = subprocess.run(
            [str(bin_folder / "pg_isready"), "-h", "127.0.0.1", "-p", str(port), "-q"],
            check=False,
        )
        if ready.returncode == 0:
            return server
        if process.poll() is not None or time.monotonic() > deadline:
            server.stop()
            raise RuntimeError(f"PostgreSQL did not start on port {port}")
        time.sleep(0.1)


@contextmanager
def serving() -> Iterator[str]:
    """A server's URL for a block: ``AICTL_TEST_PG`` when set, else a server started here and
    stopped at the end. Raises ``NoPostgres`` when neither is possible."""
    given = os.environ.get(ENV)
    if given:
        yield given
        return
    server = start()
    try:
        yield server.url
    finally:
        server.stop()


@contextmanager
def new_database(admin_url: str, prefix: str = "aictl_test") -> Iterator[str]:
    """A new, empty database on the server at ``admin_url`` (a role that may create them),
    dropped (its sessions ended) when the block ends; yields its URL."""
    import psycopg

    name = f"{prefix}_{os.getpid()}_{next(_numbers)}"
    with psycopg.connect(admin_url, autocommit=True) as admin:
        admin.execute(f"CREATE DATABASE {name}")
    try:
        yield urlunsplit(urlsplit(admin_url)._replace(path=f"/{name}"))
    finally:
        with psycopg.connect(admin_url, autocommit=True) as admin:
            admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


def socket_url(url: str) -> str | None:
    """The URL of the same database through the server's Unix socket, when that socket is on
    this machine (a server started here); else None. A process in a network namespace of its
    own reaches the server only that way."""
    import psycopg

    with psycopg.connect(url) as connection:
        folders = connection.execute("SHOW unix_socket_directories").fetchall()[0][0]
        port = int(connection.execute("SHOW port").fetchall()[0][0])
    parts = urlsplit(url)
    for listed in str(folders).split(","):
        folder = listed.strip()
        if folder and Path(folder, f".s.PGSQL.{port}").exists():
            user = parts.username or "postgres"
            return f"postgresql://{user}@{parts.path}?host={folder}&port={port}"
    return None


if __name__ == "__main__":
    running = start()
    print(f"AICTL_TEST_PG={running.url}", flush=True)
    try:
        signal.sigwait({signal.SIGINT, signal.SIGTERM})
    finally:
        running.stop()
    sys.exit(0)
