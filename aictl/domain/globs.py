"""Path-lock globs: their language, their canonical form, and exact overlap between them.

Tasks declare the repository paths they will touch as globs ("path locks"). Two tasks may not
hold locks at once if their globs can cover a common path, so overlap is decided exactly, as the
intersection of two regular languages, never with a heuristic such as "one is a prefix of the
other" (``src/*/a.py`` and ``src/x/*.py`` overlap although neither is a prefix of the other).

The glob language
-----------------
* Paths are relative to the repository root and separated by ``/``. A path is a non-empty
  sequence of non-empty segments; matching is case-sensitive (as in git).
* A glob covers exactly the paths it matches. ``src/api`` covers ``src/api`` and not
  ``src/api/x.py``; a directory's contents are locked with ``src/api/**`` (or ``src/api/``).
* ``*`` matches zero or more characters other than ``/``; ``?`` matches exactly one character
  other than ``/``.
* ``[abc]``, ``[a-z]``, ``[!abc]`` and ``[^abc]`` match one character from (or, negated, not
  from) a class; a class never matches ``/``. As in ``fnmatch``, a ``]`` right after ``[`` or
  ``[!`` is a member, so ``[]]`` matches ``]`` and ``[[]`` matches a literal ``[``. A class must be
  closed within its segment; a reversed range (``[z-a]``) or a range wider than 256 characters is
  rejected.
* ``**`` must be a whole segment and matches zero or more whole segments: ``**/x.py`` covers
  ``x.py`` and ``a/b/x.py``, ``a/**/b`` covers ``a/b`` and ``a/x/y/b``, ``src/**`` covers ``src``
  and everything beneath it, and ``**`` alone covers every path. ``**`` inside a segment
  (``src/**.py``) is rejected; write ``src/**/*.py``.
* Every other character is literal. A backslash is rejected rather than read as an escape, so a
  literal ``*``, ``?`` or ``[`` is written as the class ``[*]``, ``[?]`` or ``[[]``.

Canonical form
--------------
:func:`normalize_glob` turns user input into the canonical string that is stored and compared:
no leading ``./``, no ``.`` segments, no empty segments, no ``**/**`` runs, a trailing ``/`` (or
``/.``) rewritten to ``/**`` since it names a directory, and an absolute path inside the
repository made relative to it. It never consults the filesystem: turning a literal glob that
names an existing directory into ``dir/**`` is the caller's business. Every other function here
assumes canonical input.

Overlap
-------
:func:`glob_to_regex` translates a glob into a regular expression in the subset that both
Python's ``re`` and ``interegular`` understand. :func:`globs_intersect` decides a pair in
cheapest-first steps, each exact:

1. literal prefixes (the text before the first ``*``, ``?`` or ``[``) neither of which extends
   the other: disjoint. Every covered path starts with the glob's literal prefix, except that
   ``src/**`` also covers ``src``, which is its prefix minus the final ``/``; two prefixes of one
   path are still comparable either way;
2. equal globs, ``**``, or two different metacharacter-free globs: decided by string comparison;
3. a metacharacter-free glob against another: it names one path, matched with ``re``;
4. segment alignment: the two globs' segments are laid out along a common path, ``**`` taking
   any number of segments, a literal segment matched against a pattern with ``re``, and two
   wildcard segments told apart by their literal beginnings and endings (``*.py`` against
   ``*.lock``). Decided unless two wildcard segments that may share a string must meet; in
   particular a directory lock ``P/**`` (``P`` literal) against any glob is always decided
   (``**/*.lock`` against ``pkg/**``: ``pkg/x.lock``), as is every pair without ``**`` whose
   wildcard segments never meet;
5. otherwise a reachability search on the product of the two globs' path automata
   (:mod:`aictl.domain.glob_automata`: polynomial, no determinisation, bounded by
   :data:`OVERLAP_BUDGET`), one automaton built and cached per glob. Step 4 is skipped for
   globs with many segments, where its table costs more than the automata.

Answers past step 2 are cached per unordered pair. :func:`intersection_witness` returns a
shortest common path; past step 3 it always asks the automaton, whichever step decided overlap.

Containment
-----------
:func:`glob_within` decides whether every path one glob covers is covered by another (language
inclusion over paths), in the same spirit: equal globs, ``**``, a literal inner glob (one path,
matched), literal prefixes that neither extends (no common path, and every glob covers one), a
directory lock ``P/**`` around a glob whose literal prefix starts with ``P/``; otherwise the
same cached automata, searched for a path the inner glob covers and the outer one does not.
"""

