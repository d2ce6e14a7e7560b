"""Parsing of human durations such as ``90s``, ``5m``, ``1h30m`` or ``500ms``.

Every duration aictl reads (command options such as ``--ttl``, ``--timeout``, ``--grace``,
``--interval``; policy, workflow, skill and notification fields such as ``lease_ttl``) goes
through ``parse_duration``, so that they all accept and refuse the same texts.
"""

from __future__ import annotations

import re
from datetime import timedelta

from aictl.errors import InvalidInput

_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
_NUMBER = r"\d+(?:\.\d+)?"
_PART = re.compile(rf"({_NUMBER})(ms|s|m|h|d)")
_HINT = "use a number with a unit, from 1ms to 365d: 500ms, 30s, 5m, 1h30m, 2d"

SHORTEST = timedelta(milliseconds=1)
"""Below this a lease or timeout is over before it is used (and rounds to nothing in storage)."""
LONGEST = timedelta(days=365)
"""Above this a duration is a typo, and adding it to a date soon leaves datetime's range."""


def parse_duration(text: str, *, field: str = "duration", allow_zero: bool = False) -> timedelta:
    """Return the duration ``text`` names: numbers each followed by a unit (ms, s, m, h, d).

    Raises ``InvalidInput`` naming ``field`` for anything else. A bare number is refused, with
    a hint that offers the likely readings (``10s? 10m?``): a lease of ``10`` taken as seconds
    when minutes were meant expires under a working agent. A duration outside
    ``SHORTEST``..``LONGEST`` is refused too (a lease or timeout of zero length is always a
    mistake), except a zero where ``allow_zero`` says it means "at once" (a grace period);
    the bounds are checked on the resulting timedelta, which cannot hold less than a
    microsecond.
    """
    raw = text.strip().lower()
    if re.fullmatch(_NUMBER, raw):
        raise InvalidInput(
            f"invalid {field} {text!r}: a duration needs a unit",
            hint=f"{raw}s? {raw}m? {_HINT}",
        )
    if not raw or _PART.sub("", raw) != "":
        raise InvalidInput(f"invalid {field} {text!r}", hint=_HINT)
    seconds = sum(float(n) * _UNITS[unit] for n, unit in _PART.findall(raw))
    # Compare before building the timedelta: a huge number overflows its constructor.
    if seconds > LONGEST.total_seconds():
        raise InvalidInput(f"invalid {field} {text!r}: at most {LONGEST.days} days", hint=_HINT)
    duration = timedelta(seconds=seconds)
    if duration < SHORTEST and not (allow_zero and seconds == 0):
        raise InvalidInput(f"invalid {field} {text!r}: at least 1ms", hint=_HINT)
    return duration
