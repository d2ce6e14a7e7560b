"""17. aictl on PostgreSQL: claims per second beside a bare ``SKIP LOCKED`` loop, and claim
latency against the number of queued tasks; aictl on SQLite beside them for reference.

Claims per second: N worker processes (each its own connection) loop claim -> start ->
complete until the queue is empty or the time limit passes, as in part 1 (``claims``). The
baseline is the queue PostgreSQL users build by hand, run in the same session on the same
server: plain psycopg on a minimal table doing the same three fenced transactions per task,
the claim being ``UPDATE ... WHERE id = (SELECT id ... ORDER BY priority DESC, id LIMIT 1
FOR UPDATE SKIP LOCKED) RETURNING``. The ratio is the price of what aictl adds (claims one at
a time, the lease sweep, the lock check and rows, the audit chain, the decision records' home).

A second baseline, in the same rounds: that bare loop plus the least DESIGN.md asks of any
state change, one audit row per transition in the same transaction, chained by SHA-256 to the
one head. Each transition stays one round trip, a call of a server-side function (PL/pgSQL,
its plans cached) that makes the fenced change, takes the chain's advisory lock and appends
the row, so the lock is held only while the server runs it. Its ratio to the bare loop is
about the least the invariant costs; aictl's ratio to it is the price of the rest (Python
between the statements, path locks, JSON rows, decision records' home).

A third loop, beside them: aictl's own server-side functions (claim, start, complete) on
aictl's schema and tasks, called from plain psycopg with nothing of aictl's Python between
them. What the server does per task is then all there is: its rate bounds what any work on
aictl's client side could reach.

Latency: one ``TaskStore.claim`` in databases of 1k and 100k queued tasks (10k with
``--quick``), round-robin, each claim followed by start and complete (untimed).

The server: ``AICTL_TEST_PG`` if set (each run makes and drops its own databases there), else
a throw-away one started for the part (tests/pgserver.py, Debian's ``postgresql``) and
stopped after it. Its ``fsync`` is off, as in the tests: the figure is the CPU and round-trip
cost, not the disk's.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from contextlib import ExitStack, suppress
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from aictl.clock import SystemClock
from aictl.errors import NothingReady
from aictl.store.db import connect
from aictl.store.tasks import TaskStore
from bench import claims
from bench.common import (
    BARRIER_TIMEOUT_S,
    Goal,
    Measurement,
    Row,
    Settings,
    loop_worker,
    median,
    run_workers,
    scratch_dir,
    summary_ms,
)
from bench.fixtures import create_in_batches, flat_tasks
from tests import pgserver

RATE_GOAL = Goal("ratio >= 0.50 at 8 processes", "ratio", ">=", 0.5)
LATENCY_GOAL = Goal("largest <= 1.5x the 1k median", "ratio", "<=", 1.5)
TTL = timedelta(minutes=30)

_BARE_SCHEMA = (
    "CREATE TABLE t (id BIGSERIAL PRIMARY KEY, priority INTEGER NOT NULL DEFAULT 0,"
    " status TEXT NOT NULL, holder TEXT, epoch BIGINT NOT NULL DEFAULT 0,"
    " expires_at DOUBLE PRECISION)",
    "CREATE INDEX t_ready ON t (priority DESC, id) WHERE status = 'queued'",
)
_BARE_CLAIM = """
UPDATE t SET status = 'claimed', holder = %s, epoch = epoch + 1, expires_at = %s
WHERE id = (SELECT id FROM t WHERE status = 'queued' ORDER BY priority DESC, id LIMIT 1
            FOR UPDATE SKIP LOCKED)