from __future__ import annotations

import functools
import os
import re
import string
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from aictl.domain import glob_automata
from aictl.errors import InvalidInput

__all__ = [
    "GlobConflict",
    "GlobError",
    "GlobTooComplex",
    "covers",
    "find_conflicts",
    "glob_to_regex",
    "glob_within",
    "globs_intersect",
    "has_conflict",
    "intersection_witness",
    "normalize_glob",
]

_META = frozenset("*?[")
_RE_SPECIAL_OUTSIDE = frozenset(".^$*+?{}[]\\|()")
_RE_SPECIAL_IN_CLASS = frozenset(string.punctuation)
_WHOLE_REPO_HINT = "use ** to lock the whole repository"

MAX_GLOB_LENGTH = 1024
"""The longest glob accepted, in characters (as given, before normalisation)."""
MAX_SEGMENT_LENGTH = 255
"""The longest segment accepted, in characters: the usual limit of a file name."""
OVERLAP_VERSION = 1
"""The version of :func:`globs_intersect`'s answers. PostgreSQL's claim remembers answers
(the ``glob_pairs`` table) and trusts only those of the calling aictl's version: bump it with
any change that answers some pair differently, or claims would read the old answers. The
first tests of ``_overlap`` are repeated in SQL (``aictl_quick_overlap``, migrations/pg/0012):
a change to those needs a migration too."""
OVERLAP_BUDGET = 50_000
"""How many set steps one overlap search may take before it gives up with
:class:`GlobTooComplex`. Globs within the limits above take about two per automaton state
(2,048 measured for adversarial pairs of 1,000 characters): the budget is a guard that only
globs stored before the limits existed could reach."""
SEARCH_BUDGET = 10_000
"""How many states a witness or containment search may visit (each costs a few microseconds)
before it gives up with :class:`GlobTooComplex`: a shortest common path of two long globs full
of ``**`` and a containment search (over sets of states, exponential at worst) can need more."""


class GlobError(InvalidInput):
    """A glob that cannot be used as a path lock; the message quotes it and says why.

    It is an :class:`~aictl.errors.InvalidInput`, so the CLI exits with code 2.
    """

    def __init__(self, glob: str, reason: str, *, hint: str | None = None) -> None:
        super().__init__(f"invalid glob {glob!r}: {reason}", hint=hint)
        self.glob = glob
        self.reason = reason


class GlobTooComplex(GlobError):
    """A question about two globs whose search would exceed :data:`SEARCH_BUDGET`.

    Raised instead of computing on (a claim holds the database's write lock while it checks
    its globs); the claim or check is refused, exit code 2. ``other`` is the second glob.
    """

    def __init__(self, glob: str, reason: str, *, other: str) -> None:
        super().__init__(
            glob,
            reason,
            hint="split it into simpler globs, with fewer '*' and '**' and shorter segments",
        )
        self.other = other


# --------------------------------------------------------------------------- normalisation


def base_within(root: Path, cwd: Path | None) -> str:
    """Where ``cwd`` stands inside the repository ``root``, as a relative path (``src/calc``);
    ``""`` at the root, outside it, or when ``cwd`` is None. Relative globs given on the
    command line are read from there, as git reads paths."""
    if cwd is None:
        return ""
    relative = os.path.relpath(os.path.realpath(cwd), os.path.realpath(root))
    if relative in {".", ".."} or relative.startswith("../"):
        return ""
    return relative


