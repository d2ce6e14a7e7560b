"""Glob automata: exact, polynomial overlap, containment and matching of path-lock globs.

:mod:`aictl.domain.globs` settles most pairs of globs by cheap tests; this module decides the
rest, and matches concrete paths. It works on *canonical* globs (see ``normalize_glob``).

The automaton of a glob
-----------------------
:func:`build` turns a glob into a nondeterministic automaton over characters whose language is
exactly the set of **paths** the glob covers (non-empty ``/``-separated sequences of non-empty
segments), never a superset: a segment that is only ``*`` must take at least one character, and
``**`` takes whole segments. States are numbered along the glob, so that every transition moves
a state a small, fixed distance (``+1`` for a character, ``0`` for the self-loop of ``*``, ``-1``
for the ``/`` that closes a segment inside a ``**``, ``+1``..``+3`` for the empty moves that skip
a ``*`` or a ``**``). One glob of length n has at most about 2n states. No determinisation (no
subset construction) is ever done to decide an overlap.

Transition labels are character *predicates*: sorted, disjoint code-point ranges
(:data:`Predicate`): a literal, a class (negated classes complemented, ``/`` removed), ``?`` and
``*`` (everything but ``/``), and ``/`` itself. Two labels meet when their ranges overlap.

Bit-parallel sets of states
---------------------------
A set of states of one automaton is an ``int`` used as a bit set. Reading any character of a
predicate ``P`` from a set ``S`` is a handful of big-integer operations,
``closure(OR over shifts k of shift(S & mask_k(P), k))``, where ``mask_k(P)`` holds the states
with a transition of offset ``k`` whose label meets ``P`` (cached per predicate). Because shifts
distribute over unions, this is exactly the set reached by *some* character of ``P`` from *some*
state of ``S``.

Deciding an overlap (:func:`intersects`) is a reachability search on the product of the two
automata, where the second automaton's half of every product state is kept as such a bit set per
state of the first: each state of the first automaton is revisited only when its set gains
states, so the work is at most (states of a) x (states of b) set operations on
(states of b)-bit integers, polynomial, and in practice a few per state. :func:`common_path`
(a shortest common path, readable, for explanations) searches the explicit product of state
pairs breadth-first, and :func:`path_outside` (containment) the product of one automaton with
subsets of the other, which can grow exponentially: both stop at a budget of visited states and
raise :class:`SearchBudgetExceeded` rather than run on.
"""

from __future__ import annotations

import bisect
import itertools
from collections import deque
from collections.abc import Hashable
from dataclasses import dataclass, field
from typing import TypeVar

__all__ = [
    "Automaton",
    "ClassSyntaxError",
    "Predicate",
    "SearchBudgetExceeded",
    "accepts",
    "build",
    "common_path",
    "intersects",
    "parse_class",
    "path_outside",
]

MAX_CODE_POINT = 0x10FFFF
SLASH_CODE = ord("/")
MAX_RANGE = 256

# Sorted, disjoint, non-adjacent inclusive ranges of code points.
Predicate = tuple[tuple[int, int], ...]

SLASH: Predicate = ((SLASH_CODE, SLASH_CODE),)
NOT_SLASH: Predicate = ((0, SLASH_CODE - 1), (SLASH_CODE + 1, MAX_CODE_POINT))

# Characters a readable path is written with, best first, for characters a glob leaves free.
_READABLE = "xyzqwkjvbfghmnprstcdlaeiou0123456789"

# Default budgets: the number of product states the explicit searches may visit. The
# bit-parallel overlap search counts set operations instead (see intersects).
DEFAULT_BUDGET = 200_000


class SearchBudgetExceeded(Exception):
    """A search would visit more than its budget of states; the caller turns it into an
    :class:`~aictl.errors.AictlError` naming the globs."""

    def __init__(self, budget: int) -> None:
        super().__init__(f"search budget of {budget:,} states exceeded")
        self.budget = budget


class ClassSyntaxError(ValueError):
    """A ``[...]`` class that cannot be read; ``reason`` and ``hint`` are for the user."""

    def __init__(self, reason: str, hint: str) -> None:
        super().__init__(reason)
        self.reason = reason
        self.hint = hint


# --------------------------------------------------------------------------- predicates


