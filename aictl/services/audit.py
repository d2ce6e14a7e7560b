"""Reading, verifying, exporting and checkpointing the audit log."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import IO

from aictl.clock import Clock, SystemClock
from aictl.domain.durations import parse_duration
from aictl.domain.tasks import check_text
from aictl.errors import AictlError, InvalidInput
from aictl.store.audit import AuditLog, Checkpoint, Entry, Verification
from aictl.store.db import Database
from aictl.workspace import Workspace

CHECKPOINT_FILE = "audit-checkpoint.json"


class AuditBroken(AictlError):
    """The chain does not verify: the message names the first bad row."""

    @classmethod
    def of(cls, result: Verification) -> AuditBroken:
        return cls(
            f"audit log does not verify: {result.problem}",
            hint="the log was modified outside aictl; keep the file and investigate",
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
    def __init__(self, workspace: Workspace, *, clock: Clock | None = None) -> None:
        self.workspace = workspace
        self.clock = clock or SystemClock()
        self.db = Database(workspace.db_path)
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
        """Walk the chain (and compare with a checkpoint: the given file, or the default one
        when it exists). Returns the outcome, broken or not, so a caller can report it in full;
        ``AuditBroken.of(result)`` is the error to raise for a broken one. Raises
        ``InvalidInput`` for an unreadable checkpoint."""
        path = checkpoint or (self.default_checkpoint if self.default_checkpoint.exists() else None)
        mark = read_checkpoint(path) if path else None
        return self.log.verify(mark)

    def checkpoint(self, path: Path | None = None) -> tuple[Checkpoint, Path]:
        """Write the head hash and row count, so a later truncation of the tail is caught."""
        mark = self.log.checkpoint()
        target = path or self.default_checkpoint
        record = {**mark.to_dict(), "written_at": self.clock.now().isoformat()}
        try:
            target.write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
        except OSError as error:
            raise cannot_write(target, error) from None
        return mark, target

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


def cannot_write(path: Path, error: OSError) -> InvalidInput:
    """The error for an output file that cannot be written: the path and the OS's reason."""
    return InvalidInput(
        f"cannot write {path}: {error.strerror or error}",
        hint="choose a path in an existing directory you can write to",
    )


def read_checkpoint(path: Path) -> Checkpoint:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        return Checkpoint(int(data["seq"]), str(data["hash"]), int(data["rows"]))
    except OSError as error:
        raise InvalidInput(f"cannot read checkpoint {path}: {error.strerror}") from None
    except (ValueError, KeyError, TypeError) as error:
        raise InvalidInput(f"{path} is not an audit checkpoint: {error}") from None
