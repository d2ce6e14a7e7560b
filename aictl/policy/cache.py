"""A cache of validated policy files: an unchanged file skips YAML, structure and schema.

Stages 1-3 of loading (PyYAML, the structure check, pydantic) cost about 140 ms per command,
most of it importing pydantic, although the file rarely changes between two commands. When a
file has validated without errors, :meth:`LayerCache.put` keeps what the later stages need to
rebuild its layer (the document as plain data and the line of every node) as a JSON file in
``<root>/.ai/cache/policy/``; the next load finds it by key and goes straight to stage 4.

The key is the SHA-256 of the file's raw bytes together with everything else its validated
form depends on: :data:`FORMAT` (bump it when the entry's form or the schema changes),
:data:`AICTL_VERSION`, the layer's name, and the size and modification time of the modules
that implement stages 1-3 (so that a development checkout never keeps entries validated by a
schema it has since edited). Any other content, any other aictl, or an edited stage misses.

What is *not* cached: stage 4 (CEL compilation, the field check, duplicate rule ids, the
heartbeat check) runs on every load: it builds the compiled programs, which cannot be stored,
and its checks add only about 3 ms for ten rules to compiling them. A file with errors is
never stored, so it is validated, and its errors reported, every time. A file read by the
fast path (:func:`aictl.policy.digest.trivial_document`) costs microseconds anyway.
Validation (``aictl policy validate``) neither reads nor writes the cache.

Entries are written to a temporary file and renamed over the entry (atomic on POSIX and
Windows), so a concurrent reader sees a whole entry or none. An entry that cannot be read,
is not JSON, or is not of the expected shape is a miss, never an error: it is rebuilt and
replaced. After a write the folder keeps the :data:`MAX_ENTRIES` most recent entries.

The cache is as trustworthy as its folder: whoever can write ``.ai/cache/policy/`` can make
a layer load as other content than its file holds (the global layer's entries live there too).
"""

from __future__ import annotations

import contextlib
import json
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aictl.domain.sha import sha256
from aictl.policy.source import Lines, Path_

FORMAT = 1
"""The version of an entry's form and of the schema it was validated against: bump it when
either changes (a changed module also misses, but a released install relies on this)."""

AICTL_VERSION = "0.1.0"
"""This aictl's version (as in ``pyproject.toml``; a test keeps the two equal). A constant
because ``importlib.metadata`` costs about 30 ms to import, more than the cache saves on a
small file."""

FOLDER = Path(".ai") / "cache" / "policy"
MAX_ENTRIES = 64
STALE_TEMPORARY_SECONDS = 3600
"""A temporary file this old was left by a writer that died; pruning removes it."""

_AICTL = Path(__file__).parent.parent
_STAGE_MODULES = (
    "policy/cache.py",
    "policy/loader.py",
    "policy/source.py",
    "policy/models.py",
    "policy/vocabulary.py",
    "domain/durations.py",
    "domain/suggest.py",
)
"""The code behind stages 1-3 and the entry's form, relative to the aictl package."""
_stamp: bytes | None = None


@dataclass(frozen=True)
class Entry:
    """A validated file as stage 4 needs it: the document and the lines of its nodes."""

    data: dict[str, Any]
    lines: Lines


