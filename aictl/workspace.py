"""Where the state lives: ``.ai/state.db`` found the way git finds ``.git``; ``aictl init``."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from aictl.errors import InvalidInput, NotAnAictlDatabase, NotInitialised

STATE_DIR = ".ai"
STATE_DB = "state.db"
CONFIG = "config"


@dataclass(frozen=True)
class Workspace:
    """A repository under aictl: ``root`` anchors every path glob; ``db_path`` holds the state,
    unless ``url`` names a PostgreSQL database that holds it instead."""

    root: Path
    db_path: Path
    url: str | None = None

    @property
    def state_dir(self) -> Path:
        return self.root / STATE_DIR

    @property
    def database(self) -> Path | str:
        """What ``store.db.connect`` opens: the PostgreSQL URL, else the SQLite file."""
        return self.url or self.db_path


def configured_database(state_dir: Path) -> str | None:
    """``database:`` in ``.ai/config`` (YAML), when that file exists and names one.

    Raises ``InvalidInput`` naming the file and the line when the value is not a PostgreSQL
    URL (the only database a config names: the SQLite state is always ``.ai/state.db``)."""
    config = state_dir / CONFIG
    if not config.is_file():
        return None
    import yaml

    from aictl.store.db import is_postgres_url

    try:
        data = yaml.safe_load(config.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as error:
        raise InvalidInput(f"{config}: not valid YAML ({error})") from error
    if not isinstance(data, dict) or data.get("database") is None:
        return None
    value = data["database"]
    if not is_postgres_url(value):
        line = next(
            (
                number
                for number, text in enumerate(config.read_text(encoding="utf-8").splitlines(), 1)
                if text.lstrip().startswith("database:")
            ),
            1,
        )
        raise InvalidInput(
            f"{config}:{line}: database: must be a postgresql:// URL, not {value!r}",
            hint="remove the line to use .ai/state.db (SQLite)",
        )
    return str(value)


def locate(
    db: Path | str | None = None, cwd: Path | None = None, *, damaged: bool = False
) -> Workspace:
    """The workspace for ``cwd``: ``db`` (from ``--db`` or ``AICTL_DB``) if given, else the
    nearest ``.ai/`` walking up, holding ``state.db`` or a ``config`` naming a ``database:``.
    A PostgreSQL URL (``postgresql://...``) in any of them selects that backend, the
    repository root then being the enclosing git work tree. Raises ``NotInitialised`` when
    there is none, and refuses an empty database file unless ``damaged`` (a restore, which
    replaces it)."""
    from aictl.store.db import is_postgres_url

    cwd = Path(cwd or Path.cwd()).resolve()
    checked = (lambda path: path) if damaged else _not_empty
    db = db or os.environ.get("AICTL_DB") or None
    if is_postgres_url(db):
        assert isinstance(db, str)
        root = repository_root(cwd)
        return Workspace(root, root / STATE_DIR / STATE_DB, url=db)
    if db:
        db_path = Path(db).expanduser().resolve()
        if not db_path.is_file():
            raise NotInitialised(
                f"no state database at {db_path}",
                hint="run `aictl init` in the repository, or fix --db / AICTL_DB",
            )
        parent = db_path.parent
        root = parent.parent if parent.name == STATE_DIR else cwd
        return Workspace(root, checked(db_path))
    for directory in (cwd, *cwd.parents):
        candidate = directory / STATE_DIR / STATE_DB
        if (directory / STATE_DIR / CONFIG).is_file():
            url = configured_database(directory / STATE_DIR)
            if url:
                return Workspace(directory, candidate, url=url)
        if candidate.is_file():
            return Workspace(directory, checked(candidate))
    raise NotInitialised(
        f"not inside an aictl repository (no {STATE_DIR}/{STATE_DB} in {cwd} or above)",
        hint="run `aictl init` at the root of your repository",
    )


def is_git_marker(path: Path) -> bool:
    """Whether ``path`` (a ``.git`` entry) makes its folder a git work tree, by the files git
    itself looks for: a directory holding ``HEAD`` and ``objects/``, or a file ``gitdir: ...``
    (a linked worktree or a submodule). An empty folder named ``.git`` is not a repository.
    Read from the file system, not by running git: this runs on every command's fast path."""
    if path.is_dir():
        return (path / "HEAD").is_file() and (path / "objects").is_dir()
    try:
        with path.open("rb") as marker:
            return marker.read(8) == b"gitdir: "
    except OSError:
        return False


def git_root(cwd: Path) -> Path | None:
    """The enclosing git work tree, or None when ``cwd`` is in none."""
    for directory in (cwd, *cwd.parents):
        if is_git_marker(directory / ".git"):
            return directory
    return None


def _not_empty(db_path: Path) -> Path:
    """``db_path``, unless the file is empty: SQLite would silently make any empty file a new
    database, and an empty file named as the state is a mistake, not a state. (A database
    aictl made is never empty: switching it to WAL writes its first page at once.)"""
    try:
        empty = db_path.stat().st_size == 0
    except OSError:
        return db_path  # opening it reports what is wrong
    if empty and db_path.name == STATE_DB and db_path.parent.name == STATE_DIR:
        from aictl.store.failures import damaged  # only here: it imports sqlite3

        raise damaged(db_path, "the file is empty: it was truncated")
    if empty:
        raise NotAnAictlDatabase(
            f"{db_path} is not an aictl database: the file is empty",
            hint="`aictl init` makes the state database (.ai/state.db); "
            "--db / AICTL_DB must name one",
        )
    return db_path


def repository_root(cwd: Path) -> Path:
    """The enclosing git work tree, or ``cwd`` when there is none."""
    return git_root(cwd) or cwd


def initialise(cwd: Path | None = None, database: str | None = None) -> tuple[Workspace, list[str]]:
    """Create ``.ai/`` (state database, commented example policy, .gitignore) at the
    repository root. Idempotent: existing files are kept as they are. Returns the workspace
    and the paths it created, relative to the root.

    ``database`` (a ``postgresql://`` URL) keeps the state there instead of ``.ai/state.db``:
    its schema is created (or brought up to date) and ``.ai/config`` records the URL, so the
    commands run in this repository find it.

    Raises ``InvalidInput`` (exit 2) outside a git repository, creating nothing: the evidence
    of every run (base commit, changed files, diff) comes from git."""
    from aictl.store.db import Database, connect, is_postgres_url

    if database is not None and not is_postgres_url(database):
        raise InvalidInput(
            f"--db for init must be a postgresql:// URL, not {database!r}",
            hint="without --db, `aictl init` makes .ai/state.db (SQLite)",
        )
    start = Path(cwd or Path.cwd()).resolve()
    root = git_root(start)
    if root is None:
        raise InvalidInput(
            f"{start} is not inside a git repository; aictl takes the evidence of every run "
            "(base commit, changed files, diff) from git",
            hint="run `git init` (and commit your files) first, then `aictl init`",
        )
    if database is not None:
        # the schema first: a server that refuses us leaves the repository untouched
        connect(database).close()
    state = root / STATE_DIR
    created = []
    if not state.is_dir():
        state.mkdir(parents=True)
        created.append(f"{STATE_DIR}/")
    templates = Path(__file__).with_name("templates")
    for name, template in (("policy.yaml", "policy.yaml"), (".gitignore", "gitignore")):
        target = state / name
        if not target.exists():
            target.write_text((templates / template).read_text(encoding="utf-8"))
            created.append(f"{STATE_DIR}/{name}")
    db_path = state / STATE_DB
    if database is not None:
        config = state / CONFIG
        recorded = configured_database(state) if config.exists() else None
        if recorded != database:
            config.write_text(f"database: {database}\n", encoding="utf-8")
            created.append(f"{STATE_DIR}/{CONFIG}")
        return Workspace(root, db_path, url=database), created
    if not db_path.exists():
        created.append(f"{STATE_DIR}/{STATE_DB}")
    Database(db_path).close()
    return Workspace(root, db_path), created
