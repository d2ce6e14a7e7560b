"""The PostgreSQL backend: one connection speaking the part of the sqlite3 API the store uses.

The store's modules are written once, in the SQL both engines accept; what differs is kept
here and in the PostgreSQL schema (``migrations/pg``):

- placeholders: ``?`` outside quotes becomes ``%s``, and every literal ``%`` becomes ``%%``;
- ``INDEXED BY name`` (a SQLite planner pin) is dropped;
- SQLite's functions the store calls (``json_valid``, ``json_extract``, ``json_group_array``)
  are defined in the PostgreSQL schema with the same results, so queries stay the same;
- a write transaction is ``BEGIN`` then ``pg_advisory_xact_lock(WRITER_LOCK)``: like SQLite's
  ``BEGIN IMMEDIATE`` it admits one writer at a time and every statement after the lock sees
  every earlier commit (READ COMMITTED). COMMIT or ROLLBACK releases it, also when a client
  dies (the server ends its session).
- the lease holder's hot path runs *concurrently* instead (``transaction(concurrent=True)``:
  claim, start, complete, heartbeat). Such a transaction takes the writer lock *shared*, so it
  runs beside the others of its kind and never beside an exclusive one. It is safe there
  because it changes only rows that its own fenced, conditional statements select (its lease's
  task, its own path locks, its dependents' ``unmet_deps`` by decrement), and PostgreSQL
  re-checks such a statement's WHERE on the newest row version. Claims additionally serialise
  among themselves (``serial="claims"``: the path-lock check and the lock rows are exact),
  except the server's claim of a head of the queue with no paths, which takes no path lock
  and so needs no order among claims (its row lock keeps the others off it); so a claim
  walking the queue skips rows other claims hold, and one that asks the policy holds each
  candidate's row before deciding (``TaskStore._hold``).
  Its audit rows and notifications wait in ``PgConnection.deferred`` and are written at
  COMMIT, in one message (so a client frozen mid-way never holds the audit lock): each row
  appended at the head by ``aictl_audit_append`` (which takes ``AUDIT_LOCK`` and hashes the
  row as ``audit.row_hash`` does), then COMMIT. So the chain has one head and its order is
  the commit order, the audit lock is the last lock every concurrent transaction takes (no
  lock cycle through it) and it is held for the server's work only, never for a round trip.
- the commonest of those transactions run *in the server*: the claim of the next ready task,
  start and complete are PL/pgSQL functions (``migrations/pg/0012_hot_path.sql``), each one
  statement, so one round trip and one transaction (``PgDatabase.call``), taking the same
  locks in the same order and appending the same audit rows. What only Python decides is
  passed in (the statuses an event may leave, the audit data) or handed back (an expired
  lease to sweep; pairs of globs whose overlap the glob automata must decide, remembered in
  ``glob_pairs``). Heartbeats, claims that ask the policy, and every other write keep the
  Python path.
- the schema version lives in ``aictl_schema`` (SQLite keeps it in ``PRAGMA user_version``).

Rows are ``Row`` objects: indexable by position and by column name, like ``sqlite3.Row``.
Python ints are sent as BIGINT (psycopg would pick the smallest type, and ``SELECT ?`` in a
recursive query must match the BIGINT ids). PostgreSQL's errors reach callers as the sqlite3
exception of the same kind (``IntegrityError``, ``OperationalError``, ``DatabaseError``),
the original chained: the store's callers catch those, whatever the backend.
"""

from __future__ import annotations

import re
import sqlite3
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, suppress
from functools import lru_cache
from pathlib import Path
from typing import Any, cast

from aictl.errors import DatabaseUnusable, NotAnAictlDatabase
from aictl.store.db import Database, WriteConflict, shown

