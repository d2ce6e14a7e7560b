"""The daemon's periodic audit checkpoint, when the policy asks for one.

```yaml
settings:
  audit_checkpoint:
    to: https://audit.example.com/aictl   # or a file outside the repository
    every: 10m                            # at most this long between two checkpoints
    events: 500                           # or sooner, after this many new audit rows
```

A checkpoint is sent when the daemon starts, then whenever ``every`` has passed or ``events``
rows were appended since the last one (``every`` defaults to 10m), and once more when it stops;
never when the head has not moved. The signed record is made and delivered in a thread of its
own (with its own database connection), one at a time, so a slow or silent webhook never holds
up a tick; a failure is logged (``audit.checkpoint_failed``) and tried again when next due.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from datetime import timedelta
from typing import Any

from aictl.clock import Clock
from aictl.daemon.jsonlog import JsonLog
from aictl.domain.durations import parse_duration
from aictl.errors import AictlError
from aictl.services.audit import AuditService, deliver
from aictl.services.checkpoints import POST_TIMEOUT
from aictl.workspace import Workspace

DEFAULT_EVERY = timedelta(minutes=10)


class PeriodicCheckpoint:
    def __init__(
        self,
        workspace: Workspace,
        journal: JsonLog,
        *,
        clock: Clock,
        environ: Mapping[str, str] | None = None,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.workspace = workspace
        self.journal = journal
        self.clock = clock
        self.environ = environ
        self.monotonic = monotonic
        self.to: str | None = None
        self.every = DEFAULT_EVERY.total_seconds()
        self.events: int | None = None
        self.sent_seq: int | None = None
        """The head of the last checkpoint delivered (None: none yet)."""
        self.sent_at: float | None = None
        """When the last one was attempted (monotonic), delivered or not."""
        self.failures = 0
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def configure(self, setting: Mapping[str, Any] | None) -> None:
        """Take the policy's ``settings.audit_checkpoint`` (None: no periodic checkpoint).
        The policy loader validated it; a change of target sends to the new one when due."""
        if not setting or not setting.get("to"):
            self.to = None
            return
        target = str(setting["to"])
        if target != self.to:
            self.sent_seq = self.sent_at = None  # the new target has nothing yet
        self.to = target
        every = setting.get("every")
        self.every = (
            parse_duration(str(every), field="audit_checkpoint.every") if every else DEFAULT_EVERY
        ).total_seconds()
        events = setting.get("events")
        self.events = int(events) if events else None

    def due(self, head_seq: int) -> bool:
        """Whether a checkpoint should go now, the head being at ``head_seq``."""
        if self.to is None or head_seq == self.sent_seq:
            return False
        if self.sent_at is None or self.sent_seq is None:
            return True
        if self.events is not None and head_seq - self.sent_seq >= self.events:
            return True
        return self.monotonic() - self.sent_at >= self.every

    def tick(self, head_seq: int) -> None:
        """Start a checkpoint in the background when due and none is in flight."""
        with self._lock:
            if self._thread is not None and self._thread.is_alive():
                return
            if not self.due(head_seq):
                return
            self.sent_at = self.monotonic()
            self._thread = threading.Thread(
                target=self.send, name="aictl-audit-checkpoint", daemon=True
            )
            self._thread.start()

    def finish(self, head_seq: int) -> None:
        """At stop: wait for one in flight, then send the last head; each wait is bounded by
        the webhook timeout, so a silent receiver delays the stop by about 20 s at most."""
        thread = self._thread
        if thread is not None:
            thread.join(POST_TIMEOUT + 1)
            if thread.is_alive():  # pragma: no cover - urlopen's timeout ends it first
                self.journal.error(
                    "audit.checkpoint_failed",
                    f"the last audit checkpoint was not sent: the one before still waits on "
                    f"{self.to}",
                    to=self.to,
                )
                return
        if self.to is not None and head_seq != self.sent_seq:
            self.send()

    def send(self) -> bool:
        """Make and deliver one checkpoint now; logs the outcome, returns whether it went."""
        target = self.to
        if target is None:
            return False
        try:
            service = AuditService(self.workspace, clock=self.clock, environ=self.environ)
            try:
                where, record = service.prepare_checkpoint(target)
            finally:
                service.close()
            deliver(where, record)
        except (AictlError, OSError) as error:
            self.failures += 1
            message = error.message if isinstance(error, AictlError) else str(error)
            self.journal.error(
                "audit.checkpoint_failed",
                f"audit checkpoint to {target} failed: {message}",
                to=target,
                hint=getattr(error, "hint", None),
            )
            return False
        self.sent_seq = int(record["seq"])
        self.journal.info(
            "audit.checkpoint",
            f"audit checkpoint at row {record['seq']} sent to {target}",
            to=target,
            seq=record["seq"],
            hash=record["hash"],
        )
        return True
