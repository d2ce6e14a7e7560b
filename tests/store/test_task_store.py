"""The task store against a real SQLite file: claims, fencing, expiry, dependencies, locks."""

from __future__ import annotations

import json
import sqlite3
import threading
from datetime import UTC, datetime, timedelta

import pytest

from aictl.clock import ManualClock
from aictl.domain import globs
from aictl.domain.durations import parse_duration
from aictl.domain.globs import GlobTooComplex
from aictl.domain.tasks import LeaseToken, Status, format_time
from aictl.errors import (
    DependencyCycle,
    IllegalTransition,
    LeaseLost,
    LockHeld,
    NothingReady,
    TaskHeld,
    TaskNotFound,
)
from aictl.services.tasks import DEFAULT_TTL, TaskService
from aictl.store.db import connect
from aictl.store.tasks import READY_CANDIDATES, Claim, NewTask
from aictl.workspace import Workspace

TTL = "1m"


@pytest.fixture(params=["policy", "store"])
def service(
    request: pytest.FixtureRequest, service: TaskService, monkeypatch: pytest.MonkeyPatch
) -> TaskService:
    """Every test here runs its claims of the next ready task two ways: through the service,
    which asks the policy about each candidate (the store's Python claim on both backends),
    and straight through ``TaskStore.claim`` without a policy, which PostgreSQL runs as one
    server-side function (``aictl_claim``). Same order, same locks, same refusals."""
    if request.param == "store":
        asked = service.claim

        def claim(holder: str, *, ttl: str | None = None, task_id: int | None = None) -> Claim:
            if task_id is not None:
                return asked(holder, ttl=ttl, task_id=task_id)
            return service.store.claim(holder, parse_duration(ttl) if ttl else DEFAULT_TTL)

        monkeypatch.setattr(service, "claim", claim)
    return service


def snapshot(service: TaskService) -> list[tuple[object, ...]]:
    """Every row of every task table, to prove a refused request changed nothing."""
    connection = service.db.connection
    rows: list[tuple[object, ...]] = []
    for table in ("tasks", "task_deps", "path_locks"):
        rows += [(table, *row) for row in connection.execute(f"SELECT * FROM {table} ORDER BY 1")]
    return rows


def run_to_done(service: TaskService, task_id: int, holder: str = "w") -> None:
    claim = service.claim(holder, ttl=TTL, task_id=task_id)
    service.start(claim.token)
    service.complete(claim.token, result="ok")


# ------------------------------------------------------------------- claim order


def test_claim_takes_highest_priority_then_oldest(service: TaskService) -> None:
    low = service.create("low", priority=0)
    high_old = service.create("high old", priority=5)
    service.create("high new", priority=5)
    assert service.claim("w", ttl=TTL).task.id == high_old.id
    assert service.claim("w", ttl=TTL).task.title == "high new"
    assert service.claim("w", ttl=TTL).task.id == low.id


def test_claim_sets_lease_and_counts_attempt(service: TaskService, clock: ManualClock) -> None:
    task = service.create("t")
    claim = service.claim("agent-1", ttl="90s")
    assert (claim.token.task_id, claim.token.epoch) == (task.id, 1)
    assert len(claim.token.secret) >= 24
    assert claim.task.status is Status.CLAIMED
    assert claim.task.lease_holder == "agent-1"
    assert claim.task.attempts == 1
    assert claim.task.lease_expires_at == clock.now() + timedelta(seconds=90)


@pytest.mark.sqlite_only  # EXPLAIN QUERY PLAN; PostgreSQL plans by its statistics
def test_ready_query_walks_the_partial_index(service: TaskService) -> None:
    plan = " ".join(
        str(row[-1])
        for row in service.db.connection.execute(
            "EXPLAIN QUERY PLAN " + READY_CANDIDATES, (format_time(datetime.now(UTC)),)
        )
    )
    assert "tasks_ready" in plan
    assert "TEMP B-TREE" not in plan  # no sort of the whole table per claim


