"""3. The path-lock check with 1,000 held globs.

What is measured: with 1,000 claimed tasks each holding one glob, the time of one claim of a
task that wants 3 globs, (a) through ``TaskStore.claim`` (the whole path: sweep, read the held
locks, walk the ready index, check the globs, take the lease and the locks, commit with
``synchronous=FULL``) and (b) the pure ``globs.has_conflict`` call alone, warm (the same globs
again), with fresh wanted globs (pairs never seen, held globs' automata already built: a
long-running daemon) and cold (every glob cache emptied first: a fresh CLI process, after
``interegular`` has been imported).

The held globs are a realistic mix that is pairwise disjoint (all 1,000 must be claimable):
``src/mod{i}/**`` (40%), ``src/mod{i}/*.py`` (30%), ``docs/{i}.md`` (20%) and
``tests/*/test_{i}.py`` (10%, a wildcard in the middle). A middle wildcard under ``src/``
(``src/*/file{i}.py``) would overlap every ``src/mod{j}/**`` lock, which the exact check rightly
refuses, so the middle wildcards live under ``tests/``. Each measured task wants
``src/feature{k}/**``, ``docs/feature{k}.md`` and ``tests/*/test_feature{k}.py``: disjoint from
every held glob, and the last shares the literal prefix ``tests/`` with 100 held globs, so
those pairs cannot be settled by the prefix test.

The baseline is the same claim in a database where nothing is held. Goal: under 5 ms per claim.
"""

from __future__ import annotations

import importlib
import sys
import time
from collections.abc import Callable, Sequence
from datetime import timedelta
from pathlib import Path

from aictl.domain import globs
from aictl.store.tasks import NewTask, TaskStore
from bench.common import Goal, Measurement, Row, Settings, scratch_dir, summary_ms
from bench.fixtures import create_in_batches, open_store

GOAL = Goal("median < 5 ms", "value", "<", 5.0)
HELD = 1_000
TTL = timedelta(hours=6)


def held_glob(index: int) -> str:
    """The glob held by the ``index``-th claimed task (see the module docstring for the mix)."""
    kind = index % 10
    if kind <= 3:
        return f"src/mod{index}/**"
    if kind <= 6:
        return f"src/mod{index}/*.py"
    if kind <= 8:
        return f"docs/{index}.md"
    return f"tests/*/test_{index}.py"


def wanted_globs(index: int) -> list[str]:
    """The three globs of the ``index``-th measured task."""
    return [f"src/feature{index}/**", f"docs/feature{index}.md", f"tests/*/test_feature{index}.py"]


def clear_glob_caches() -> int:
    """Empty every ``functools`` cache in the loaded ``aictl.domain`` modules (the glob code
    and its automata helpers); returns how many.

    Found by introspection rather than by name, so the bench keeps working as the private
    helpers of those modules move or change.
    """
    cleared = 0
    for name, module in list(sys.modules.items()):
        if not name.startswith("aictl.domain") or module is None:
            continue
        for value in vars(module).values():
            cache_clear = getattr(value, "cache_clear", None)
            if callable(cache_clear):
                cache_clear()
                cleared += 1
    return cleared


def _prepare(path: Path, *, held: int, measured: int) -> None:
    """``held`` tasks claimed (one glob each), then ``measured`` queued tasks with 3 globs."""
    store = open_store(path, synchronous="OFF")
    try:
        create_in_batches(store, [
            NewTask(title=f"holder {i}", paths=[held_glob(i)]) for i in range(held)
        ])  # fmt: skip
        with store.db.transaction():
            for _ in range(held):
                store.claim("agent", TTL)
        create_in_batches(store, [
            NewTask(title=f"measured {k}", paths=wanted_globs(k)) for k in range(measured)
        ])  # fmt: skip
        if len(store.held_locks()) != held:
            raise RuntimeError(f"setup holds {len(store.held_locks())} locks, not {held}")
    finally:
        store.db.close()


