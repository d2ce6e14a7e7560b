"""Reading, verifying, exporting and checkpointing the audit log."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

from aictl.clock import Clock, SystemClock
from aictl.domain.durations import parse_duration
from aictl.domain.tasks import check_text
from aictl.errors import AictlError, InvalidInput
from aictl.services import checkpoints
from aictl.store.audit import AuditLog, Checkpoint, Entry, Verification
from aictl.store.db import connect
from aictl.store.integrity import check_state, snapshot
from aictl.workspace import Workspace

CHECKPOINT_FILE = "audit-checkpoint.json"


class AuditBroken(AictlError):
    """The chain does not verify, or the state or a checkpoint disagrees with it: the message
    names the first bad row, task, decision record or checkpoint. Exit 1."""

    @classmethod
    def of(cls, result: Verification) -> AuditBroken:
        return cls(
            f"audit log does not verify: {result.problem}",
            hint="something was modified outside aictl; keep the files and investigate",
        )


def parse_since(text: str, now: datetime) -> datetime:
    """An ISO time (``2026-11-21T10:00:00Z``) or a duration back from now (``2h``), in UTC.

    A time with an offset is converted to UTC; a time without one is taken to be UTC, the zone
    every stored time and every table is in.
    """
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        try:
            return now - parse_duration(text, field="--since")
        except InvalidInput:
            raise InvalidInput(
                f"invalid --since {text!r}",
                hint="an ISO time such as 2026-11-21T10:00:00Z, or a duration back: 30m, 2h, 1d",
            ) from None
    if moment.tzinfo is None:
        return moment.replace(tzinfo=UTC)
    try:
        return moment.astimezone(UTC)
    except OverflowError:  # 0001-01-01T00:00+01:00 is before the first representable moment
        raise InvalidInput(f"invalid --since {text!r}: out of range") from None


class AuditService:
    def __init__(
        self,
        workspace: Workspace,
        *,
        clock: Clock | None = None,
        environ: Mapping[str, str] | None = None,
    ) -> None:
        self.workspace = workspace
        self.clock = clock or SystemClock()
        self.environ = environ
        self.db = connect(workspace.database)
        self.log = AuditLog(self.db.connection)

    def close(self) -> None:
        self.db.close()

    @property
    def default_checkpoint(self) -> Path:
        return self.workspace.state_dir / CHECKPOINT_FILE

    def entries(
        self, *, task_id: int | None = None, since: str | None = None, kinds: Sequence[str] = ()
    ) -> list[Entry]:
        moment = parse_since(since, self.clock.now()) if since else None
        kinds = tuple(check_text(kind, "--kind") for kind in kinds)
        return self.log.entries(task_id=task_id, since=moment, kinds=kinds)

    def verify(self, checkpoint: Path | None = None) -> Verification:
        """Walk the chain, compare it with a checkpoint (the given file, or the default one when
        it exists), then compare the tasks and decision records with what the chain implies;
        all in one read snapshot. Returns the outcome, broken or not, so a caller can report it
        in full; ``AuditBroken.of(result)`` is the error to raise for a broken one.

        A signed checkpoint's signature is checked with the audit key (a mismatch is a broken
        outcome). An unsigned one is refused (``InvalidInput``) when given explicitly, since
        anyone could have written it; the default file in ``.ai/`` may be unsigned (written
        before signing) and is compared, with a note. Raises ``InvalidInput`` for an unreadable
        checkpoint or a missing key."""
        path = checkpoint or (self.default_checkpoint if self.default_checkpoint.exists() else None)
        notes: list[str] = []
        mark: Checkpoint | None = None
        if path is not None:
            key = self._key(create=False) if checkpoints.is_signed(path) else None
            try:
                found = checkpoints.read(path, key)
            except checkpoints.SignatureMismatch as error:
                head = self.log.checkpoint()
                return Verification(False, head.rows, head.seq, head.hash, error.message)
            if not found.signed:
                if checkpoint is not None:
                    raise InvalidInput(
                        f"checkpoint {path} is not signed: anyone who can write it could have",
                        hint="write a signed one with `aictl audit checkpoint --to FILE|URL`",
                    )
                notes.append(
                    f"checkpoint {path} is unsigned (written by an older aictl); "
                    "`aictl audit checkpoint` replaces it with a signed one"
                )
            mark = found.mark
        return verify_database(self.log, mark, notes)

    def checkpoint(self, to: str | Path | None = None) -> tuple[Checkpoint, str]:
        """Sign the chain's head and write it to ``to``: a URL (``http(s)://``, POSTed as
        JSON), a file outside the repository, or by default ``.ai/audit-checkpoint.json``.
        Returns the head and where it went.

        The key is created on first use (see ``aictl.services.checkpoints``). A file is
        replaced atomically: when the write fails, the earlier checkpoint stays whole. Raises
        ``InvalidInput`` for a file that cannot be written or lies in the repository outside
        ``.ai/`` (agents could delete it or put back an older one), ``CheckpointNotSent`` when
        a webhook does not take it."""
        target, record = self.prepare_checkpoint(to)
        return Checkpoint(record["seq"], record["hash"], record["rows"]), deliver(target, record)

    def prepare_checkpoint(self, to: str | Path | None = None) -> tuple[str | Path, dict[str, Any]]:
        """The signed record of the head now, and where it goes (a URL or a checked path):
        the part of ``checkpoint`` that reads the database. ``deliver`` does the rest, in
        another thread if need be (a webhook may be slow)."""
        target: str | Path = str(to) if to is not None else self.default_checkpoint
        if not checkpoints.is_url(str(target)):
            target = Path(target).expanduser()
            self._outside_repository(target)
        key = self._key(create=True)
        mark = self.log.checkpoint()
        record = checkpoints.signed_record(
            mark, key, written_at=self.clock.now(), database=self.workspace.db_path
        )
        return target, record

    def _key(self, *, create: bool) -> bytes:
        return checkpoints.load_key(
            checkpoints.key_path(self.environ), self.workspace.root, create=create
        )

    def _outside_repository(self, path: Path) -> None:
        resolved = path.resolve()
        inside = resolved.is_relative_to(self.workspace.root.resolve())
        if inside and not resolved.is_relative_to(self.workspace.state_dir.resolve()):
            raise InvalidInput(
                f"checkpoint {path} is inside the repository, where agents can delete it or "
                "put an older one back",
                hint="write it outside the repository (--to /secure/aictl-checkpoint.json), to "
                "a webhook (--to https://...), or to the default .ai/audit-checkpoint.json",
            )

    def export_file(self, path: Path) -> int:
        """``export`` into a new file at ``path``; ``InvalidInput`` names the path and the OS's
        reason when it cannot be written."""
        try:
            with path.open("w", encoding="utf-8") as stream:
                return self.export(stream)
        except OSError as error:
            raise cannot_write(path, error) from None

    def export(self, stream: IO[str]) -> int:
        """Write every row as one JSON object per line; returns the row count."""
        count = 0
        for entry in self.log.entries():
            stream.write(json.dumps(entry.to_dict(), sort_keys=True) + "\n")
            count += 1
        return count


def verify_database(
    log: AuditLog, mark: Checkpoint | None = None, notes: Sequence[str] = ()
) -> Verification:
    """Walk ``log``'s chain (against ``mark`` when given), then compare the tasks and decision
    records of the same database with it, in one read snapshot; ``notes`` lead the result's."""
    connection = log.connection
    notes = list(notes)
    with snapshot(connection):
        result = log.verify(mark)
        if not result.ok:
            return replace(result, notes=tuple(notes))
        state = check_state(connection)
    notes.extend(state.notes)
    found_difference = state.difference
    if found_difference is None:
        return replace(result, tasks=state.tasks, decisions=state.decisions, notes=tuple(notes))
    more = state.differences - 1
    return replace(
        result,
        ok=False,
        problem=found_difference.problem + (f" ({more} more difference(s))" if more else ""),
        bad_seq=found_difference.seq,
        bad_task=found_difference.task_id,
        bad_decision=found_difference.decision,
        tasks=state.tasks,
        decisions=state.decisions,
        notes=tuple(notes),
    )


def deliver(target: str | Path, record: dict[str, Any]) -> str:
    """Write ``record`` atomically to a path, or POST it to a URL; returns where it went.
    Raises ``InvalidInput`` (a file that cannot be written) or ``CheckpointNotSent``."""
    if isinstance(target, str):
        checkpoints.post(target, record)
        return target
    try:
        checkpoints.write_atomically(target, json.dumps(record, indent=2) + "\n")
    except OSError as error:
        raise cannot_write(target, error) from None
    return str(target)


def cannot_write(path: Path, error: OSError) -> InvalidInput:
    """The error for an output file that cannot be written: the path and the OS's reason."""
    return InvalidInput(
        f"cannot write {path}: {error.strerror or error}",
        hint="choose a path in an existing directory you can write to",
    )
