"""The daemon's loop: take ready work and do it, within limits, until told to stop.

One tick (every ``tick`` seconds, sooner when an execution ends):

1. return expired leases to the queue (``TaskService.sweep``);
2. check the policy (a valid change is in force from now on; an invalid one is refused and
   logged, the previous one stays: see ``aictl.daemon.reload``);
3. read the tasks and the AIs, notify what changed (done, failed, blocked, approval needed,
   quarantined) and refresh the metrics;
4. unless stopping or today's spend reached ``budgets.daily_usd`` (logged once; nothing is
   claimed until the day turns or the budget is raised), dispatch ready tasks by priority
   while there is room: at most
   ``concurrency`` executions in all, and at most each AI's ``max_concurrency`` (the router's
   rule), never two whose path globs intersect. Readiness (dependencies, retry backoff),
   approvals and the policy are the claim's business: an execution thread claims the task as
   its AI, and a task the policy sends to await approval is parked until a person approves it;
5. when the policy's ``audit_checkpoint`` says one is due, send a signed checkpoint of the
   audit chain in the background (see ``aictl.daemon.checkpoint``);
6. once an hour, prune as the policy's ``settings.retention`` asks (old run folders of
   finished tasks, the daemon log rotated past its size: ``aictl.services.maintenance``);
7. write the state file (``.ai/daemon.json``), the daemon's heartbeat.

Each execution runs ``Executor.execute`` in a thread of its own with its own database
connection (a SQLite connection belongs to one thread). An execution whose connector cannot
start (a missing ``claude``: ``ConnectorError``) hands its task back without counting an
attempt and takes its AI ``offline`` (audited, notified, logged with what to install), so the
router sends it nothing until a person sets it available again (``aictl ai status ID --set
available``, or ``aictl ai register --replace``, which detects it afresh): the daemon never
claims and releases the same task in a loop.

Stopping (SIGTERM or SIGINT): no new claims; running executions get ``grace`` seconds to
finish; then each is cancelled (the executor stops the agent's process group and releases the
lease, so the task is queued again with its locks dropped). The daemon waits for them, writes
``daemon.stopped`` to the audit log, sends a last audit checkpoint when the policy asks for
them, and exits 0. A second signal cancels at once. After a
SIGKILL nothing runs the release: the leases expire (``lease_ttl``) and the next daemon's sweep
puts the tasks back in the queue; fencing keeps a late write of the dead run from counting.
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
import time
import traceback
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from types import FrameType
from typing import TYPE_CHECKING, Any, TextIO

from aictl.clock import Clock, SystemClock
from aictl.daemon.checkpoint import PeriodicCheckpoint
from aictl.daemon.http import StatusServer
from aictl.daemon.jsonlog import JsonLog
from aictl.daemon.metrics import Metrics
from aictl.daemon.notify import Notifier, channels_from, merge_sections
from aictl.daemon.reload import KeptEnforcer, PolicyKeeper
from aictl.daemon.runtime import DaemonPaths, InstanceLock, write_atomically
from aictl.domain import globs
from aictl.domain.ais import AIStatus
from aictl.domain.routing import route
from aictl.domain.tasks import Task, format_time
from aictl.errors import (
    AictlError,
    ApprovalRequired,
    Contention,
    LeaseLost,
    NothingReady,
    PolicyDenied,
)
from aictl.services.budgets import daily_budget_refusal
from aictl.services.executor import Execution, Executor
from aictl.services.tasks import TaskService
from aictl.store.ais import AIStore
from aictl.store.daemon import changed_since, decisions_by_effect, ready_head
from aictl.store.db import shown
from aictl.store.spend import SpendStore
from aictl.workspace import Workspace
from connectors import ConnectorError

if TYPE_CHECKING:
    from aictl.dashboard.app import DashboardApp
    from aictl.store.postgres import WorkListener

DEFAULT_CONCURRENCY = 2
DEFAULT_TICK = 0.5
DEFAULT_GRACE = 30.0
PRUNE_EVERY = 3600.0
"""Seconds between two prunes (``settings.retention``; the first tick prunes too)."""
STALL_AFTER = 30.0
"""Seconds without a tick after which ``/health`` says the loop is stuck (503)."""
CANCEL_WAIT = 120.0
"""Longest wait for cancelled executions to hand their tasks back, after the grace period."""
ACTOR = "aictl-daemon"
DECISIONS_EVERY = 10
"""Ticks between two counts of the decision records (a scan of the whole table)."""


@dataclass
class DaemonConfig:
    concurrency: int | None = None
    """None: the policy's ``settings.concurrency``, else ``DEFAULT_CONCURRENCY``."""
    port: int = 0
    tick: float = DEFAULT_TICK
    grace: float = DEFAULT_GRACE
    stall_after: float = STALL_AFTER
    console: TextIO | None = None
    """Where notifications and info-level log lines are echoed (the foreground console)."""
    environ: Mapping[str, str] | None = None
    dashboard_token: str | None = None
    """The secret that enables approvals from the dashboard (None: the pages are read-only)."""


