"""The process runner: the one place in aictl that starts a process.

``run_process`` starts an argv list (never a shell) with an explicit environment and working
directory, in its own session and so its own process group, feeds it stdin and closes it, hands
every stdout line to a callback as it arrives, captures stderr, and enforces two deadlines:

- an *idle* timeout: no output on stdout or stderr for that long (a model stream that stalls
  is not cut short by anything inside Claude Code, so only this catches it);
- a *total* timeout: the whole run, however chatty.

When either fires, or ``cancel`` is set, the group gets SIGINT, then SIGTERM after ``grace``
seconds, then SIGKILL. Whatever happens, the leader is reaped and then every process left in
its group is killed (an agent's Bash tool can leave background jobs behind) and waited for until
the group is gone. A process that moved itself to another session (``setsid``) escapes the
group and is beyond this runner's reach.

If aictl itself dies without a chance to clean up (SIGKILL, the OOM killer), the child gets
SIGKILL from the kernel at once (Linux: ``setpriv --pdeathsig KILL``, from util-linux, starts
it), so an agent never runs on unsupervised, spending tokens with nobody to answer its
questions. Where ``setpriv`` is missing the child is started directly.

Lines are read with ``readline()`` on a binary pipe: no length cap, so a 5 MB stream-json line
arrives whole.

stdin is either a text written whole and then closed (``stdin_text``) or a conversation kept
open (``channel``, an ``InputChannel``): ``on_line`` can answer the child through it, as the
Claude Code connector does for per-call permission requests.
"""

from __future__ import annotations

import contextlib
import errno
import functools
import os
import select
import shutil
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Literal

Timeout = Literal["idle", "total"]

#: How often the supervising loop wakes to check deadlines, in seconds.
POLL_INTERVAL = 0.05
#: How long to wait for orphans of the group to disappear once killed. PID 1 in a container
#: may reap orphans only every couple of seconds; a zombie still counts as a group member.
GROUP_EXIT_WAIT = 10.0
#: How often a running child's descendants are listed (see ``_descendants``); the first time
#: after this long too, so a short command (a git call) never pays for a listing.
DESCENDANT_SCAN = 0.5


@dataclass(frozen=True)
class ProcessOutcome:
    """How a process ended.

    ``exit_code`` is the leader's code when it exited, ``None`` when a signal ended it
    (``signal`` then names it). ``timed_out`` says which deadline fired, if any;
    ``cancelled`` that ``cancel`` was set. ``group_left`` is true when some member of the group
    could not be made to disappear (it should never be).
    """

    argv: tuple[str, ...]
    pid: int
    exit_code: int | None
    signal: int | None
    timed_out: Timeout | None
    cancelled: bool
    stderr: str
    duration: float
    lines: int
    group_left: bool = False

    @property
    def stopped(self) -> bool:
        """True when the runner ended the process (timeout or cancel) rather than the process."""
        return self.timed_out is not None or self.cancelled


class InputChannel:
    """A child's stdin kept open for a conversation. ``send`` writes one line and flushes it;
    ``close`` ends the input. Both may be called from any thread, before the process starts
    (lines wait) and after it ended (they do nothing). ``send`` returns False once the channel
    is closed or the child stopped reading."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._stream: IO[bytes] | None = None
        self._pending: list[bytes] = []
        self._closed = False

    def send(self, line: str) -> bool:
        data = (line.rstrip("\n") + "\n").encode("utf-8")
        with self._lock:
            if self._closed:
                return False
            if self._stream is None:
                self._pending.append(data)
                return True
            return self._write(data)

    def close(self) -> None:
        with self._lock:
            self._closed = True
            if self._stream is not None:
                with contextlib.suppress(OSError):
                    self._stream.close()

    @property
    def closed(self) -> bool:
        with self._lock:
            return self._closed

    def _attach(self, stream: IO[bytes]) -> None:
        with self._lock:
            self._stream = stream
            pending, self._pending = self._pending, []
            for data in pending:
                if not self._write(data):
                    break
            if self._closed:
                with contextlib.suppress(OSError):
                    stream.close()

    def _write(self, data: bytes) -> bool:
        assert self._stream is not None
        try:
            self._stream.write(data)
            self._stream.flush()
        except OSError:  # BrokenPipeError included: the child is gone or closed its stdin
            self._closed = True
            return False
        return True


class _Activity:
    """The time of the last output, shared between the reader threads and the supervisor."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._last = time.monotonic()

    def touch(self) -> None:
        with self._lock:
            self._last = time.monotonic()

    def idle_for(self) -> float:
        with self._lock:
            return time.monotonic() - self._last


