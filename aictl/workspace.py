"""Where the state lives: ``.ai/state.db`` found the way git finds ``.git``; ``aictl init``."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from aictl.errors import InvalidInput, NotAnAictlDatabase, NotInitialised

STATE_DIR = ".ai"
STATE_DB = "state.db"


@dataclass(frozen=True)
class Workspace:
    """A repository under aictl: ``root`` anchors every path glob; ``db_path`` holds the state."""

    root: Path
    db_path: Path

    @property
    def state_dir(self) -> Path:
        return self.root / STATE_DIR


def locate(
    db: Path | str | None = None, cwd: Path | None = None, *, damaged: bool = False
) -> Workspace:
    """The workspace for ``cwd``: ``db`` (from ``--db`` or ``AICTL_DB``) if given, else the
    nearest ``.ai/state.db`` walking up. Raises ``NotInitialised`` when there is none, and
    refuses an empty database file unless ``damaged`` (a restore, which replaces it)."""
    cwd = Path(cwd or Path.cwd()).resolve()
    checked = (lambda path: path) if damaged else _not_empty
    db = db or os.environ.get("AICTL_DB") or None
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


def initialise(cwd: Path | None = None) -> tuple[Workspace, list[str]]:
    """Create ``.ai/`` (state database, commented example policy, .gitignore) at the
    repository root. Idempotent: existing files are kept as they are. Returns the workspace
    and the paths it created, relative to the root.

    Raises ``InvalidInput`` (exit 2) outside a git repository, creating nothing: the evidence
    of every run (base commit, changed files, diff) comes from git."""
    from aictl.store.db import Database

    start = Path(cwd or Path.cwd()).resolve()
    root = git_root(start)
    if root is None:
        raise InvalidInput(
            f"{start} is not inside a git repository; aictl takes the evidence of every run "
            "(base commit, changed files, diff) from git",
            hint="run `git init` (and commit your files) first, then `aictl init`",
        )
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
    if not db_path.exists():
        created.append(f"{STATE_DIR}/{STATE_DB}")
    Database(db_path).close()
    return Workspace(root, db_path), created