RETURNING id, epoch
"""
_BARE_START = (
    "UPDATE t SET status = 'running', expires_at = %s"
    " WHERE id = %s AND epoch = %s AND status = 'claimed' AND expires_at > %s"
)
_BARE_COMPLETE = (
    "UPDATE t SET status = 'done', expires_at = NULL"
    " WHERE id = %s AND epoch = %s AND status = 'running' AND expires_at > %s"
)


@dataclass(frozen=True)
class Plan:
    process_counts: tuple[int, ...]
    tasks: int
    repeats: int
    time_limit_s: float
    sizes: tuple[int, ...]
    latency_claims: int
    normal_at: int = 8


FULL_PLAN = Plan((1, 8), 4_000, 4, 4.0, (1_000, 100_000), 200)
QUICK_PLAN = Plan((1, 8), 400, 2, 1.5, (1_000, 10_000), 40)


# --------------------------------------------------------------------------- the server


# --------------------------------------------------------------------------- the two loops


def _aictl_loop(url: str, holder: str, *, in_server: bool = True) -> Callable[[], bool]:
    store = TaskStore(connect(url), SystemClock())
    store.db.hot_path_in_server = in_server
    ttl = timedelta(minutes=10)

    def one_task() -> bool:
        try:
            claim = store.claim(holder, ttl)
        except NothingReady:
            return False
        store.start(claim.token)
        store.complete(claim.token)
        return True

    return one_task


def _bare_loop(url: str, holder: str) -> Callable[[], bool]:
    """The same three fenced transactions on plain psycopg (autocommit: one each)."""
    import psycopg

    connection = psycopg.connect(url, autocommit=True)
    execute = connection.execute
    ttl_s = 600.0

    def one_task() -> bool:
        row = execute(_BARE_CLAIM, (holder, time.time() + ttl_s)).fetchone()
        if row is None:
            return False
        task_id, epoch = row
        for statement, first in ((_BARE_START, (time.time() + ttl_s,)), (_BARE_COMPLETE, ())):
            changed = execute(statement, (*first, task_id, epoch, time.time())).rowcount
            if changed != 1:
                raise RuntimeError(f"bare loop lost the lease of task {task_id}")
        return True

    return one_task


_CHAIN_SCHEMA = (
    "CREATE TABLE chain (seq BIGINT PRIMARY KEY, task BIGINT, epoch BIGINT, kind TEXT NOT NULL,"
    " prev TEXT NOT NULL, hash TEXT NOT NULL)",
    "INSERT INTO chain VALUES (0, NULL, NULL, 'genesis', '', repeat('0', 64))",
    # The chain's lock, then the head read by a statement of its own (so it sees the newest).
    """CREATE FUNCTION chain_append(task_id BIGINT, task_epoch BIGINT, what TEXT)
RETURNS VOID LANGUAGE plpgsql AS $$
DECLARE head RECORD;
BEGIN
  PERFORM pg_advisory_xact_lock(1);
  SELECT seq, hash INTO head FROM chain ORDER BY seq DESC LIMIT 1;
  INSERT INTO chain VALUES (head.seq + 1, task_id, task_epoch, what, head.hash,
    encode(sha256(convert_to(head.hash || what || task_id, 'UTF8')), 'hex'));
END $$""",
    """CREATE FUNCTION chained_claim(who TEXT, until DOUBLE PRECISION,
  OUT task_id BIGINT, OUT task_epoch BIGINT) LANGUAGE plpgsql AS $$
BEGIN
  UPDATE t SET status = 'claimed', holder = who, epoch = epoch + 1, expires_at = until
  WHERE id = (SELECT id FROM t WHERE status = 'queued' ORDER BY priority DESC, id LIMIT 1
              FOR UPDATE SKIP LOCKED)
  RETURNING id, epoch INTO task_id, task_epoch;
  IF FOUND THEN PERFORM chain_append(task_id, task_epoch, 'claimed'); END IF;
END $$""",
    """CREATE FUNCTION chained_move(task_id BIGINT, task_epoch BIGINT, from_status TEXT,
  to_status TEXT, until DOUBLE PRECISION, now_ DOUBLE PRECISION)