def from_cwd(paths: Sequence[str], root: Path, cwd: Path) -> list[str]:
    """Globs typed on the command line (``task create --path``, ``task edit --path``,
    ``lock check``), read from ``cwd`` as git reads paths: from ``src/calc``, ``util.py`` is
    ``src/calc/util.py``. Inside a task's worktree (``.ai/worktrees/task-3-1/src``) the
    worktree's top stands for the root, as it does for git. At the root, or outside the
    repository, they are returned as given; a glob that climbs out of the repository raises
    :class:`GlobError` naming it. The service normalises the result again (a no-op)."""
    from aictl.domain.worktrees import WORKTREES_FOLDER

    base = base_within(root, cwd)
    if base.startswith(f"{WORKTREES_FOLDER}/"):  # .ai/worktrees/task-3-1/src -> src
        base = base[len(WORKTREES_FOLDER) + 1 :].partition("/")[2]
    if not base:
        return list(paths)
    return [normalize_glob(path, root, base=base) for path in paths]


def normalize_glob(raw: str, root: Path | None = None, *, base: str = "") -> str:
    """Validate ``raw`` and return its canonical form, or raise :class:`GlobError`.

    A relative ``raw`` is read from ``base`` (a directory relative to the root, see
    :func:`base_within`): from ``src/calc``, ``util.py`` is ``src/calc/util.py`` and
    ``../api/**`` is ``src/api/**``. Leading ``..`` segments climb out of ``base``; one more
    than ``base`` has leaves the repository and is refused, naming the glob.

    Rejected: the empty string, NUL bytes, backslashes, ``..`` segments after the first
    name, globs that climb out of the repository, absolute paths when ``root`` is None or
    outside ``root``, ``**`` inside a segment, unclosed ``[`` classes and bad ranges, and
    anything that normalises to nothing (``./``). A trailing ``/`` or ``/.`` names a
    directory and becomes ``/**`` (its contents and itself). An absolute path inside ``root``
    (compared as strings against ``os.path.realpath(root)`` and against the unresolved absolute
    ``root``) becomes relative to it; the filesystem is never consulted for the glob itself.
    """
    if raw == "":
        raise GlobError(raw, "it is empty", hint=_WHOLE_REPO_HINT + ", or name a path in it")
    if len(raw) > MAX_GLOB_LENGTH:
        raise GlobError(
            _shortened(raw),
            f"it is {len(raw):,} characters long, over the limit of {MAX_GLOB_LENGTH:,}",
            hint="lock a directory (dir/**) instead of listing paths in one glob",
        )
    if "\0" in raw:
        raise GlobError(raw, "it contains a NUL byte", hint="remove the NUL byte")
    if "\\" in raw:
        raise GlobError(
            raw,
            "it contains a backslash",
            hint="use / to separate directories; write [*], [?] or [[] for a literal *, ? or [",
        )
    parts = raw.split("/")
    if raw.startswith("/"):
        prefix: list[str] = []
    else:
        prefix = [part for part in base.split("/") if part not in ("", ".")]
        parts = _climb(raw, parts, prefix, root)
    if ".." in parts:
        raise GlobError(
            raw,
            "'..' segments are not allowed after a name",
            hint="name the path from where you stand (or the repository root) without '..'",
        )
    segments = [part for part in parts if part not in ("", ".")]
    if raw.startswith("/"):
        segments = _relative_to_root(raw, segments, root)
    elif prefix:
        # Nothing left after climbing ('.', '..'): the directory it names, whole.
        segments = [*prefix, *(segments or ["**"])]
    for index, segment in enumerate(segments):
        if len(segment) > MAX_SEGMENT_LENGTH:
            raise GlobError(
                _shortened(raw),
                f"segment {index + 1} is {len(segment):,} characters long, over the limit "
                f"of {MAX_SEGMENT_LENGTH}",
                hint="a file or directory name is at most 255 characters on common file systems",
            )
        if "**" in segment and segment != "**":
            raise GlobError(
                raw,
                "'**' must be a whole path segment",
                hint=f"use {_double_star_suggestion(segments, index)}",
            )
        _segment_regex(segment, raw)  # validates classes
    if segments and parts[-1] in ("", "."):
        segments.append("**")
    segments = _collapse_double_stars(segments)
    if not segments:
        raise GlobError(raw, "it names no path", hint=_WHOLE_REPO_HINT)
    return "/".join(segments)


