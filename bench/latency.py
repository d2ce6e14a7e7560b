"""2. Claim latency against database size: is ready work at 100k tasks as cheap as at 1k?

What is measured: the wall time of one ``TaskStore.claim`` (choose the next ready task, check
its path locks, take the lease and the locks, commit with ``synchronous=FULL``) in databases of
1k, 10k and 100k tasks shaped like a database in use (a done history, dependencies, paths; see
``fixtures.HistoryShape``). Each claim is followed by ``start`` and ``complete``, untimed, so
the state stays steady. A few leases are held by other "agents" throughout, so the sweep and
the lock check have something to look at.

The claims go round-robin over the databases (one on 1k, one on 10k, one on 100k, again), so
a noisy moment on the machine hits every size alike. The baseline is the 1k median; the goal
(DESIGN.md: "ready work at 100,000 tasks must cost about the same as at 1,000") is a 100k
median within 1.5x of it.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

from bench.common import Goal, Measurement, Row, Settings, scratch_dir, summary_ms
from bench.fixtures import HistoryShape, build_history, open_store

GOAL = Goal("largest <= 1.5x the 1k median", "ratio", "<=", 1.5)
TTL = timedelta(minutes=30)
HELD_BY_OTHERS = 8


@dataclass(frozen=True)
class Plan:
    sizes: tuple[int, ...]
    claims: int
    warmup: int = 10


FULL_PLAN = Plan(sizes=(1_000, 10_000, 100_000), claims=200)
QUICK_PLAN = Plan(sizes=(1_000, 10_000), claims=60, warmup=5)


def _build(folder: Path, size: int, seed: int) -> tuple[Path, dict[str, float | int]]:
    """One database of ``size`` tasks; returns its path and how long the build took."""
    path = folder / f"tasks-{size}.db"
    started = time.perf_counter()
    counts = build_history(path, HistoryShape(size=size, seed=seed))
    return path, {"build_s": round(time.perf_counter() - started, 2), **counts}


def _measure(paths: dict[int, Path], plan: Plan) -> dict[int, list[float]]:
    """Round-robin claims over every database; returns the claim durations per size."""
    stores = {size: open_store(path, "FULL") for size, path in paths.items()}
    samples: dict[int, list[float]] = {size: [] for size in stores}
    try:
        for store in stores.values():
            for agent in range(HELD_BY_OTHERS):
                store.claim(f"agent-{agent}", TTL)
        for round_ in range(plan.warmup + plan.claims):
            for size, store in stores.items():
                started = time.perf_counter()
                claim = store.claim("bench", TTL)
                elapsed = time.perf_counter() - started
                store.start(claim.token)
                store.complete(claim.token)
                if round_ >= plan.warmup:
                    samples[size].append(elapsed)
    finally:
        for store in stores.values():
            store.db.close()
    return samples


def run(settings: Settings) -> Measurement:
    plan = QUICK_PLAN if settings.quick else FULL_PLAN
    measurement = Measurement(
        "latency",
        "2. Claim latency vs database size (one TaskStore.claim, synchronous=FULL)",
        parameters={"sizes": list(plan.sizes), "claims_per_size": plan.claims,
                    "warmup_per_size": plan.warmup, "held_by_others": HELD_BY_OTHERS},
    )  # fmt: skip
    with scratch_dir("latency") as folder:
        built = {size: _build(folder, size, settings.seed) for size in plan.sizes}
        samples = _measure({size: path for size, (path, _) in built.items()}, plan)
    smallest, largest = plan.sizes[0], plan.sizes[-1]
    base = summary_ms(samples[smallest])
    for size in plan.sizes:
        stats = summary_ms(samples[size])
        detail = {**stats, "database": built[size][1]}
        measurement.rows.append(Row(
            f"claim median, {size:,} tasks", stats["median_ms"], "ms",
            f"{smallest:,} tasks", base["median_ms"],
            goal=GOAL if size == largest and size != smallest else None, detail=detail,
        ))  # fmt: skip
        measurement.rows.append(Row(
            f"claim p95, {size:,} tasks", stats["p95_ms"], "ms", f"{smallest:,} tasks",
            base["p95_ms"],
        ))  # fmt: skip
    for size in plan.sizes:
        database = built[size][1]
        measurement.notes.append(
            f"{size:,} tasks: built in {database['build_s']} s through the store API; "
            + ", ".join(f"{k} {v:,}" for k, v in database.items() if k != "build_s")
        )
    if settings.quick:
        measurement.notes.append("quick run: the goal is judged on the largest size measured")
    return measurement