def _normalise(ranges: list[tuple[int, int]]) -> Predicate:
    """Sort and merge overlapping or adjacent ranges."""
    merged: list[tuple[int, int]] = []
    for low, high in sorted(ranges):
        if merged and low <= merged[-1][1] + 1:
            if high > merged[-1][1]:
                merged[-1] = (merged[-1][0], high)
        else:
            merged.append((low, high))
    return tuple(merged)


def _without_slash(ranges: Predicate) -> Predicate:
    out: list[tuple[int, int]] = []
    for low, high in ranges:
        if low <= SLASH_CODE <= high:
            if low < SLASH_CODE:
                out.append((low, SLASH_CODE - 1))
            if high > SLASH_CODE:
                out.append((SLASH_CODE + 1, high))
        else:
            out.append((low, high))
    return tuple(out)


def _complement(ranges: Predicate) -> Predicate:
    """Every code point but ``/`` that is not in ``ranges``."""
    out: list[tuple[int, int]] = []
    next_low = 0
    for low, high in ranges:
        if low > next_low:
            out.append((next_low, low - 1))
        next_low = high + 1
    if next_low <= MAX_CODE_POINT:
        out.append((next_low, MAX_CODE_POINT))
    return _without_slash(tuple(out))


def meets(a: Predicate, b: Predicate) -> bool:
    """Whether two predicates share a character (a linear merge of their ranges)."""
    i = j = 0
    while i < len(a) and j < len(b):
        if a[i][1] < b[j][0]:
            i += 1
        elif b[j][1] < a[i][0]:
            j += 1
        else:
            return True
    return False


def _intersection(a: Predicate, b: Predicate) -> Predicate:
    out: list[tuple[int, int]] = []
    i = j = 0
    while i < len(a) and j < len(b):
        low, high = max(a[i][0], b[j][0]), min(a[i][1], b[j][1])
        if low <= high:
            out.append((low, high))
        if a[i][1] < b[j][1]:
            i += 1
        else:
            j += 1
    return tuple(out)


def _contains(ranges: Predicate, code: int) -> bool:
    index = bisect.bisect_right(ranges, (code, MAX_CODE_POINT)) - 1
    return index >= 0 and ranges[index][0] <= code <= ranges[index][1]


def _pick(ranges: Predicate, *, avoid_dot: bool = False) -> str | None:
    """A readable character of ``ranges``: a plain letter, a digit, punctuation, then anything
    printable (``.`` last of all when ``avoid_dot``); None if the set is empty (after
    ``avoid_dot``)."""
    for char in _READABLE:
        if _contains(ranges, ord(char)):
            return char
    best: str | None = None
    for low, high in ranges:
        for code in range(low, min(high, low + 512) + 1):
            char = chr(code)
            if avoid_dot and char == ".":
                continue
            if char.isalnum() and char.isascii():
                return char
            if best is None and char.isprintable() and not char.isspace():
                best = char
    if best is not None:
        return best
    for low, high in ranges:
        for code in range(low, high + 1):
            if not (avoid_dot and code == ord(".")):
                return chr(code)
    return None


# --------------------------------------------------------------------------- classes


@dataclass(frozen=True)
class ClassSpec:
    """A parsed ``[...]`` class: its members as a predicate (never ``/``) and where it ends."""

    predicate: Predicate
    negated: bool
    members: tuple[tuple[str, str], ...]  # the (low, high) items as written, ``/`` split off
    end: int  # index just past the closing ``]``


def parse_class(segment: str, start: int) -> ClassSpec:
    """Read the class opening at ``segment[start]`` (fnmatch rules; ``[!`` and ``[^`` negate,
    a ``]`` first is a member). Raise :class:`ClassSyntaxError` for an unclosed class, a
    reversed range or a range wider than :data:`MAX_RANGE` characters."""
    pos = start + 1
    negated = pos < len(segment) and segment[pos] in "!^"
    if negated:
        pos += 1
    body_start = pos
    if pos < len(segment) and segment[pos] == "]":
        pos += 1
    close = segment.find("]", pos)
    if close < 0:
        raise ClassSyntaxError(
            f"unbalanced '[' in {segment!r}",
            "close the class with ] in the same segment, or write [[] for a literal [",
        )
    body = segment[body_start:close]
    members: list[tuple[str, str]] = []
    i = 0
    while i < len(body):
        if i + 2 < len(body) and body[i + 1] == "-":
            low, high = body[i], body[i + 2]
            if low > high:
                raise ClassSyntaxError(
                    f"empty character range '{low}-{high}'",
                    f"write the range low to high: {high}-{low}",
                )
            if ord(high) - ord(low) >= MAX_RANGE:
                raise ClassSyntaxError(
                    f"character range '{low}-{high}' is wider than {MAX_RANGE} characters",
                    "use a negated class such as [!...] or * instead",
                )
            members.append((low, high))
            i += 3
        else:
            members.append((body[i], body[i]))
            i += 1
    ranges = _without_slash(_normalise([(ord(low), ord(high)) for low, high in members]))
    split = tuple((chr(low), chr(high)) for low, high in ranges)
    predicate = _complement(ranges) if negated else ranges
    return ClassSpec(predicate, negated, split, close + 1)


