"""Secret redaction for decision records: what was decided is kept, credentials are not.

A value is redacted when its key names a secret, or when the value itself looks like a
credential (a private key block, an ``sk-`` API key, a GitHub or Slack token, an AWS access key
id, a bearer header), or, inside text such as a shell command, when it is assigned to a
variable or option that names a secret (``API_TOKEN=...``, ``--password=...``). The digest of a
decision's input is taken over the redacted form, so it can be compared without revealing
anything.

A key names a secret when one of its words, or two neighbouring words run together, is a
secret's name: the key is split at ``_``, ``-``, ``.`` and camelCase humps, so ``GITHUB_TOKEN``,
``apiKey``, ``X-Auth-Token`` and ``db_password`` match while ``max_tokens``, ``author``,
``bypass`` and ``tokenizer`` (which only contain a secret's name) do not.
"""

from __future__ import annotations

import functools
import itertools
import json
import re
from typing import Any

from aictl.domain.sha import sha256_hex

REDACTED = "[redacted]"

SECRET_WORDS = frozenset(
    {
        "password", "passwd", "passphrase", "secret", "token", "apikey", "accesskey",
        "privatekey", "credential", "credentials", "authorization", "auth", "cookie",
        "cookies", "sessionkey",
    }
)  # fmt: skip
"""Names of secrets, lower case, words run together (``api_key`` is looked up as ``apikey``)."""

ASSIGNMENT_SUFFIXES = frozenset({"key", "pass", "pwd"})
"""Last words that make an assigned variable secret too: in a command, ``STRIPE_KEY=...`` or
``DB_PASS=...`` is a credential, while a record's field called ``key`` is an identifier."""

# Upper-case runs (HTTP in HTTPAuth), capitalised or lower-case words, digit runs.
_WORD = re.compile(r"[A-Z]+(?![a-z])|[A-Z]?[a-z]+|\d+")

_SECRET_VALUE = re.compile(
    r"-----BEGIN [A-Z ]*PRIVATE KEY-----"
    r"|\bsk-[A-Za-z0-9_-]{16,}"
    r"|\bgh[pousr]_[A-Za-z0-9]{20,}"
    r"|\bxox[abprs]-[A-Za-z0-9-]{10,}"
    r"|\bAKIA[0-9A-Z]{16}\b"
    r"|\bBearer\s+[A-Za-z0-9._~+/-]{16,}"
)

# NAME=value in text: shell assignments (FOO_KEY=x make, export API_TOKEN=x), long options
# (--password=x) and query parameters (?token=x). An unquoted value ends at a space, a quote or
# a shell operator.
_ASSIGNMENT = re.compile(
    r"(?<![\w.-])(?P<name>-{0,2}[A-Za-z_][A-Za-z0-9_-]*)="
    r"(?P<value>\"[^\"]*\"|'[^']*'|[^\s;&|'\"]+)"
)


def _words(name: str) -> list[str]:
    return [word.lower() for word in _WORD.findall(name)]


@functools.lru_cache(maxsize=4096)
def names_secret(name: str) -> bool:
    """Whether a mapping key names a secret (see the module docstring). Cached: the same few
    keys come back in every event."""
    words = _words(name)
    return any(word in SECRET_WORDS for word in words) or any(
        first + second in SECRET_WORDS for first, second in itertools.pairwise(words)
    )


def _assigned_secret(name: str) -> bool:
    words = _words(name)
    return names_secret(name) or (len(words) > 1 and words[-1] in ASSIGNMENT_SUFFIXES)


def _hide_assignment(match: re.Match[str]) -> str:
    if not _assigned_secret(match["name"]):
        return match[0]
    return f"{match['name']}={REDACTED}"


def redact_text(text: str) -> str:
    """``text`` with credential-looking values and values assigned to secret names replaced."""
    return _ASSIGNMENT.sub(_hide_assignment, _SECRET_VALUE.sub(REDACTED, text))


def redact(value: Any, path: str = "") -> tuple[Any, list[str]]:
    """A copy of ``value`` with secrets replaced, and the dotted paths that were replaced."""
    found: list[str] = []

    def walk(item: Any, where: str) -> Any:
        if isinstance(item, dict):
            out = {}
            for key, inner in item.items():
                child = f"{where}.{key}" if where else str(key)
                if names_secret(str(key)) and inner not in (None, "", [], {}):
                    found.append(child)
                    out[key] = REDACTED
                else:
                    out[key] = walk(inner, child)
            return out
        if isinstance(item, list):
            return [walk(inner, f"{where}[{index}]") for index, inner in enumerate(item)]
        if isinstance(item, str):
            clean = redact_text(item)
            if clean != item:
                found.append(where or "$")
            return clean
        return item

    return walk(value, path), found


def digest(value: Any) -> str:
    """SHA-256 over the canonical JSON form (sorted keys, no whitespace)."""
    text = json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)
    return sha256_hex(text.encode())