def run_process(
    argv: Sequence[str],
    *,
    cwd: Path | str,
    env: Mapping[str, str],
    stdin_text: str | None = None,
    idle_timeout: float | None,
    total_timeout: float | None,
    on_line: Callable[[str], None] | None = None,
    grace: float = 5.0,
    cancel: threading.Event | None = None,
    channel: InputChannel | None = None,
    dies_with_parent: bool = True,
) -> ProcessOutcome:
    """Run ``argv`` to the end and return how it ended; never leaves a process of its group.

    ``env`` is the child's whole environment (nothing is inherited). ``on_line`` gets each
    stdout line without its line ending, decoded as UTF-8 (bad bytes replaced), in order, from
    a reader thread; an exception it raises stops further calls and is re-raised here after
    the process group is gone. ``channel`` keeps stdin open for a conversation (instead of
    ``stdin_text``); it is closed when the process ends. ``dies_with_parent=False`` lets the
    program finish when this process is killed (a short step that must not be cut in half,
    such as a git ref update that would leave its lock file behind). Raises ``OSError`` (for example
    ``FileNotFoundError``) when the program cannot be started.
    """
    if stdin_text is not None and channel is not None:
        raise ValueError("give stdin_text or channel, not both")
    started = time.monotonic()
    process = subprocess.Popen(
        _dies_with_parent(argv, cwd, env) if dies_with_parent else list(argv),
        cwd=cwd,
        env=dict(env),
        stdin=subprocess.PIPE
        if stdin_text is not None or channel is not None
        else subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        start_new_session=True,  # own session, own process group: pgid == pid
        close_fds=True,
    )
    if channel is not None:
        assert process.stdin is not None
        channel._attach(process.stdin)
    readers = _Readers(process, stdin_text, on_line)
    exited = _open_pidfd(process.pid)
    timed_out: Timeout | None = None
    cancelled = False
    # Descendants that leave the group (setsid: Claude Code's sandbox starts its network
    # proxies so) outlive a group kill; each one seen while the child ran is killed after it.
    descendants: dict[int, bytes] = {}
    next_scan = time.monotonic() + DESCENDANT_SCAN
    try:
        while process.poll() is None:
            if time.monotonic() >= next_scan:
                descendants.update(_descendants(process.pid))
                next_scan = time.monotonic() + DESCENDANT_SCAN
            if total_timeout is not None and time.monotonic() - started > total_timeout:
                timed_out = "total"
            elif idle_timeout is not None and readers.activity.idle_for() > idle_timeout:
                timed_out = "idle"
            elif cancel is not None and cancel.is_set():
                cancelled = True
            if timed_out or cancelled:
                _escalate(process, grace)
                break
            _await_exit(process, exited, POLL_INTERVAL)
    except BaseException:  # KeyboardInterrupt in the caller: still leave nothing behind
        _escalate(process, grace)
        raise
    finally:
        process.wait()
        if exited is not None:
            os.close(exited)
        if channel is not None:
            channel.close()
        group_left = not _kill_group(process.pid)
        _kill_strays(descendants)
        readers.finish()
    if readers.callback_error:
        raise readers.callback_error[0]
    code = process.returncode
    return ProcessOutcome(
        argv=tuple(argv),
        pid=process.pid,
        exit_code=code if code >= 0 else None,
        signal=-code if code < 0 else None,
        timed_out=timed_out,
        cancelled=cancelled,
        stderr=b"".join(readers.stderr_chunks).decode("utf-8", errors="replace"),
        duration=time.monotonic() - started,
        lines=readers.lines,
        group_left=group_left,
    )


