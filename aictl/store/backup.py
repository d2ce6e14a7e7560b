"""Copies of a state database through SQLite's online backup API (``sqlite3.Connection.backup``).

The backup API copies every page under one read transaction (``pages=-1``: a single step), so
the copy is the database as of one commit even while other processes write: a writer that
commits during the copy is either wholly in it or wholly absent. Copying files instead would
miss what still sits in the ``-wal`` file, or catch a transaction half-way.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
from pathlib import Path

from aictl.store.db import BUSY_TIMEOUT_MS


def copy_into(source: sqlite3.Connection, target: Path) -> None:
    """Write a consistent copy of ``source``'s database to the new file ``target``: first to a
    hidden file beside it, then renamed, so ``target`` is never seen half-written. The copy is
    in rollback-journal mode (one self-contained file, no ``-wal`` beside it)."""
    partial = target.with_name(f".{target.name}.{os.getpid()}.partial")
    with contextlib.suppress(FileNotFoundError):
        partial.unlink()
    try:
        destination = sqlite3.connect(partial, isolation_level=None)
        try:
            source.backup(destination)
            destination.execute("PRAGMA journal_mode=DELETE")
        finally:
            destination.close()
        os.replace(partial, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            partial.unlink()
        raise


def replace_contents(source: Path, live: sqlite3.Connection) -> None:
    """Overwrite the database behind ``live`` with the pages of ``source``, in one step under
    ``live``'s write lock (other connections wait in their busy handler, then see the restored
    database whole). The live database keeps its WAL mode."""
    copy = sqlite3.connect(f"file:{source}?mode=ro", uri=True, timeout=BUSY_TIMEOUT_MS / 1000)
    try:
        copy.backup(live)
    finally:
        copy.close()