MIGRATIONS = Path(__file__).with_name("migrations") / "pg"
WRITER_LOCK = 0x61696374  # "aict": the advisory lock every write transaction takes
AUDIT_LOCK = 0x61696375  # the audit chain's head, for concurrent transactions' rows
SERIAL_LOCKS = {"claims": 0x61696376}
"""Advisory locks that serialise concurrent transactions of one kind among themselves."""
_BEGIN_WRITE = f"BEGIN; SELECT pg_advisory_xact_lock({WRITER_LOCK})"
_BEGIN_CONCURRENT = f"BEGIN; SELECT pg_advisory_xact_lock_shared({WRITER_LOCK})"
_APPEND_AT_HEAD = "SELECT aictl_audit_append({}, {}, {}, {}, {})"
"""One audit row appended at the head under the audit lock, its hash computed by the server
(``migrations/pg/0012``); ``{}`` are literals (``PgConnection.commit`` sends its statements
as one message, without parameters)."""
WORK_CHANNEL = "aictl_work"
"""The LISTEN/NOTIFY channel on which the store says that work may have become ready."""


def migrations() -> list[tuple[int, str]]:
    """Every PostgreSQL migration, in order, as (version, SQL script)."""
    found = [
        (int(entry.name[:4]), entry.read_text(encoding="utf-8"))
        for entry in MIGRATIONS.iterdir()
        if entry.suffix == ".sql" and entry.name[:4].isdigit()
    ]
    return sorted(found)


_QUOTED_OR_MARK = re.compile(r"'(?:[^']|'')*'|\"(?:[^\"]|\"\")*\"|\?|%")
_INDEXED_BY = re.compile(r"\s+INDEXED\s+BY\s+\w+", re.IGNORECASE)


@lru_cache(maxsize=512)
def translate(sql: str) -> str:
    """The store's SQL in PostgreSQL's dialect (see the module's docstring). Cached: the
    store's statements are a few dozen constant strings."""
    sql = _INDEXED_BY.sub("", sql)

    def replace(match: re.Match[str]) -> str:
        token = match.group(0)
        # psycopg reads % everywhere, quoted text included ('task.%' in a LIKE)
        return "%s" if token == "?" else token.replace("%", "%%")

    return _QUOTED_OR_MARK.sub(replace, sql)


class Row(tuple[Any, ...]):
    """A result row: ``row[0]`` and ``row["name"]``, ``keys()``, ``dict(row)``."""

    _names: tuple[str, ...]

    def __new__(cls, values: Sequence[Any], names: tuple[str, ...]) -> Row:
        row = super().__new__(cls, values)
        row._names = names
        return row

    def __getitem__(self, key: Any) -> Any:
        if isinstance(key, str):
            try:
                return tuple.__getitem__(self, self._names.index(key))
            except ValueError:
                raise IndexError(f"no such column: {key}") from None
        return tuple.__getitem__(self, key)

    def keys(self) -> list[str]:
        return list(self._names)


def _row_factory(cursor: Any) -> Callable[[Sequence[Any]], Row]:
    # the names straight from the result: cursor.description builds a Column (with its type's
    # lookups) for each of them, a third of the client's CPU on a task's hot path (31 columns)
    result = cursor.pgresult
    names = tuple(result.fname(i).decode() for i in range(result.nfields)) if result else ()
    return lambda values: Row(values, names)


@contextmanager
def _as_sqlite_errors() -> Iterator[None]:
    import psycopg

    try:
        yield
    except psycopg.errors.IntegrityError as error:
        raise sqlite3.IntegrityError(_message(error)) from error
    except (psycopg.errors.DeadlockDetected, psycopg.errors.SerializationFailure) as error:
        raise WriteConflict(_message(error)) from error
    except psycopg.OperationalError as error:
        raise sqlite3.OperationalError(_message(error)) from error
    except psycopg.DatabaseError as error:
        raise sqlite3.DatabaseError(_message(error)) from error


# SQLite's words for a broken constraint, by PostgreSQL's SQLSTATE: messages (and the tests
# that match them) read the same on both backends.
_CONSTRAINT_WORDS = {
    "23502": "NOT NULL constraint failed",
    "23503": "FOREIGN KEY constraint failed",
    "23505": "UNIQUE constraint failed",
    "23514": "CHECK constraint failed",
}


def _message(error: Exception) -> str:
    """PostgreSQL's primary message (the first line: the detail names values, not the rule),
    after SQLite's words for a broken constraint."""
    diagnostic = getattr(error, "diag", None)
    primary = str(getattr(diagnostic, "message_primary", None) or error).splitlines()[0]
    words = _CONSTRAINT_WORDS.get(getattr(error, "sqlstate", None) or "")
    return f"{words}: {primary}" if words else primary