@functools.cache
def _setpriv() -> str | None:
    return shutil.which("setpriv") if os.uname().sysname == "Linux" else None


def _dies_with_parent(argv: Sequence[str], cwd: Path | str, env: Mapping[str, str]) -> list[str]:
    """``argv`` behind ``setpriv --pdeathsig KILL``, when there is one.

    The program is looked up here first, as ``Popen`` would (the child's ``PATH``, or a path
    relative to ``cwd``), so that a missing or non-executable program still raises
    ``FileNotFoundError`` or ``PermissionError`` rather than a failure of ``setpriv``."""
    setpriv = _setpriv()
    if setpriv is None or not argv:
        return list(argv)
    program = argv[0]
    if "/" in program:
        found = os.path.join(cwd, program)
        if not os.path.exists(found):
            raise FileNotFoundError(errno.ENOENT, "No such file or directory", program)
        if os.path.isdir(found) or not os.access(found, os.X_OK):
            raise PermissionError(errno.EACCES, "Permission denied", program)
    else:
        looked_up = shutil.which(program, path=env.get("PATH", os.defpath))
        if looked_up is None:
            raise FileNotFoundError(errno.ENOENT, "No such file or directory", program)
        found = looked_up
    return [setpriv, "--pdeathsig", "KILL", "--", found, *argv[1:]]


def _open_pidfd(pid: int) -> int | None:
    """A descriptor that becomes readable when ``pid`` exits (Linux 5.3+), or None."""
    try:
        return os.pidfd_open(pid)
    except (AttributeError, OSError):  # another system, or an old kernel
        return None


def _await_exit(process: subprocess.Popen[bytes], pidfd: int | None, timeout: float) -> None:
    """Return when the child exits or ``timeout`` passes. With a pidfd the wake-up is at the
    exit; ``Popen.wait(timeout)`` sleeps in steps of up to 50 ms and so notices an exit up to
    that late, which every run (a short ``git`` call as much as an agent) would pay."""
    if pidfd is not None:
        # poll, not select: select() fails for a descriptor numbered 1024 or more, which a
        # busy daemon (many connections, many runs) reaches
        poller = select.poll()
        poller.register(pidfd, select.POLLIN)
        poller.poll(max(timeout, 0.0) * 1000)
        return
    with contextlib.suppress(subprocess.TimeoutExpired):
        process.wait(timeout)


class _Readers:
    """The threads that feed stdin and drain stdout and stderr (so a chatty child never blocks
    on a full pipe), and the time of the last output they saw."""

    def __init__(
        self,
        process: subprocess.Popen[bytes],
        stdin_text: str | None,
        on_line: Callable[[str], None] | None,
    ) -> None:
        self.process = process
        self.on_line = on_line
        self.activity = _Activity()
        self.stderr_chunks: list[bytes] = []
        self.lines = 0
        self.callback_error: list[BaseException] = []
        assert process.stdout is not None and process.stderr is not None
        self.threads = [
            threading.Thread(target=self._read_stdout, args=(process.stdout,), daemon=True),
            threading.Thread(target=self._read_stderr, args=(process.stderr,), daemon=True),
        ]
        if stdin_text is not None:
            self.threads.append(
                threading.Thread(target=_feed, args=(process.stdin, stdin_text), daemon=True)
            )
        for thread in self.threads:
            thread.start()

    def _read_stdout(self, stream: IO[bytes]) -> None:
        for raw in iter(stream.readline, b""):  # readline(): no length cap
            self.activity.touch()
            self.lines += 1
            if self.on_line is None or self.callback_error:
                continue
            try:
                self.on_line(raw.decode("utf-8", errors="replace").rstrip("\r\n"))
            except BaseException as error:  # re-raised in the caller's thread
                self.callback_error.append(error)

    def _read_stderr(self, stream: IO[bytes]) -> None:
        for chunk in iter(lambda: os.read(stream.fileno(), 65536), b""):
            self.activity.touch()
            self.stderr_chunks.append(chunk)

    def finish(self) -> None:
        """Join the threads (the group is gone, so the pipes reach EOF) and close the pipes."""
        for thread in self.threads:
            thread.join()
        for stream in (self.process.stdin, self.process.stdout, self.process.stderr):
            if stream is not None:
                with contextlib.suppress(OSError):
                    stream.close()