def _climb(raw: str, parts: list[str], prefix: list[str], root: Path | None) -> list[str]:
    """Take the leading ``..`` (and ``.``) segments of a relative glob off ``prefix`` (the
    directory it is read from); the rest of its parts are returned. Climbing above the
    repository's root is refused."""
    index = 0
    while index < len(parts) and parts[index] in ("..", ".", ""):
        if parts[index] == "..":
            if not prefix:
                where = f" {os.path.realpath(root)}" if root is not None else ""
                raise GlobError(
                    raw,
                    f"it is outside the repository{where}",
                    hint="name a path inside the repository",
                )
            prefix.pop()
        index += 1
    return parts[index:] if index < len(parts) else [""]


def _shortened(raw: str) -> str:
    """A glob too long to quote whole: its start and end around an ellipsis."""
    return raw if len(raw) <= 80 else f"{raw[:40]}...{raw[-20:]}"


def _relative_to_root(raw: str, segments: list[str], root: Path | None) -> list[str]:
    """Strip the repository root off an absolute glob's segments, or reject the glob."""
    if root is None:
        raise GlobError(
            raw,
            "absolute paths are not allowed here",
            hint="write the path relative to the repository root",
        )
    resolved = os.path.realpath(root)
    candidates = (resolved, os.path.normpath(os.path.abspath(root)))
    for candidate in candidates:
        root_segments = [part for part in candidate.split("/") if part]
        if segments[: len(root_segments)] == root_segments:
            return segments[len(root_segments) :]
    raise GlobError(
        raw,
        f"it is outside the repository {resolved}",
        hint="name a path inside the repository, relative to its root",
    )


def _double_star_suggestion(segments: list[str], index: int) -> str:
    """Rewrite a segment like ``**.py`` into the whole-segment form ``**/*.py`` for a hint."""
    segment = segments[index]
    collapsed = re.sub(r"\*{2,}", "*", segment)
    replacement = f"**/{collapsed}" if segment.startswith("**") else collapsed
    return "/".join([*segments[:index], replacement, *segments[index + 1 :]])


def _collapse_double_stars(segments: list[str]) -> list[str]:
    """Merge runs of ``**`` segments: ``**/**`` covers exactly what ``**`` covers."""
    out: list[str] = []
    for segment in segments:
        if segment == "**" and out and out[-1] == "**":
            continue
        out.append(segment)
    return out


# --------------------------------------------------------------------------- translation


def _escape(char: str, *, in_class: bool) -> str:
    """Escape ``char`` for both ``re`` and ``interegular``.

    Only ASCII punctuation is ever escaped: both engines read ``\\`` + letter or digit as a
    character class or back-reference, and Python warns about unescaped ``[``, ``--``, ``&&`` and
    friends inside a class.
    """
    special = _RE_SPECIAL_IN_CLASS if in_class else _RE_SPECIAL_OUTSIDE
    return "\\" + char if char in special else char


def _class_regex(segment: str, start: int, raw: str) -> tuple[str, int]:
    """Translate the class opening at ``segment[start]``; return its regex and the end index.

    The class never matches ``/``: a negated class excludes it explicitly, and a positive range
    spanning it (``[+-0]``) is split around it. The syntax is read by
    :func:`aictl.domain.glob_automata.parse_class`, the one reader of classes.
    """
    try:
        spec = glob_automata.parse_class(segment, start)
    except glob_automata.ClassSyntaxError as error:
        raise GlobError(raw, error.reason, hint=error.hint) from None
    items = "".join(
        _escape(low, in_class=True)
        if low == high
        else f"{_escape(low, in_class=True)}-{_escape(high, in_class=True)}"
        for low, high in spec.members
    )
    return (f"[^{items}/]" if spec.negated else f"[{items}]"), spec.end


