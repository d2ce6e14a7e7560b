"""Backups, restores and pruning: keeping a repository's ``.ai/`` safe and small.

- ``backup``: a consistent copy of the state database through SQLite's online backup API,
  safe while agents and the daemon write;
- ``restore``: the backup is copied aside, brought to the current schema and verified as
  ``aictl audit verify`` verifies (the chain, then the tasks and decision records against it)
  before it replaces anything; the database it replaces is kept under ``.ai/backups/``;
- ``prune``: run folders the policy's ``settings.retention.runs`` lets go (see
  :mod:`aictl.domain.retention` for what is always kept), and the daemon's log rotated past
  ``settings.retention.daemon_log_mb``.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import sqlite3
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

from aictl.clock import Clock, SystemClock
from aictl.domain.durations import parse_duration
from aictl.domain.retention import TaskState, Verdict, judge
from aictl.errors import AictlError, DatabaseDamaged, InvalidInput
from aictl.store.audit import AuditLog, Verification
from aictl.store.backup import copy_into
from aictl.store.db import Database
from aictl.workspace import Workspace

BACKUPS = "backups"
"""The folder of ``.ai/`` where ``restore`` keeps the databases it replaced."""
LOG_KEPT = ".1"
"""Suffix of the rotated daemon log (one generation is kept)."""


class RestoreRefused(AictlError):
    """The backup does not verify (or is no aictl database): nothing was changed. Exit 1."""


@dataclass(frozen=True)
class BackupResult:
    path: Path
    bytes: int
    verification: Verification

    def to_dict(self) -> dict[str, Any]:
        return {
            "path": str(self.path),
            "bytes": self.bytes,
            "audit_rows": self.verification.rows,
            "tasks": self.verification.tasks,
            "verified": self.verification.ok,
        }


@dataclass(frozen=True)
class RestoreResult:
    source: Path
    saved: Path
    verification: Verification
    moved: list[Path] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "restored_from": str(self.source),
            "previous_saved_to": str(self.saved),
            "audit_rows": self.verification.rows,
            "tasks": self.verification.tasks,
            "moved_aside": [str(path) for path in self.moved],
        }


def _sqlite_only(workspace: Workspace, verb: str) -> None:
    """Backups are copies of the SQLite file; a PostgreSQL database has its own tools."""
    if workspace.url is not None:
        raise InvalidInput(
            f"aictl {verb} copies the SQLite state file; this repository keeps its state in "
            "PostgreSQL",
            hint="use PostgreSQL's own tools (pg_dump, pg_restore) for that database",
        )


def _refuse_while_a_daemon_runs(workspace: Workspace, why: str, *, hint: str) -> None:
    """``DaemonRunning`` (exit 4), naming its pid and ``why``, when a daemon serves
    ``workspace``."""
    from aictl.daemon.runtime import DaemonPaths, DaemonRunning, is_running, read_pid

    paths = DaemonPaths.of(workspace)
    if is_running(paths):
        pid = read_pid(paths)
        raise DaemonRunning(
            f"a daemon is running for this repository{f' (pid {pid})' if pid else ''}: {why}",
            hint=hint,
        )


def _stamp(clock: Clock) -> str:
    return clock.now().strftime("%Y%m%dT%H%M%S%fZ")


def backup(workspace: Workspace, target: Path, *, force: bool = False) -> BackupResult:
    """Copy the live database to ``target`` (refused when it exists, unless ``force``), then
    verify the copy. ``InvalidInput`` for a target that cannot be written, and on PostgreSQL."""
    _sqlite_only(workspace, "backup")
    target = target.expanduser().absolute()
    if target.resolve() == workspace.db_path.resolve():
        raise InvalidInput(f"{target} is the live state database", hint="choose another file")
    if target.exists() and not force:
        raise InvalidInput(f"{target} exists", hint="choose a new file, or pass --force")
    if not target.parent.is_dir():
        raise InvalidInput(f"cannot write {target}: {target.parent} is not a directory")
    db = Database(workspace.db_path)
    try:
        copy_into(db.connection, target)
    except OSError as error:
        raise InvalidInput(f"cannot write {target}: {error.strerror or error}") from None
    finally:
        db.close()
    verification = _verify_file(target)
    return BackupResult(target, target.stat().st_size, verification)


def _verify_file(path: Path) -> Verification:
    from aictl.services.audit import verify_database

    connection = sqlite3.connect(f"file:{path}?mode=ro", uri=True, isolation_level=None)
    try:
        return verify_database(AuditLog(connection))
    finally:
        connection.close()


def restore(workspace: Workspace, source: Path, *, clock: Clock | None = None) -> RestoreResult:
    """Replace the live database with the backup ``source`` once it verifies.

    Refused (``DaemonRunning``, exit 4) while a daemon serves this database: its running
    tasks would find their leases gone. Refused (``RestoreRefused``) when the backup is not an
    aictl database or does not verify; nothing is changed then. Otherwise the live database is
    first copied to ``.ai/backups/state-<time>.db``, then overwritten in one step (other
    connections wait and then see the restored state). The default audit checkpoint, which
    records the replaced chain's head, is moved beside that copy."""
    _sqlite_only(workspace, "restore")
    clock = clock or SystemClock()
    source = source.expanduser().absolute()
    _refuse_while_a_daemon_runs(
        workspace,
        "restoring would pull the state from under its running tasks",
        hint="stop it with `aictl daemon stop`, restore, then start it again",
    )
    if not source.is_file():
        raise InvalidInput(f"no backup file at {source}")
    folder = workspace.state_dir / BACKUPS
    folder.mkdir(parents=True, exist_ok=True)
    stamp = _stamp(clock)
    staging = folder / f".restore-{stamp}.db"
    try:
        staged = _stage(source, staging)
        try:
            from aictl.services.audit import verify_database

            verification = verify_database(AuditLog(staged.connection))
            if not verification.ok:
                raise RestoreRefused(
                    f"{source} does not verify: {verification.problem}",
                    hint="nothing was changed; restore another backup, or investigate this one "
                    "(`aictl --db FILE audit verify` on a copy)",
                )
            saved = folder / f"state-{stamp}.db"
            live, saved = _set_aside(workspace.db_path, saved)
            try:
                staged.connection.backup(live.connection)
            finally:
                live.close()
        finally:
            staged.close()
    finally:
        for leftover in (staging, *staging.parent.glob(staging.name + "-*")):
            with contextlib.suppress(FileNotFoundError):
                leftover.unlink()
    moved = []
    checkpoint = workspace.state_dir / "audit-checkpoint.json"
    if checkpoint.exists():
        aside = folder / f"audit-checkpoint-{stamp}.json"
        os.replace(checkpoint, aside)
        moved.append(aside)
    return RestoreResult(source, saved, verification, moved)