def _readable(fd: int) -> bool:
    """Whether ``fd`` has something to read now (``poll``: ``select`` refuses descriptors of
    1024 and above, which a busy process reaches)."""
    import select

    poller = select.poll()
    poller.register(fd, select.POLLIN)
    return bool(poller.poll(0))


#: How long the server lets a session sit inside a transaction without a statement before
#: ending it (aictl's transactions take milliseconds between statements).
IDLE_IN_TRANSACTION_S = 15


class PgConnection:
    """A psycopg connection in autocommit mode, transactions begun explicitly (as on SQLite).

    A session the server ended (a restart, or a client that sat frozen inside a transaction
    past ``IDLE_IN_TRANSACTION_S``) is opened again on the next statement between
    transactions; inside one (``pinned``) never: a transaction's later statements must not run
    on a new session, so they fail with the first."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.pinned = False
        self.deferred: list[tuple[str, str, str, int | None, str]] | None = None
        """A concurrent transaction's audit rows (at, kind, actor, task, data), appended at
        its COMMIT; None when rows are appended at once (no transaction, or an exclusive one)."""
        self.notices: list[str] = []
        """Reasons to ``NOTIFY`` at COMMIT."""
        self.raw = self._open()

    def _open(self) -> Any:
        import psycopg
        from psycopg.types.numeric import Int8Dumper

        raw = psycopg.connect(self.url, autocommit=True, row_factory=_row_factory)
        raw.adapters.register_dumper(int, Int8Dumper)
        # A client frozen (SIGSTOP, a paused VM) inside a transaction would hold the writer
        # lock, and so every host's writes, for as long as it stays frozen: the server ends
        # such a session instead, releasing the lock; the client's own writes then fail.
        raw.execute(f"SET idle_in_transaction_session_timeout = '{IDLE_IN_TRANSACTION_S}s'")
        return raw

    def live(self) -> Any:
        """The psycopg connection, opened again first if it is known to be ended and no
        transaction is under way."""
        if self.raw.closed and not self.pinned:
            with _as_sqlite_errors():
                self.raw = self._open()
        return self.raw

    def again_if_ended(self, action: Callable[[Any], Any]) -> Any:
        """``action(connection)``; when the session turns out to have been ended (the client
        learns it only from a statement that fails) and no transaction is under way, once more
        on a new session. Only for what is safe to repeat: a read, or a transaction's BEGIN."""
        import psycopg

        with _as_sqlite_errors():
            try:
                return action(self.live())
            except psycopg.OperationalError:
                if self.pinned or not self.raw.closed:
                    raise
            return action(self.live())

    def execute(self, sql: str, parameters: Sequence[Any] = ()) -> Any:
        statement, values = translate(sql), tuple(parameters)
        if not self.pinned and statement.lstrip()[:6].upper() == "SELECT":
            return self.again_if_ended(lambda raw: raw.execute(statement, values))
        raw = self.live()
        with _as_sqlite_errors():
            return raw.execute(statement, values)

    def executemany(self, sql: str, rows: Any) -> Any:
        cursor = self.live().cursor()
        with _as_sqlite_errors():
            cursor.executemany(translate(sql), [tuple(row) for row in rows])
        return cursor

    def call(self, sql: str, parameters: Sequence[Any]) -> Any:
        """One statement that is a transaction of its own (autocommit), its one row returned.
        Sent once, never repeated on a new session: it writes, and a session that ends while
        it runs may have committed it. A session the server has already ended is opened
        again first: ``live()`` knows a closed one, and an idle socket with something to
        read holds the server's goodbye (nothing else arrives unasked on this connection,
        which never LISTENs), found without a round trip."""
        raw = self.live()
        if not self.pinned and _readable(raw.fileno()):
            raw.close()
            raw = self.live()
        with _as_sqlite_errors():
            return raw.execute(translate(sql), tuple(parameters)).fetchone()

    def defer_audit(self, row: tuple[str, str, str, int | None, str]) -> bool:
        """Keep an audit row for the COMMIT of the concurrent transaction under way; False
        (the caller appends it now) in any other."""
        if self.deferred is None:
            return False
        self.deferred.append(row)
        return True

    def commit(self) -> None:
        """COMMIT, after the deferred audit rows and notifications, all in one message (the
        simple query protocol: statements of literals, no parameters), the audit lock taken
        first so that each row extends the head as committed before it. One message, so the
        server runs it to the end without waiting for the client: a client frozen before
        sending it holds no audit lock, and one frozen after it has committed."""
        rows, notices = self.deferred or [], self.notices
        if not rows and not notices:
            self.execute("COMMIT")
            return
        from psycopg.sql import SQL, Literal

        raw = self.live()
        statements = [
            SQL(_APPEND_AT_HEAD).format(*map(Literal, row)).as_string(raw) for row in rows
        ]
        for reason in notices:
            notify = SQL("SELECT pg_notify({}, {})").format(Literal(WORK_CHANNEL), Literal(reason))
            statements.append(notify.as_string(raw))
        statements.append("COMMIT")
        with _as_sqlite_errors():
            raw.execute(";\n".join(statements))

    @property
    def in_transaction(self) -> bool:
        from psycopg.pq import TransactionStatus

        return bool(self.raw.info.transaction_status != TransactionStatus.IDLE)

    def close(self) -> None:
        self.raw.close()