def _segment_regex(segment: str, raw: str) -> str:
    """Translate one segment (not ``**``); raise :class:`GlobError` naming ``raw`` if invalid."""
    out: list[str] = []
    i = 0
    while i < len(segment):
        char = segment[i]
        if char == "*":
            out.append("[^/]*")
            while i < len(segment) and segment[i] == "*":
                i += 1
            continue
        if char == "?":
            out.append("[^/]")
        elif char == "[":
            regex, i = _class_regex(segment, i, raw)
            out.append(regex)
            continue
        else:
            out.append(_escape(char, in_class=False))
        i += 1
    return "".join(out)


@functools.lru_cache(maxsize=4096)
def glob_to_regex(glob: str) -> str:
    """The regex for exactly the paths ``glob`` covers.

    The result uses only escaped literals, ``[^/]*``, ``[^/]``, classes, ``.*``, ``(.*/)?`` and
    ``(/.*)?``, and must be matched in full (``re.fullmatch``) with ``.`` matching newlines
    (``re.DOTALL`` / ``REFlags.SINGLE_LINE``). ``glob`` is assumed canonical; an invalid class
    raises :class:`GlobError`.
    """
    segments = _collapse_double_stars(glob.split("/"))
    if segments == ["**"]:
        return ".*"
    last = len(segments) - 1
    out: list[str] = []
    for index, segment in enumerate(segments):
        if segment == "**":
            if index == 0:
                out.append("(.*/)?")
            elif index == last:
                out.append("(/.*)?")
            else:
                out.append("/(.*/)?")
            continue
        if index > 0 and segments[index - 1] != "**":
            out.append("/")
        out.append(_segment_regex(segment, glob))
    return "".join(out)


def covers(glob: str, path: str) -> bool:
    """Whether canonical ``glob`` covers the concrete repository-relative ``path``.

    ``path`` is matched as given (``/``-separated, no leading ``./``); the caller normalises it.
    Linear in the path (the glob's automaton, one set step per character): a regular expression
    engine that backtracks would take exponential time on ``*a*a*a*b`` against ``aaaa...``.
    """
    return glob_automata.accepts(_automaton(glob), path)


# --------------------------------------------------------------------------- intersection


@functools.lru_cache(maxsize=65536)
def _literal_prefix(glob: str) -> str:
    """The characters before the first ``*``, ``?`` or ``[`` (all of a literal glob)."""
    for index, char in enumerate(glob):
        if char in _META:
            return glob[:index]
    return glob


def _overlap(a: str, prefix_a: str, b: str) -> bool:
    """The shared hot path of every overlap test; ``prefix_a`` is ``_literal_prefix(a)``."""
    prefix_b = _literal_prefix(b)
    if not (prefix_a.startswith(prefix_b) or prefix_b.startswith(prefix_a)):
        return False
    if a in (b, "**") or b == "**":
        return True  # every canonical glob covers at least one path
    if prefix_a == a and prefix_b == b:
        return False  # two different literal paths
    if a > b:
        a, b = b, a
    return _pair_overlaps(a, b)


@functools.lru_cache(maxsize=65536)
def _pair_overlaps(a: str, b: str) -> bool:
    """Overlap of a pair that survived the prefix test (``a <= b``), cached per pair.

    A literal glob is one path, matched against the other glob; then the segment alignment,
    which needs no automaton; the product automaton decides what the alignment cannot.
    """
    if _literal_prefix(a) == a:
        return covers(b, a)
    if _literal_prefix(b) == b:
        return covers(a, b)
    quick = _aligned_overlap(a, b)
    if quick is not None:
        return quick
    return _pair_search_overlaps(a, b)


