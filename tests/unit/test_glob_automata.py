"""Tests for the glob automata: exactness against two independent oracles, polynomial work on
adversarial globs (counted in set steps, never timed), the budgets, and the input limits.

Oracles: ``interegular`` (deterministic automata of each glob's regular expression, intersected
with the language of paths, on a shared alphabet) for overlap and containment, and the
segment-by-segment reference matcher of ``test_globs`` for every witness and every path.
"""

from __future__ import annotations

import functools

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from aictl.domain import glob_automata, globs
from aictl.domain.glob_automata import build, common_path, intersects, path_outside
from aictl.domain.globs import GlobError, GlobTooComplex, glob_to_regex, normalize_glob
from tests.unit.test_globs import is_real_path, ref_covers

PATHS_REGEX = r"[^/]+(/[^/]+)*"


@functools.cache
def _oracle_fsms(*glob_list: str) -> tuple[object, ...]:
    from interegular import REFlags, parse_pattern
    from interegular.fsm import Alphabet

    flags = REFlags.SINGLE_LINE
    patterns = [parse_pattern(glob_to_regex(glob)) for glob in glob_list]
    patterns.append(parse_pattern(PATHS_REGEX))
    alphabet = Alphabet.union(*(pattern.get_alphabet(flags) for pattern in patterns))[0]
    return tuple(pattern.to_fsm(alphabet, flags=flags) for pattern in patterns)


def oracle_intersects(a: str, b: str) -> bool:
    fsm_a, fsm_b, paths = _oracle_fsms(a, b)
    return not (fsm_a & fsm_b & paths).empty()  # type: ignore[operator]


def oracle_within(inner: str, outer: str) -> bool:
    fsm_inner, fsm_outer, paths = _oracle_fsms(inner, outer)
    return ((fsm_inner & paths) - fsm_outer).empty()  # type: ignore[operator]


_TOKENS = ("a", "b", ".", "-", "*", "?", "[ab]", "[!a]", "[^b]", "[a-c]", "[.-0]", "[]]", "py")


@st.composite
def _segment(draw: st.DrawFn) -> str:
    if draw(st.integers(0, 3)) == 0:
        return "**"
    segment = "".join(draw(st.lists(st.sampled_from(_TOKENS), min_size=1, max_size=4)))
    while "**" in segment:
        segment = segment.replace("**", "*")
    return segment


def _canonical(raw: str) -> str | None:
    try:
        return normalize_glob(raw)
    except GlobError:
        return None


globs_strategy = st.lists(_segment(), min_size=1, max_size=4).map("/".join).map(_canonical)
PROPERTY_SETTINGS = settings(
    max_examples=250, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow]
)


# --------------------------------------------------------------------------- exactness


@PROPERTY_SETTINGS
@given(globs_strategy, globs_strategy)
def test_overlap_agrees_with_deterministic_automata(a: str | None, b: str | None) -> None:
    if a is None or b is None:
        return
    expected = oracle_intersects(a, b)
    fsm_a, fsm_b = build(a), build(b)
    # Either automaton can be the worklist and either the bit set.
    assert intersects(fsm_a, fsm_b) is expected, (a, b)
    assert intersects(fsm_b, fsm_a) is expected, (a, b)
    assert globs.globs_intersect(a, b) is expected, (a, b)
    witness = common_path(fsm_a, fsm_b)
    assert (witness is not None) is expected, (a, b, witness)
    if witness is not None:
        assert is_real_path(witness), (a, b, witness)
        assert ref_covers(a, witness) and ref_covers(b, witness), (a, b, witness)
        assert glob_automata.accepts(fsm_a, witness) and glob_automata.accepts(fsm_b, witness)


