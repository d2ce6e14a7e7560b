"""Parsing of human durations such as ``90s``, ``5m``, ``1h30m`` or ``500ms``."""

from __future__ import annotations

import re
from datetime import timedelta

from aictl.errors import InvalidInput

_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d)")


def parse_duration(text: str, *, field: str = "duration") -> timedelta:
    """Return the duration ``text`` names; a bare number means seconds.

    Raises ``InvalidInput`` naming ``field`` for anything else, including zero and negatives:
    a lease or timeout of zero length is always a mistake.
    """
    raw = text.strip().lower()
    seconds: float | None = None
    if re.fullmatch(r"\d+(?:\.\d+)?", raw):
        seconds = float(raw)
    elif raw and _PART.sub("", raw) == "":
        seconds = sum(float(n) * _UNITS[unit] for n, unit in _PART.findall(raw))
    if seconds is None or seconds <= 0:
        raise InvalidInput(
            f"invalid {field} {text!r}",
            hint="use a positive number with a unit: 500ms, 30s, 5m, 1h30m, 2d",
        )
    return timedelta(seconds=seconds)