def _feed(stdin: IO[bytes] | None, text: str) -> None:
    """Write stdin from its own thread (a child that does not read must not block us), then
    close it: an open stdin makes Claude Code wait and warn."""
    if stdin is None:
        return
    with contextlib.suppress(BrokenPipeError, OSError):
        stdin.write(text.encode("utf-8"))
    with contextlib.suppress(BrokenPipeError, OSError):
        stdin.close()


def _signal_group(pgid: int, sig: signal.Signals) -> bool:
    """Send ``sig`` to the group; False when no member is left."""
    try:
        os.killpg(pgid, sig)
    except ProcessLookupError:
        return False
    return True


def _escalate(process: subprocess.Popen[bytes], grace: float) -> None:
    """SIGINT, then SIGTERM, then SIGKILL to the group, each after ``grace`` seconds of the
    leader still running."""
    for sig in (signal.SIGINT, signal.SIGTERM):
        if not _signal_group(process.pid, sig):
            return
        try:
            process.wait(grace)
            return
        except subprocess.TimeoutExpired:
            continue
    _signal_group(process.pid, signal.SIGKILL)


def _kill_group(pgid: int) -> bool:
    """SIGKILL what is left of the group once its leader is reaped and wait until it is gone.

    The leader's pid stays reserved as a group id while any member lives, so the id cannot
    name someone else's group here. Returns False if members remain after the wait.
    """
    if not _signal_group(pgid, signal.SIGKILL):
        return True
    deadline = time.monotonic() + GROUP_EXIT_WAIT
    while time.monotonic() < deadline:
        if not _signal_group(pgid, signal.SIGKILL) or not _live_members(pgid):
            return True
        time.sleep(POLL_INTERVAL)
    return False


def _process_table() -> dict[int, tuple[int, int, bytes, bytes]]:
    """Every process: pid -> (ppid, pgid, state, start time), from ``/proc`` (empty
    elsewhere). The start time tells a process from a later one that reuses its pid."""
    table: dict[int, tuple[int, int, bytes, bytes]] = {}
    try:
        entries = os.listdir("/proc")
    except OSError:
        return table
    for entry in entries:
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as stat:
                fields = stat.read().rsplit(b")", 1)[1].split()
            # after the command: state, ppid, pgrp, ... starttime is the 20th of these
            table[int(entry)] = (int(fields[1]), int(fields[2]), fields[0], fields[19])
        except (OSError, IndexError, ValueError):
            continue  # gone meanwhile
    return table


def _descendants(pid: int) -> dict[int, bytes]:
    """The processes below ``pid`` now, with their start times."""
    table = _process_table()
    children: dict[int, list[int]] = {}
    for child, (parent, _, _, _) in table.items():
        children.setdefault(parent, []).append(child)
    found: dict[int, bytes] = {}
    stack = list(children.get(pid, ()))
    while stack:
        child = stack.pop()
        if child not in found:
            found[child] = table[child][3]
            stack.extend(children.get(child, ()))
    return found


def _kill_strays(seen: dict[int, bytes]) -> None:
    """SIGKILL each process in ``seen`` that still runs as the same process (its start time
    unchanged): descendants of a finished child that left its group."""
    if not seen:
        return
    table = _process_table()
    for pid, started in seen.items():
        now = table.get(pid)
        if now is not None and now[3] == started and now[2] != b"Z":
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)


def _live_members(pgid: int) -> bool:
    """Whether a process of group ``pgid`` still runs. A killed orphan (the socat of Claude
    Code's sandbox, say) stays a zombie until PID 1 reaps it, which in a container can take
    over a second, and signals still "reach" a zombie; a zombie runs nothing, so it does not
    count. Without ``/proc`` every member counts."""
    if not os.path.isdir("/proc"):
        return True
    return any(group == pgid and state != b"Z" for _, group, state, _ in _process_table().values())
