"""Copy a SQLite state into an empty PostgreSQL database (``aictl init --db`` in a repository
that has one): every row of every table, in one transaction on each side.

The tables and their order come from the PostgreSQL schema (the foreign keys' order, so a row
is written after the rows it names); the columns are those PostgreSQL lets a client write
(``decisions.rowid`` is its own identity, numbered in the order the rows arrive). Rows leave
SQLite in insertion order (``rowid``) or, for a table without one, in its primary key's order:
the audit log in ``seq`` order, so its append-only trigger sees each row extend the head. The
identity sequences are set past the copied ids afterwards. ``glob_pairs`` is PostgreSQL's
only (a memo of the glob automata's answers for its server-side claim), not state: it starts
empty.
"""

from __future__ import annotations

import sqlite3
from typing import Any

import networkx as nx

from aictl.errors import InvalidInput
from aictl.store.db import Database, shown
from aictl.store.postgres import PgDatabase

_TABLES = """
SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE c.relkind = 'r' AND n.nspname = current_schema()
  AND c.relname NOT IN ('aictl_schema', 'glob_pairs')
"""
_REFERENCES = """
SELECT c.conrelid::regclass::text, c.confrelid::regclass::text FROM pg_constraint c
JOIN pg_namespace n ON n.oid = c.connamespace
WHERE c.contype = 'f' AND n.nspname = current_schema()
"""
_COLUMNS = """
SELECT column_name, is_identity FROM information_schema.columns
WHERE table_schema = current_schema() AND table_name = ? AND is_generated = 'NEVER'
  AND (identity_generation IS NULL OR identity_generation <> 'ALWAYS')
ORDER BY ordinal_position
"""


def table_order(target: PgDatabase) -> list[str]:
    """The state's tables, each after every table its foreign keys name (ties by name)."""
    graph: nx.DiGraph[str] = nx.DiGraph()
    graph.add_nodes_from(row[0] for row in target.connection.execute(_TABLES))
    for table, referenced in target.connection.execute(_REFERENCES):
        if table != referenced:
            graph.add_edge(referenced, table)
    return list(nx.lexicographical_topological_sort(graph))


def rows_in(db: Database | PgDatabase, tables: list[str]) -> dict[str, int]:
    """How many rows each of ``tables`` holds in ``db``."""
    return {
        table: int(db.connection.execute(f"SELECT count(*) FROM {table}").fetchone()[0])
        for table in tables
    }


def copy_state(source: Database, target: PgDatabase) -> dict[str, int]:
    """Copy every row of ``source`` (SQLite) into ``target`` (PostgreSQL, no aictl rows yet,
    both at the same schema version); returns the rows copied per table. Raises
    ``InvalidInput`` (exit 2), copying nothing, when the versions differ or ``target``
    already holds rows. SQLite's writers wait while it runs (its write lock is held)."""
    where = shown(str(target.url))
    if source.schema_version() != target.schema_version():
        raise InvalidInput(
            f"the SQLite state is at schema {source.schema_version()} and {where} at "
            f"{target.schema_version()}: they must be the same to copy",
            hint="run this aictl's `aictl doctor` on both, and upgrade the older side first",
        )
    tables = table_order(target)
    held = {table: count for table, count in rows_in(target, tables).items() if count}
    if held:
        listed = ", ".join(f"{count} in {table}" for table, count in sorted(held.items()))
        raise InvalidInput(
            f"{where} already holds aictl state ({listed}); the SQLite state was not "
            "copied into it",
            hint="name an empty database, or move .ai/state.db aside to join that one as it is",
        )
    copied: dict[str, int] = {}
    with source.transaction(), target.transaction():
        for table in tables:
            described = list(target.connection.execute(_COLUMNS, (table,)))
            columns = [row[0] for row in described]
            rows = _read(source.connection, table, columns)
            if rows:
                marks = ", ".join("?" for _ in columns)
                target.connection.executemany(
                    f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({marks})", rows
                )
            copied[table] = len(rows)
            for name, identity in described:
                if identity == "YES":  # ids go on after the copied ones
                    target.connection.execute(
                        f"SELECT setval(pg_get_serial_sequence(?, ?), max({name})) FROM {table}"
                        f" HAVING max({name}) IS NOT NULL",
                        (table, name),
                    )
    return copied


def _read(connection: sqlite3.Connection, table: str, columns: list[str]) -> list[tuple[Any, ...]]:
    try:
        connection.execute(f"SELECT rowid FROM {table} LIMIT 0")
        order = "rowid"
    except sqlite3.OperationalError:  # WITHOUT ROWID: its primary key
        keys = sorted((row[5], row[1]) for row in connection.execute(f"PRAGMA table_info({table})"))
        order = ", ".join(name for rank, name in keys if rank)
    selected = connection.execute(f"SELECT {', '.join(columns)} FROM {table} ORDER BY {order}")
    return [tuple(row) for row in selected]