RETURNS BOOLEAN LANGUAGE plpgsql AS $$
BEGIN
  UPDATE t SET status = to_status, expires_at = until
  WHERE id = task_id AND epoch = task_epoch AND status = from_status AND expires_at > now_;
  IF NOT FOUND THEN RETURN FALSE; END IF;
  PERFORM chain_append(task_id, task_epoch, to_status);
  RETURN TRUE;
END $$""",
)


def _chained_loop(url: str, holder: str) -> Callable[[], bool]:
    """The bare loop with a chained audit row per transition (see the module docstring): each
    transition one call of a server-side function, one round trip, its plans cached."""
    import psycopg

    execute = psycopg.connect(url, autocommit=True).execute
    ttl_s = 600.0
    move = "SELECT chained_move(%s, %s, %s, %s, %s, %s)"

    def one_task() -> bool:
        row = execute("SELECT * FROM chained_claim(%s, %s)", (holder, time.time() + ttl_s))
        task_id, epoch = row.fetchone()  # type: ignore[misc]
        if task_id is None:
            return False
        for start, end, until in (("claimed", "running", time.time() + ttl_s),
                                  ("running", "done", None)):  # fmt: skip
            moved = execute(move, (task_id, epoch, start, end, until, time.time())).fetchone()
            if not (moved and moved[0]):
                raise RuntimeError(f"chained loop lost the lease of task {task_id}")
        return True

    return one_task


def _functions_loop(url: str, holder: str) -> Callable[[], bool]:
    """aictl's own three server-side functions (migrations/pg/0012), on aictl's schema and
    tasks, called from plain psycopg with nothing of aictl's Python between them: no Task
    built, one lease secret for the run, the audit data as aictl writes it. What the server
    does per task is then all there is, so no work on aictl's client side could go faster."""
    import psycopg

    from aictl.domain import globs
    from aictl.domain.tasks import format_time, hash_secret, sources
    from aictl.store.audit import canonical

    execute = psycopg.connect(url, autocommit=True).execute
    secret, ttl = hash_secret("bench"), timedelta(minutes=10)
    seconds = ttl.total_seconds()
    started, completed = list(sources("start")), list(sources("complete"))
    done = {"result": None, "evidence": [], "evidence_digest": None}
    claim = (
        "SELECT outcome, (task).id, (task).lease_epoch"
        " FROM aictl_claim(%s, %s, %s, %s, %s, %s, %s)"
    )  # fmt: skip
    start = "SELECT id FROM aictl_start(%s, %s, %s, %s, %s, %s, %s)"
    complete = "SELECT id FROM aictl_complete(%s, %s, %s, %s, %s, %s, %s, %s, %s)"

    def fenced(sql: str, task: int, epoch: int, allowed: list[str], data: str, *tail: None) -> None:
        values = (task, epoch, secret, format_time(datetime.now(UTC)), allowed, holder, data)
        if execute(sql, (*values, *tail)).fetchone() is None:
            raise RuntimeError(f"aictl's functions lost the lease of task {task}")

    def one_task() -> bool:
        now = datetime.now(UTC)
        outcome, task, epoch = execute(claim, (
            holder, secret, seconds, str(seconds), format_time(now + ttl), format_time(now),
            globs.OVERLAP_VERSION,
        )).fetchone()  # type: ignore[misc]  # fmt: skip
        if outcome == "none":
            return False
        if outcome != "taken":
            raise RuntimeError(f"aictl_claim asked for the store's help: {outcome}")
        fenced(start, task, epoch, started, canonical({"epoch": epoch}))
        fenced(complete, task, epoch, completed, canonical({"epoch": epoch, **done}), None, None)
        return True

    return one_task


def _aictl_python_loop(url: str, holder: str) -> Callable[[], bool]:
    """aictl with its hot path driven from Python, as before migration 0012 (and as SQLite)."""
    return _aictl_loop(url, holder, in_server=False)


LOOPS = {
    "aictl": _aictl_loop, "aictl python": _aictl_python_loop, "bare": _bare_loop,
    "chained": _chained_loop, "functions": _functions_loop,
}  # fmt: skip


