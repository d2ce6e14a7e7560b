"""One "host" of the three-host test: the real daemon runtime serving one clone, in its own OS
process, with the fake connector of tests/daemon_fakes.py.

Run as ``python -m tests.reliability.daemon_host ROOT LOG [--commits] [--own-network]`` (with
the repository on ``PYTHONPATH``): it locates the workspace of the clone ``ROOT`` (its
``.ai/config`` names the shared PostgreSQL database), registers the fake connector, runs
``Daemon.run`` with signal handling (SIGTERM stops it gracefully), and appends one JSON line
per agent run to ``LOG`` (``started`` before the run, ``ended`` after it, written at once) so
that the test knows what a process had in hand when it was stopped or killed.

With ``--own-network`` the process runs in a network namespace of its own (started under
``unshare --net``): it brings that namespace's loopback up, and its ``ready`` record names the
namespace, so that the test can check that no two hosts share one.

With ``--commits`` a run writes, instead of the untracked ``out/<task>.txt``, the tracked
file its title names after ``->`` (inside the task's globs), holding the sorted list of the
``src/`` files its worktree started with: what the run saw of the work merged before it.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import connectors
from aictl.daemon.scheduler import Daemon, DaemonConfig
from aictl.workspace import locate
from connectors import RunRequest, RunResult
from tests.daemon_fakes import FakeConnector
from tests.reliability.workers import Log

CONCURRENCY = 2
TICK = 0.05
# With --commits a run's own time must dominate its task's cycle (worktree, commit, push and
# merge take longer than the fake's run), or a SIGSTOP rarely lands while a run is in hand and
# the test's catch retries until the queue drains.
COMMITS_RUN_S = 0.4


def loopback_up() -> None:
    """``ip link set lo up`` without iproute2: a new network namespace starts with it down."""
    import fcntl
    import socket
    import struct

    get_flags, set_flags, up = 0x8913, 0x8914, 0x1  # SIOCGIFFLAGS, SIOCSIFFLAGS, IFF_UP
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        request = struct.pack("16sh", b"lo", 0)
        flags = struct.unpack("16sh", fcntl.ioctl(probe, get_flags, request))[1]
        fcntl.ioctl(probe, set_flags, struct.pack("16sh", b"lo", flags | up))


def seen_files(cwd: Path) -> list[str]:
    return sorted(str(path.relative_to(cwd)) for path in (cwd / "src").rglob("*.txt"))


def main(root: Path, log_path: Path, commits: bool = False, own_network: bool = False) -> int:
    log = Log(log_path)
    if own_network:
        loopback_up()

    class LoggedFake(FakeConnector):
        def run(self, request: RunRequest) -> RunResult:
            head = request.prompt.splitlines()[0]
            task = int(head.split(":", 1)[0].removeprefix("Task "))
            log.write(event="started", task=task, pid=os.getpid())
            if commits:
                target = request.cwd / head.split("->", 1)[1].strip()
                seen = seen_files(request.cwd)
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_text("".join(f"{name}\n" for name in seen))
                time.sleep(COMMITS_RUN_S)
            result = super().run(request)
            log.write(event="ended", task=task, status=result.status)
            return result

    connectors.register("fake", LoggedFake)
    network = os.readlink("/proc/self/ns/net")
    daemon = Daemon(locate(cwd=root), DaemonConfig(concurrency=CONCURRENCY, tick=TICK))
    return daemon.run(
        ready=lambda _: log.write(event="ready", pid=os.getpid(), network=network), signals=True
    )


if __name__ == "__main__":
    flags = sys.argv[3:]
    sys.exit(
        main(Path(sys.argv[1]), Path(sys.argv[2]), "--commits" in flags, "--own-network" in flags)
    )
