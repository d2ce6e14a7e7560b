"""Hashes of policy content, and the fast path that reads a trivial policy without YAML.

Both are needed on every command that consults policy, so this module is tiny and imports
nothing heavy.
"""

from __future__ import annotations

import json
import re
from typing import Any

from aictl.domain.sha import sha256_hex


def canonical_json(data: Any) -> str:
    """Sorted keys, no whitespace, UTF-8 text: equal data always gives equal text.

    Values YAML can produce but JSON cannot (dates) are written as their text.
    """
    return json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)


def content_hash(data: Any) -> str:
    """SHA-256 (hex) of the canonical JSON of ``data``: comments and layout do not count."""
    return sha256_hex(canonical_json(data).encode("utf-8"))


_BLANK_OR_COMMENT = re.compile(r"\s*(?:#.*)?")
_TRIVIAL_KEY = re.compile(r"(?P<key>version|default):[ \t]*(?P<value>[A-Za-z0-9_]+)[ \t]*(?:#.*)?")
_TRIVIAL_VALUES: dict[str, dict[str, Any]] = {
    "version": {"1": 1},
    "default": {"allow": "allow", "deny": "deny", "require_approval": "require_approval"},
}


def trivial_document(text: str) -> dict[str, Any] | None:
    """The data of a document holding only ``version: 1`` and perhaps a ``default``, read
    without PyYAML; None for anything else (which then takes the full staged path).

    Used for speed: a project whose policy is the commented template loads in microseconds,
    without importing PyYAML or pydantic. The result is exactly what the full path would parse,
    so the layer's hash is the same either way (a test checks it).
    """
    data: dict[str, Any] = {}
    for raw in text.splitlines():
        if _BLANK_OR_COMMENT.fullmatch(raw):
            continue
        match = _TRIVIAL_KEY.fullmatch(raw)
        if not match or match["key"] in data:
            return None
        value = _TRIVIAL_VALUES[match["key"]].get(match["value"])
        if value is None:
            return None
        data[match["key"]] = value
    return data if "version" in data else None