# --------------------------------------------------------------------------- automata


@dataclass
class Automaton:
    """The path automaton of one canonical glob; built by :func:`build`, then read-only
    except for its caches. State 0 is initial and ``final`` the one accepting state."""

    glob: str
    final: int
    moves: list[list[tuple[Predicate, int]]]  # per state: (label, target) character moves
    empty_moves: list[list[int]]  # per state: targets of moves that read nothing
    closures: list[tuple[int, ...]] = field(default_factory=list)
    # Bit-parallel tables: per label, per offset (target - source), the bit set of sources.
    by_label: dict[Predicate, dict[int, int]] = field(default_factory=dict)
    empty_by_offset: tuple[tuple[int, int], ...] = ()
    _meeting: dict[Predicate, tuple[tuple[int, int], ...]] = field(default_factory=dict)
    _by_char: dict[str, tuple[tuple[int, int], ...]] = field(default_factory=dict)
    _forward: dict[Predicate, int] = field(default_factory=dict)
    _empty_one: int = 0  # states with a move that reads nothing and goes one forward
    _forward_any: int = 0  # states with any move, reading or not, that goes one forward
    # The heads of the loops that read whole segments (inside a **): state -> inside state.
    segment_loops: dict[int, int] = field(default_factory=dict)

    @property
    def start(self) -> int:
        """The closed bit set of the initial state."""
        return self.close(1)

    def close(self, states: int) -> int:
        """``states`` plus every state reached from them by moves that read nothing."""
        while True:
            grown = states
            for offset, sources in self.empty_by_offset:
                hit = states & sources
                if hit:
                    grown |= hit << offset
            if grown == states:
                return states
            states = grown

    def _offsets_meeting(self, label: Predicate) -> tuple[tuple[int, int], ...]:
        """Per offset, the states with a move whose label shares a character with ``label``."""
        cached = self._meeting.get(label)
        if cached is None:
            combined: dict[int, int] = {}
            for own, by_offset in self.by_label.items():
                if meets(own, label):
                    for offset, sources in by_offset.items():
                        combined[offset] = combined.get(offset, 0) | sources
            cached = self._meeting[label] = tuple(combined.items())
        return cached

    def step(self, states: int, label: Predicate) -> int:
        """The closed set reached from ``states`` by reading one character of ``label`` (some
        character: the union over the characters of ``label``)."""
        return self._advance(states, self._offsets_meeting(label))

    def step_char(self, states: int, char: str) -> int:
        """The closed set reached from ``states`` by reading ``char``."""
        table = self._by_char.get(char)
        if table is None:
            code = ord(char)
            table = self._offsets_meeting(((code, code),))
            if len(self._by_char) < 4096:
                self._by_char[char] = table
        return self._advance(states, table)

    def fill(self, states: int, label: Predicate) -> int:
        """The closed set reached from ``states`` by reading any number (zero or more) of
        characters of ``label``, which must not contain ``/``.

        Without ``/`` every move goes forward by one state or stays (a self-loop), so runs of
        such moves are followed in one addition: for a bit set ``M`` of states that can move
        one forward, ``S | ((S & M) + M) ^ M`` extends every state of ``S`` inside a run of
        ``M`` to the end of that run and one past it (the carry of the addition does the
        walking). Moves that read nothing and skip further (past a ``**``) are taken by
        :meth:`close` between such fills, until nothing changes.
        """
        forward = self._forward.get(label)
        if forward is None:
            forward = self._empty_one
            for offset, sources in self._offsets_meeting(label):
                if offset == 1:
                    forward |= sources
                elif offset != 0:
                    raise ValueError(f"fill needs a label without '/', got {label!r}")
            self._forward[label] = forward
        states = self.close(states)
        while True:
            filled = self.close(states | (((states & forward) + forward) ^ forward))
            if filled == states:
                return states
            states = filled

    def segments(self, states: int) -> int:
        """The closed set reached from ``states`` by reading any number (zero or more) of whole
        segments, each followed by ``/``; ``states`` must have been reached at the start or
        just after a ``/``.

        In the automaton of a canonical glob a ``/`` is only ever read after at least one
        other character since the last ``/`` (segments are non-empty), so from such states
        *any* string the automaton reads is a sequence of segments: the states reached by some
        string followed by one ``/`` are exactly the answer. States reached by some string
        are found with one forward fill (every move that does not read ``/`` from inside a
        ``**`` goes one state forward or stays), whatever the number of segments.
        """
        forward = self._forward_any
        reached = self.close(states)
        while True:
            filled = self.close(reached | (((reached & forward) + forward) ^ forward))
            if filled == reached:
                break
            reached = filled
        return self.close(states) | self.step(reached, SLASH)

    def _advance(self, states: int, table: tuple[tuple[int, int], ...]) -> int:
        reached = 0
        for offset, sources in table:
            hit = states & sources
            if hit:
                reached |= hit << offset if offset >= 0 else hit >> -offset
        return self.close(reached) if reached else 0


