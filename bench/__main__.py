"""``python -m bench [PART ...] [--quick]``: run the measurements, print a table for each and
write every figure to ``bench/results/latest.json``.

A goal that is missed is reported (MISS), never raised: the exit status is 0 unless a part
could not be measured at all (an error, printed in its table), which exits 1.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import sqlite3
import subprocess
import sys
import time
import traceback
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench import (
    claims,
    cli,
    confinement,
    dashboard,
    enforcement,
    execute,
    globs,
    imports,
    latency,
    locks,
    peers,
    policy,
    postgres,
    soak,
    startup,
    workflow,
    worktrees,
)
from bench.common import Measurement, Settings, render

PARTS: dict[str, Callable[[Settings], Measurement]] = {
    "claims": claims.run,
    "latency": latency.run,
    "locks": locks.run,
    "globs": globs.run,
    "cli": cli.run,
    "policy": policy.run,
    "enforcement": enforcement.run,
    "execute": execute.run,
    "confinement": confinement.run,
    "workflow": workflow.run,
    "soak": soak.run,
    "worktrees": worktrees.run,
    "dashboard": dashboard.run,
    "peers": peers.run,
    "imports": imports.run,
    "startup": startup.run,
    "postgres": postgres.run,
}
RESULTS = Path(__file__).resolve().parent / "results" / "latest.json"


def parse_arguments(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench",
        description="aictl's measured figures, each beside a baseline taken in the same run.",
    )
    parser.add_argument(
        "parts", nargs="*", metavar="PART", help=f"one of {', '.join(PARTS)} (default: all)"
    )
    parser.add_argument("--quick", action="store_true", help="a smoke run, under a minute")
    parser.add_argument("--output", type=Path, default=RESULTS, help="where to write the JSON")
    arguments = parser.parse_args(argv)
    unknown = [part for part in arguments.parts if part not in PARTS]
    if unknown:
        parser.error(f"unknown part {unknown[0]!r}; choose from {', '.join(PARTS)}")
    return arguments


def measure(name: str, settings: Settings) -> Measurement:
    """Run one part; an exception becomes the part's error instead of stopping the run."""
    started = time.perf_counter()
    try:
        measurement = PARTS[name](settings)
    except Exception:
        measurement = Measurement(name, name, error=traceback.format_exc(limit=8).strip())
    measurement.seconds = time.perf_counter() - started
    return measurement


def git_commit() -> str | None:
    """The checked-out commit, read-only and best effort (no git, no repository: None)."""
    try:
        done = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=Path(__file__).resolve().parent,
            capture_output=True, text=True, timeout=10, check=False,
        )  # fmt: skip
    except OSError:
        return None
    return done.stdout.strip() or None


def environment() -> dict[str, Any]:
    return {
        "python": sys.version.split()[0],
        "executable": sys.executable,
        "sqlite": sqlite3.sqlite_version,
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "commit": git_commit(),
    }


def finite(value: Any) -> Any:
    """``value`` with every NaN or infinity replaced by None (JSON has no NaN)."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {key: finite(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [finite(item) for item in value]
    return value


def summary(measurements: list[Measurement]) -> str:
    """One line per goal: the verdicts at a glance."""
    lines = ["== Goals =="]
    for measurement in measurements:
        if measurement.error:
            lines.append(f"  {measurement.name}: ERROR (see above)")
        for row in measurement.rows:
            if row.goal is not None:
                lines.append(
                    f"  {row.verdict:4}  {measurement.name}: {row.label} ({row.goal.text})"
                )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    arguments = parse_arguments(argv)
    settings = Settings(quick=arguments.quick)
    names = list(dict.fromkeys(arguments.parts)) or list(PARTS)
    started_at = datetime.now(UTC)
    started = time.perf_counter()
    measurements = []
    for name in names:
        print(f"-- measuring {name}{' (quick)' if settings.quick else ''} ...", flush=True)
        measurement = measure(name, settings)
        measurements.append(measurement)
        print(render(measurement) + "\n", flush=True)
    print(summary(measurements))
    report = {
        "started_at": started_at.isoformat(timespec="seconds"),
        "seconds": round(time.perf_counter() - started, 1),
        "quick": settings.quick,
        "environment": environment(),
        "measurements": {m.name: m.to_json() for m in measurements},
    }
    arguments.output.parent.mkdir(parents=True, exist_ok=True)
    arguments.output.write_text(json.dumps(finite(report), indent=2, allow_nan=False) + "\n")
    print(f"\nwritten to {arguments.output} ({report['seconds']} s in all)")
    return 1 if any(m.error for m in measurements) else 0


if __name__ == "__main__":
    sys.exit(main())