@PROPERTY_SETTINGS
@given(globs_strategy, globs_strategy)
def test_containment_agrees_with_deterministic_automata(
    inner: str | None, outer: str | None
) -> None:
    if inner is None or outer is None:
        return
    expected = oracle_within(inner, outer)
    outside = path_outside(build(inner), build(outer))
    assert (outside is None) is expected, (inner, outer, outside)
    assert globs.glob_within(inner, outer) is expected, (inner, outer)
    if outside is not None:
        assert is_real_path(outside), (inner, outer, outside)
        assert ref_covers(inner, outside) and not ref_covers(outer, outside), (inner, outer)


_PATH_CHARS = st.sampled_from(["a", "b", "c", ".", "-", "]", "/", "p", "y", "é"])


@PROPERTY_SETTINGS
@given(globs_strategy, st.lists(_PATH_CHARS, max_size=12).map("".join))
def test_matching_agrees_with_the_reference_matcher(glob: str | None, path: str) -> None:
    if glob is None:
        return
    # Strings that are no path (empty, a leading, doubled or trailing /) are never covered.
    expected = is_real_path(path) and not path.startswith("/") and ref_covers(glob, path)
    assert glob_automata.accepts(build(glob), path) is expected, (glob, path)


@pytest.mark.parametrize(
    ("glob", "path", "expected"),
    [
        ("*", "", False),
        ("*", "a/", False),
        ("**", "a//b", False),
        ("**", "/a", False),
        ("a/**", "a/", False),
        ("a/**/b", "a//b", False),
        ("**/b", "b", True),
        ("a/**", "a", True),
        ("[.-0]", "/", False),
        ("[!a]", "/", False),
        ("?", "é", True),
    ],
)
def test_automata_accept_paths_only(glob: str, path: str, expected: bool) -> None:
    assert glob_automata.accepts(build(glob), path) is expected


# --------------------------------------------------------------------------- polynomial work