def _prepare(kind: str, url: str, tasks: int) -> None:
    if kind.startswith("aictl") or kind == "functions":
        store = TaskStore(connect(url), SystemClock())
        try:
            create_in_batches(store, flat_tasks(tasks))
        finally:
            store.db.close()
        return
    import psycopg

    with psycopg.connect(url, autocommit=True) as connection:
        for statement in _BARE_SCHEMA + (_CHAIN_SCHEMA if kind == "chained" else ()):
            connection.execute(statement)
        connection.execute(
            "INSERT INTO t (status) SELECT 'queued' FROM generate_series(1, %s)", (tasks,)
        )


def _run_once(kind: str, processes: int, plan: Plan, admin_url: str) -> dict[str, float]:
    with pgserver.new_database(admin_url, "aictl_bench") as url:
        _prepare(kind, url, plan.tasks)
        completed, wall = run_workers(
            loop_worker, (LOOPS[kind], url), processes, plan.time_limit_s,
            f"pg {kind} x{processes}",
            BARRIER_TIMEOUT_S,
        )  # fmt: skip
        if kind == "chained":
            _check_chain(url, completed)
    return {"completed": completed, "wall_s": wall, "rate": completed / wall}


def _check_chain(url: str, completed: int) -> None:
    """The chained loop's chain is whole: three rows a completed task (a worker's last task
    runs to its end before the time limit is looked at), each naming its predecessor's hash."""
    import psycopg

    with psycopg.connect(url, autocommit=True) as connection:
        rows, broken = connection.execute(
            "SELECT (SELECT count(*) - 1 FROM chain),"
            " (SELECT count(*) FROM chain c JOIN chain p ON p.seq = c.seq - 1"
            " WHERE c.prev <> p.hash)"
        ).fetchone()
    if broken or rows != 3 * completed:
        raise RuntimeError(f"the chained loop's chain is not whole: {rows} rows, {broken} broken")


def _rates(processes: int, plan: Plan, admin_url: str, folder: Path) -> list[Row]:
    """aictl and bare on PostgreSQL, aictl and bare on SQLite, in ABBA order per backend."""
    runs: dict[str, list[dict[str, float]]] = {
        "aictl": [], "aictl python": [], "bare": [], "chained": [], "functions": [],
        "sqlite aictl": [], "sqlite bare": [],
    }  # fmt: skip
    sqlite_plan = claims.Plan((processes,), plan.tasks, plan.repeats, plan.time_limit_s)
    for repeat in range(plan.repeats):
        order = ("aictl", "bare", "chained", "functions", "aictl python")
        for kind in order if repeat % 2 == 0 else order[::-1]:
            runs[kind].append(_run_once(kind, processes, plan, admin_url))
            if kind in ("aictl", "bare"):
                runs[f"sqlite {kind}"].append(
                    claims.run_once(kind, processes, "FULL", sqlite_plan, folder)
                )
    rates = {kind: median([run["rate"] for run in done]) for kind, done in runs.items()}
    noun = "process" if processes == 1 else "processes"
    detail = {"processes": processes, "runs": runs}
    return [
        Row(
            f"aictl on PostgreSQL, {processes} {noun}", rates["aictl"], "tasks/s",
            "bare SKIP LOCKED", rates["bare"],
            goal=RATE_GOAL if processes == plan.normal_at else None, detail=detail,
        ),
        Row(
            f"bare + chained audit rows, {processes} {noun}", rates["chained"], "tasks/s",
            "bare SKIP LOCKED", rates["bare"], detail=detail,
        ),
        Row(
            f"aictl beside the chained loop, {processes} {noun}", rates["aictl"], "tasks/s",
            "bare + chained audit rows", rates["chained"], detail=detail,
        ),
        Row(
            f"aictl's functions, bare client, {processes} {noun}", rates["functions"],
            "tasks/s", "bare SKIP LOCKED", rates["bare"], detail=detail,
        ),
        Row(
            f"aictl, hot path in the server, {processes} {noun}", rates["aictl"], "tasks/s",
            "aictl, hot path in Python", rates["aictl python"], detail=detail,
        ),
        Row(
            f"aictl on SQLite (FULL), {processes} {noun}", rates["sqlite aictl"], "tasks/s",
            "bare sqlite", rates["sqlite bare"],
        ),
    ]  # fmt: skip