@dataclass
class Running:
    task_id: int
    ai: str
    title: str
    paths: list[str]
    started_at: datetime
    started: float
    cancel: threading.Event = field(default_factory=threading.Event)
    thread: threading.Thread | None = None
    execution: Execution | None = None
    error: str | None = None
    denied: bool = False
    unavailable: bool = False
    """The AI's connector could not start: the AI was taken offline."""
    version: str = ""
    """The task's ``updated_at`` when dispatched: a denial holds until the task changes."""

    def to_dict(self, now: float) -> dict[str, Any]:
        return {
            "task": self.task_id,
            "ai": self.ai,
            "title": self.title,
            "started_at": format_time(self.started_at),
            "elapsed_seconds": round(now - self.started, 1),
        }


class Daemon:
    def __init__(
        self,
        workspace: Workspace,
        config: DaemonConfig | None = None,
        *,
        clock: Clock | None = None,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.workspace = workspace
        self.config = config or DaemonConfig()
        self.clock = clock or SystemClock()
        self.monotonic = monotonic
        self.paths = DaemonPaths.of(workspace)
        self.environ = dict(os.environ if self.config.environ is None else self.config.environ)
        self.metrics = Metrics()
        self.running: dict[int, Running] = {}
        self.concurrency = self.config.concurrency or DEFAULT_CONCURRENCY
        self.ticks = 0
        self.last_tick: datetime | None = None
        self.last_tick_at: float | None = None
        self.started_at = self.clock.now()
        self.started = monotonic()
        self.stopping = False
        self.port: int | None = None
        self.dashboard: DashboardApp | None = None
        self.counts: dict[str, int] = {}
        self._stop_requested = threading.Event()
        self._signals_received = 0
        self._signals_seen = 0
        self._immediate = threading.Event()
        self._wake = threading.Event()
        self._cancelled = False
        self._stop_deadline = 0.0
        self._tasks: dict[int, tuple[str, str | None]] | None = None
        self._since: str | None = None
        self._decisions: dict[str, int] = {}
        self._ais: dict[str, str] | None = None
        self._unroutable: dict[int, str] = {}
        self._denied: dict[int, tuple[str | None, str]] = {}
        """Tasks the policy denied: skipped until the policy or the task changes (each try
        would record one more denial)."""
        self._finished_here: set[int] = set()
        """Tasks whose end this daemon logged (``task.finished``) and has not notified yet:
        their notice repeats that line, so its own line is kept out of the text log."""
        self._lock = threading.Lock()
        self.journal: JsonLog | None = None
        self._over_budget: str | None = None
        self._spent = False
        """An execution ended since the spend metrics were last read."""
        self._kept: KeptEnforcer | None = None
        self.checkpoints: PeriodicCheckpoint | None = None
        """The policy's ``audit_checkpoint``, sent from the loop (see aictl.daemon.checkpoint)."""
        self._pruned_at: float | None = None
        """Why dispatch is paused for the daily budget (logged once), or None."""

    # ------------------------------------------------------------------ control

    def request_stop(self, immediate: bool = False) -> None:
        """Stop gracefully (the first request) or at once (``immediate``, or a second one).
        Only sets flags: safe from a signal handler."""
        if self._stop_requested.is_set() or immediate:
            self._immediate.set()
        self._stop_requested.set()
        self._wake.set()

    @property
    def stop_requested(self) -> bool:
        return self._stop_requested.is_set()

    def _on_signal(self, number: int, frame: FrameType | None) -> None:
        """Only counts: the loop turns signals into a stop request within one tick (a handler
        taking a lock the interrupted code holds would deadlock)."""
        del number, frame
        self._signals_received += 1

    @contextlib.contextmanager
    def _signals(self, install: bool) -> Iterator[None]:
        """SIGTERM and SIGINT request a stop while serving; the previous handlers after."""
        if not install:
            yield
            return
        previous = {
            number: signal.signal(number, self._on_signal)
            for number in (signal.SIGTERM, signal.SIGINT)
        }
        try:
            yield
        finally:
            for number, handler in previous.items():
                signal.signal(number, handler)

    # ------------------------------------------------------------------ the run

    def run(self, *, ready: Callable[[Daemon], None] | None = None, signals: bool = False) -> int:
        """Serve until stopped; returns the exit code (0). Raises ``DaemonRunning`` (exit 4)
        when another daemon holds the lock and ``InvalidPolicy`` (exit 2) when the policy does
        not validate at start. ``ready`` is called once serving; ``signals`` installs the
        SIGTERM and SIGINT handlers (main thread only)."""
        lock = InstanceLock(self.paths)
        lock.acquire()
        try:
            check = TaskService(self.workspace, clock=self.clock)
            try:
                check.enforcer.policy(None)  # a policy that never validated: refuse to start
            finally:
                check.close()
            with self._signals(signals):
                return self._serve(ready)
        finally:
            lock.release()

    def _serve(self, ready: Callable[[Daemon], None] | None) -> int:
        journal = self.journal = JsonLog(self.paths.log, clock=self.clock, echo=self.config.console)
        service = self._service()
        keeper = self.keeper = PolicyKeeper(journal)
        notifier = self.notifier = Notifier(journal, on_result=self.metrics.notification)
        from aictl.dashboard.app import DashboardApp

        self.dashboard = DashboardApp(self.workspace, self.config.dashboard_token, clock=self.clock)
        server = StatusServer(
            self.config.port, self.health, self.metrics.render, dashboard=self.dashboard
        )
        self.port = server.port
        self.checkpoints = PeriodicCheckpoint(
            self.workspace,
            journal,
            clock=self.clock,
            environ=self.environ,
            monotonic=self.monotonic,
        )
        listener = self._listener()
        try:
            self._reload(service, keeper, notifier, first=True)
            notifier.start()
            server.start()
            self._audit(service, "daemon.started")
            journal.info(
                "daemon.started",
                f"daemon {os.getpid()} serving {self.workspace.root} "
                f"(concurrency {self.concurrency}, {server.url}/health)",
                pid=os.getpid(),
                port=self.port,
                concurrency=self.concurrency,
                db=shown(self.workspace.database),
            )
            self._tick(service)
            if ready is not None:
                ready(self)
            while not self._loop_once(service):
                pass
            self._observe(service)
            self._write_state("stopped")
            self._audit(service, "daemon.stopped")
            self.checkpoints.finish(service.store.audit.head_seq())
            journal.info("daemon.stopped", f"daemon {os.getpid()} stopped", pid=os.getpid())
            return 0
        finally:
            if listener is not None:
                listener.close()
            notifier.close()
            server.stop()
            service.close()
            journal.close()

    def _listener(self) -> WorkListener | None:
        """On PostgreSQL, a thread that wakes the loop when another process (a daemon on
        another host, a command) makes work ready: LISTEN/NOTIFY instead of the next tick.
        The tick still runs (leases expire by time, which nobody announces)."""
        if self.workspace.url is None:
            return None
        from aictl.store.postgres import WorkListener

        listener = WorkListener(self.workspace.url, lambda reason: self._wake.set())
        listener.start()
        return listener

    def _loop_once(self, service: TaskService) -> bool:
        """One turn of the loop; True when the daemon may exit."""
        assert self.journal is not None
        while self._signals_seen < self._signals_received:
            self._signals_seen += 1
            self.request_stop()
        if self._stop_requested.is_set() and not self.stopping:
            self.stopping = True
            self._stop_deadline = self.monotonic() + self.config.grace
            self.journal.info(
                "daemon.stopping",
                f"stopping: no new claims; {len(self.running)} running task(s) get "
                f"{self.config.grace:g}s to finish",
                running=sorted(self.running),
            )
        overdue = self._immediate.is_set() or self.monotonic() >= self._stop_deadline
        if self.stopping and not self._cancelled and self.running and overdue:
            self._cancel_all()
        self._tick(service)
        if self.stopping and not self.running:
            return True
        if self._cancelled and self.monotonic() >= self._stop_deadline + CANCEL_WAIT:
            self.journal.error(
                "daemon.abandoned",
                "cancelled executions did not end; their leases will expire",
                tasks=sorted(self.running),
            )
            return True
        self._wake.wait(self.config.tick)
        self._wake.clear()
        return False

    def _cancel_all(self) -> None:
        assert self.journal is not None
        self._cancelled = True
        for entry in self.running.values():
            entry.cancel.set()
        self.journal.warning(
            "daemon.cancelling",
            f"interrupting {len(self.running)} running task(s); their leases are released",
            tasks=sorted(self.running),
        )

    def _tick(self, service: TaskService) -> None:
        """One tick (see the module docstring). A failing tick is logged, never fatal: a
        busy database or a bad row must not stop the daemon."""
        assert self.journal is not None
        try:
            self._reap()
            expired = service.sweep()
            for expiry in expired:
                self.metrics.lease_expiries.inc()
                self.journal.warning(
                    "lease.expired",
                    f"the lease of {expiry.holder} on task {expiry.task_id} expired; "
                    f"task {expiry.outcome}",
                    task=expiry.task_id,
                    holder=expiry.holder,
                    outcome=str(expiry.outcome),
                )
            self._reload(service, self.keeper, self.notifier)
            self._observe(service)
            if not self.stopping:
                self._dispatch(service)
            if self.checkpoints is not None:
                self.checkpoints.tick(service.store.audit.head_seq())
            self._prune()
        except Exception as error:
            self.journal.error(
                "tick.failed",
                f"tick failed: {type(error).__name__}: {error}",
                traceback=traceback.format_exc(),
            )
        self.ticks += 1
        self.last_tick = self.clock.now()
        self.last_tick_at = self.monotonic()
        self.metrics.last_tick.set(time.time())
        self.metrics.running.set(len(self.running))
        self._write_state("stopping" if self.stopping else "running")

    def _prune(self) -> None:
        """Once an hour (and at the first tick): ``aictl prune`` as the policy's
        ``settings.retention`` asks, the log rotated by the journal itself (see
        ``JsonLog.rotate``)."""
        now = self.monotonic()
        if self._pruned_at is not None and now - self._pruned_at < PRUNE_EVERY:
            return
        self._pruned_at = now
        from aictl.services.maintenance import prune

        assert self.journal is not None
        report = prune(self.workspace, clock=self.clock, rotate_log=False)
        if report.removed:
            self.journal.info(
                "prune.runs",
                f"pruned the run folders of {len(report.removed)} finished task(s)",
                tasks=[verdict.task_id for verdict in report.removed],
            )
        limit = report.retention.daemon_log_bytes
        if limit and self.journal.rotate(limit) is not None:
            self.journal.info("prune.log", f"rotated the daemon log past {limit:,} bytes")

    # ------------------------------------------------------------------ policy

    def _reload(
        self,
        service: TaskService,
        keeper: PolicyKeeper,
        notifier: Notifier,
        *,
        first: bool = False,
    ) -> None:
        result = keeper.check(service.enforcer)
        if result in ("loaded", "reloaded", "refused"):
            self.metrics.policy_reloads.labels(result).inc()
        if result not in ("loaded", "reloaded") and not first:
            return
        with contextlib.suppress(AictlError):
            policy = service.enforcer.policy(None)
            sections = [
                layer.data["notifications"]
                for layer in policy.layers
                if isinstance(layer.data.get("notifications"), Mapping)
            ]
            notifier.configure(
                channels_from(
                    merge_sections(sections), environ=self.environ, console=self.config.console
                )
            )
            if self.checkpoints is not None:
                self.checkpoints.configure(policy.setting("audit_checkpoint"))
            if self.config.concurrency is None:
                configured = policy.setting("concurrency")
                self.concurrency = int(configured) if configured else DEFAULT_CONCURRENCY

    # ------------------------------------------------------------------ observing

    def _observe(self, service: TaskService) -> None:
        """Read what changed since the last tick; notify transitions; refresh metrics.

        Only tasks updated since the newest change seen are read (rows at that same instant
        are read again and compared, so none is missed); a ``Task`` is built only for the
        few that changed."""
        self.counts = service.store.count_by_status()
        if self.ticks % DECISIONS_EVERY == 0 or self.stopping:
            # A scan of every decision record: every few seconds is enough for a counter.
            self._decisions = decisions_by_effect(service.db)
        if self.ticks % DECISIONS_EVERY == 0 or self.stopping or self._spent:
            # Cost and tokens per AI: a sum over every run, after each finished run here
            # and every few seconds for the runs of other processes.
            self._spent = False
            self.metrics.spend.update(SpendStore(service.db).totals_by_ai())
        self.metrics.snapshot.update(self.counts, self._decisions)
        first = self._tasks is None
        known = self._tasks if self._tasks is not None else {}
        for state in changed_since(service.db, self._since):
            now = (state.status, state.approval)
            before = known.get(state.id)
            known[state.id] = now
            if self._since is None or state.updated_at > self._since:
                self._since = state.updated_at
            if not first and before != now and state.status in ("done", "failed", "blocked"):
                self._notify_task(service.get(state.id), before)
        self._tasks = known
        ais = {ai.id: ai.status.value for ai in AIStore(service.db, self.clock).list_ais()}
        if self._ais is not None:
            for ai_id, status in ais.items():
                if status == AIStatus.QUARANTINED and self._ais.get(ai_id) != status:
                    self.metrics.quarantines.inc()
                    self.notifier.notify(
                        "ai.quarantined",
                        f"AI {ai_id} is quarantined after consecutive failed runs; "
                        f"`aictl ai status {ai_id} --set available` lifts it",
                        ai=ai_id,
                    )
        self._ais = ais

    def _notify_task(self, task: Task, before: tuple[str, str | None] | None) -> None:
        status = str(task.status)
        if before is not None and before[0] == status and status != "blocked":
            return
        label = f"task {task.id} ({task.title})"
        data: dict[str, Any] = {"task": task.id, "title": task.title, "status": status}
        # Run here: `task.finished` said it already (or will, once the thread is reaped).
        repeat = status in ("done", "failed") and (
            task.id in self.running or task.id in self._finished_here
        )
        self._finished_here.discard(task.id)
        if status == "done":
            by = task.lease_holder or "?"
            message = f"{label} done by {by}"
            self.notifier.notify("task.done", message, repeat=repeat, ai=by, **data)
        elif status == "failed":
            why = task.failure_reason or "failed"
            message = f"{label} failed: {why}"
            self.notifier.notify("task.failed", message, repeat=repeat, reason=why, **data)
        elif status == "blocked" and task.approval == "pending":
            if before is not None and before == (status, task.approval):
                return
            self.notifier.notify(
                "approval.needed",
                f"{label} awaits approval: `aictl task approve {task.id}`",
                reason=task.blocked_reason,
                **data,
            )
        elif status == "blocked" and (before is None or before[0] != "blocked"):
            why = task.blocked_reason or "blocked"
            self.notifier.notify("task.blocked", f"{label} is blocked: {why}", reason=why, **data)

    # ------------------------------------------------------------------ dispatching

    def _dispatch(self, service: TaskService) -> None:
        room = self.concurrency - len(self.running)
        if room <= 0 or self._budget_spent(service):
            return
        # The head of the ready index, enough to fill the room past tasks skipped for locks,
        # denials or busy AIs; never the whole queue.
        limit = room * 8 + 32 + len(self._denied)
        head = ready_head(service.db, format_time(self.clock.now()), limit)
        if not head:
            return
        ready = [service.get(task_id) for task_id in head if task_id not in self.running]
        held = [lock.glob for lock in service.locks()]
        store = AIStore(service.db, self.clock)
        store.refresh_busy()  # from the leases held now: a dead run cannot leave an AI busy
        ais = store.list_ais()
        stored_load = store.load()
        inflight = Counter(entry.ai for entry in self.running.values())
        held += [glob for entry in self.running.values() for glob in entry.paths]
        for task in ready:
            if room <= 0:
                break
            if task.id in self.running or (task.paths and globs.has_conflict(task.paths, held)):
                continue
            if self._denied.get(task.id) == (self.keeper.hash, format_time(task.updated_at)):
                continue
            load = {ai.id: max(stored_load.get(ai.id, 0), inflight[ai.id]) for ai in ais}
            answer = route(task, ais, load)
            if answer.ai is None:
                self._note_unroutable(task, answer.to_dict())
                continue
            self._unroutable.pop(task.id, None)
            self._start(task, answer.ai)
            room -= 1
            inflight[answer.ai] += 1
            held += task.paths

    def _budget_spent(self, service: TaskService) -> bool:
        """Whether today's spend reached the daily budget; logged (and notified) once when
        dispatch pauses, and once when it resumes. The executor checks again before each
        claim, with the AI's own policy, and records its refusal."""
        assert self.journal is not None
        if self._kept is None:  # the policy in force: the last valid one while a file is not
            self._kept = KeptEnforcer(self.workspace, service.store, self.keeper)
        why = daily_budget_refusal(service, self._kept.policy(None))
        if why is not None and self._over_budget is None:
            self.notifier.notify(
                "budget.daily_reached",
                f"no task is dispatched: {why}; it resets at 00:00 UTC",
            )
            self.journal.warning("budget.daily_reached", f"dispatch paused: {why}")
        elif why is None and self._over_budget is not None:
            self.journal.info("budget.daily_available", "dispatch resumed: within the daily budget")
        self._over_budget = why
        return why is not None

    def _note_unroutable(self, task: Task, answer: dict[str, Any]) -> None:
        """Log why no AI can take a ready task, once per distinct reason."""
        assert self.journal is not None
        why = (
            "; ".join(f"{c['ai']}: {', '.join(c['reasons'])}" for c in answer["candidates"])
            or "no AI is registered"
        )
        if self._unroutable.get(task.id) != why:
            self._unroutable[task.id] = why
            self.journal.debug(
                "task.waiting_for_ai", f"task {task.id} waits for an AI: {why}", task=task.id
            )

    def _start(self, task: Task, ai: str) -> None:
        assert self.journal is not None
        entry = Running(
            task.id, ai, task.title, list(task.paths), self.clock.now(), self.monotonic()
        )
        entry.thread = threading.Thread(
            target=self._execute, args=(entry,), name=f"task-{task.id}", daemon=True
        )
        entry.version = format_time(task.updated_at)
        self.running[task.id] = entry
        self.journal.info(
            "task.dispatched", f"task {task.id} ({task.title}) -> {ai}", task=task.id, ai=ai
        )
        entry.thread.start()

    def _service(self) -> TaskService:
        service = TaskService(self.workspace, clock=self.clock)
        keeper = getattr(self, "keeper", None)
        if keeper is not None:
            service.enforcer = KeptEnforcer(self.workspace, service.store, keeper)
        return service

    def _execute(self, entry: Running) -> None:
        """The body of an execution thread: its own connection, one ``execute``."""
        assert self.journal is not None
        journal = self.journal
        service = self._service()
        try:

            def progress(text: str) -> None:
                journal.info("task.progress", text.strip(), task=entry.task_id, ai=entry.ai)

            executor = Executor(service, environ=self.environ, progress=progress)
            entry.execution = executor.execute(entry.task_id, ai=entry.ai, cancel=entry.cancel)
        except ApprovalRequired as error:
            entry.error = error.message
            journal.info("task.awaiting_approval", error.message, task=entry.task_id)
        except LeaseLost as error:
            entry.error = error.message
            journal.warning("task.lease_lost", error.message, task=entry.task_id, ai=entry.ai)
        except (NothingReady, Contention) as error:
            entry.error = error.message
            journal.info("task.not_claimed", error.message, task=entry.task_id, ai=entry.ai)
        except PolicyDenied as error:
            entry.error = error.message
            entry.denied = True
            journal.warning("task.denied", error.message, task=entry.task_id, ai=entry.ai)
        except ConnectorError as error:
            entry.error = error.message
            entry.unavailable = True
            self._take_offline(service, entry.ai, error)
        except AictlError as error:
            entry.error = error.message
            journal.warning("task.error", error.message, task=entry.task_id, ai=entry.ai)
        except Exception as error:
            entry.error = f"{type(error).__name__}: {error}"
            journal.error(
                "task.crashed",
                f"execution of task {entry.task_id} crashed: {entry.error}",
                task=entry.task_id,
                traceback=traceback.format_exc(),
            )
        finally:
            service.close()
            self._wake.set()

    def _take_offline(self, service: TaskService, ai: str, error: ConnectorError) -> None:
        """The AI's connector cannot start (its program is missing or cannot run): set the AI
        offline, keeping the error in its health, and say what to do. The task was released
        by the executor with its attempt given back."""
        assert self.journal is not None
        store = AIStore(service.db, self.clock, actor=ACTOR)
        try:
            health = {**store.get(ai).health, "last_error": error.message[:1000]}
            store.set_status(ai, AIStatus.OFFLINE, health=health)
        except AictlError as failed:  # removed meanwhile: nothing left to take offline
            self.journal.warning("ai.not_offline", f"AI {ai} not set offline: {failed.message}")
            return
        self.notifier.notify(
            "ai.offline",
            f"AI {ai} is offline, its agent cannot start: {error.message}. Once it is "
            f"installed, `aictl ai status {ai} --set available` (or `aictl ai register {ai} "
            "--replace ...`, which detects it again) puts it back to work",
            ai=ai,
        )

    def _reap(self) -> None:
        """Collect finished execution threads: metrics and a log line for each."""
        assert self.journal is not None
        for task_id, entry in list(self.running.items()):
            if entry.thread is None or entry.thread.is_alive():
                continue
            entry.thread.join()
            del self.running[task_id]
            self._spent = True
            if entry.denied:
                self._denied[task_id] = (self.keeper.hash, entry.version)
            done = entry.execution
            if done is None:
                continue
            elapsed = self.monotonic() - entry.started
            self.metrics.claims.inc()
            self.metrics.executions.labels(done.outcome).inc()
            self.metrics.duration.labels(done.outcome).observe(elapsed)
            cost = (done.evidence.get("agent") or {}).get("total_cost_usd")
            if done.outcome in ("done", "failed"):
                self._finished_here.add(task_id)
            self.journal.info(
                "task.finished",
                f"task {task_id} {done.outcome} ({done.ai}, {elapsed:.1f}s)"
                + (f": {done.reason}" if done.reason else ""),
                task=task_id,
                ai=done.ai,
                outcome=done.outcome,
                attempt=done.attempt,
                seconds=round(elapsed, 3),
                cost_usd=cost,
            )

    # ------------------------------------------------------------------ reporting

    def _audit(self, service: TaskService, kind: str) -> None:
        data = {"pid": os.getpid(), "concurrency": self.concurrency, "port": self.port}
        with service.db.transaction():
            service.store.audit.append(self.clock.now(), kind, ACTOR, None, data)

    def health(self) -> dict[str, Any]:
        """What ``/health`` serves and ``daemon.json`` holds."""
        now = self.monotonic()
        age = None if self.last_tick_at is None else now - self.last_tick_at
        if self.stopping:
            status = "stopping"
        elif age is None or age > self.config.stall_after:
            status = "stuck"
        else:
            status = "ok"
        running = [entry.to_dict(now) for entry in list(self.running.values())]
        return {
            "status": status,
            "pid": os.getpid(),
            "root": str(self.workspace.root),
            "started_at": format_time(self.started_at),
            "uptime_seconds": round(now - self.started, 1),
            "last_tick": format_time(self.last_tick) if self.last_tick else None,
            "last_tick_age_seconds": None if age is None else round(age, 3),
            "ticks": self.ticks,
            "queue_size": self.counts.get("queued", 0),
            "queue": dict(self.counts),
            "running": len(running),
            "running_tasks": running,
            "concurrency": self.concurrency,
            "port": self.port,
            "policy_hash": getattr(getattr(self, "keeper", None), "hash", None),
        }

    def _write_state(self, status: str) -> None:
        import json

        state = self.health()
        state["daemon"] = status
        state["log"] = str(self.paths.log)
        try:
            write_atomically(self.paths.state, json.dumps(state, indent=1) + "\n")
        except OSError as error:
            assert self.journal is not None
            self.journal.error("state.unwritable", f"cannot write {self.paths.state}: {error}")
