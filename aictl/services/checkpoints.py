"""Signed audit checkpoints: an anchor for the chain's head outside the machine's database.

A checkpoint records the head of the chain (sequence number, hash, row count) and when it was
taken, signed with HMAC-SHA256 under a key the agents cannot read: a file outside the
repository (``AICTL_AUDIT_KEY_FILE``, default ``~/.config/aictl/audit.key``, created 0600 with
32 random bytes on first use). Someone who rewrites the database cannot write a matching
checkpoint without the key, and cannot reach one kept elsewhere (a file outside the
repository, or a webhook that stores what it receives). See docs/audit.md for what a
checkpoint proves and what it cannot.

Files are written atomically (a temporary file in the same folder, fsync, rename, fsync of the
folder): a full disk leaves the earlier checkpoint whole, never an empty file.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import json
import os
import secrets
import stat
import tempfile
import urllib.error
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from aictl.domain.tasks import format_time
from aictl.errors import AictlError, InvalidInput
from aictl.store.audit import Checkpoint, canonical

FORMAT = "aictl-audit-checkpoint/2"
KEY_ENV = "AICTL_AUDIT_KEY_FILE"
POST_TIMEOUT = 10.0
"""Seconds to wait for a webhook to take a checkpoint (a receiver that never answers)."""
MAX_CHECKPOINT_BYTES = 64 * 1024


class CheckpointNotSent(AictlError):
    """A checkpoint could not be delivered (a webhook refused it, or did not answer)."""


class SignatureMismatch(AictlError):
    """A checkpoint's signature does not hold: altered, forged, or signed with another key.
    Exit 1, like any other finding of ``audit verify``."""


@dataclass(frozen=True)
class SignedCheckpoint:
    """A checkpoint as read from a file: the head it records, and whether it was signed."""

    mark: Checkpoint
    signed: bool
    written_at: str | None


def is_url(target: str) -> bool:
    return target.startswith(("http://", "https://"))


def key_path(environ: Mapping[str, str] | None = None) -> Path:
    """``AICTL_AUDIT_KEY_FILE``, else ``$XDG_CONFIG_HOME/aictl/audit.key``, else
    ``~/.config/aictl/audit.key``."""
    env = os.environ if environ is None else environ
    if env.get(KEY_ENV):
        return Path(env[KEY_ENV]).expanduser()
    config = env.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(config) / "aictl" / "audit.key"


def load_key(path: Path, repository: Path, *, create: bool) -> bytes:
    """The signing key at ``path``; created (0600, in a 0700 folder) when missing and
    ``create``. Refused (``InvalidInput``) when it lies inside the repository, which agents can
    read, or when others than its owner may read it."""
    resolved = path.resolve()
    if resolved.is_relative_to(repository.resolve()):
        raise InvalidInput(
            f"the audit key {path} is inside the repository {repository}, where agents can read it",
            hint=f"point {KEY_ENV} at a file outside the repository (default "
            "~/.config/aictl/audit.key)",
        )
    if create and not resolved.exists():
        _create_key(resolved)
    try:
        mode = resolved.stat().st_mode
        text = resolved.read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        raise InvalidInput(
            f"no audit key at {path}: cannot check a signed checkpoint",
            hint=f"use the key that signed it ({KEY_ENV}); `aictl audit checkpoint` creates one",
        ) from None
    except (OSError, UnicodeDecodeError) as error:
        raise InvalidInput(f"cannot read the audit key {path}: {error}") from None
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise InvalidInput(
            f"the audit key {path} can be read by others (mode {stat.S_IMODE(mode):o})",
            hint=f"chmod 600 {path}",
        )
    if len(text) < 32:
        raise InvalidInput(
            f"the audit key {path} is too short ({len(text)} characters; at least 32)",
            hint="delete it to have a new one made, or write 64 random hex digits into it",
        )
    return text.encode()


def _create_key(path: Path) -> None:
    try:
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return  # another process made it first: use theirs
    except OSError as error:
        raise InvalidInput(f"cannot create the audit key {path}: {error.strerror}") from None
    try:
        os.write(descriptor, (secrets.token_hex(32) + "\n").encode())
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def key_id(key: bytes) -> str:
    """A short name for a key (not secret): which key signed a checkpoint."""
    return hashlib.sha256(b"aictl-audit-key:" + key).hexdigest()[:16]


def signed_record(
    mark: Checkpoint, key: bytes, *, written_at: datetime, database: Path
) -> dict[str, Any]:
    """The checkpoint as written: the head, the time, the database, the key id, and an
    HMAC-SHA256 over the canonical JSON of all of those."""
    record: dict[str, Any] = {
        "format": FORMAT,
        **mark.to_dict(),
        "written_at": format_time(written_at),
        "database": str(database),
        "key_id": key_id(key),
    }
    record["signature"] = _signature(record, key)
    return record


def _signature(record: Mapping[str, Any], key: bytes) -> str:
    body = {name: value for name, value in record.items() if name != "signature"}
    return hmac.new(key, canonical(body).encode(), hashlib.sha256).hexdigest()


def read(path: Path, key: bytes | None) -> SignedCheckpoint:
    """Read a checkpoint file and, when it is signed, check its signature with ``key``.

    Raises ``InvalidInput`` for a file that cannot be read or is not a checkpoint, and
    ``SignatureMismatch`` when the signature does not hold. An unsigned checkpoint (written by
    aictl before signing) is returned with ``signed`` False: the caller decides what it is worth.
    """
    try:
        with path.open("rb") as stream:
            raw = stream.read(MAX_CHECKPOINT_BYTES + 1)
    except OSError as error:
        raise InvalidInput(f"cannot read checkpoint {path}: {error.strerror}") from None
    try:
        if len(raw) > MAX_CHECKPOINT_BYTES:
            raise ValueError(f"over {MAX_CHECKPOINT_BYTES} bytes")
        data = json.loads(raw.decode("utf-8"))
        if not isinstance(data, dict):
            raise ValueError("not a JSON object")
        mark = Checkpoint(int(data["seq"]), str(data["hash"]), int(data["rows"]))
    except (ValueError, KeyError, TypeError) as error:
        raise InvalidInput(f"{path} is not an audit checkpoint: {error}") from None
    if "signature" not in data:
        return SignedCheckpoint(mark, False, data.get("written_at"))
    if key is None:  # pragma: no cover - the service always passes a key for a signed file
        raise InvalidInput(f"cannot check the signature of {path}: no key")
    if data.get("key_id") != key_id(key):
        raise SignatureMismatch(
            f"checkpoint {path} was signed with another key (key id {data.get('key_id')}, "
            f"this key is {key_id(key)})",
            hint=f"verify with the key that signed it ({KEY_ENV})",
        )
    if not hmac.compare_digest(str(data["signature"]), _signature(data, key)):
        raise SignatureMismatch(
            f"the signature of checkpoint {path} does not match: the checkpoint was altered "
            "or forged",
            hint="keep the file and investigate; compare with other copies of the checkpoint",
        )
    return SignedCheckpoint(mark, True, data.get("written_at"))


def is_signed(path: Path) -> bool:
    """Whether the file carries a signature (read only to choose whether a key is needed)."""
    with contextlib.suppress(OSError, ValueError):
        with path.open("rb") as stream:
            data = json.loads(stream.read(MAX_CHECKPOINT_BYTES).decode("utf-8"))
        return isinstance(data, dict) and "signature" in data
    return False


def write_atomically(path: Path, text: str) -> None:
    """Replace ``path`` with ``text`` whole or not at all: a temporary file in the same folder,
    written and fsynced, then renamed over ``path``, then the folder fsynced so the rename
    survives a power cut. On any failure the temporary file is removed and ``path`` is as it
    was; the ``OSError`` is raised."""
    folder = path.parent
    descriptor, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=folder)
    try:
        with os.fdopen(descriptor, "w", encoding="utf-8") as stream:
            stream.write(text)
            stream.flush()
            os.fsync(stream.fileno())
        os.chmod(temporary, 0o644)
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise
    with contextlib.suppress(OSError):  # some file systems cannot fsync a folder
        folder_descriptor = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(folder_descriptor)
        finally:
            os.close(folder_descriptor)


def post(url: str, record: Mapping[str, Any], *, timeout: float = POST_TIMEOUT) -> None:
    """POST the checkpoint as JSON; ``CheckpointNotSent`` unless the receiver answers 2xx
    within ``timeout`` seconds."""
    body = json.dumps(record, sort_keys=True).encode()
    request = urllib.request.Request(
        url, data=body, headers={"Content-Type": "application/json"}, method="POST"
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            response.read(MAX_CHECKPOINT_BYTES)
    except urllib.error.HTTPError as error:
        raise CheckpointNotSent(
            f"POST {url} refused the checkpoint: HTTP {error.code}",
            hint="check the receiver; the checkpoint was not stored there",
        ) from None
    except (urllib.error.URLError, OSError, TimeoutError, ValueError) as error:
        reason = getattr(error, "reason", error)
        raise CheckpointNotSent(
            f"POST {url} failed: {type(reason).__name__}: {reason}",
            hint="check the receiver; the checkpoint was not stored there",
        ) from None