def _adversarial(length: int) -> list[tuple[str, str, str, bool]]:
    """(name, a, b, overlap) for families that defeated the old engine or stress this one;
    ``length`` is that of the longest glob, a segment being at most 255 characters."""
    one = min(length, 252)  # characters available in one segment
    fives, thirds = length // 5, length // 3
    return [
        ("*a then ?s", "*a" + "?" * (one - 2), "*b*", True),
        ("*a then ?s, disjoint", "*a" + "?" * (one - 3) + "c", "*b", False),
        ("*a*a... against *b*b...", "*a" * (one // 2), "*b" * (one // 2), False),
        ("**/ chain against segments", "**/a/" * fives + "c", "a/" * (length // 2) + "b", False),
        ("**/ chain against **/ chain", "**/" + "a/**/" * fives, "**/" + "b/**/" * fives, True),
        ("many classes", "[ab]" * (one // 4), "[bc]" * (one // 4), True),
        ("many classes, disjoint", "[ab]" * (one // 4), "[bc]" * (one // 4 - 1) + "d", False),
        (
            "stars between classes",
            "*".join(["[a-c]"] * (one // 6)),
            "*[!b]" * (one // 6) + "*[!a-c]",
            False,
        ),
        ("? segments against * segments", "?/" * thirds + "??", "*/" * thirds + "*x", True),
        ("? segments against more", "?/" * thirds + "??", "*/" * (thirds + 1) + "*x", False),
    ]


@pytest.mark.parametrize("length", [50, 200, 1000])
def test_adversarial_pairs_take_a_few_steps_per_state(length: int) -> None:
    for name, raw_a, raw_b, expected in _adversarial(length):
        a, b = _fitting(raw_a), _fitting(raw_b)
        fsm_a, fsm_b = build(a), build(b)
        # About two set steps per state of the worklist automaton: linear, not exponential
        # (the old engine's work tripled with every '?'). Either way round.
        for first, second in ((fsm_a, fsm_b), (fsm_b, fsm_a)):
            budget = 4 * len(first.moves) + 16
            assert intersects(first, second, budget=budget) is expected, name


def _fitting(raw: str) -> str:
    """``raw`` cut to the glob length limit at a segment boundary, canonical."""
    segments = raw.split("/")
    while len("/".join(segments)) > globs.MAX_GLOB_LENGTH:
        segments.pop(-2 if len(segments) > 1 else -1)  # keep the distinguishing last segment
    return normalize_glob("/".join(segments))


def test_matching_does_not_backtrack() -> None:
    # A backtracking regex engine takes exponential time here (1.2 s for six '*a' on main).
    glob = "*a" * 40 + "*b"
    assert not globs.covers(glob, "a" * 250)
    assert globs.covers(glob, "a" * 250 + "b")
    assert not globs.globs_intersect(glob, "a" * 250)


# --------------------------------------------------------------------------- budgets


@pytest.fixture
def cold_caches() -> object:
    caches = (globs._pair_overlaps, globs._pair_search_overlaps, globs._pair_witness)
    for cache in (*caches, globs._pair_outside):
        cache.cache_clear()
    yield None
    for cache in (*caches, globs._pair_outside):
        cache.cache_clear()


def test_a_containment_search_over_its_budget_is_refused(
    monkeypatch: pytest.MonkeyPatch, cold_caches: None
) -> None:
    # Equal languages written differently: the search must visit every subset of outer's
    # states, 2^12 of them here (the subset construction's worst case).
    inner, outer = "*[a]" + "?" * 12, "*a" + "?" * 12
    monkeypatch.setattr(globs, "SEARCH_BUDGET", 1_000)
    with pytest.raises(GlobTooComplex) as caught:
        globs.glob_within(inner, outer)
    error = caught.value
    assert error.exit_code == 2
    assert error.glob == inner and error.other == outer
    assert "1,000 states" in error.message and repr(outer) in error.message
    assert error.hint is not None and "simpler globs" in error.hint
    monkeypatch.setattr(globs, "SEARCH_BUDGET", 100_000)
    assert globs.glob_within(inner, outer)


def test_an_overlap_search_over_its_budget_is_refused(
    monkeypatch: pytest.MonkeyPatch, cold_caches: None
) -> None:
    monkeypatch.setattr(globs, "OVERLAP_BUDGET", 1)
    with pytest.raises(GlobTooComplex, match="would take more than 1 steps"):
        globs.has_conflict(["src/*.py"], ["src/a*"])


def test_an_explanation_over_its_budget_is_left_out(
    monkeypatch: pytest.MonkeyPatch, cold_caches: None
) -> None:
    monkeypatch.setattr(globs, "SEARCH_BUDGET", 3)
    [conflict] = globs.find_conflicts(["src/*.py"], [(1, "src/a*")], explain=True)
    assert (conflict.held, conflict.witness) == ("src/a*", None)
    with pytest.raises(GlobTooComplex):
        globs.intersection_witness("src/*.py", "src/a*")


def test_search_budget_exceeded_is_raised_by_the_engine() -> None:
    with pytest.raises(glob_automata.SearchBudgetExceeded, match="10 states"):
        common_path(build("**/a/**/a/**"), build("**/b/**/b/**"), budget=10)


# --------------------------------------------------------------------------- input limits


def test_the_longest_glob_is_accepted_and_one_more_character_refused() -> None:
    longest = "/".join(["a" * 254] + ["a" * 255] * 3) + "/b"  # 1,024 characters
    assert len(longest) == globs.MAX_GLOB_LENGTH
    assert normalize_glob(longest) == longest
    with pytest.raises(GlobError) as caught:
        normalize_glob(longest + "c")
    assert caught.value.exit_code == 2
    assert "1,025 characters long, over the limit of 1,024" in caught.value.message
    assert caught.value.glob.startswith("aaaa") and "..." in caught.value.glob


def test_a_segment_over_255_characters_is_refused() -> None:
    assert normalize_glob("src/" + "x" * 255) == "src/" + "x" * 255
    with pytest.raises(GlobError) as caught:
        normalize_glob("src/" + "x" * 256 + "/a.py")
    assert caught.value.exit_code == 2
    assert "segment 2 is 256 characters long, over the limit of 255" in caught.value.message