def test_claimed_task_cannot_be_claimed_again(service: TaskService) -> None:
    task = service.create("t")
    service.claim("a", ttl=TTL, task_id=task.id)
    with pytest.raises(TaskHeld, match="claimed by a") as caught:
        service.claim("b", ttl=TTL, task_id=task.id)
    assert caught.value.exit_code == 4


# -------------------------------------------------------------- nothing ready


def test_nothing_ready_says_queue_is_empty(service: TaskService) -> None:
    with pytest.raises(NothingReady, match="the queue is empty") as caught:
        service.claim("w", ttl=TTL)
    assert caught.value.exit_code == 5


def test_nothing_ready_says_waiting_on_dependencies(service: TaskService) -> None:
    first = service.create("first")
    service.create("second", depends_on=[first.id])
    service.claim("w", ttl=TTL)
    with pytest.raises(NothingReady, match=r"1 queued task.* wait on dependencies"):
        service.claim("w", ttl=TTL)


def test_nothing_ready_says_blocked_by_locks(service: TaskService) -> None:
    service.create("a", paths=["src/**"])
    service.create("b", paths=["src/x/*.py"])
    service.claim("w", ttl=TTL)
    with pytest.raises(NothingReady, match=r"1 ready task.* blocked by path locks"):
        service.claim("w", ttl=TTL)


def test_claim_by_id_waiting_on_dependency(service: TaskService) -> None:
    first = service.create("first")
    second = service.create("second", depends_on=[first.id])
    with pytest.raises(NothingReady, match=f"waits on {first.id} \\(queued\\)"):
        service.claim("w", ttl=TTL, task_id=second.id)


# ----------------------------------------------------------------------- locks


def test_next_ready_skips_a_locked_task_and_takes_a_free_one(service: TaskService) -> None:
    service.create("holder", paths=["src/*/a.py"], priority=9)
    service.create("conflicting", paths=["src/x/*.py"], priority=5)
    free = service.create("free", paths=["docs/*.md"], priority=1)
    service.claim("w1", ttl=TTL)
    assert service.claim("w2", ttl=TTL).task.id == free.id


def test_the_walk_reads_past_many_pages_of_locked_tasks_in_order(service: TaskService) -> None:
    """The ready queue is read in doubling pages (8, 16, 32, ...): the free task behind 40
    blocked ones (past the third page) is found, nothing ahead of it is skipped, and the
    refusal at the end counts all 40."""
    service.create("holder", paths=["src/**"], priority=9)
    for index in range(40):
        service.create(f"blocked {index}", paths=[f"src/{index}.py"], priority=5)
    free = service.create("free", paths=["docs/*.md"], priority=1)
    service.create("later", paths=["tests/**"], priority=0)
    service.claim("w1", ttl=TTL)
    assert service.claim("w2", ttl=TTL).task.id == free.id
    assert service.claim("w3", ttl=TTL).task.title == "later"
    with pytest.raises(NothingReady, match=r"40 ready task\(s\) are blocked by path locks"):
        service.claim("w4", ttl=TTL)


def test_claim_by_id_with_conflicting_lock_names_the_holder(service: TaskService) -> None:
    holder = service.create("holder", paths=["src/*/a.py"])
    wanted = service.create("wanted", paths=["src/x/*.py"])
    service.claim("w1", ttl=TTL, task_id=holder.id)
    before = snapshot(service)
    with pytest.raises(LockHeld, match=f"held by task {holder.id}.*src/x/a.py") as caught:
        service.claim("w2", ttl=TTL, task_id=wanted.id)
    assert caught.value.exit_code == 4
    assert snapshot(service) == before