class _Builder:
    """Numbers states along the glob and records the moves; see :func:`build`."""

    def __init__(self) -> None:
        self.moves: list[list[tuple[Predicate, int]]] = [[]]
        self.empty: list[list[int]] = [[]]
        self.segment_loops: dict[int, int] = {}

    def segment_loop(self, head: int) -> int:
        """``([^/]+/)*`` from ``head`` back to it, through a new inside state returned."""
        inside = self.new()
        self.read(head, NOT_SLASH, inside)
        self.read(inside, NOT_SLASH, inside)
        self.read(inside, SLASH, head)
        self.segment_loops[head] = inside
        return inside

    def new(self) -> int:
        self.moves.append([])
        self.empty.append([])
        return len(self.moves) - 1

    def read(self, source: int, label: Predicate, target: int) -> None:
        self.moves[source].append((label, target))

    def skip(self, source: int, target: int) -> None:
        self.empty[source].append(target)

    def one(self, state: int, label: Predicate) -> int:
        target = self.new()
        self.read(state, label, target)
        return target

    def star(self, state: int) -> int:
        """``*``: loop on any character but ``/``, then move on reading nothing."""
        self.read(state, NOT_SLASH, state)
        target = self.new()
        self.skip(state, target)
        return target

    def segment(self, state: int, segment: str) -> int:
        if set(segment) == {"*"}:  # a whole segment * must take at least one character
            return self.star(self.one(state, NOT_SLASH))
        i = 0
        while i < len(segment):
            char = segment[i]
            if char == "*":
                state = self.star(state)
                while i < len(segment) and segment[i] == "*":
                    i += 1
                continue
            if char == "[":
                spec = parse_class(segment, i)
                state = self.one(state, spec.predicate)
                i = spec.end
                continue
            label = NOT_SLASH if char == "?" else ((ord(char), ord(char)),)
            state = self.one(state, label)
            i += 1
        return state

    def segments_then(self, state: int) -> int:
        """Leading or middle ``**``: zero or more whole segments, each followed by ``/``."""
        self.segment_loop(state)
        after = self.new()
        self.skip(state, after)
        return after

    def then_segments(self, state: int) -> int:
        """Trailing ``**``: zero or more whole segments, each after a ``/``."""
        after_slash = self.new()
        inside = self.segment_loop(after_slash)
        end = self.new()
        self.read(state, SLASH, after_slash)
        self.skip(state, end)
        self.skip(inside, end)
        return end

    def any_path(self, state: int) -> int:
        """``**`` alone: one or more whole segments."""
        inside = self.segment_loop(state)
        end = self.new()
        self.skip(inside, end)
        return end


def build(glob: str) -> Automaton:
    """The automaton of the canonical ``glob``: accepts exactly the paths it covers.

    Raises :class:`ClassSyntaxError` for an invalid class (canonical globs have none).
    """
    builder = _Builder()
    parts: list[str] = []
    for part in glob.split("/"):
        if part and not (part == "**" and parts and parts[-1] == "**"):
            parts.append(part)
    last = len(parts) - 1
    state = 0
    for index, part in enumerate(parts):
        if part == "**":
            if last == 0:
                state = builder.any_path(state)
            elif index == last:
                state = builder.then_segments(state)
            else:  # leading, or middle after its own separator: a/**/b is a/ then (x/)* then b
                if index > 0:
                    state = builder.one(state, SLASH)
                state = builder.segments_then(state)
            continue
        if index > 0 and parts[index - 1] != "**":
            state = builder.one(state, SLASH)
        state = builder.segment(state, part)
    return _finish(glob, builder, final=state)