class PgDatabase(Database):
    """The PostgreSQL counterpart of ``db.Database``: same attributes, same transactions."""

    def __init__(self, url: str) -> None:  # no super().__init__(): that opens SQLite
        self.url = url
        self.path = Path(shown(url))  # named in messages only; there is no file
        self._depth = 0
        try:
            self.pg = PgConnection(url)
        except Exception as error:  # psycopg.OperationalError: cannot connect
            raise DatabaseUnusable(
                f"cannot connect to the PostgreSQL database {shown(url)}: {error}".strip(),
                hint="check the URL (--db / AICTL_DB / database: in .ai/config) and that the "
                "server runs and accepts you",
            ) from error
        # The store's modules are typed against sqlite3's connection; PgConnection
        # implements the part of it they use (execute, executemany, in_transaction).
        self.connection = cast(sqlite3.Connection, self.pg)
        try:
            self.migrate()
        except BaseException:
            self.pg.close()
            raise

    row_locks = True
    hot_path_in_server = True
    """The claim of the next ready task, start and complete run as server-side functions
    (``migrations/pg/0012_hot_path.sql``); a benchmark may set it False to measure the
    Python path on the same server."""

    def close(self) -> None:
        self.pg.close()

    def call(self, sql: str, parameters: Sequence[Any]) -> Any:
        if self._depth:
            raise RuntimeError("a hot-path function is a transaction of its own")
        return self.pg.call(sql, parameters)

    @contextmanager
    def transaction(self, *, concurrent: bool = False, serial: str | None = None) -> Iterator[Any]:
        """A write transaction holding the writer lock; a savepoint when nested (in the
        outer transaction's mode).

        ``concurrent``: the writer lock is taken shared and the audit rows wait for COMMIT
        (see the module's docstring); only for a transaction whose every change is made by
        fenced, conditional statements. ``serial`` names a lock (``SERIAL_LOCKS``) that
        transactions of one kind also take, so that they run one at a time among themselves.
        """
        pg = self.pg
        if self._depth:
            name = f"sp{self._depth}"
            marks = (len(pg.deferred or ()), len(pg.notices))
            pg.execute(f"SAVEPOINT {name}")
            self._depth += 1
            try:
                yield self.connection
                pg.execute(f"RELEASE SAVEPOINT {name}")
            except BaseException:
                if pg.in_transaction:
                    pg.execute(f"ROLLBACK TO SAVEPOINT {name}")
                    pg.execute(f"RELEASE SAVEPOINT {name}")
                if pg.deferred is not None:
                    del pg.deferred[marks[0] :]
                del pg.notices[marks[1] :]
                raise
            finally:
                self._depth -= 1
            return
        begin = _BEGIN_CONCURRENT if concurrent else _BEGIN_WRITE
        if serial is not None:
            begin += f"; SELECT pg_advisory_xact_lock({SERIAL_LOCKS[serial]})"
        self._depth = 1
        try:
            # one round trip for all (no parameters: the simple protocol takes several
            # statements); inside the try, so that an interrupted wait for a lock rolls back
            pg.again_if_ended(lambda raw: raw.execute(begin))
            pg.pinned = True
            pg.deferred = [] if concurrent else None
            yield self.connection
            pg.commit()
        except BaseException:
            if pg.in_transaction:
                # the connection may be gone: the server has then rolled it back
                with suppress(Exception):
                    pg.execute("ROLLBACK")
            raise
        finally:
            self._depth = 0
            pg.pinned = False
            pg.deferred = None
            pg.notices = []

    def announce(self, reason: str) -> None:
        """``NOTIFY aictl_work, reason`` with the COMMIT: delivered to every listener when the
        transaction commits, never when it rolls back (a refused change wakes nobody)."""
        if self._depth:
            self.pg.notices.append(reason)
        else:
            self.pg.execute("SELECT pg_notify(?, ?)", (WORK_CHANNEL, reason))

    def schema_version(self) -> int:
        # A catalog query, not to_regclass(): that looks the name up without a lock, in a
        # cache that can still say "no such table" after another session created it (seen
        # with four processes opening a new database at once).
        row = self.pg.execute(
            "SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_tables"
            " WHERE schemaname = current_schema() AND tablename = 'aictl_schema')"
        ).fetchone()
        if not row[0]:
            return 0
        found = self.pg.execute("SELECT max(version) FROM aictl_schema").fetchone()
        return int(found[0] or 0)

    def quick_check(self) -> list[str]:
        """Nothing to check from here: PostgreSQL checks its own pages (checksums, and the
        ``amcheck`` extension for an administrator who wants more)."""
        return []

    def _refuse_foreign(self) -> None:
        rows = self.pg.execute(
            "SELECT table_name FROM information_schema.tables"
            " WHERE table_schema = current_schema() ORDER BY table_name LIMIT 6"
        ).fetchall()
        if rows:
            names = ", ".join(row[0] for row in rows[:5]) + (", ..." if len(rows) > 5 else "")
            raise NotAnAictlDatabase(
                f"{shown(self.pg.url)} is not an aictl database: it holds another program's "
                f"tables ({names})",
                hint="name an empty database (or schema) for aictl; `aictl init --db URL` "
                "creates its tables",
            )

    def migrate(self) -> None:
        """Bring the schema up to date, each migration in one transaction under the writer
        lock, the version re-read under it (two processes opening a new database at once
        apply each migration once)."""
        known = migrations()
        latest = known[-1][0] if known else 0
        version = self.schema_version()
        if version > latest:
            raise DatabaseUnusable(
                f"the PostgreSQL database {shown(self.pg.url)} has schema version {version}, "
                f"newer than this aictl knows (up to {latest}): a newer aictl wrote it",
                hint="upgrade aictl to use it; it was left unchanged",
            )
        if version >= latest:
            return
        with self.transaction():
            version = self.schema_version()
            if version == 0:
                self._refuse_foreign()
                self.pg.execute("CREATE TABLE aictl_schema (version INTEGER PRIMARY KEY)")
            for number, script in known:
                if number <= version:
                    continue
                self.pg.raw.execute(cast(Any, script))  # several statements: no parameters
                self.pg.execute("INSERT INTO aictl_schema (version) VALUES (?)", (number,))


class WorkListener:
    """A thread that LISTENs on ``aictl_work`` over a connection of its own and calls
    ``wake(reason)`` for each notification: a daemon waits on that instead of its next tick.

    A lost connection is opened again after a pause (the daemon's tick still runs meanwhile:
    waking early is an optimisation, never the only way work is found)."""

    PAUSE_S = 1.0
    POLL_S = 0.5

    def __init__(self, url: str, wake: Callable[[str], None]) -> None:
        import threading

        self.url = url
        self.wake = wake
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="aictl-listen", daemon=True)
        self.listening = threading.Event()
        """Set once LISTEN is in force (tests wait for it before they write)."""

    def start(self) -> None:
        self._thread.start()

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def _run(self) -> None:
        import psycopg

        while not self._stop.is_set():
            try:
                with psycopg.connect(self.url, autocommit=True) as connection:
                    connection.execute(f"LISTEN {WORK_CHANNEL}")
                    self.listening.set()
                    while not self._stop.is_set():
                        for notice in connection.notifies(timeout=self.POLL_S):
                            self.wake(notice.payload)
            except psycopg.Error:
                self.listening.clear()
                self._stop.wait(self.PAUSE_S)
