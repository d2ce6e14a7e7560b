"""What every command shares: the state it was started with and the common options."""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Annotated

import typer

from aictl.domain.tasks import MAX_INTEGER, LeaseToken
from aictl.errors import InvalidInput
from aictl.services.tasks import TaskService
from aictl.workspace import locate

JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON with stable keys.")]
QuietOption = Annotated[bool, typer.Option("--quiet", "-q", help="Print ids only.")]
LeaseOption = Annotated[
    str, typer.Option("--lease", help="The lease token printed by `aictl task claim`.")
]


@dataclass
class State:
    db: str | None = None


def state(ctx: typer.Context) -> State:
    root = ctx.find_root()
    if not isinstance(root.obj, State):
        root.obj = State()
    return root.obj


@contextmanager
def task_service(ctx: typer.Context) -> Iterator[TaskService]:
    service = TaskService(locate(state(ctx).db))
    try:
        yield service
    finally:
        service.close()


def parse_task_id(text: str) -> int:
    """Typer parser for task ids: names the bad value instead of 'not a valid integer'."""
    if isinstance(text, int):
        return text
    if not text.strip().isdigit() or not 1 <= int(text) <= MAX_INTEGER:
        raise typer.BadParameter(
            f"{text!r} is not a task id (a positive integer up to {MAX_INTEGER}, such as 12)"
        )
    return int(text)


def parse_count(text: str) -> int:
    """Typer parser for other ids and counts (a workflow run, an attempt): 0 up to SQLite's
    largest integer, so that a huge number is named instead of overflowing in a query."""
    if isinstance(text, int):
        return text
    if not text.strip().isdigit() or int(text) > MAX_INTEGER:
        raise typer.BadParameter(f"{text!r} is not a whole number from 0 to {MAX_INTEGER}")
    return int(text)


def lease_for(task_id: int, lease: str) -> LeaseToken:
    """Parse a token and check it belongs to the task named on the command line."""
    token = LeaseToken.parse(lease)
    if token.task_id != task_id:
        raise InvalidInput(
            f"lease token {lease!r} belongs to task {token.task_id}, not task {task_id}"
        )
    return token


@contextmanager
def interrupt_cancels(cancel: threading.Event) -> Iterator[threading.Event]:
    """Within the block, the first Ctrl-C (SIGINT) only sets ``cancel``, so the work in
    progress can stop cleanly (an execution releases its task and keeps its evidence); a
    second one raises ``KeyboardInterrupt`` at once (exit 130, the lease left to expire). The
    first only sets a flag, as a signal handler should; the previous handler is restored
    after."""

    def on_interrupt(number: int, frame: object) -> None:
        if cancel.is_set():
            signal.signal(signal.SIGINT, signal.default_int_handler)
            raise KeyboardInterrupt
        cancel.set()

    if threading.current_thread() is not threading.main_thread():
        yield cancel  # signal handlers belong to the main thread (CLI called from a thread)
        return
    previous = signal.signal(signal.SIGINT, on_interrupt)
    try:
        yield cancel
    finally:
        signal.signal(signal.SIGINT, previous)
