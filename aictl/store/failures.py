"""SQLite's failures that are not aictl's bugs, said as what they are.

A full disk, a read-only mount, a damaged file or a file that is not SQLite reach Python as
``sqlite3.OperationalError`` or ``DatabaseError`` with SQLite's terse text ("database or disk
is full", "unable to open database file"), which the CLI used to print as an internal error.
:func:`explain` turns each into an ``AictlError`` naming the file, what is wrong and what to
do, chosen by SQLite's primary result code (``sqlite_errorcode``), never by its message.
"""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

from aictl.errors import (
    AictlError,
    Contention,
    DatabaseDamaged,
    DatabaseUnusable,
    NotAnAictlDatabase,
)
from aictl.workspace import STATE_DB, STATE_DIR

# SQLite's primary result codes (https://www.sqlite.org/rescode.html).
SQLITE_BUSY = 5
SQLITE_LOCKED = 6
SQLITE_READONLY = 8
SQLITE_IOERR = 10
SQLITE_CORRUPT = 11
SQLITE_FULL = 13
SQLITE_CANTOPEN = 14
SQLITE_NOTADB = 26

FULL_BELOW = 64 * 1024
"""Free bytes under which a failing write is taken for a full disk (SQLite needs pages of
4 KiB, and 32 KiB for the shared-memory index of its write-ahead log)."""

_last_opened: list[Path] = []
"""The database this process opened last (see :func:`remember`)."""


def remember(path: Path) -> None:
    """Note ``path`` as the database being used, so that an error met later outside the
    store (a read in a CLI command) can still name the file. A process with several
    databases (tests, a tool) gets the last one named: the message is a hint, not a key."""
    _last_opened[:] = [path]


def explain(error: BaseException, path: Path | None = None) -> AictlError | None:
    """The ``AictlError`` that says what ``error`` means for the state database at ``path``
    (default: the one opened last), or None when it is not one of the failures a user can
    meet (a constraint, a bug)."""
    code = getattr(error, "sqlite_errorcode", None)
    if not isinstance(error, sqlite3.Error) or code is None:
        return None
    primary = code & 0xFF
    path = path or next(iter(_last_opened), None)
    where = f"the state database {path}" if path else "the state database"
    if primary == SQLITE_FULL or (primary in (SQLITE_IOERR, SQLITE_CANTOPEN) and _full(path)):
        return DatabaseUnusable(
            f"{where}: the disk is full",
            hint="free some space and run the command again; nothing was changed (a write "
            "that failed was rolled back whole)",
        )
    if primary in (SQLITE_READONLY, SQLITE_CANTOPEN):
        why = _not_writable(path)
        if why is not None or primary == SQLITE_READONLY:
            return DatabaseUnusable(
                f"{where} {why or 'is read-only'}: aictl writes beside it (its write-ahead "
                "log) even to read",
                hint="make it and its folder writable (remount read-write), or work on a "
                "writable copy of the repository",
            )
        return DatabaseUnusable(
            f"cannot open {where}: {error}",
            hint="check that the file and its folder exist and are yours to read and write",
        )
    if primary == SQLITE_CORRUPT:
        return damaged(path, f"SQLite: {error}")
    if primary == SQLITE_NOTADB:
        if path is not None and is_state_file(path):
            return damaged(path, "the file is no longer SQLite: its header is overwritten")
        return NotAnAictlDatabase(
            f"{where} is not an aictl database: the file is not SQLite",
            hint="--db / AICTL_DB must name an .ai/state.db; `aictl init` makes one",
        )
    if primary == SQLITE_IOERR:
        return DatabaseUnusable(
            f"{where}: the disk failed to read or write ({error})",
            hint="check the disk and the file system (dmesg); the change was not made",
        )
    if primary in (SQLITE_BUSY, SQLITE_LOCKED):
        return Contention(
            f"{where} is locked: another program holds a long write transaction on it",
            hint="see docs/troubleshooting.md, 'database is locked'",
        )
    return None


def is_state_file(path: Path) -> bool:
    """Whether ``path`` is a repository's ``.ai/state.db``: a file there that is not a sound
    database was one once (it is damaged), while another file named by ``--db`` may simply be
    the wrong file (invalid input)."""
    return path.name == STATE_DB and path.parent.name == STATE_DIR


def damaged(path: Path | None, what: str) -> DatabaseDamaged:
    """The error for a damaged state database at ``path``: what is wrong, and how to recover."""
    where = f"the state database {path}" if path else "the state database"
    shown = path or "FILE"
    return DatabaseDamaged(
        f"{where} is damaged ({what})",
        hint="restore it from a backup: `aictl restore BACKUP` (with the daemon stopped; "
        f"`aictl backup FILE` makes one); `sqlite3 {shown} .recover` may save what is left "
        "into a new file; `aictl doctor` checks the database again",
    )


def _full(path: Path | None) -> bool:
    """Whether the disk holding ``path`` is (about) full. SQLite reports a full disk as
    SQLITE_FULL only when a write to the database or its log fails; when the shared-memory
    file beside it cannot grow, it says "disk I/O error" (SQLITE_IOERR_SHMSIZE) instead."""
    if path is None:
        return False
    try:
        stats = os.statvfs(path.parent)
    except OSError:
        return False
    return stats.f_bavail * stats.f_frsize < FULL_BELOW


def _not_writable(path: Path | None) -> str | None:
    """Why the database at ``path`` cannot be written, when that is the reason."""
    if path is None:
        return None
    folder = path.parent
    try:
        if os.statvfs(folder).f_flag & os.ST_RDONLY:
            return "is on a read-only file system"
    except OSError:
        return None
    if not os.access(folder, os.W_OK) or (path.exists() and not os.access(path, os.W_OK)):
        return "or its folder is not writable"
    return None