def _set_aside(path: Path, saved: Path) -> tuple[Database, Path]:
    """Keep the live database at ``path`` as ``saved`` and return it open, to be overwritten,
    with where it was kept. A damaged one (truncated, malformed, no longer SQLite: the case a
    restore is most often for) cannot be copied through SQLite: its files are moved aside as
    they are (``...-damaged.db``, for a later ``sqlite3 .recover``) and a new database takes
    its place."""
    try:
        live = Database(path)
    except DatabaseDamaged:
        pass
    else:
        try:
            copy_into(live.connection, saved)
        except (DatabaseDamaged, sqlite3.DatabaseError):
            live.close()
        else:
            return live, saved
    kept = saved.with_name(f"{saved.stem}-damaged.db")
    for suffix in ("", "-wal", "-shm"):
        with contextlib.suppress(FileNotFoundError):
            os.replace(f"{path}{suffix}", f"{kept}{suffix}")
    return Database(path), kept


def _stage(source: Path, staging: Path) -> Database:
    """A private copy of the backup, opened as aictl opens a database (which brings an older
    schema up to date and refuses another program's file)."""
    try:
        original = sqlite3.connect(f"file:{source}?mode=ro", uri=True, isolation_level=None)
        try:
            copy_into(original, staging)
        finally:
            original.close()
        return Database(staging)
    except sqlite3.DatabaseError as error:
        raise RestoreRefused(
            f"{source} is not a readable SQLite database ({error})", hint="nothing was changed"
        ) from None
    except InvalidInput as error:  # another program's database, or a newer aictl's
        raise RestoreRefused(
            error.message.replace(str(staging), str(source)), hint="nothing was changed"
        ) from None


# ------------------------------------------------------------------------------ prune


@dataclass(frozen=True)
class Retention:
    """``settings.retention`` of the policy: ``runs`` a count or a duration, or None."""

    runs: int | timedelta | None = None
    daemon_log_bytes: int | None = None

    @classmethod
    def of(cls, setting: Any) -> Retention:
        if not isinstance(setting, dict):
            return cls()
        runs = setting.get("runs")
        rule: int | timedelta | None = None
        if isinstance(runs, int) and not isinstance(runs, bool):
            rule = runs
        elif isinstance(runs, str):
            rule = parse_duration(runs, field="settings.retention.runs")
        megabytes = setting.get("daemon_log_mb")
        return cls(rule, int(megabytes * (1 << 20)) if megabytes else None)


@dataclass(frozen=True)
class PruneReport:
    dry_run: bool
    retention: Retention
    verdicts: list[Verdict]
    log_rotated: Path | None = None
    log_note: str | None = None

    @property
    def removed(self) -> list[Verdict]:
        return [verdict for verdict in self.verdicts if verdict.remove]

    def to_dict(self) -> dict[str, Any]:
        rule = self.retention.runs
        return {
            "dry_run": self.dry_run,
            "runs_rule": rule if isinstance(rule, int) or rule is None else f"{rule}",
            "removed": [{"task_id": v.task_id, "reason": v.reason} for v in self.removed],
            "kept": [
                {"task_id": v.task_id, "reason": v.reason} for v in self.verdicts if not v.remove
            ],
            "log_rotated": str(self.log_rotated) if self.log_rotated else None,
            "log_note": self.log_note,
        }