_ALIGNMENT_CELLS = 64  # the largest alignment table worth filling in Python
_NO, _UNKNOWN, _YES = 0, 1, 2  # Kleene's three truth values: "and" is min, "or" is max


def _aligned_overlap(a: str, b: str) -> bool | None:
    """Exact overlap of two globs (neither ``**`` alone) from their segments, or None.

    A path both globs cover is a sequence of segments along which each glob's segments are laid
    out: a segment pattern takes one path segment it matches, a ``**`` takes zero or more of
    any. Each path segment is constrained only by the (at most two) patterns laid on it, so the
    globs overlap iff some joint layout exists in which every path segment is taken by a pattern
    and a ``**``, by a ``**`` and a pattern, or by two patterns that share a string: a
    reachability question over pairs of positions (i in a, j in b), answered backwards.

    It is decided whenever every pair of patterns met on the way is (one literal segment
    against a pattern is matched with ``re``; two wildcard patterns are told apart only by their
    literal beginnings and endings): None when only pairs of wildcard patterns that may share a
    string stand between "yes" and "no". A glob of the form ``P/**`` with ``P`` literal is
    thus always decided, as is any pair without two wildcard segments able to meet.
    """
    segments_a, segments_b = _segments(a), _segments(b)
    size_a, size_b = len(segments_a), len(segments_b)
    if size_a * size_b > _ALIGNMENT_CELLS:
        return None  # the automata are cheaper than this table for long globs
    # value[i][j]: whether a[i:] and b[j:] lay out onto one (possibly empty) segment sequence.
    after = [_NO] * (size_b + 1)  # the row i + 1
    for i in range(size_a, -1, -1):
        row = [_NO] * (size_b + 1)
        for j in range(size_b, -1, -1):
            if i == size_a and j == size_b:
                row[j] = _YES
                continue
            best = _NO
            star_a = i < size_a and segments_a[i] == "**"
            star_b = j < size_b and segments_b[j] == "**"
            if i < size_a and (star_a or star_b):
                best = after[j]  # a's ** takes nothing more, or b's ** takes a's segment
            if j < size_b and (star_a or star_b):
                best = max(best, row[j + 1])  # the same, the other way round
            if i < size_a and j < size_b and not (star_a or star_b) and after[j + 1] != _NO:
                pair = _segments_overlap(segments_a[i], segments_b[j])
                best = max(best, min(pair, after[j + 1]))
            row[j] = best
        after = row
    verdict = after[0]
    return None if verdict == _UNKNOWN else verdict == _YES


@functools.lru_cache(maxsize=65536)
def _segments(glob: str) -> tuple[str, ...]:
    return tuple(glob.split("/"))


@functools.lru_cache(maxsize=65536)
def _segments_overlap(x: str, y: str) -> int:
    """Whether two segment patterns (not ``**``) share a string: ``_YES``, ``_NO`` or
    ``_UNKNOWN``, the last only for two wildcard patterns whose literal ends agree."""
    if x == y:
        return _YES  # every pattern matches some segment
    literal_x, literal_y = _literal_prefix(x) == x, _literal_prefix(y) == y
    if literal_x and literal_y:
        return _NO
    if literal_x:
        return _YES if covers(y, x) else _NO
    if literal_y:
        return _YES if covers(x, y) else _NO
    # Every string x matches starts with its literal prefix and ends with its literal suffix.
    (start_x, end_x), (start_y, end_y) = _segment_ends(x), _segment_ends(y)
    if not (start_x.startswith(start_y) or start_y.startswith(start_x)):
        return _NO
    if not (end_x.endswith(end_y) or end_y.endswith(end_x)):
        return _NO
    return _UNKNOWN


