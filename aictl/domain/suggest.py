"""Close matches for a misspelt name: "did you mean `concurrency`?".

One helper for every loader and vocabulary (policy, workflow and skill fields, effects,
actions, example names), so that a typo gets the same kind of answer wherever it is made.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable


def closest(word: object, choices: Iterable[str]) -> str | None:
    """The choice ``word`` most likely misspells (difflib's ratio of at least 0.6), or None."""
    if not isinstance(word, str):
        return None
    found = difflib.get_close_matches(word, list(choices), n=1)
    return found[0] if found else None


def did_you_mean(word: object, choices: Iterable[str]) -> str:
    """``"did you mean `concurrency`? "`` when ``word`` is close to one of ``choices``, else
    ``""``: ready to put in front of the list of valid names."""
    match = closest(word, choices)
    return f"did you mean `{match}`? " if match else ""


def unknown_name(kind: str, word: object, choices: Iterable[str]) -> str:
    """``unknown field 'concurency'; did you mean `concurrency`? valid fields: a, b``."""
    valid = list(choices)
    return f"unknown {kind} {word!r}; {did_you_mean(word, valid)}valid {kind}s: {', '.join(valid)}"