def _claim_samples(stores: Sequence[TaskStore], count: int) -> list[list[float]]:
    """Claim durations, alternating between the stores; each claim is completed, untimed."""
    samples: list[list[float]] = [[] for _ in stores]
    for _ in range(count):
        for index, store in enumerate(stores):
            started = time.perf_counter()
            claim = store.claim("bench", TTL)
            samples[index].append(time.perf_counter() - started)
            if len(claim.task.paths) != 3:
                raise RuntimeError(f"claimed task {claim.task.id} is not a measured task")
            store.start(claim.token)
            store.complete(claim.token)
    return samples


def _time_calls(
    call: Callable[[int], object], count: int, before: Callable[[], object]
) -> list[float]:
    """Durations of ``call(k)`` for k in range(count), running ``before()`` untimed first."""
    samples = []
    for k in range(count):
        before()
        started = time.perf_counter()
        call(k)
        samples.append(time.perf_counter() - started)
    return samples


def _has_conflict_rows(
    held: list[str], counts: dict[str, int], offset: int, claim_alone_ms: float
) -> list[Row]:
    """``globs.has_conflict`` alone: warm, fresh wanted globs, and every cache cleared.

    The baseline is a whole claim with nothing held (``claim_alone_ms``): the ratio says how
    many lock-free claims the glob check alone costs.
    """
    importlib.import_module("interegular")  # cold means empty caches, not a first import

    def check(k: int) -> None:
        if globs.has_conflict(wanted_globs(k), held):
            raise RuntimeError(f"measured globs {wanted_globs(k)} conflict with a held glob")

    fixed = offset  # warm: the same three globs every time
    check(fixed)
    warm = _time_calls(lambda _: check(fixed), counts["warm"], lambda: None)
    fresh = _time_calls(lambda k: check(offset + 1 + k), counts["fresh"], lambda: None)
    cold = _time_calls(check, counts["cold"], clear_glob_caches)
    rows = []
    for label, samples in (("warm", warm), ("fresh globs", fresh), ("cold caches", cold)):
        stats = summary_ms(samples)
        rows.append(Row(
            f"has_conflict alone, {label}, median", stats["median_ms"], "ms",
            "claim, 0 held", claim_alone_ms, detail=stats,
        ))  # fmt: skip
    return rows


def run(settings: Settings) -> Measurement:
    claims = 40 if settings.quick else 200
    counts = {"warm": 200, "fresh": 40, "cold": 5} if settings.quick else {
        "warm": 1_000, "fresh": 200, "cold": 30,
    }  # fmt: skip
    measurement = Measurement(
        "locks",
        f"3. Lock check with {HELD:,} held globs (claim of a task with 3 globs)",
        parameters={"held_globs": HELD, "claims": claims, "has_conflict_calls": counts},
    )
    with scratch_dir("locks") as folder:
        held_path, empty_path = folder / "held.db", folder / "empty.db"
        started = time.perf_counter()
        _prepare(held_path, held=HELD, measured=claims + 1)
        setup_s = time.perf_counter() - started
        _prepare(empty_path, held=0, measured=claims + 1)
        stores = [open_store(held_path), open_store(empty_path)]
        try:
            for store in stores:  # warm-up: statement cache, pages, held globs' automata
                claim = store.claim("bench", TTL)
                store.start(claim.token)
                store.complete(claim.token)
            held, empty = _claim_samples(stores, claims)
            held_globs = [lock.glob for lock in stores[0].held_locks()]
        finally:
            for store in stores:
                store.db.close()
    stats, base = summary_ms(held), summary_ms(empty)
    measurement.rows += [
        Row("TaskStore.claim, median", stats["median_ms"], "ms", "0 held", base["median_ms"],
            goal=GOAL, detail={"held": stats, "none_held": base}),
        Row("TaskStore.claim, p95", stats["p95_ms"], "ms", "0 held", base["p95_ms"]),
    ]  # fmt: skip
    measurement.rows += _has_conflict_rows(
        held_globs, counts, offset=10_000, claim_alone_ms=base["median_ms"]
    )
    measurement.notes += [
        f"setup: {HELD:,} tasks claimed one by one through TaskStore.claim in {setup_s:.1f} s",
        "each claim checks 3 wanted globs against the held set; 100 held globs share the "
        "prefix 'tests/' with one wanted glob",
        "has_conflict rows: 'fresh globs' is a daemon's case, 'cold caches' a new process's "
        "(the goal is judged on the full claim path)",
    ]
    return measurement