def test_a_lock_check_over_its_budget_refuses_the_claim_and_changes_nothing(
    service: TaskService, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The claim checks globs inside its write transaction: a check that would run past its
    # budget must refuse the claim with a clear error (exit 2), not hold every writer up.
    holder = service.create("holder", paths=["lib/*.py"])
    wanted = service.create("wanted", paths=["lib/q*"])
    service.claim("w1", ttl=TTL, task_id=holder.id)
    before = snapshot(service)
    # cold caches: the same pair's answer may be cached by this test on the other backend
    for cache in (globs._pair_overlaps, globs._pair_search_overlaps, globs._pair_witness):
        cache.cache_clear()
    monkeypatch.setattr(globs, "OVERLAP_BUDGET", 1)
    for task_id in (wanted.id, None):
        with pytest.raises(GlobTooComplex, match=r"'lib/\*\.py'.*'lib/q\*'") as caught:
            service.claim("w2", ttl=TTL, task_id=task_id)
        assert caught.value.exit_code == 2
        assert snapshot(service) == before
    monkeypatch.setattr(globs, "OVERLAP_BUDGET", 50_000)
    with pytest.raises(LockHeld, match=r"both cover 'lib/q\.py'"):
        service.claim("w2", ttl=TTL, task_id=wanted.id)


def test_locks_are_held_while_leased_and_released_after(service: TaskService) -> None:
    task = service.create("t", paths=["src/**", "docs/*.md"])
    claim = service.claim("w", ttl=TTL)
    assert [(lock.task_id, lock.glob, lock.lease_epoch) for lock in service.locks()] == [
        (task.id, "docs/*.md", 1),
        (task.id, "src/**", 1),
    ]
    conflicts = service.check_locks(["src/a/b.py", "README.md"])
    assert [(c.glob, c.held, c.witness) for c in conflicts] == [
        ("src/a/b.py", "src/**", "src/a/b.py")
    ]
    service.start(claim.token)
    service.complete(claim.token)
    assert service.locks() == []
    assert service.check_locks(["src/a/b.py"]) == []


def test_list_ready_excludes_lock_blocked_tasks(service: TaskService) -> None:
    service.create("holder", paths=["src/**"])
    service.create("blocked by lock", paths=["src/a.py"])
    free = service.create("free")
    service.claim("w", ttl=TTL)
    assert [task.id for task in service.list_tasks(ready=True)] == [free.id]


# -------------------------------------------------------------------- fencing


def test_stale_holder_is_refused_and_changes_nothing(
    service: TaskService, clock: ManualClock
) -> None:
    task = service.create("t", paths=["src/**"])
    old = service.claim("old", ttl=TTL).token
    clock.advance(61)
    new = service.claim("new", ttl=TTL).token
    assert new.epoch == old.epoch + 1
    before = snapshot(service)
    for write in (service.heartbeat, service.start, service.release):
        with pytest.raises(LeaseLost, match=r"stale: task .* claimed again .*new") as caught:
            write(old)
        assert caught.value.exit_code == 4
    with pytest.raises(LeaseLost):
        service.complete(old, result="stolen")
    with pytest.raises(LeaseLost):
        service.fail(old, reason="stolen")
    assert snapshot(service) == before
    service.start(new)
    assert service.complete(new).status is Status.DONE
    assert service.get(task.id).attempts == 2


def test_a_stale_lease_says_who_holds_the_task_now_and_hints_by_its_status(
    service: TaskService, clock: ManualClock
) -> None:
    service.create("t")
    old = service.claim("old", ttl=TTL).token
    clock.advance(61)
    run_to_done(service, 1, holder="new")  # the task was claimed again and is done now
    with pytest.raises(LeaseLost) as caught:
        service.heartbeat(old)
    assert "holder None" not in caught.value.message
    assert "(epoch 2; nobody holds it now, it is done)" in caught.value.message
    assert caught.value.hint is not None
    assert "claim" not in caught.value.hint and "the task is done" in caught.value.hint


def test_a_lease_lost_to_a_failure_hints_at_a_retry(service: TaskService) -> None:
    service.create("t", max_attempts=1)
    token = service.claim("w", ttl=TTL).token
    service.fail(token, reason="broken")
    with pytest.raises(LeaseLost, match="is failed") as caught:
        service.heartbeat(token)
    assert caught.value.hint == "`aictl task retry 1` queues it again if it is still wanted"


def test_expired_lease_is_refused_even_before_anyone_reclaims(
    service: TaskService, clock: ManualClock
) -> None:
    service.create("t")
    token = service.claim("w", ttl="30s").token
    clock.advance(30)  # exactly at the expiry the lease is no longer live
    with pytest.raises(LeaseLost, match="expired at"):
        service.heartbeat(token)


def test_heartbeat_extends_by_the_claimed_ttl(service: TaskService, clock: ManualClock) -> None:
    service.create("t")
    token = service.claim("w", ttl="30s").token
    clock.advance(20)
    task = service.heartbeat(token)
    assert task.lease_expires_at == clock.now() + timedelta(seconds=30)
    clock.advance(20)  # 40 s after the claim: alive thanks to the heartbeat
    assert service.heartbeat(token, ttl="5m").lease_expires_at == clock.now() + timedelta(minutes=5)


def test_cancel_ends_the_holders_lease(service: TaskService) -> None:
    task = service.create("t", paths=["a/**"])
    token = service.claim("w", ttl=TTL).token
    service.cancel(task.id, reason="not needed")
    with pytest.raises(LeaseLost, match="is cancelled"):
        service.start(token)
    assert service.locks() == []


def test_complete_requires_running(service: TaskService) -> None:
    service.create("t")
    token = service.claim("w", ttl=TTL).token
    with pytest.raises(IllegalTransition, match="cannot complete a claimed task"):
        service.complete(token)


def test_unknown_task_in_token(service: TaskService) -> None:
    with pytest.raises(TaskNotFound):
        service.heartbeat(LeaseToken(99, 1, "x"))


def test_only_the_holder_of_the_secret_can_use_a_live_lease(service: TaskService) -> None:
    """Task and epoch are public (audit rows name them): a token built from them with any
    other secret is refused by the fenced SQL, for every holder write, and changes nothing."""
    task = service.create("t", paths=["src/**"])
    claim = service.claim("agent-1", ttl=TTL)
    guessed = LeaseToken(task.id, claim.token.epoch, "guessed")
    before = snapshot(service)
    for write in (
        service.heartbeat,
        service.start,
        service.release,
        lambda token: service.fail(token, reason="x"),
    ):
        with pytest.raises(LeaseLost, match="wrong secret") as caught:
            write(guessed)
        assert caught.value.exit_code == 4 and "guessed" not in caught.value.message
    assert snapshot(service) == before
    service.start(claim.token)
    with pytest.raises(LeaseLost, match="wrong secret"):
        service.complete(guessed)
    assert service.complete(claim.token).status is Status.DONE


def test_the_secret_is_stored_only_as_a_hash_and_never_audited(service: TaskService) -> None:
    service.create("t")
    claim = service.claim("agent-1", ttl=TTL)
    service.start(claim.token)
    service.heartbeat(claim.token)
    service.complete(claim.token, result="ok")
    secret = claim.token.secret
    connection = service.db.connection
    stored = connection.execute("SELECT lease_secret_hash FROM tasks").fetchone()[0]
    assert stored == claim.token.secret_hash and stored != secret
    everything = [
        str(row)
        for table in ("tasks", "audit_log", "decisions")
        for row in connection.execute(f"SELECT * FROM {table}")
    ]
    assert everything and not [row for row in everything if secret in row]


def test_two_claims_of_one_task_get_different_secrets(service: TaskService) -> None:
    task = service.create("t")
    first = service.claim("a", ttl=TTL)
    service.release(first.token)
    second = service.claim("b", ttl=TTL, task_id=task.id)
    assert first.token.secret != second.token.secret
    with pytest.raises(LeaseLost, match="stale"):
        service.heartbeat(first.token)


# --------------------------------------------------------------- expiry sweep


def test_expired_lease_returns_task_with_attempt_counted(
    service: TaskService, clock: ManualClock
) -> None:
    task = service.create("t", paths=["src/**"], max_attempts=2)
    service.claim("dead", ttl="10s")
    clock.advance(11)
    expiries = service.sweep()
    assert [(e.task_id, e.holder, e.outcome) for e in expiries] == [
        (task.id, "dead", Status.QUEUED)
    ]
    after = service.get(task.id)
    assert (after.status, after.attempts) == (Status.QUEUED, 1)
    assert "lease of dead (epoch 1) expired" in (after.failure_reason or "")
    assert service.locks() == []


def test_a_sweep_that_finds_nothing_expired_waits_for_no_writer(
    service: TaskService, workspace: Workspace, clock: ManualClock
) -> None:
    """Every daemon sweeps at every tick: one that finds nothing must not wait for the writer
    lock (on PostgreSQL an exclusive one, which would queue every host's claims behind it).
    Another connection holds the writer lock from before the sweep until it has returned."""
    task = service.create("t")
    service.claim("live", ttl="10s")
    clock.advance(5)
    held, swept = threading.Event(), threading.Event()
    outcome: list[str] = []

    def hold_the_writer_lock() -> None:
        other = connect(workspace.database)
        try:
            with other.transaction() as connection:
                connection.execute("UPDATE tasks SET priority = 1 WHERE id = ?", (task.id,))
                held.set()
                # Held until the sweep has returned, or 10 s at most: a sweep queued behind
                # this lock cannot return before then (10 s: below PostgreSQL's 15 s limit on
                # an idle transaction, which would end this session and free the lock).
                outcome.append("swept while held" if swept.wait(timeout=10) else "gave up")
        finally:
            other.close()

    holder = threading.Thread(target=hold_the_writer_lock)
    holder.start()
    try:
        assert held.wait(timeout=30)
        found = service.sweep()
    finally:
        swept.set()
        holder.join(timeout=60)
    assert found == []
    assert outcome == ["swept while held"], "the sweep waited for the other writer"
    clock.advance(6)  # the lease is past its TTL now: swept as before
    assert [e.task_id for e in service.sweep()] == [task.id]


def test_expiry_past_max_attempts_fails_and_blocks_dependents(
    service: TaskService, clock: ManualClock
) -> None:
    task = service.create("t", max_attempts=1)
    child = service.create("child", depends_on=[task.id])
    service.claim("dead", ttl="10s", task_id=task.id)
    clock.advance(11)
    with pytest.raises(NothingReady):  # the claim sweeps first, then finds nothing ready
        service.claim("w", ttl=TTL)
    assert service.get(task.id).status is Status.FAILED
    assert service.get(child.id).status is Status.BLOCKED
    assert service.get(child.id).blocked_reason == f"dependency {task.id} is failed"


# ------------------------------------------------------------------- failures


def test_fail_requeues_while_attempts_remain(service: TaskService) -> None:
    task = service.create("t", max_attempts=2)
    token = service.claim("w", ttl=TTL).token
    assert service.fail(token, reason="flaky").status is Status.QUEUED
    token = service.claim("w", ttl=TTL).token
    failed = service.fail(token, reason="again")
    assert (failed.status, failed.attempts, failed.failure_reason) == (Status.FAILED, 2, "again")
    assert service.get(task.id).finished_at is not None


def test_fail_without_retry_fails_at_once(service: TaskService) -> None:
    service.create("t", max_attempts=5)
    token = service.claim("w", ttl=TTL).token
    assert service.fail(token, reason="bad", retry=False).status is Status.FAILED


def test_a_requeue_with_backoff_is_skipped_until_not_before(
    service: TaskService, clock: ManualClock
) -> None:
    backing = service.create("flaky", priority=5)
    other = service.create("other")
    token = service.claim("w", ttl=TTL, task_id=backing.id).token
    requeued = service.fail(token, reason="api 500", backoff=timedelta(seconds=30))
    assert requeued.status is Status.QUEUED
    assert requeued.not_before == clock.now() + timedelta(seconds=30)
    assert requeued.to_dict()["not_before"] == format_time(clock.now() + timedelta(seconds=30))
    assert [task.id for task in service.list_tasks(ready=True)] == [other.id]
    # the higher-priority task waits: the walk takes the other one
    assert service.claim("w", ttl=TTL).task.id == other.id
    with pytest.raises(NothingReady, match=r"1 task\(s\) wait for a retry backoff") as caught:
        service.claim("w", ttl=TTL)
    assert "2026-01-01 00:00:30 UTC" in caught.value.message
    clock.advance(29)
    with pytest.raises(NothingReady, match="retry backoff until 2026-01-01 00:00:30 UTC"):
        service.claim("w", ttl=TTL, task_id=backing.id)
    clock.advance(1)
    assert [task.id for task in service.list_tasks(ready=True)] == [backing.id]
    again = service.claim("w", ttl=TTL)
    assert (again.task.id, again.task.attempts, again.task.not_before) == (backing.id, 2, None)


def test_a_requeue_without_backoff_is_ready_at_once(service: TaskService) -> None:
    task = service.create("t")
    token = service.claim("w", ttl=TTL).token
    assert service.fail(token, reason="flaky").not_before is None
    assert service.claim("w", ttl=TTL, task_id=task.id).task.attempts == 2


def test_the_requeue_event_records_not_before(service: TaskService, clock: ManualClock) -> None:
    service.create("t")
    token = service.claim("w", ttl=TTL).token
    service.fail(token, reason="flaky", backoff=timedelta(minutes=2))
    row = service.db.connection.execute(
        "SELECT data FROM audit_log WHERE kind = 'task.requeued'"
    ).fetchone()
    assert json.loads(row[0])["not_before"] == format_time(clock.now() + timedelta(minutes=2))


def test_release_does_not_count_the_attempt(service: TaskService) -> None:
    task = service.create("t")
    service.release(service.claim("w", ttl=TTL).token)
    again = service.get(task.id)
    assert (again.status, again.attempts, again.lease_epoch) == (Status.QUEUED, 0, 1)


# --------------------------------------------------------------- dependencies


def test_completion_makes_dependents_ready(service: TaskService) -> None:
    first = service.create("first")
    second = service.create("second", depends_on=[first.id])
    assert [task.id for task in service.list_tasks(ready=True)] == [first.id]
    run_to_done(service, first.id)
    assert [task.id for task in service.list_tasks(ready=True)] == [second.id]


def test_failure_blocks_dependents_transitively_and_retry_unblocks(service: TaskService) -> None:
    root = service.create("root", max_attempts=1)
    child = service.create("child", depends_on=[root.id])
    grandchild = service.create("grandchild", depends_on=[child.id])
    token = service.claim("w", ttl=TTL, task_id=root.id).token
    service.fail(token, reason="broken")
    assert service.get(child.id).status is Status.BLOCKED
    assert service.get(grandchild.id).blocked_reason == f"dependency {child.id} is blocked"
    retried = service.retry(root.id)
    assert (retried.status, retried.attempts, retried.failure_reason) == (Status.QUEUED, 0, None)
    assert service.get(child.id).status is Status.QUEUED
    assert service.get(grandchild.id).status is Status.QUEUED
    run_to_done(service, root.id)
    run_to_done(service, child.id)
    run_to_done(service, grandchild.id)


def test_cancel_blocks_dependents(service: TaskService) -> None:
    first = service.create("first")
    second = service.create("second", depends_on=[first.id])
    service.cancel(first.id)
    assert service.get(second.id).blocked_reason == f"dependency {first.id} is cancelled"


def test_create_on_a_failed_dependency_is_blocked(service: TaskService) -> None:
    first = service.create("first")
    service.cancel(first.id)
    assert service.create("late", depends_on=[first.id]).status is Status.BLOCKED


def test_create_with_unknown_dependency_writes_nothing(service: TaskService) -> None:
    service.create("exists")
    before = snapshot(service)
    with pytest.raises(TaskNotFound, match="unknown task id\\(s\\): 41, 42"):
        service.create("orphan", depends_on=[42, 41, 1])
    assert snapshot(service) == before


def test_link_rejects_a_cycle_naming_it(service: TaskService) -> None:
    a = service.create("a")
    b = service.create("b", depends_on=[a.id])
    c = service.create("c", depends_on=[b.id])
    before = snapshot(service)
    with pytest.raises(DependencyCycle) as caught:
        service.link(a.id, [c.id])
    assert caught.value.cycle == [a.id, c.id, b.id, a.id]
    assert f"{a.id} -> {c.id} -> {b.id} -> {a.id}" in caught.value.message
    assert caught.value.exit_code == 2
    assert snapshot(service) == before
    with pytest.raises(DependencyCycle):
        service.link(a.id, [a.id])


def test_link_and_unlink_maintain_readiness(service: TaskService) -> None:
    a = service.create("a")
    b = service.create("b")
    service.link(b.id, [a.id])
    assert [task.id for task in service.list_tasks(ready=True)] == [a.id]
    service.unlink(b.id, [a.id])
    assert {task.id for task in service.list_tasks(ready=True)} == {a.id, b.id}


def test_link_to_cancelled_blocks_and_unlink_unblocks(service: TaskService) -> None:
    a = service.create("a")
    b = service.create("b")
    service.cancel(a.id)
    assert service.link(b.id, [a.id]).status is Status.BLOCKED
    assert service.unlink(b.id, [a.id]).status is Status.QUEUED


def test_dependencies_up_and_down(service: TaskService) -> None:
    a = service.create("a")
    b = service.create("b", depends_on=[a.id])
    c = service.create("c", depends_on=[b.id])
    found = service.dependencies(b.id)
    assert found.up == [(b.id, a.id)]
    assert found.down == [(c.id, b.id)]
    tasks, edges, layers = service.graph()
    assert layers == [[a.id], [b.id], [c.id]]
    assert len(tasks) == 3 and len(edges) == 2


def test_list_filters(service: TaskService) -> None:
    api = service.create("api", labels=["area=api"])
    service.create("web", labels=["area=web"])
    service.cancel(api.id)
    assert [t.id for t in service.list_tasks(labels=["area=api"])] == [api.id]
    assert [t.id for t in service.list_tasks(statuses=["cancelled"])] == [api.id]
    assert service.list_tasks(statuses=["done"]) == []


# -------------------------------------------------------- database invariants


def test_database_rejects_an_unknown_status(service: TaskService) -> None:
    with pytest.raises(sqlite3.IntegrityError, match="CHECK"):
        service.db.connection.execute(
            "INSERT INTO tasks (title, status, created_at, updated_at) VALUES ('x', 'odd', '', '')"
        )


def test_database_rejects_a_lease_outside_claimed_or_running(service: TaskService) -> None:
    task = service.create("t")
    with pytest.raises(sqlite3.IntegrityError, match="CHECK"):
        service.db.connection.execute(
            "UPDATE tasks SET lease_expires_at = 'x' WHERE id = ?", (task.id,)
        )


def test_database_rejects_a_dependency_on_a_missing_task(service: TaskService) -> None:
    task = service.create("t")
    with pytest.raises(sqlite3.IntegrityError, match="FOREIGN KEY"):
        service.db.connection.execute(
            "INSERT INTO task_deps (task_id, depends_on) VALUES (?, 999)", (task.id,)
        )


def test_a_literal_directory_locks_its_contents(service: TaskService) -> None:
    (service.workspace.root / "src" / "api").mkdir(parents=True)
    task = service.create("t", paths=["src/api", "src/api", "README.md", "./docs/"])
    assert task.paths == ["src/api/**", "README.md", "docs/**"]


def test_duplicate_globs_are_stored_once_and_claimable(service: TaskService) -> None:
    task = service.store.create(NewTask("dupes", paths=["src/**", "src/**"]))
    assert task.paths == ["src/**"]
    assert service.claim("w", ttl=TTL).task.id == task.id


def test_changes_committed_out_of_stamp_order_are_still_seen(
    service: TaskService, clock: ManualClock
) -> None:
    """The daemon asks for the tasks changed since the newest stamp it saw; a change stamped a
    little earlier but committed later (concurrent writers on PostgreSQL) is read again."""
    from aictl.store.daemon import CHANGE_MARGIN, changed_since

    task = service.create("late")
    stamp = format_time(clock.now())
    seen_later = format_time(clock.now() + CHANGE_MARGIN / 2)
    assert [state.id for state in changed_since(service.db, seen_later)] == [task.id]
    assert [state.updated_at for state in changed_since(service.db, None)] == [stamp]
    too_late = format_time(clock.now() + CHANGE_MARGIN + timedelta(seconds=1))
    assert changed_since(service.db, too_late) == []