def prune(
    workspace: Workspace,
    *,
    dry_run: bool = False,
    clock: Clock | None = None,
    rotate_log: bool = True,
) -> PruneReport:
    """Remove the run folders the retention rule lets go and rotate the daemon log when it is
    over its size; with ``dry_run`` only report. ``rotate_log`` False leaves the log alone
    (the daemon rotates its own, under its log's lock)."""
    from aictl.daemon.runtime import DaemonPaths, is_running
    from aictl.services.executor import runs_dir
    from aictl.services.tasks import TaskService

    clock = clock or SystemClock()
    service = TaskService(workspace, clock=clock)
    try:
        retention = Retention.of(service.enforcer.policy(None).setting("retention"))
        folders = _run_folders(runs_dir(workspace))
        verdicts: list[Verdict] = []
        if retention.runs is not None and folders:
            states = {
                task.id: TaskState(str(task.status), task.finished_at)
                for task in service.store.list_tasks()
            }
            verdicts = judge(folders, states, retention.runs, clock.now())
    finally:
        service.close()
    if not dry_run:
        for verdict in verdicts:
            if verdict.remove:
                shutil.rmtree(folders[verdict.task_id], ignore_errors=True)
    rotated, note = None, None
    log = DaemonPaths.of(workspace).log
    limit = retention.daemon_log_bytes
    if limit and log.exists() and log.stat().st_size > limit:
        if not rotate_log or is_running(DaemonPaths.of(workspace)):
            note = "the daemon rotates its own log while it runs"
        elif dry_run:
            note = f"{log} would be rotated ({log.stat().st_size:,} bytes)"
        else:
            rotated = rotate(log)
    return PruneReport(dry_run, retention, verdicts, rotated, note)


def rotate(log: Path) -> Path:
    """Rename ``log`` to ``log.1`` (replacing an older one); returns the new name."""
    kept = log.with_name(log.name + LOG_KEPT)
    os.replace(log, kept)
    return kept


def _run_folders(root: Path) -> dict[int, Path]:
    if not root.is_dir():
        return {}
    return {int(p.name): p for p in root.iterdir() if p.name.isdigit() and p.is_dir()}


@dataclass(frozen=True)
class MoveResult:
    """``aictl init --db URL`` in a repository with a SQLite state: what was copied, the
    copy's verification, and where the SQLite file was kept."""

    url: str
    rows: dict[str, int]
    verification: Verification
    kept: Path

    def to_dict(self) -> dict[str, Any]:
        return {
            "rows": self.rows,
            "verified": self.verification.ok,
            "audit_rows": self.verification.rows,
            "kept": str(self.kept),
        }


def move_to_postgres(state_dir: Path, url: str, *, clock: Clock | None = None) -> MoveResult | None:
    """Copy the SQLite state in ``state_dir`` (``.ai/``) into the PostgreSQL database ``url``
    and keep the file as ``.ai/backups/state-<time>-before-postgresql.db``; None when there is
    no such file or it holds no rows (nothing to keep). The SQLite chain must verify first
    (else nothing is copied) and the copy after (else the file stays in use and the error
    names the database holding the copy): ``InvalidInput``, exit 2. Refused
    (``DaemonRunning``, exit 4) while a daemon serves the repository: it would go on writing
    to the file."""
    from aictl.services.audit import verify_database
    from aictl.store.db import connect
    from aictl.store.postgres import PgDatabase
    from aictl.store.transfer import copy_state, rows_in, table_order

    path = state_dir / "state.db"
    if not path.is_file() or path.stat().st_size == 0:
        return None
    _refuse_while_a_daemon_runs(
        Workspace(state_dir.parent, path),
        "it would go on writing to .ai/state.db after the state moved to PostgreSQL",
        hint="stop it with `aictl daemon stop`, run `aictl init --db` again, then start it",
    )
    source = Database(path)
    try:
        target = connect(url)
        assert isinstance(target, PgDatabase)
        try:
            if not any(rows_in(source, table_order(target)).values()):
                return None
            before = verify_database(AuditLog(source.connection))
            if not before.ok:
                raise InvalidInput(
                    f"{path} does not verify ({before.problem}); it was not copied",
                    hint="see `aictl audit verify`; a backup that verifies can be restored first",
                )
            rows = copy_state(source, target)
            verification = verify_database(AuditLog(target.connection))
        finally:
            target.close()
    finally:
        source.close()
    if not verification.ok:  # copy_state committed: say so, since the file stays in use
        raise InvalidInput(
            f"the copy in {url} does not verify ({verification.problem}); the repository "
            "still uses .ai/state.db",
            hint="drop that database's tables and report this as a bug",
        )
    kept = state_dir / BACKUPS / f"state-{_stamp(clock or SystemClock())}-before-postgresql.db"
    kept.parent.mkdir(parents=True, exist_ok=True)
    for suffix in ("", "-wal", "-shm"):  # a WAL another process left belongs with its file
        with contextlib.suppress(FileNotFoundError):
            os.replace(f"{path}{suffix}", f"{kept}{suffix}")
    return MoveResult(url, rows, verification, kept)
