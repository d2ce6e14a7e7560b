"""SHA-256 without loading OpenSSL: ``hashlib`` loads libcrypto on import (about 2.5 ms of a
start that takes 60), while CPython's own SHA-2 module loads in a tenth of that and gives the
same digests. Used where aictl hashes on the path of a short command (the audit chain,
decision digests, lease secrets, policy hashes); ``hashlib`` when that module is missing.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from hashlib import _Hash


def _constructor() -> Any:
    for name in ("_sha2", "_sha256"):  # CPython 3.12+, then 3.11
        try:
            return importlib.import_module(name).sha256
        except (ImportError, AttributeError):
            continue
    import hashlib

    return hashlib.sha256


sha256: Callable[[bytes], _Hash] = _constructor()
"""``hashlib.sha256`` or its equal: ``sha256(data)``, ``.update(data)``, ``.hexdigest()``."""


def sha256_hex(data: bytes) -> str:
    """SHA-256 of ``data`` as 64 hex digits."""
    return sha256(data).hexdigest()
