"""What every command shares: the state it was started with and the common options."""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
import typer.core

from aictl.domain.tasks import MAX_INTEGER, LeaseToken
from aictl.errors import InvalidInput
from aictl.services.tasks import TaskService
from aictl.workspace import locate

JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON with stable keys.")]
QuietOption = Annotated[bool, typer.Option("--quiet", "-q", help="Print ids only.")]
LeaseOption = Annotated[
    str,
    typer.Option("--lease", help="The lease token printed by `aictl task claim`.", metavar="TOKEN"),
]


class Command(typer.core.TyperCommand):
    """A command whose help has one placeholder style: a value is an upper-case word (``ID``,
    ``GLOB``, ``DURATION``, ``N``), never a type (``<str>``, ``<float range>``) or a parser's
    name (``<parse_task_id>``). An option without its own ``metavar`` shows its name
    (``--reason REASON``), as argparse does; the usage line shows required arguments bare
    (``ID``) and optional ones in brackets (``[ID]``)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        for param in self.params:
            if param.metavar is None and not getattr(param, "is_flag", False):
                param.metavar = _placeholder(param)

    def collect_usage_pieces(self, ctx: typer.Context) -> list[str]:  # type: ignore[override]
        return [
            piece[1:-1] if piece.startswith("{") and piece.endswith("}") else piece
            for piece in super().collect_usage_pieces(ctx)
        ]


def _placeholder(param: Any) -> str:
    longest = max(param.opts, key=len).lstrip("-") if param.opts else param.name or "VALUE"
    word = longest.replace("_", "-").upper()
    return word + "..." if param.nargs != 1 and not getattr(param, "multiple", False) else word


Function = TypeVar("Function", bound=Callable[..., Any])


class Typer(typer.Typer):
    """``typer.Typer`` whose commands are :class:`Command`: every sub-app of aictl is one."""

    def command(
        self,
        name: str | None = None,
        *,
        cls: type[typer.core.TyperCommand] | None = None,
        **options: Any,
    ) -> Callable[[Function], Function]:
        return super().command(name, cls=cls or Command, **options)


@dataclass
class State:
    db: str | None = None


def state(ctx: typer.Context) -> State:
    root = ctx.find_root()
    if not isinstance(root.obj, State):
        root.obj = State()
    return root.obj


def paths_from_here(service: TaskService, paths: list[str]) -> list[str]:
    """``--path`` globs read from the current directory (:func:`aictl.domain.globs.from_cwd`)."""
    from aictl.domain.globs import from_cwd

    return from_cwd(paths, service.workspace.root, Path.cwd())


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


def one_of(values: Iterable[str]) -> Callable[[str], str]:
    """A Typer parser for an option with a fixed vocabulary: an unknown value is refused
    (exit 2) naming the valid ones, instead of matching nothing."""
    known = tuple(values)

    def parse(text: str) -> str:
        if text not in known:
            raise typer.BadParameter(f"{text!r} is not one of: {', '.join(known)}")
        return text

    return parse


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