def _latency(plan: Plan, admin_url: str) -> list[Row]:
    samples: dict[int, list[float]] = {size: [] for size in plan.sizes}
    with ExitStack() as stack:
        urls = [
            stack.enter_context(pgserver.new_database(admin_url, "aictl_bench")) for _ in plan.sizes
        ]
        stores = {}
        for size, url in zip(plan.sizes, urls, strict=True):
            store = TaskStore(connect(url), SystemClock())
            create_in_batches(store, flat_tasks(size))
            stores[size] = store
        try:
            for round_ in range(10 + plan.latency_claims):
                for size, store in stores.items():
                    started = time.perf_counter()
                    claim = store.claim("bench", TTL)
                    elapsed = time.perf_counter() - started
                    store.start(claim.token)
                    store.complete(claim.token)
                    if round_ >= 10:
                        samples[size].append(elapsed)
        finally:
            for store in stores.values():
                store.db.close()
    smallest, largest = plan.sizes[0], plan.sizes[-1]
    base = summary_ms(samples[smallest])
    rows = []
    for size in plan.sizes:
        stats = summary_ms(samples[size])
        rows.append(Row(
            f"PostgreSQL claim median, {size:,} queued", stats["median_ms"], "ms",
            f"{smallest:,} queued", base["median_ms"],
            goal=LATENCY_GOAL if size == largest else None, detail=stats,
        ))  # fmt: skip
    return rows


def run(settings: Settings) -> Measurement:
    plan = QUICK_PLAN if settings.quick else FULL_PLAN
    measurement = Measurement(
        "postgres",
        "17. aictl on PostgreSQL: claims per second vs bare SKIP LOCKED; claim latency",
        parameters={
            "process_counts": list(plan.process_counts), "tasks_per_run": plan.tasks,
            "repeats": plan.repeats, "time_limit_s": plan.time_limit_s,
            "latency_sizes": list(plan.sizes), "latency_claims": plan.latency_claims,
        },
    )  # fmt: skip
    with pgserver.serving() as admin_url, scratch_dir("postgres") as folder:
        for processes in plan.process_counts:
            measurement.rows += _rates(processes, plan, admin_url, folder)
        measurement.rows += _latency(plan, admin_url)
    with suppress(Exception):
        import psycopg

        measurement.parameters["psycopg"] = psycopg.__version__
    measurement.notes += [
        f"each rate is the median of {plan.repeats} run(s) in ABBA order; a run stops when its "
        f"{plan.tasks:,} queued tasks are done or after {plan.time_limit_s:g} s",
        "aictl's claims go one at a time (exact path locks), but for a head of the queue with "
        "no paths, claimed beside them; each transaction appends audit rows to one chain; its "
        "starts and completes run side by side, as all of the bare loop's do",
        "aictl's claim, start and complete are each one call of a server-side function "
        "(migrations/pg/0012); 'hot path in Python' is the same aictl with them driven from "
        "Python statement by statement (Database.hot_path_in_server off), in the same rounds",
        "bare + chained audit rows: the bare loop with one SHA-256-chained audit row per "
        "transition in the same transaction (DESIGN.md's least), each transition one call of a "
        "server-side function",
        "aictl's functions, bare client: aictl's claim, start and complete functions on its "
        "schema and tasks, called from plain psycopg (no Task built, one lease secret per run)",
        "the PostgreSQL server runs with fsync off (as the tests): CPU and round trips only",
    ]
    return measurement
