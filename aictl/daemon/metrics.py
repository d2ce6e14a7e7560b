"""The daemon's Prometheus metrics, on a registry of its own (never the process-global one).

Counters for what the daemon did (claims, executions and their durations, quarantines, lease
expiries, notifications); tasks by status, decisions by effect, and the cost and tokens of the
runs per AI are read from the state database and served as they were last read, so they count
the work of every process on the database, not only this daemon's.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Mapping

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    disable_created_metrics,
    generate_latest,
)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from aictl.store.spend import Spend

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
# The ``*_created`` series double every counter for no use here (the daemon's start time is in
# /health); this process serves one registry, the daemon's.
disable_created_metrics()  # type: ignore[no-untyped-call]

DURATION_BUCKETS = (1, 2, 5, 10, 30, 60, 120, 300, 600, 1800, 3600)


class _Snapshot(Collector):
    """Tasks by status and decisions by effect, as last read from the database."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._tasks: dict[str, int] = {}
        self._decisions: dict[str, int] = {}

    def update(self, tasks: Mapping[str, int], decisions: Mapping[str, int]) -> None:
        with self._lock:
            self._tasks, self._decisions = dict(tasks), dict(decisions)

    def collect(self) -> Iterator[Metric]:
        with self._lock:
            tasks, decisions = dict(self._tasks), dict(self._decisions)
        by_status = GaugeMetricFamily(
            "aictl_tasks", "Tasks in the state database, by status.", labels=["status"]
        )
        for status in ("queued", "claimed", "running", "done", "failed", "blocked", "cancelled"):
            by_status.add_metric([status], tasks.get(status, 0))
        yield by_status
        by_effect = CounterMetricFamily(
            "aictl_decisions",
            "Policy decision records in the state database, by effect.",
            labels=["effect"],
        )
        for effect in ("allow", "deny", "require_approval"):
            by_effect.add_metric([effect], decisions.get(effect, 0))
        yield by_effect


class _Spend(Collector):
    """Cost (USD) and tokens of every recorded run, per AI, as last read from the database.
    Counters: the rows are never deleted, so the sums only grow."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._by_ai: dict[str, Spend] = {}

    def update(self, by_ai: Mapping[str, Spend]) -> None:
        with self._lock:
            self._by_ai = dict(by_ai)

    def collect(self) -> Iterator[Metric]:
        with self._lock:
            by_ai = dict(self._by_ai)
        cost = CounterMetricFamily(
            "aictl_cost_usd", "Agent cost reported by the runs, USD, per AI.", labels=["ai"]
        )
        tokens = CounterMetricFamily(
            "aictl_tokens",
            "Tokens reported by the runs, per AI and direction (input, output).",
            labels=["ai", "direction"],
        )
        for ai, spend in sorted(by_ai.items()):
            cost.add_metric([ai], spend.cost_usd)
            tokens.add_metric([ai, "input"], spend.input_tokens)
            tokens.add_metric([ai, "output"], spend.output_tokens)
        yield cost
        yield tokens


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.snapshot = _Snapshot()
        self.registry.register(self.snapshot)
        self.spend = _Spend()
        self.registry.register(self.spend)
        r = self.registry
        self.claims = Counter("aictl_claims", "Tasks the daemon claimed and ran.", registry=r)
        self.executions = Counter(
            "aictl_executions", "Executions finished, by outcome.", ["outcome"], registry=r
        )
        self.duration = Histogram(
            "aictl_execution_duration_seconds",
            "Wall time of an execution, claim to outcome.",
            ["outcome"],
            buckets=DURATION_BUCKETS,
            registry=r,
        )
        self.quarantines = Counter("aictl_quarantines", "AIs seen quarantined.", registry=r)
        self.lease_expiries = Counter(
            "aictl_lease_expiries", "Expired leases returned by the daemon's sweep.", registry=r
        )
        self.notifications = Counter(
            "aictl_notifications", "Notification deliveries.", ["channel", "result"], registry=r
        )
        self.running = Gauge("aictl_running_tasks", "Executions in progress.", registry=r)
        self.last_tick = Gauge(
            "aictl_last_tick_timestamp_seconds", "Unix time of the loop's last tick.", registry=r
        )
        self.policy_reloads = Counter(
            "aictl_policy_reloads", "Policy changes, by result.", ["result"], registry=r
        )

    def notification(self, channel: str, ok: bool) -> None:
        self.notifications.labels(channel, "sent" if ok else "failed").inc()

    def render(self) -> bytes:
        return generate_latest(self.registry)
