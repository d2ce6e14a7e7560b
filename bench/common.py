"""What every measurement shares: settings, statistics, result records, tables and temp folders.

A measurement returns a :class:`Measurement`: a list of :class:`Row` values, each a figure with
the baseline measured in the same run, their ratio and, where the issue sets one, a
:class:`Goal` that the row passes or misses. A miss is reported, never raised: benchmarks
report, they do not assert.
"""

from __future__ import annotations

import math
import multiprocessing
import operator
import queue
import shutil
import statistics
import tempfile
import time
import traceback
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

TEMP_PREFIX = "aictl-bench-"


@dataclass(frozen=True)
class Settings:
    """How hard to measure. ``quick`` is the smoke version (< 60 s for every part together)."""

    quick: bool = False
    seed: int = 20260101


_OPERATORS: dict[str, Callable[[float, float], bool]] = {
    "<": operator.lt,
    "<=": operator.le,
    ">=": operator.ge,
    ">": operator.gt,
}


@dataclass(frozen=True)
class Goal:
    """A target from the issue: ``subject`` ("value" or "ratio") compared with ``threshold``."""

    text: str
    subject: str
    op: str
    threshold: float

    def passed(self, row: Row) -> bool | None:
        """True or False, or None when the figure it needs is missing."""
        actual = row.value if self.subject == "value" else row.ratio
        if actual is None or math.isnan(actual):
            return None
        return _OPERATORS[self.op](actual, self.threshold)


@dataclass
class Row:
    """One figure beside its baseline. ``ratio`` is value / baseline."""

    label: str
    value: float
    unit: str
    baseline_label: str = ""
    baseline: float | None = None
    goal: Goal | None = None
    detail: dict[str, Any] = field(default_factory=dict)

    @property
    def ratio(self) -> float | None:
        if self.baseline is None or self.baseline == 0:
            return None
        return self.value / self.baseline

    @property
    def verdict(self) -> str:
        if self.goal is None:
            return ""
        passed = self.goal.passed(self)
        return "n/a" if passed is None else "PASS" if passed else "MISS"

    def to_json(self) -> dict[str, Any]:
        return {
            "label": self.label,
            "value": self.value,
            "unit": self.unit,
            "baseline_label": self.baseline_label or None,
            "baseline": self.baseline,
            "ratio": self.ratio,
            "goal": None if self.goal is None else self.goal.text,
            "result": self.verdict or None,
            "detail": self.detail,
        }


@dataclass
class Measurement:
    """The figures of one part of the bench, with the parameters and notes needed to read them."""

    name: str
    title: str
    rows: list[Row] = field(default_factory=list)
    parameters: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    seconds: float = 0.0
    error: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "title": self.title,
            "seconds": round(self.seconds, 2),
            "parameters": self.parameters,
            "rows": [row.to_json() for row in self.rows],
            "notes": self.notes,
            "error": self.error,
        }


# --------------------------------------------------------------------------- statistics


def git_init(root: Path) -> Path:
    """An empty git repository at ``root`` (created if missing): `aictl init` needs one."""
    import subprocess

    root.mkdir(parents=True, exist_ok=True)
    subprocess.run(["git", "init", "-q", str(root)], check=True, capture_output=True)
    return root


def median(samples: Sequence[float]) -> float:
    return statistics.median(samples) if samples else math.nan


def percentile(samples: Sequence[float], fraction: float) -> float:
    """Nearest-rank percentile: the smallest sample with at least ``fraction`` at or below it."""
    if not samples:
        return math.nan
    ordered = sorted(samples)
    rank = max(1, math.ceil(fraction * len(ordered)))
    return ordered[rank - 1]


def summary_ms(samples_s: Sequence[float]) -> dict[str, float]:
    """Median, p95, min and max of durations in seconds, as milliseconds."""
    return {
        "median_ms": median(samples_s) * 1000,
        "p95_ms": percentile(samples_s, 0.95) * 1000,
        "min_ms": min(samples_s, default=math.nan) * 1000,
        "max_ms": max(samples_s, default=math.nan) * 1000,
        "samples": len(samples_s),
    }


# --------------------------------------------------------------------------- rendering


def _number(value: float | None, unit: str = "") -> str:
    if value is None or math.isnan(value):
        return "-"
    if abs(value) >= 100:
        text = f"{value:,.0f}"
    elif abs(value) >= 10:
        text = f"{value:.1f}"
    else:
        text = f"{value:.2f}"
    return f"{text} {unit}".rstrip()


