"""Test doubles for the daemon: an in-process connector that records what runs at once, and a
daemon running in a thread of the test.

The fake connector is registered under the name ``fake`` (``connectors.register``); the daemon
finds it exactly as it finds ``claude-code``. A run writes ``out/<task>.txt`` (the task id is
read from the prompt, ``Task N: ...``) and then either returns at once or, for tasks whose
title contains ``[hold]``, waits until it is cancelled or the test releases it.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import connectors
from aictl.clock import SystemClock
from aictl.daemon.scheduler import Daemon, DaemonConfig
from aictl.domain.ais import AI
from aictl.store.ais import AIStore
from aictl.store.db import connect
from aictl.workspace import Workspace
from connectors import Detection, RunRequest, RunResult

WAIT = 60.0
"""Generous upper bound for a condition to become true (never a timing assertion)."""


@dataclass
class Recorder:
    """What the fake connector saw, across every instance (the daemon makes one per run)."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    active: set[int] = field(default_factory=set)
    peak: int = 0
    overlaps: list[tuple[int, ...]] = field(default_factory=list)
    runs: list[int] = field(default_factory=list)
    release: threading.Event = field(default_factory=threading.Event)
    started: threading.Event = field(default_factory=threading.Event)
    fail_titles: str = "[fail]"


RECORDER = Recorder()


class FakeConnector:
    name = "fake"
    capabilities = frozenset({"edit", "shell"})

    def __init__(self) -> None:
        self._cancel = threading.Event()

    def detect(self) -> Detection:
        return Detection("fake", version="1.0")

    def run(self, request: RunRequest) -> RunResult:
        match = re.match(r"Task (\d+): (.*)", request.prompt)
        assert match, request.prompt
        task_id, title = int(match.group(1)), match.group(2)
        with RECORDER.lock:
            RECORDER.active.add(task_id)
            RECORDER.peak = max(RECORDER.peak, len(RECORDER.active))
            RECORDER.overlaps.append(tuple(sorted(RECORDER.active)))
            RECORDER.runs.append(task_id)
        RECORDER.started.set()
        try:
            out = request.cwd / "out"
            out.mkdir(exist_ok=True)
            (out / f"{task_id}.txt").write_text(f"task {task_id}\n")
            if "[hold]" in title:
                while not (self._cancel.is_set() or RECORDER.release.is_set()):
                    time.sleep(0.02)
                if self._cancel.is_set():
                    return RunResult(status="failed", reason="cancelled", detail="cancelled")
            else:
                time.sleep(0.05)  # long enough for concurrent runs to meet
            if RECORDER.fail_titles in title:
                return RunResult(
                    status="failed", reason="api_error", retryable=True, detail="scripted failure"
                )
            return RunResult(
                status="success",
                num_turns=1,
                total_cost_usd=0.01,
                usage={"input_tokens": 100, "output_tokens": 20},
            )
        finally:
            with RECORDER.lock:
                RECORDER.active.discard(task_id)

    def cancel(self) -> None:
        self._cancel.set()


def reset_recorder() -> Recorder:
    """A clean recorder (the same object: the connector module reads it by name)."""
    RECORDER.__dict__.update(Recorder().__dict__)
    connectors.register("fake", FakeConnector)
    return RECORDER


def register_ai(workspace: Workspace, ai_id: str = "fake-1", *, max_concurrency: int = 1) -> None:
    db = connect(workspace.database)
    try:
        now = SystemClock().now()
        AIStore(db, SystemClock()).register(
            AI(
                id=ai_id,
                connector="fake",
                capabilities=["edit", "shell"],
                max_concurrency=max_concurrency,
                created_at=now,
                updated_at=now,
            )
        )
    finally:
        db.close()


def wait_for(condition: Callable[[], Any], what: str, timeout: float = WAIT) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


@contextmanager
def running_daemon(workspace: Workspace, **config: Any) -> Iterator[Daemon]:
    """A daemon serving ``workspace`` in a thread; stopped (gracefully) when the block ends."""
    config.setdefault("tick", 0.05)
    daemon = Daemon(workspace, DaemonConfig(**config))
    served = threading.Event()
    outcome: list[Any] = []

    def serve() -> None:
        try:
            outcome.append(daemon.run(ready=lambda _: served.set()))
        except BaseException as error:  # surfaced in the test below
            outcome.append(error)
            served.set()

    thread = threading.Thread(target=serve, name="daemon-under-test")
    thread.start()
    served.wait(WAIT)
    if outcome and isinstance(outcome[0], BaseException):
        thread.join()
        raise outcome[0]
    try:
        yield daemon
    finally:
        if not daemon.stop_requested:
            daemon.request_stop()
        thread.join(WAIT)
        assert not thread.is_alive(), "the daemon did not stop"
    assert outcome == [0], outcome