@functools.lru_cache(maxsize=8192)
def _segment_ends(segment: str) -> tuple[str, str]:
    """The literal text before the first and after the last wildcard of a segment pattern."""
    after_last = 0
    i = 0
    while i < len(segment):
        if segment[i] == "[":
            i = _class_regex(segment, i, segment)[1]
            after_last = i
        else:
            i += 1
            if segment[i - 1] in "*?":
                after_last = i
    return _literal_prefix(segment), segment[after_last:]


def globs_intersect(a: str, b: str) -> bool:
    """Whether canonical globs ``a`` and ``b`` cover at least one common path (exact).

    Pairs whose literal prefixes diverge, pairs with a literal glob, and pairs that the segment
    alignment decides (every ``P/**`` pair among them) are settled without any automaton; the
    rest are decided on the product automaton. Answers past the cheapest tests are cached per
    unordered pair.
    """
    return _overlap(a, _literal_prefix(a), b)


def intersection_witness(a: str, b: str) -> str | None:
    """One concrete path both canonical globs cover, or None when they are disjoint.

    Used to explain a conflict ("both cover src/x/a.py"). The path is among the shortest in the
    intersection, avoids segments starting with ``.`` when it can, writes characters left free
    by the globs as plain letters, and has been checked against :func:`covers` for both globs.
    Unless one glob is literal, it comes from a breadth-first search over pairs of automaton
    states, even for a pair whose overlap was decided without one: explaining costs more than
    deciding. Raises :class:`GlobTooComplex` if that search would exceed its budget.
    """
    if not globs_intersect(a, b):
        return None
    for glob in (a, b):
        if _literal_prefix(glob) == glob:
            return glob  # the one path it covers, so the other glob covers it too
    if a > b:
        a, b = b, a
    return _pair_witness(a, b)


def glob_within(inner: str, outer: str) -> bool:
    """Whether every path canonical glob ``inner`` covers is covered by canonical ``outer``.

    Exact, over paths (never over strings that are no path). Settled without automata: equal
    globs, ``outer`` ``**``, a literal ``inner`` (one path), literal prefixes neither of which
    extends the other (then no path is common, see step 1 of overlap), a literal ``outer`` that
    ``inner`` does not cover, and ``outer`` of the form ``P/**`` with ``P`` literal around an
    ``inner`` whose literal prefix starts with ``P/`` (every path ``inner`` covers then starts
    with ``P/``: the one exception to "starts with the literal prefix", ``Q/**`` covering ``Q``,
    is here ``P/**`` itself or a path longer than ``P/``). Otherwise the two globs' cached
    automata are searched for a path ``inner`` covers and ``outer`` does not; answers of that
    search are cached per ordered pair.
    """
    if outer in (inner, "**"):
        return True
    prefix_inner, prefix_outer = _literal_prefix(inner), _literal_prefix(outer)
    if prefix_inner == inner:
        return covers(outer, inner)
    if not (prefix_inner.startswith(prefix_outer) or prefix_outer.startswith(prefix_inner)):
        return False
    if prefix_outer == outer and not covers(inner, outer):
        return False
    directory_lock = outer.endswith("/**") and prefix_outer == outer[:-2]  # P/**, P literal
    if directory_lock and prefix_inner.startswith(prefix_outer):
        return True
    return _pair_outside(inner, outer) is None


@dataclass(frozen=True)
class GlobConflict:
    """A wanted glob overlapping a held one; ``holder`` is the caller's key (a task id)."""

    wanted: str
    held: str
    holder: object
    witness: str | None


def find_conflicts(
    wanted: Sequence[str],
    held: Iterable[tuple[object, str]],
    *,
    explain: bool = False,
) -> list[GlobConflict]:
    """Every (wanted glob, held glob) pair that overlaps, in wanted order then held order.

    ``held`` yields ``(holder, glob)`` pairs and is consumed once. With ``explain`` each conflict
    carries a witness path, unless finding one would exceed the search budget (an explanation
    is never worth refusing for); without it the witness is None and no extra work is done.
    """
    held_list = list(held)
    conflicts: list[GlobConflict] = []
    for want in wanted:
        prefix = _literal_prefix(want)
        for holder, glob in held_list:
            if _overlap(want, prefix, glob):
                witness = _explain(want, glob) if explain else None
                conflicts.append(GlobConflict(want, glob, holder, witness))
    return conflicts


