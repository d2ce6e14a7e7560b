"""Automata for path regexes: the exact, last-resort step of path-lock overlap and containment.

:mod:`aictl.domain.globs` translates each glob into a regular expression and settles most pairs
without automata; this module decides the rest. :func:`shortest_common_path` answers whether two
such expressions share a *path* (a non-empty string of non-empty ``/``-separated segments) and
returns a shortest, readable one; :func:`shortest_path_outside` finds a shortest path the first
accepts and the second does not (none means the first's paths are all the second's). It knows
nothing of glob syntax.

Each automaton is built over its own regex's alphabet (the caller caches one per glob, since
building dominates the cost), and a pair is searched breadth-first on their product, read
through the union of the two alphabets. ``FSM.isdisjoint`` is not used: on automata with
different alphabets it answers wrongly.
``interegular`` is imported inside functions only, because importing it costs tens of
milliseconds and most CLI invocations never need an automaton.
"""

from __future__ import annotations

import functools
from collections import deque
from collections.abc import Iterable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from interegular.fsm import FSM, Alphabet, State, TransitionKey

__all__ = ["build", "shortest_common_path", "shortest_path_outside"]

_FRESH_CHARS = "xyzqwkjvbfghmnprstcdlaeiou0123456789"

# (state of a, state of b or None once b has rejected for good, at a segment start)
_ProductState = tuple["State", "State | None", bool]


def build(regex: str) -> FSM:
    """The automaton of ``regex`` (``.`` matching newlines too), over its own alphabet.

    Two such automata must never be compared with ``FSM.isdisjoint``;
    :func:`shortest_common_path` maps both onto the union alphabet.
    """
    from interegular import REFlags, parse_pattern

    return parse_pattern(regex).to_fsm(flags=REFlags.SINGLE_LINE)


@functools.lru_cache(maxsize=1)
def _separator_alphabet() -> Alphabet:
    """An alphabet in which ``/`` and ``.`` have transition keys of their own."""
    from interegular import REFlags, parse_pattern

    return parse_pattern(r"/\.").get_alphabet(REFlags.SINGLE_LINE)


def shortest_common_path(fsm_a: FSM, fsm_b: FSM) -> str | None:
    """A shortest path both automata (from :func:`build`) accept, or None if they share none.

    A character one automaton never mentions behaves there as its "anything else". The path
    avoids segments starting with ``.`` when it can, and writes characters left free by both as
    plain letters (``x`` first), so that it reads naturally in a conflict message.
    """
    return _search(fsm_a, fsm_b, outside=False)


def shortest_path_outside(fsm_a: FSM, fsm_b: FSM) -> str | None:
    """A shortest path ``fsm_a`` accepts and ``fsm_b`` rejects, or None when there is none.

    None means every path of ``fsm_a`` is one of ``fsm_b``: containment, over paths only (a
    string that is no path, such as ``a/``, is ignored even if only ``fsm_a`` accepts it). The
    path is chosen and written as in :func:`shortest_common_path`.
    """
    return _search(fsm_a, fsm_b, outside=True)


def _search(fsm_a: FSM, fsm_b: FSM, *, outside: bool) -> str | None:
    """The breadth-first product search behind both public functions, with readable output."""
    from interegular.fsm import Alphabet, anything_else

    alphabet, (to_a, to_b, _) = Alphabet.union(
        fsm_a.alphabet, fsm_b.alphabet, _separator_alphabet()
    )
    fresh = next(c for c in _fresh_candidates() if c not in alphabet)
    chars: dict[TransitionKey, str] = {}
    for key, symbols in alphabet.by_transition.items():
        explicit = sorted(s for s in symbols if s is not anything_else)
        letters = [c for c in explicit if c.isalnum()]
        if letters:
            chars[key] = letters[0]
        elif anything_else in symbols:
            chars[key] = fresh
        else:
            chars[key] = explicit[0]
    # Free characters first, then letters and digits, then punctuation.
    keys = sorted(chars, key=lambda k: (chars[k] != fresh, not chars[k].isalnum(), chars[k]))
    search = functools.partial(
        _shortest_product_path,
        fsm_a,
        fsm_b,
        to_a=to_a,
        to_b=to_b,
        keys=keys,
        slash=alphabet["/"],
        dot=alphabet["."],
        outside=outside,
    )
    path = search(avoid_leading_dot=True)
    if path is None:
        path = search(avoid_leading_dot=False)
    return None if path is None else "".join(chars[key] for key in path)


def _fresh_candidates() -> Iterable[str]:
    """Characters to stand for "anything else": plain letters first, then any code point."""
    yield from _FRESH_CHARS
    for code in range(0xC0, 0x110000):
        char = chr(code)
        if char.isprintable():
            yield char


def _shortest_product_path(
    fsm_a: FSM,
    fsm_b: FSM,
    *,
    to_a: dict[TransitionKey, TransitionKey],
    to_b: dict[TransitionKey, TransitionKey],
    keys: list[TransitionKey],
    slash: TransitionKey,
    dot: TransitionKey,
    outside: bool,
    avoid_leading_dot: bool,
) -> list[TransitionKey] | None:
    """Keys of a shortest valid path ``a`` accepts and ``b`` accepts (rejects if ``outside``).

    Breadth-first over (state in a, state in b, at segment start); ``to_a``/``to_b`` map the
    shared keys to each automaton's own. ``/`` is refused at a segment start (no empty segments)
    and acceptance requires not being at one (no trailing ``/``, no empty path). With
    ``outside``, ``b`` having no move is no dead end: its state becomes None, which accepts
    nothing. With ``avoid_leading_dot`` no segment may start with ``.``.
    """
    map_a, map_b = fsm_a.map, fsm_b.map
    finals_a, finals_b = fsm_a.finals, fsm_b.finals
    start: _ProductState = (fsm_a.initial, fsm_b.initial, True)
    parents: dict[_ProductState, tuple[_ProductState, TransitionKey] | None] = {start: None}
    queue = deque([start])
    while queue:
        state = queue.popleft()
        state_a, state_b, at_start = state
        if not at_start and state_a in finals_a and (state_b in finals_b) is not outside:
            return _trace(parents, state)
        moves_a = map_a.get(state_a)
        moves_b = None if state_b is None else map_b.get(state_b)
        if not moves_a or not (moves_b or outside):
            continue
        for key in keys:
            if key == slash:
                if at_start:
                    continue
                next_start = True
            else:
                if avoid_leading_dot and at_start and key == dot:
                    continue
                next_start = False
            next_a = moves_a.get(to_a[key])
            if next_a is None:
                continue
            next_b = moves_b.get(to_b[key]) if moves_b else None
            if next_b is None and not outside:
                continue
            following = (next_a, next_b, next_start)
            if following not in parents:
                parents[following] = (state, key)
                queue.append(following)
    return None


def _trace(
    parents: dict[_ProductState, tuple[_ProductState, TransitionKey] | None],
    state: _ProductState,
) -> list[TransitionKey]:
    """The keys on the breadth-first tree path from the start to ``state``."""
    keys: list[TransitionKey] = []
    link = parents[state]
    while link is not None:
        state, key = link
        keys.append(key)
        link = parents[state]
    keys.reverse()
    return keys