def _finish(glob: str, builder: _Builder, *, final: int) -> Automaton:
    automaton = Automaton(glob, final, builder.moves, builder.empty)
    for source, moves in enumerate(builder.moves):
        for label, target in moves:
            by_offset = automaton.by_label.setdefault(label, {})
            offset = target - source
            by_offset[offset] = by_offset.get(offset, 0) | (1 << source)
    empty: dict[int, int] = {}
    for source, targets in enumerate(builder.empty):
        for target in targets:
            if target <= source:
                raise AssertionError("moves that read nothing must go forward")
            empty[target - source] = empty.get(target - source, 0) | (1 << source)
    automaton.empty_by_offset = tuple(empty.items())
    automaton._empty_one = empty.get(1, 0)
    automaton._forward_any = automaton._empty_one
    for by_offset in automaton.by_label.values():
        automaton._forward_any |= by_offset.get(1, 0)
    automaton.segment_loops = dict(builder.segment_loops)
    automaton.closures = [_closure(builder.empty, state) for state in range(len(builder.moves))]
    return automaton


def _closure(empty: list[list[int]], state: int) -> tuple[int, ...]:
    seen = [state]
    for current in seen:
        seen.extend(target for target in empty[current] if target not in seen)
    return tuple(sorted(seen))


# --------------------------------------------------------------------------- questions


def accepts(automaton: Automaton, path: str) -> bool:
    """Whether the glob covers ``path`` (linear in the path: one set step per character)."""
    states = automaton.start
    for char in path:
        states = automaton.step_char(states, char)
        if not states:
            return False
    return bool(states >> automaton.final & 1)


def intersects(a: Automaton, b: Automaton, *, budget: int = DEFAULT_BUDGET) -> bool:
    """Whether the two globs cover a common path: exact, and polynomial.

    A worklist over the states of ``a``, each holding the bit set of states of ``b`` reached
    together with it; a state of ``a`` is processed again only for the states of ``b`` it has
    newly gained, so there are at most (states of a) x (states of b) rounds, each a few set
    operations. A self-loop of ``a`` (``*``, the inside of ``**``) is run to its fixed point in
    place. Raises :class:`SearchBudgetExceeded` after ``budget`` set steps (unreachable for
    globs within the documented length limits; a guard, not a limit in use).
    """
    sets = [0] * len(a.moves)
    done = [0] * len(a.moves)
    queued = [False] * len(a.moves)
    queue: deque[int] = deque()
    goal_a, goal_b = a.final, 1 << b.final

    def add(state: int, states: int) -> None:
        for target in a.closures[state]:
            new = states & ~sets[target]
            if new:
                sets[target] |= new
                if not queued[target]:
                    queued[target] = True
                    queue.append(target)

    add(0, b.start)
    steps = 0
    while queue:
        if sets[goal_a] & goal_b:
            return True
        state = queue.popleft()
        queued[state] = False
        fresh = sets[state] & ~done[state]
        if not fresh:
            continue
        if state in a.segment_loops:  # the head of a ** in a: all its rounds at once
            steps += 1
            grow = b.segments(fresh) & ~sets[state]
            sets[state] |= grow
            fresh |= grow
        moves = a.moves[state]
        for label, target in moves:
            if target == state:  # a self-loop (never on '/'): all its rounds at once
                steps += 1
                grow = b.fill(fresh, label) & ~sets[state]
                sets[state] |= grow
                fresh |= grow
        done[state] |= fresh
        add(state, fresh)
        for label, target in moves:
            if target != state:
                steps += 1
                reached = b.step(fresh, label)
                if reached:
                    add(target, reached)
        if steps > budget:
            raise SearchBudgetExceeded(budget)
    return bool(sets[goal_a] & goal_b)