def render(measurement: Measurement) -> str:
    """A plain-text table: figure, value, baseline, ratio, goal, result; then the notes."""
    header = ("figure", "value", "baseline", "ratio", "goal", "result")
    lines = [[
        row.label,
        _number(row.value, row.unit),
        f"{_number(row.baseline, row.unit)} ({row.baseline_label})" if row.baseline_label else "",
        "" if row.ratio is None else f"{row.ratio:.2f}x",
        "" if row.goal is None else row.goal.text,
        row.verdict,
    ] for row in measurement.rows]  # fmt: skip
    widths = [max(len(str(cell)) for cell in column) for column in zip(header, *lines, strict=True)]
    out = [f"== {measurement.title} ({measurement.seconds:.1f} s) =="]
    if measurement.error:
        out.append(f"ERROR: {measurement.error}")
    if lines:
        out.append("  ".join(cell.ljust(width) for cell, width in zip(header, widths, strict=True)))
        out.append("  ".join("-" * width for width in widths))
        for line in lines:
            out.append(
                "  ".join(cell.ljust(width) for cell, width in zip(line, widths, strict=True))
            )
    out.extend(f"  * {note}" for note in measurement.notes)
    return "\n".join(line.rstrip() for line in out)


# --------------------------------------------------------------------------- temp folders


@contextmanager
def scratch_dir(name: str) -> Iterator[Path]:
    """A temporary folder for one measurement's databases, removed whatever happens.

    Not under /dev/shm on purpose: the durability setting is part of what is measured, and
    fsync on tmpfs costs nothing.
    """
    path = Path(tempfile.mkdtemp(prefix=f"{TEMP_PREFIX}{name}-"))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


BARRIER_TIMEOUT_S = 120.0


def loop_worker(make_loop: Callable[..., Callable[[], bool]], *arguments: Any) -> None:
    """A worker process for ``run_workers``: ``make_loop(*loop_arguments, holder)`` opens its
    connection and returns one task's work (False when the queue is empty); then wait for the
    others, loop until empty or out of time, report.

    Called as ``loop_worker(make_loop, *loop_arguments, index, time_limit_s, barrier,
    results)``; reports ``(index, completed, started, ended)`` with ``time.perf_counter``
    stamps (a system-wide monotonic clock on Linux and macOS, so stamps compare across
    processes), or ``(index, "error", text)``.
    """
    *loop_arguments, index, time_limit_s, barrier, results = arguments
    try:
        one_task = make_loop(*loop_arguments, f"worker-{index}")
        barrier.wait(BARRIER_TIMEOUT_S)
        started = time.perf_counter()
        deadline = started + time_limit_s
        completed = 0
        while time.perf_counter() < deadline and one_task():
            completed += 1
        results.put((index, completed, started, time.perf_counter()))
    except BaseException:
        results.put((index, "error", traceback.format_exc()))


def run_workers(
    target: Callable[..., None],
    args: tuple[Any, ...],
    processes: int,
    time_limit_s: float,
    label: str,
    barrier_timeout_s: float,
) -> tuple[int, float]:
    """Run ``processes`` spawned workers released together by a barrier; returns the tasks
    they completed in all and the wall time from the first start to the last end.

    Each worker is called as ``target(*args, index, time_limit_s, barrier, results)`` and puts
    ``(index, completed, started, ended)`` on ``results``, or ``(index, "error", traceback)``.
    Every worker is joined (or terminated) before this returns or raises.
    """
    context = multiprocessing.get_context("spawn")
    barrier = context.Barrier(processes)
    results = context.Queue()
    children = [
        context.Process(
            target=target, args=(*args, index, time_limit_s, barrier, results), daemon=True
        )
        for index in range(processes)
    ]
    reports = []
    try:
        for child in children:
            child.start()
        for _ in children:
            reports.append(results.get(timeout=barrier_timeout_s + time_limit_s + 60))
    except queue.Empty:
        raise RuntimeError(f"{label}: a worker did not report") from None
    finally:
        for child in children:
            child.join(timeout=10)
            if child.is_alive():
                child.terminate()
                child.join()
    errors = [report[2] for report in reports if report[1] == "error"]
    if errors:
        raise RuntimeError(f"{label} worker failed:\n{errors[0]}")
    completed = sum(report[1] for report in reports)
    wall = max(report[3] for report in reports) - min(report[2] for report in reports)
    return completed, wall
