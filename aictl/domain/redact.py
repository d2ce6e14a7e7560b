"""Secret redaction for decision records: what was decided is kept, credentials are not.

A value is redacted when its key names a secret (``api_key``, ``password``, ``token``...) or when
the value itself looks like a credential (a private key block, an ``sk-`` API key, a GitHub or
Slack token, an AWS access key id, a bearer header). The digest of a decision's input is taken
over the redacted form, so it can be compared without revealing anything.
"""

from __future__ import annotations

import hashlib
import json
import re
from typing import Any

REDACTED = "[redacted]"

_SECRET_KEY = re.compile(
    r"(pass(word|wd|phrase)?|secret|token|api[_-]?key|access[_-]?key|private[_-]?key|"
    r"credential|auth(orization)?|cookie|session[_-]?key)",
    re.IGNORECASE,
)
_SECRET_VALUE = re.compile(
    r"-----BEGIN [A-Z ]*PRIVATE KEY-----"
    r"|\bsk-[A-Za-z0-9_-]{16,}"
    r"|\bgh[pousr]_[A-Za-z0-9]{20,}"
    r"|\bxox[abprs]-[A-Za-z0-9-]{10,}"
    r"|\bAKIA[0-9A-Z]{16}\b"
    r"|\bBearer\s+[A-Za-z0-9._~+/-]{16,}"
)


def redact(value: Any, path: str = "") -> tuple[Any, list[str]]:
    """A copy of ``value`` with secrets replaced, and the dotted paths that were replaced."""
    found: list[str] = []

    def walk(item: Any, where: str) -> Any:
        if isinstance(item, dict):
            out = {}
            for key, inner in item.items():
                child = f"{where}.{key}" if where else str(key)
                if _SECRET_KEY.search(str(key)) and inner not in (None, "", [], {}):
                    found.append(child)
                    out[key] = REDACTED
                else:
                    out[key] = walk(inner, child)
            return out
        if isinstance(item, list):
            return [walk(inner, f"{where}[{index}]") for index, inner in enumerate(item)]
        if isinstance(item, str) and _SECRET_VALUE.search(item):
            found.append(where or "$")
            return _SECRET_VALUE.sub(REDACTED, item)
        return item

    return walk(value, path), found


def digest(value: Any) -> str:
    """SHA-256 over the canonical JSON form (sorted keys, no whitespace)."""
    text = json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)
    return hashlib.sha256(text.encode()).hexdigest()