class LayerCache:
    """The cache folder of one repository. Every method swallows file-system errors: a cache
    that cannot be read or written only makes loading slower."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    @classmethod
    def for_repository(cls, root: Path) -> LayerCache | None:
        """The cache of the repository at ``root``; None when it has no ``.ai`` folder (aictl
        is not initialised there, and loading a policy must not create one)."""
        return cls(root / FOLDER) if (root / ".ai").is_dir() else None

    @classmethod
    def for_user(cls) -> LayerCache:
        """The user's own cache (``$XDG_CACHE_HOME/aictl/policy``, else
        ``~/.cache/aictl/policy``): used for the global layer, so that nothing written inside
        a repository can change how the machine-wide policy loads."""
        base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
        return cls(Path(base) / "aictl" / "policy")

    def key(self, raw: bytes, layer: str) -> str:
        """The entry name of a file whose bytes are ``raw``, loaded as ``layer``."""
        digest = sha256(f"{FORMAT}\0{AICTL_VERSION}\0{layer}\0".encode())
        digest.update(_code_stamp())
        digest.update(b"\0")
        digest.update(raw)
        return digest.hexdigest()

    def get(self, key: str) -> Entry | None:
        """The entry stored under ``key``, or None when it is missing or unusable."""
        try:
            stored = json.loads((self.folder / f"{key}.json").read_bytes())
            return _entry(stored, key)
        except (OSError, ValueError, TypeError, KeyError):
            return None

    def put(self, key: str, data: dict[str, Any], lines: Lines) -> None:
        """Store a file that validated without errors, atomically, then prune the folder.

        A document that JSON cannot carry exactly (a value that would come back as another
        type) is not stored: a later load must see the same data, and so the same hash.
        """
        stored = {
            "format": FORMAT,
            "key": key,
            "data": data,
            "lines": [[list(path), line] for path, line in lines.lines.items()],
            "literal_blocks": [list(path) for path in sorted(lines.literal_blocks, key=str)],
        }
        try:
            text = json.dumps(stored, ensure_ascii=False, separators=(",", ":"))
            if json.loads(text) != stored:
                return
        except (TypeError, ValueError):
            return
        temporary = self.folder / f".{key}.{os.getpid()}.{os.urandom(4).hex()}.tmp"
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            with open(temporary, "x", encoding="utf-8") as out:
                out.write(text)
            os.replace(temporary, self.folder / f"{key}.json")
        except OSError:
            temporary.unlink(missing_ok=True)
            return
        self.prune()

    def prune(self, keep: int | None = None) -> None:
        """Keep the ``keep`` (default :data:`MAX_ENTRIES`) most recently written entries;
        remove stale temporary files.

        Another process may remove the same files at the same time: a file already gone is
        not an error.
        """
        entries: list[tuple[float, str]] = []
        stale: list[str] = []
        stale_before = time.time() - STALE_TEMPORARY_SECONDS
        try:
            with os.scandir(self.folder) as found:
                for item in found:
                    with contextlib.suppress(OSError):  # removed meanwhile by another process
                        modified = item.stat().st_mtime
                        if item.name.endswith(".json"):
                            entries.append((modified, item.path))
                        elif item.name.endswith(".tmp") and modified < stale_before:
                            stale.append(item.path)
        except OSError:
            return
        entries.sort(reverse=True)
        keep = MAX_ENTRIES if keep is None else keep
        for path in stale + [path for _, path in entries[keep:]]:
            with contextlib.suppress(OSError):
                os.unlink(path)


def _entry(stored: Any, key: str) -> Entry | None:
    """The entry in ``stored`` (parsed JSON), checking its shape; raises or returns None for
    anything else (a truncated, hand-edited or foreign file)."""
    if stored["format"] != FORMAT or stored["key"] != key or not isinstance(stored["data"], dict):
        return None
    lines = Lines(lines={}, literal_blocks={_path(path) for path in stored["literal_blocks"]})
    for path, line in stored["lines"]:
        if not isinstance(line, int) or isinstance(line, bool):
            return None
        lines.lines[_path(path)] = line
    return Entry(stored["data"], lines)


def _path(parts: Any) -> Path_:
    if not isinstance(parts, list) or not all(
        isinstance(part, str | int) and not isinstance(part, bool) for part in parts
    ):
        raise TypeError("a node path is a list of keys and indexes")
    return tuple(parts)


def _code_stamp() -> bytes:
    """Size and modification time of each stage module, computed once per process."""
    global _stamp  # noqa: PLW0603 - one stat per module per process, not per load
    if _stamp is None:
        parts = []
        for name in _STAGE_MODULES:
            try:
                status = (_AICTL / name).stat()
                parts.append(f"{name}:{status.st_size}:{status.st_mtime_ns}")
            except OSError:  # pragma: no cover - a zipped install: the version decides
                parts.append(f"{name}:?")
        _stamp = "\n".join(parts).encode()
    return _stamp