def _explain(a: str, b: str) -> str | None:
    try:
        return intersection_witness(a, b)
    except GlobTooComplex:
        return None


def has_conflict(wanted: Sequence[str], held_globs: Iterable[str]) -> bool:
    """Whether any wanted glob overlaps any held glob; stops at the first overlap.

    This is the hot path of a claim, so it does no allocation per pair beyond cache lookups.
    """
    held_list = held_globs if isinstance(held_globs, list | tuple) else list(held_globs)
    for want in wanted:
        prefix = _literal_prefix(want)
        for glob in held_list:
            if _overlap(want, prefix, glob):
                return True
    return False


# --------------------------------------------------------------------------- automata


@functools.lru_cache(maxsize=8192)
def _automaton(glob: str) -> glob_automata.Automaton:
    """The automaton of one glob (or one segment pattern), built once and shared by matching
    and by every pair search; building is linear in the glob."""
    return glob_automata.build(glob)


@functools.lru_cache(maxsize=4096)
def _glob_fsm(glob: str) -> glob_automata.Automaton:
    """The automaton a pair search uses: the one :func:`covers` uses too. A separate name so
    that the steps which decide a pair without any search can be told apart (and tested)."""
    return _automaton(glob)


def _too_complex(
    a: str, b: str, budget: int, question: str, unit: str = "states"
) -> GlobTooComplex:
    return GlobTooComplex(
        a, f"deciding whether it {question} {b!r} would take more than {budget:,} {unit}", other=b
    )


@functools.lru_cache(maxsize=65536)
def _pair_search_overlaps(a: str, b: str) -> bool:
    """The product search's answer for a pair (``a <= b``); raises :class:`GlobTooComplex`."""
    first, second = _glob_fsm(a), _glob_fsm(b)
    if len(first.moves) > len(second.moves):
        first, second = second, first  # the longer glob is the bit set, the shorter the worklist
    try:
        return glob_automata.intersects(first, second, budget=OVERLAP_BUDGET)
    except glob_automata.SearchBudgetExceeded:
        raise _too_complex(a, b, OVERLAP_BUDGET, "overlaps", "steps") from None


@functools.lru_cache(maxsize=65536)
def _pair_witness(a: str, b: str) -> str | None:
    """A shortest path covered by both globs (``a <= b``), or None; decided by the explicit
    pair search, checked here with :func:`covers` for both globs. Raises
    :class:`GlobTooComplex` past the search budget."""
    try:
        witness = glob_automata.common_path(_glob_fsm(a), _glob_fsm(b), budget=SEARCH_BUDGET)
    except glob_automata.SearchBudgetExceeded:
        raise _too_complex(a, b, SEARCH_BUDGET, "shares a path with") from None
    if witness is not None and not (covers(a, witness) and covers(b, witness)):
        raise RuntimeError(f"glob witness {witness!r} is not covered by both {a!r} and {b!r}")
    return witness


@functools.lru_cache(maxsize=65536)
def _pair_outside(inner: str, outer: str) -> str | None:
    """A shortest path ``inner`` covers and ``outer`` does not, or None; cached per pair.

    The search's answer is checked here with :func:`covers` for both globs. Raises
    :class:`GlobTooComplex` past the search budget (containment is the one question whose
    search can grow exponentially).
    """
    try:
        path = glob_automata.path_outside(_glob_fsm(inner), _glob_fsm(outer), budget=SEARCH_BUDGET)
    except glob_automata.SearchBudgetExceeded:
        raise _too_complex(inner, outer, SEARCH_BUDGET, "lies within") from None
    if path is not None and not (covers(inner, path) and not covers(outer, path)):
        raise RuntimeError(f"path {path!r} is not covered by {inner!r} alone, outside {outer!r}")
    return path
