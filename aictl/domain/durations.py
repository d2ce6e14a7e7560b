"""Parsing of human durations such as ``90s``, ``5m``, ``1h30m`` or ``500ms``."""

from __future__ import annotations

import re
from datetime import timedelta

from aictl.errors import InvalidInput

_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d)")
_HINT = "use a number with a unit, from 1ms to 365d: 500ms, 30s, 5m, 1h30m, 2d"

SHORTEST = timedelta(milliseconds=1)
"""Below this a lease or timeout is over before it is used (and rounds to nothing in storage)."""
LONGEST = timedelta(days=365)
"""Above this a duration is a typo, and adding it to a date soon leaves datetime's range."""


def parse_duration(text: str, *, field: str = "duration") -> timedelta:
    """Return the duration ``text`` names; a bare number means seconds.

    Raises ``InvalidInput`` naming ``field`` for anything else, and for a duration outside
    ``SHORTEST``..``LONGEST``: a lease or timeout of zero length is always a mistake, and the
    bounds are checked on the resulting timedelta, which cannot hold less than a microsecond.
    """
    raw = text.strip().lower()
    seconds: float | None = None
    if re.fullmatch(r"\d+(?:\.\d+)?", raw):
        seconds = float(raw)
    elif raw and _PART.sub("", raw) == "":
        seconds = sum(float(n) * _UNITS[unit] for n, unit in _PART.findall(raw))
    if seconds is None:
        raise InvalidInput(f"invalid {field} {text!r}", hint=_HINT)
    # Compare before building the timedelta: a huge number overflows its constructor.
    if seconds > LONGEST.total_seconds():
        raise InvalidInput(f"invalid {field} {text!r}: at most {LONGEST.days} days", hint=_HINT)
    duration = timedelta(seconds=seconds)
    if duration < SHORTEST:
        raise InvalidInput(f"invalid {field} {text!r}: at least 1ms", hint=_HINT)
    return duration