def common_path(a: Automaton, b: Automaton, *, budget: int = DEFAULT_BUDGET) -> str | None:
    """A shortest path both globs cover, written readably, or None if they share none.

    Breadth-first over pairs of states (and whether a segment starts here); characters the
    globs leave free are written as plain letters (``x`` first), and segments starting with
    ``.`` are avoided when some shortest-possible choice allows it (a second search allows
    them). Raises :class:`SearchBudgetExceeded` past ``budget`` visited pairs.
    """
    for avoid_dot in (True, False):
        path = _pair_search(a, b, avoid_dot=avoid_dot, budget=budget)
        if path is not None:
            return path
    return None


def _pair_search(a: Automaton, b: Automaton, *, avoid_dot: bool, budget: int) -> str | None:
    _PairState = tuple[int, int, bool]
    start: _PairState = (0, 0, True)
    parents: dict[_PairState, tuple[_PairState, str] | None] = {start: None}
    queue: deque[_PairState] = deque([start])
    while queue:
        state = queue.popleft()
        i, j, at_start = state
        closure_a, closure_b = a.closures[i], b.closures[j]
        if a.final in closure_a and b.final in closure_b and not at_start:
            return _trace(parents, state)
        options: list[tuple[tuple[int, str], _PairState]] = []
        for source_a in closure_a:
            for label_a, target_a in a.moves[source_a]:
                for source_b in closure_b:
                    for label_b, target_b in b.moves[source_b]:
                        shared = _intersection(label_a, label_b)
                        if not shared:
                            continue
                        char = _pick(shared, avoid_dot=avoid_dot and at_start)
                        if char is None:
                            continue
                        options.append(((_rank(char), char), (target_a, target_b, char == "/")))
        options.sort(key=lambda option: option[0])
        for (_, char), following in options:
            if following not in parents:
                parents[following] = (state, char)
                queue.append(following)
                if len(parents) > budget:
                    raise SearchBudgetExceeded(budget)
    return None


def _rank(char: str) -> int:
    """Readable characters first: free letters, other letters and digits, then the rest."""
    index = _READABLE.find(char)
    if index >= 0:
        return index
    return 100 if char.isalnum() else 200


_State = TypeVar("_State", bound=Hashable)


def _trace(parents: dict[_State, tuple[_State, str] | None], state: _State) -> str:
    """The characters on the breadth-first tree path from the start to ``state``."""
    chars: list[str] = []
    link = parents[state]
    while link is not None:
        state, char = link
        chars.append(char)
        link = parents[state]
    return "".join(reversed(chars))


def path_outside(inner: Automaton, outer: Automaton, *, budget: int = DEFAULT_BUDGET) -> str | None:
    """A shortest path ``inner`` covers and ``outer`` does not, or None (containment).

    Breadth-first over (state of inner, set of states of outer): the outer set is the subset
    construction done on the fly, one set per distinct character class of the outer glob, so
    this search alone can grow exponentially with adversarial globs; it raises
    :class:`SearchBudgetExceeded` past ``budget`` visited states instead of running on.
    """
    start = (0, outer.start)
    parents: dict[tuple[int, int], tuple[tuple[int, int], str] | None] = {start: None}
    queue: deque[tuple[int, int]] = deque([start])
    goal = 1 << outer.final
    pieces_cache: dict[Predicate, list[str]] = {}
    while queue:
        state = queue.popleft()
        i, states = state
        closure = inner.closures[i]
        if inner.final in closure and not states & goal:
            return _trace(parents, state)
        for source in closure:
            for label, target in inner.moves[source]:
                chars = pieces_cache.get(label)
                if chars is None:
                    chars = pieces_cache[label] = _representatives(label, outer)
                for char in chars:
                    following = (target, outer.step_char(states, char) if states else 0)
                    if following not in parents:
                        parents[following] = (state, char)
                        queue.append(following)
                        if len(parents) > budget:
                            raise SearchBudgetExceeded(budget)
    return None


def _representatives(label: Predicate, other: Automaton) -> list[str]:
    """One character for each part of ``label`` that ``other``'s labels cannot tell apart."""
    cuts = {low for low, _ in label} | {high + 1 for _, high in label}
    for own in other.by_label:
        for low, high in own:
            cuts.update((low, high + 1))
    points = sorted(cuts)
    seen: dict[tuple[bool, ...], str] = {}
    owns = list(other.by_label)
    for low, high in itertools.pairwise(points):
        piece = _intersection(label, ((low, high - 1),))
        if not piece:
            continue
        signature = tuple(meets(own, piece) for own in owns)
        if signature not in seen:
            char = _pick(piece)
            if char is not None:
                seen[signature] = char
    return sorted(seen.values(), key=_rank)
