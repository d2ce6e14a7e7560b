"""Tests for path-lock globs: language, normalisation, exact overlap, witnesses, caching.

The overlap tests are checked against an independent reference matcher written here
(segment by segment with ``fnmatch.fnmatchcase`` and recursion for ``**``, a glob covering
exactly the paths it matches), over a generated universe of paths and generated globs.
"""

from __future__ import annotations

import fnmatch
import functools
import itertools
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from aictl.domain import glob_automata, globs
from aictl.domain.globs import (
    GlobConflict,
    GlobError,
    base_within,
    covers,
    find_conflicts,
    glob_to_regex,
    globs_intersect,
    has_conflict,
    intersection_witness,
    normalize_glob,
)
from aictl.errors import InvalidInput

# --------------------------------------------------------------------------- reference matcher


def _segment_matches(pattern: str, segment: str) -> bool:
    # fnmatch reads "[^" as a literal "^"; the glob language treats it like "[!".
    return fnmatch.fnmatchcase(segment, pattern.replace("[^", "[!"))


@functools.cache
def _ref_match(patterns: tuple[str, ...], segments: tuple[str, ...]) -> bool:
    """Whether the segment patterns match the path segments; ``**`` takes zero or more."""
    if not patterns:
        return not segments
    head, rest = patterns[0], patterns[1:]
    if head == "**":
        return any(_ref_match(rest, segments[i:]) for i in range(len(segments) + 1))
    return bool(segments) and _segment_matches(head, segments[0]) and _ref_match(rest, segments[1:])


def ref_covers(glob: str, path: str) -> bool:
    """Reference: the glob matches the path itself (never merely an ancestor directory)."""
    return _ref_match(tuple(glob.split("/")), tuple(path.split("/")))


def is_real_path(path: str) -> bool:
    return path != "" and all(path.split("/"))


BASE_SEGMENTS = ("a", "b", "x.py", "a.py", "ab.md", "_")


def universe(*glob_list: str, depth: int = 3) -> list[str]:
    """All paths up to ``depth`` over the base vocabulary plus the globs' literal segments."""
    vocabulary = set(BASE_SEGMENTS)
    for glob in glob_list:
        vocabulary.update(seg for seg in glob.split("/") if not set(seg) & set("*?[]"))
    vocab = sorted(vocabulary)
    return [
        "/".join(parts)
        for length in range(1, depth + 1)
        for parts in itertools.product(vocab, repeat=length)
    ]


# --------------------------------------------------------------------------- conflict table

CONFLICTS = [
    ("src/*/a.py", "src/x/*.py"),
    ("src/api/**", "src/api/x.py"),
    ("src/api", "src/api"),
    ("src/**", "src"),
    ("src/**", "src/a/b"),
    ("**", "docs/a.md"),
    ("**", "src/**/*.py"),
    ("**", "[!a]"),
    ("**/*.py", "x/y/z.py"),
    ("**/x.py", "x.py"),
    ("**/x.py", "a/b/x.py"),
    ("a/**/b", "a/b"),
    ("a/**/b", "a/x/y/b"),
    ("src/[ab].py", "src/[b-d].py"),
    ("src/?.py", "src/a.py"),
    ("src/??.py", "src/*b.py"),
    ("src/[!a].py", "src/b.py"),
    ("src/[^a].py", "src/[ab].py"),
    ("src/**/test_*.py", "src/api/**"),
    ("**/x", "a/**"),
    ("a/**/b", "**/b/**"),
    ("**/a/**", "a"),
    ("*", "?"),
    ("src/a*", "src/*b"),
    ("src/*/**", "src/x"),
    ("src/*/**", "src/**/b"),
    (".github/*", "**/*.yml"),
    ("**/*.py", "**/*.md/*.py"),
    ("pkg12/**", "**/*.lock"),
    ("x.lock/**", "*.lock"),
    ("a/b/**", "**/b"),
    ("a/b/**", "a/*/c/**"),
    ("a/b/**", "*/*/*.py"),
]

NO_CONFLICTS = [
    # A literal path covers itself only, not what would lie beneath it.
    ("src/api", "src/api/x.py"),
    ("a/b", "a/b/c.py"),
    ("**/*.py", "README.md"),
    ("**/*.py", "docs/a.md"),
    ("**/*.py", "**/*.md/x"),
    ("src/**/*.py", "docs/*.md"),
    ("src/*.py", "src/*.md"),
    ("src/[ab].py", "src/c.py"),
    ("src/?.py", "src/ab.py"),
    ("src/[!a].py", "src/a.py"),
    ("src/[^a-c].py", "src/[ab].py"),
    ("src/a.py", "docs/*.md"),
    ("src/a", "src/ab"),
    ("src/ab", "src/a"),
    ("src/*/a.py", "src/b.py"),
    ("src/*/a.py", "src/b.py/b.py"),
    ("src/*", "src/a/b/c"),
    ("src/a*", "src/b*"),
    ("src/?", "src/??"),
    ("src/**", "srcx"),
    ("src/*/**", "src"),
    ("src/**/a", "src"),
    ("a/*/b", "a/c"),
    ("a/*/b", "a/c/d"),
    ("a/**/b", "**/c"),
    ("*.py", "*.md"),
    ("pkg12/**", "*.lock"),
    ("pkg12/**", "pkg1?3/**"),
    ("a/b/**", "*/c/**"),
    ("**/*.py", "**/*.lock"),
    ("src/*.py", "**/*.lock"),
    ("a*b", "**/*c"),
]


@pytest.mark.parametrize(("a", "b"), CONFLICTS)
def test_conflicting_pairs_intersect_both_ways_with_a_valid_witness(a: str, b: str) -> None:
    assert globs_intersect(a, b)
    assert globs_intersect(b, a)
    for first, second in ((a, b), (b, a)):
        witness = intersection_witness(first, second)
        assert witness is not None
        assert is_real_path(witness), witness
        assert ref_covers(a, witness), witness
        assert ref_covers(b, witness), witness
        assert covers(a, witness)
        assert covers(b, witness)


@pytest.mark.parametrize(("a", "b"), NO_CONFLICTS)
def test_disjoint_pairs_do_not_intersect_either_way(a: str, b: str) -> None:
    assert not globs_intersect(a, b)
    assert not globs_intersect(b, a)
    assert intersection_witness(a, b) is None
    assert intersection_witness(b, a) is None
    assert not any(ref_covers(a, p) and ref_covers(b, p) for p in universe(a, b))


def test_alphabet_trap_is_pinned() -> None:
    # FSMs over different alphabets make interegular's isdisjoint answer "disjoint" here.
    assert globs_intersect("src/*/a.py", "src/x/*.py")
    assert intersection_witness("src/*/a.py", "src/x/*.py") == "src/x/a.py"
    # The same pair straight through the product automaton, bypassing the segment-wise check.
    assert globs._pair_witness("src/*/a.py", "src/x/*.py") == "src/x/a.py"
    assert globs._pair_witness("**/*/a.py", "src/x/*.py") == "src/x/a.py"


def test_witness_is_readable() -> None:
    assert intersection_witness("src/*.py", "**") == "src/x.py"
    assert intersection_witness("src/api/**", "src/api/x.py") == "src/api/x.py"
    assert intersection_witness("src/**", "src") == "src"
    assert intersection_witness("**/*.py", "**/*.md/*.py") == "x.md/x.py"
    assert intersection_witness("a/**/b", "**/b/**") == "a/b"
    # Only a leading dot satisfies .github/*, so the dot is kept there.
    assert intersection_witness(".github/*", "**") == ".github/x"


def test_agrees_with_interegular_intersection_on_a_shared_alphabet() -> None:
    from interegular import REFlags, parse_pattern
    from interegular.fsm import Alphabet

    flags = REFlags.SINGLE_LINE
    sample = [*CONFLICTS, *NO_CONFLICTS]
    for a, b in sample:
        p1, p2 = parse_pattern(glob_to_regex(a)), parse_pattern(glob_to_regex(b))
        alphabet = Alphabet.union(p1.get_alphabet(flags), p2.get_alphabet(flags))[0]
        product = p1.to_fsm(alphabet, flags=flags) & p2.to_fsm(alphabet, flags=flags)
        assert globs_intersect(a, b) == (not product.empty()), (a, b)


# --------------------------------------------------------------------------- regex and covers


@pytest.mark.parametrize(
    ("glob", "regex"),
    [
        ("src/api", r"src/api"),
        ("**", ".*"),
        ("**/*.py", r"(.*/)?[^/]*\.py"),
        ("a/**/b", r"a/(.*/)?b"),
        ("a/**", r"a(/.*)?"),
        ("**/a/**", r"(.*/)?a(/.*)?"),
        ("src/[!a-c]?", r"src/[^a-c/][^/]"),
        ("f(1)+{2}", r"f\(1\)\+\{2\}"),
        ("[+-0]", r"[\+-\.0]"),
    ],
)
def test_glob_to_regex(glob: str, regex: str) -> None:
    assert glob_to_regex(glob) == regex


@pytest.mark.parametrize(
    ("glob", "path", "expected"),
    [
        ("src/api", "src/api", True),
        ("src/api", "src/api/x.py", False),
        ("src/api/**", "src/api/x.py", True),
        ("src/api/**", "src/api", True),
        ("src/api", "src/apix", False),
        ("src/*.py", "src/a.py", True),
        ("src/*.py", "src/a/b.py", False),
        ("src/*.py", "src/a.py/b", False),
        ("src/**", "src", True),
        ("src/**", "src/a/b", True),
        ("src/**", "srcx", False),
        ("**", "a/b", True),
        ("**/x.py", "x.py", True),
        ("**/test_*.py", "test_a.py", True),
        ("**/test_*.py", "a/b/test_a.py", True),
        ("a/**/b", "a/b", True),
        ("a/**/b", "a/x/y/b", True),
        ("a/**/b", "a/b/c", False),
        ("[+-0]", "/", False),
        ("[+-0]", ".", True),
        ("a.b", "axb", False),
        ("f(1)+", "f(1)+", True),
        ("a[[]b", "a[b", True),
        ("line\nbreak", "line\nbreak", True),
        ("line\nbreak", "line\nbreak/x", False),
    ],
)
def test_covers(glob: str, path: str, expected: bool) -> None:
    assert covers(glob, path) is expected


# --------------------------------------------------------------------------- brute force

SEGMENT_PATTERNS = ("a", "x.py", "*", "?", "*.py", "a*", "[ab]", "[!a]*", "**", "?.md")


def _grammar_globs() -> list[str]:
    raw = (
        "/".join(parts)
        for length in (1, 2)
        for parts in itertools.product(SEGMENT_PATTERNS, repeat=length)
    )
    return sorted({normalize_glob(glob) for glob in raw})


GRAMMAR_GLOBS = _grammar_globs()


def test_brute_force_against_reference_matcher() -> None:
    paths = universe(*GRAMMAR_GLOBS)
    covered = {glob: frozenset(p for p in paths if ref_covers(glob, p)) for glob in GRAMMAR_GLOBS}
    checked = 0
    for a, b in itertools.combinations_with_replacement(GRAMMAR_GLOBS, 2):
        common = covered[a] & covered[b]
        result = globs_intersect(a, b)
        assert result == globs_intersect(b, a), (a, b)
        if common:
            assert result, (a, b, sorted(common)[:3])
        # The automaton alone must agree, whatever fast path decided the pair.
        assert (globs._pair_witness(min(a, b), max(a, b)) is not None) == result, (a, b)
        if result:
            witness = intersection_witness(a, b)
            assert witness is not None, (a, b)
            assert is_real_path(witness), (a, b, witness)
            assert ref_covers(a, witness), (a, b, witness)
            assert ref_covers(b, witness), (a, b, witness)
        else:
            assert intersection_witness(a, b) is None
        checked += 1
    assert checked > 1000


def test_covers_agrees_with_reference_matcher() -> None:
    paths = universe(*GRAMMAR_GLOBS)
    for glob in GRAMMAR_GLOBS:
        for path in paths:
            assert covers(glob, path) == ref_covers(glob, path), (glob, path)


_TOKENS = ("a", "b", ".", "_", "*", "?", "[ab]", "[!a]", "[^b]", "[a-c]", "[.-0]", "py")


@st.composite
def _segments(draw: st.DrawFn) -> str:
    if draw(st.integers(0, 5)) == 0:
        return "**"
    tokens = draw(st.lists(st.sampled_from(_TOKENS), min_size=1, max_size=3))
    segment = "".join(tokens)
    while "**" in segment:
        segment = segment.replace("**", "*")
    return segment


_glob_strategy = st.lists(_segments(), min_size=1, max_size=3).map("/".join)


def _normalised_or_none(raw: str) -> str | None:
    try:
        return normalize_glob(raw)
    except GlobError:
        return None


@settings(
    max_examples=300,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)
@given(_glob_strategy, _glob_strategy)
def test_generated_globs_against_reference_matcher(raw_a: str, raw_b: str) -> None:
    a, b = _normalised_or_none(raw_a), _normalised_or_none(raw_b)
    if a is None or b is None:
        return
    result = globs_intersect(a, b)
    assert result == globs_intersect(b, a)
    paths = universe(a, b, depth=3)
    common = [p for p in paths if ref_covers(a, p) and ref_covers(b, p)]
    if common:
        assert result, (a, b, common[:3])
    witness = intersection_witness(a, b)
    if result:
        assert witness is not None
        assert is_real_path(witness), witness
        assert ref_covers(a, witness), (a, b, witness)
        assert ref_covers(b, witness), (a, b, witness)
    else:
        assert witness is None
    for path in paths[:200]:
        assert covers(a, path) == ref_covers(a, path), (a, path)


# --------------------------------------------------------------------------- normalisation


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("./src//api/", "src/api/**"),
        ("src/api/", "src/api/**"),
        ("src/api//", "src/api/**"),
        ("src/api/.", "src/api/**"),
        ("src/api", "src/api"),
        ("src/*/", "src/*/**"),
        ("src/**/", "src/**"),
        ("src/./a", "src/a"),
        ("**/**/x", "**/x"),
        ("a/**/**/**/b", "a/**/b"),
        ("././a", "a"),
        ("**", "**"),
        ("**/", "**"),
        ("src/*.py", "src/*.py"),
        ("[]]x", "[]]x"),
        ("a[[]b", "a[[]b"),
        ("...", "..."),
        ("a..b", "a..b"),
    ],
)
def test_normalize_glob(raw: str, expected: str) -> None:
    assert normalize_glob(raw) == expected


def test_absolute_path_inside_root_becomes_relative(tmp_path: Path) -> None:
    root = Path(os.path.realpath(tmp_path))
    assert normalize_glob(f"{root}/src/*.py", root) == "src/*.py"
    assert normalize_glob(f"{root}//src/./api/", root) == "src/api/**"


def test_absolute_path_through_a_symlinked_root(tmp_path: Path) -> None:
    real = tmp_path / "real"
    real.mkdir()
    link = tmp_path / "link"
    link.symlink_to(real)
    resolved = os.path.realpath(real)
    assert normalize_glob(f"{resolved}/a.py", link) == "a.py"
    assert normalize_glob(f"{link}/a.py", link) == "a.py"


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        ("", "empty"),
        ("a\0b", "NUL"),
        ("..", "'..'"),
        ("src/../x", "'..'"),
        ("src\\a.py", "backslash"),
        ("/etc/passwd", "absolute"),
        ("src/**.py", "whole path segment"),
        ("a***/b", "whole path segment"),
        ("src/[ab.py", "unbalanced"),
        ("src/[!", "unbalanced"),
        ("./", "no path"),
        (".", "no path"),
        ("/", "absolute"),
        ("[z-a]", "empty character range"),
        ("[\x00-\uffff]", "NUL"),
        ("[a-\u0200]", "wider"),
    ],
)
def test_normalize_glob_rejects(raw: str, reason: str) -> None:
    with pytest.raises(GlobError) as caught:
        normalize_glob(raw)
    error = caught.value
    assert repr(raw) in str(error)
    assert reason in str(error)
    assert error.hint
    assert error.exit_code == 2
    assert isinstance(error, InvalidInput)


def test_double_star_hint_suggests_whole_segment() -> None:
    with pytest.raises(GlobError) as caught:
        normalize_glob("src/**.py")
    assert caught.value.hint is not None
    assert "src/**/*.py" in caught.value.hint


def test_backslash_hint_mentions_slash() -> None:
    with pytest.raises(GlobError) as caught:
        normalize_glob("src\\a.py")
    assert caught.value.hint is not None
    assert "/" in caught.value.hint


def test_absolute_path_outside_root_is_rejected(tmp_path: Path) -> None:
    with pytest.raises(GlobError, match="outside the repository"):
        normalize_glob("/etc/passwd", tmp_path)
    # A sibling whose name merely starts with the root's name is still outside.
    with pytest.raises(GlobError, match="outside the repository"):
        normalize_glob(f"{os.path.realpath(tmp_path)}x/a.py", tmp_path)


def test_the_root_itself_names_no_path(tmp_path: Path) -> None:
    with pytest.raises(GlobError, match="no path"):
        normalize_glob(f"{tmp_path}/", tmp_path)
    with pytest.raises(GlobError, match="no path") as caught:
        normalize_glob(str(tmp_path), tmp_path)
    assert caught.value.hint is not None
    assert "**" in caught.value.hint


def test_glob_error_exit_code_and_fields() -> None:
    error = GlobError("src/**.py", "bad", hint="fix it")
    assert error.exit_code == 2
    assert error.glob == "src/**.py"
    assert error.hint == "fix it"
    assert "'src/**.py'" in error.message


# --------------------------------------------------------------------------- pruning and cache


@pytest.fixture
def cold_caches() -> Iterator[None]:
    # Hold the cached functions themselves: a test may monkeypatch the module attributes.
    caches = (
        globs._pair_overlaps,
        globs._pair_search_overlaps,
        globs._pair_witness,
        globs._pair_outside,
        globs._glob_fsm,
        globs._automaton,
    )
    for cache in caches:
        cache.cache_clear()
    yield
    for cache in caches:
        cache.cache_clear()


def test_prefix_pruning_builds_no_automaton(
    monkeypatch: pytest.MonkeyPatch, cold_caches: None
) -> None:
    def refuse(glob: str) -> object:
        raise AssertionError(f"automaton built for {glob}")

    monkeypatch.setattr(globs, "_glob_fsm", refuse)
    assert not globs_intersect("src/a.py", "docs/*.md")
    assert not globs_intersect("src/**/*.py", "docs/*.md")
    assert intersection_witness("src/a.py", "docs/*.md") is None
    assert not has_conflict(["src/a.py"], ["docs/*.md", "lib/**"])
    # Literal pairs and ** are settled without automata too, and so is any literal path.
    assert not globs_intersect("src/a", "src/ab")
    assert not globs_intersect("src/a", "src/a/b")
    assert globs_intersect("**", "src/*.py")
    assert not globs_intersect("README.md", "**/*.py")
    assert globs_intersect("src/api/x.py", "**/*.py")
    assert intersection_witness("**/*.py", "src/api/x.py") == "src/api/x.py"
    # The guard is live: a pair that survives pruning does reach the builder.
    with pytest.raises(AssertionError, match="automaton built"):
        globs_intersect("src/*.py", "src/a*")


def test_cache_shares_one_entry_per_unordered_pair(
    monkeypatch: pytest.MonkeyPatch, cold_caches: None
) -> None:
    builds: list[str] = []
    real_build = glob_automata.build

    def counting(glob: str) -> glob_automata.Automaton:
        builds.append(glob)
        return real_build(glob)

    monkeypatch.setattr(glob_automata, "build", counting)
    a, b = "src/**/a*.py", "src/x/*b.py"
    assert globs_intersect(a, b)
    assert sorted(builds) == sorted([a, b])
    assert globs_intersect(b, a)
    assert intersection_witness(b, a) == "src/x/ab.py"
    assert intersection_witness(a, b) == "src/x/ab.py"
    assert len(builds) == 2  # one automaton per glob, whatever the pairs and questions
    assert globs._pair_witness.cache_info().currsize == 1
    assert globs._pair_overlaps.cache_info().currsize == 1
    assert globs._pair_search_overlaps.cache_info().currsize == 1


def test_segmentwise_check_settles_common_pairs_without_automata(
    monkeypatch: pytest.MonkeyPatch, cold_caches: None
) -> None:
    def refuse(glob: str) -> object:
        raise AssertionError(f"automaton built for {glob}")

    monkeypatch.setattr(globs, "_glob_fsm", refuse)
    assert not globs_intersect("packages/*/README.md", "packages/pkg1/*.py")
    assert globs_intersect("src/*/a.py", "src/x/*.py")
    assert not globs_intersect("src/*/a.py", "src/x/*.md")
    assert not globs_intersect("src/*/a.py", "src/*.py")
    assert not globs_intersect("src/*/*/**", "src/*.py")
    assert globs_intersect("src/[ab]/**", "src/a/*.py")
    assert globs_intersect("src/api/**", "src/*/x.py")
    assert not globs_intersect("src/a*/**", "src/x/*b")
    assert not globs_intersect("src/[ab]/**", "src/c/x.py")


def test_a_witness_not_covered_by_both_globs_is_refused(
    monkeypatch: pytest.MonkeyPatch, cold_caches: None
) -> None:
    monkeypatch.setattr(glob_automata, "common_path", lambda _a, _b, **_: "src/x/a.md")
    with pytest.raises(RuntimeError, match="not covered by both"):
        intersection_witness("src/**/a*.py", "src/x/*b.py")


def test_interegular_is_never_imported_by_the_glob_code() -> None:
    code = (
        "import sys\n"
        "from aictl.domain.globs import globs_intersect, glob_within, intersection_witness\n"
        "from aictl.domain.globs import normalize_glob, covers\n"
        "assert normalize_glob('./src/') == 'src/**'\n"
        "assert covers('src/*.py', 'src/a.py')\n"
        "assert globs_intersect('src/**/a*.py', 'src/x/*b.py')\n"
        "assert intersection_witness('src/**/a*.py', 'src/x/*b.py') == 'src/x/ab.py'\n"
        "assert not glob_within('src/**/a*.py', 'src/x/*b.py')\n"
        "assert 'interegular' not in sys.modules, 'imported'\n"
    )
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    completed = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, check=False
    )
    assert completed.returncode == 0, completed.stderr


# --------------------------------------------------------------------------- conflicts API


def test_find_conflicts_reports_every_pair_with_holder() -> None:
    held = [(7, "src/api/**"), (8, "docs/*.md"), (9, "**/*.py"), (10, "*.md")]
    conflicts = find_conflicts(["src/api/x.py", "README.md", "src/api"], iter(held))
    assert conflicts == [
        GlobConflict("src/api/x.py", "src/api/**", 7, None),
        GlobConflict("src/api/x.py", "**/*.py", 9, None),
        GlobConflict("README.md", "*.md", 10, None),
        GlobConflict("src/api", "src/api/**", 7, None),
    ]


def test_find_conflicts_explains_with_witnesses() -> None:
    held = [("t1", "src/x/*.py"), ("t2", "docs"), ("t3", "src/y"), ("t4", "src/**")]
    conflicts = find_conflicts(["src/*/a.py", "src/y"], held, explain=True)
    assert conflicts == [
        GlobConflict("src/*/a.py", "src/x/*.py", "t1", "src/x/a.py"),
        GlobConflict("src/*/a.py", "src/**", "t4", "src/x/a.py"),
        GlobConflict("src/y", "src/y", "t3", "src/y"),
        GlobConflict("src/y", "src/**", "t4", "src/y"),
    ]


def test_find_conflicts_empty() -> None:
    assert find_conflicts(["src/a.py"], [(1, "docs/**")]) == []
    assert find_conflicts([], [(1, "**")]) == []


def test_has_conflict() -> None:
    held = ["docs/*.md", "lib/**", "src/x/*.py"]
    assert has_conflict(["tests/**", "src/*/a.py"], held)
    assert has_conflict(["src/*/a.py"], iter(held))
    assert not has_conflict(["tests/**", "src/y/*.py"], held)
    assert not has_conflict([], held)
    assert not has_conflict(["**"], [])


def _realistic_held(count: int) -> list[str]:
    shapes = (
        "services/svc{i}/src/**",
        "services/svc{i}/tests/test_*.py",
        "packages/pkg{i}/*.py",
        "docs/guide{i}.md",
        "apps/app{i}/**/*.ts",
        "infra/env{i}/main.tf",
        "libs/lib{i}/[a-m]*.go",
    )
    return [shapes[i % len(shapes)].format(i=i) for i in range(count)]


def test_has_conflict_is_fast_with_a_warm_cache() -> None:
    held = _realistic_held(1000)
    wanted = ["services/svc5000/src/**", "docs/new-*.md", "packages/*/README.md"]
    assert not has_conflict(wanted, held)  # warms the caches
    best = float("inf")
    for _ in range(5):
        start = time.perf_counter()
        result = has_conflict(wanted, held)
        best = min(best, time.perf_counter() - start)
        assert not result
    # The target is well under 5 ms; the bound is loose to stay stable on slow CI machines.
    assert best < 0.05, f"has_conflict took {best * 1000:.1f} ms"


# --------------------------------------------------------------------------- segment alignment

# Globs of the shapes policies and tasks use most: a literal directory lock P/**, **/x,
# **/*.ext, P/*/x, and literal paths. Every pair of them is decided by the segment alignment
# (or earlier), without an automaton.
SHAPE_DIRS = ("a", "pkg12", "a/b", "x.lock", "b.py")


def _shape_globs() -> list[str]:
    shapes: set[str] = set()
    for directory in SHAPE_DIRS:
        shapes.update(
            {
                directory,
                f"{directory}/x",
                f"{directory}/**",
                f"{directory}/*/x",
                f"{directory}/*/a.lock",
            }
        )
    shapes.update(f"**/{leaf}" for leaf in ("x", "a.lock", "b", "pkg12"))
    shapes.update(f"**/*.{ext}" for ext in ("lock", "py"))
    assert all(normalize_glob(glob) == glob for glob in shapes)
    return sorted(shapes)


SHAPE_GLOBS = _shape_globs()


def _refuse_automata(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(glob: str) -> object:
        raise AssertionError(f"automaton built for {glob}")

    monkeypatch.setattr(globs, "_glob_fsm", refuse)


def test_shape_pairs_are_decided_without_automata_and_agree_with_the_automaton(
    monkeypatch: pytest.MonkeyPatch, cold_caches: None
) -> None:
    pairs = list(itertools.combinations_with_replacement(SHAPE_GLOBS, 2))
    with monkeypatch.context() as patch:
        _refuse_automata(patch)
        answers = {(a, b): globs_intersect(a, b) for a, b in pairs}
        assert all(globs_intersect(b, a) == answers[a, b] for a, b in pairs)
    paths = universe(*SHAPE_GLOBS)
    covered = {glob: frozenset(p for p in paths if ref_covers(glob, p)) for glob in SHAPE_GLOBS}
    for (a, b), answer in answers.items():
        # The automaton alone, called directly, gives the same answer.
        assert (globs._pair_witness(min(a, b), max(a, b)) is not None) == answer, (a, b)
        if covered[a] & covered[b]:
            assert answer, (a, b)
        witness = intersection_witness(a, b)
        if answer:
            assert witness is not None, (a, b)
            assert is_real_path(witness), (a, b, witness)
            assert ref_covers(a, witness) and ref_covers(b, witness), (a, b, witness)
        else:
            assert witness is None, (a, b)
    assert sum(answers.values()) > 100 and len(answers) - sum(answers.values()) > 100


@pytest.mark.parametrize(
    ("a", "b", "expected"),
    [
        # P/** (P literal) against a leading **: always overlap, at P/<a path of the rest>.
        ("pkg12/**", "**/*.lock", True),
        ("pkg12/**", "**/Dockerfile", True),
        ("a/b/**", "**/b", True),  # a/b itself
        ("a/b/**", "**/a/*.py", True),
        ("pkg12/**", "**/x/**/*.lock", True),
        # P/** against a glob whose literal prefix is a prefix of P/.
        ("pkg12/**", "pkg1*/*.lock", True),
        ("pkg12/**", "pkg*3/**", False),
        ("pkg12/**", "*.lock", False),
        ("pkg12/**", "*/*.lock", True),
        ("pkg12/**", "pkg?2", True),  # pkg12 itself
        ("x.lock/**", "*.lock", True),
        ("a/b/**", "*/c/**", False),
        ("a/b/**", "a/*/c", True),
        ("a/b/**", "?/b", True),
        ("a/b/**", "?/c", False),
        # P/** against a glob under P/.
        ("src/**", "src/**/test_*.py", True),
        ("src/**", "src/*/x", True),
        # Leading and middle ** against fixed segments, and two wildcard segments told apart.
        ("**/*.lock", "src/*.py", False),
        ("**/*.lock", "**/*.py", False),
        ("**/*.lock", "src/*/x", False),
        ("**/test_*", "src/*/test_a.py", True),
        ("**/a.lock", "pkg12/*/a.lock", True),
        ("a/**/b", "a/*/c", False),
        ("a/**/b", "*/x/b", True),
        ("**/a/**", "x/*/y", True),  # x/a/y
        ("**/a/**", "x/*.py", False),
        ("src/a*", "src/b*", False),
        ("a*b", "**/*c", False),
        ("**", "x/[!a]*", True),
    ],
)
def test_segment_alignment_decides_without_automata(
    monkeypatch: pytest.MonkeyPatch, cold_caches: None, a: str, b: str, expected: bool
) -> None:
    with monkeypatch.context() as patch:
        _refuse_automata(patch)
        assert globs_intersect(a, b) is expected
        assert globs_intersect(b, a) is expected
        assert has_conflict([a], [b]) is expected
    assert (globs._pair_witness(min(a, b), max(a, b)) is not None) is expected
    witness = intersection_witness(a, b)
    assert (witness is not None) is expected
    if witness is not None:
        assert is_real_path(witness) and ref_covers(a, witness) and ref_covers(b, witness)
    else:
        assert not any(ref_covers(a, p) and ref_covers(b, p) for p in universe(a, b))


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ("src/*.py", "src/a*"),  # two wildcard segments whose ends agree
        ("**/*.py", "**/a*.py"),
        ("src/**/a*.py", "src/x/*b.py"),
    ],
)
def test_alignment_leaves_two_meeting_wildcards_to_the_automaton(
    monkeypatch: pytest.MonkeyPatch, cold_caches: None, a: str, b: str
) -> None:
    assert globs._aligned_overlap(min(a, b), max(a, b)) is None
    with monkeypatch.context() as patch:
        _refuse_automata(patch)
        with pytest.raises(AssertionError, match="automaton built"):
            globs_intersect(a, b)
    assert globs_intersect(a, b)


@pytest.mark.parametrize(
    ("segment", "ends"),
    [
        ("*.py", ("", ".py")),
        ("test_*", ("test_", "")),
        ("a[bc]d*e?f", ("a", "f")),
        ("[]]x", ("", "x")),
        ("[!]]]", ("", "]")),
        ("x[*]y", ("x", "y")),
        ("a*", ("a", "")),
    ],
)
def test_segment_ends(segment: str, ends: tuple[str, str]) -> None:
    assert globs._segment_ends(segment) == ends


# --------------------------------------------------------------------------- containment


def _contained_on(paths: list[str], inner: str, outer: str) -> bool:
    return all(ref_covers(outer, p) for p in paths if ref_covers(inner, p))


def _check_within(inner: str, outer: str, paths: list[str]) -> bool:
    """glob_within against the automaton alone and the reference matcher; returns the answer.

    A "no" must come with a path the reference says ``inner`` covers and ``outer`` does not; a
    "yes" must have no such path in the universe.
    """
    answer = globs.glob_within(inner, outer)
    outside = globs._pair_outside(inner, outer)
    assert answer == (outside is None), (inner, outer, outside)
    if outside is None:
        assert _contained_on(paths, inner, outer), (inner, outer)
    else:
        assert is_real_path(outside), (inner, outer, outside)
        assert ref_covers(inner, outside) and not ref_covers(outer, outside), (inner, outer)
    return answer


def test_within_brute_force_against_reference_matcher() -> None:
    paths = universe(*GRAMMAR_GLOBS)
    answers = [
        _check_within(inner, outer, paths)
        for inner, outer in itertools.product(GRAMMAR_GLOBS, repeat=2)
    ]
    assert sum(answers) > 500 and len(answers) - sum(answers) > 5000


def test_within_on_shapes_against_reference_matcher() -> None:
    paths = universe(*SHAPE_GLOBS)
    for inner, outer in itertools.product(SHAPE_GLOBS, repeat=2):
        _check_within(inner, outer, paths)


@settings(
    max_examples=300,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)
@given(_glob_strategy, _glob_strategy)
def test_within_on_generated_globs_against_reference_matcher(raw_a: str, raw_b: str) -> None:
    a, b = _normalised_or_none(raw_a), _normalised_or_none(raw_b)
    if a is None or b is None:
        return
    paths = universe(a, b, depth=3)
    _check_within(a, b, paths)
    _check_within(b, a, paths)


@pytest.mark.parametrize(
    ("inner", "outer", "expected"),
    [
        # Diverging literal prefixes: no common path, so no containment.
        ("pkg12/**", "docs/**", False),
        ("src/*.py", "docs/*.py", False),
        ("pkg12/*.py", "pkg13/**", False),
        # P/** around a glob whose literal prefix starts with P/.
        ("docs/pkg12/**", "docs/**", True),
        ("docs/*.md", "docs/**", True),
        ("docs/**/x", "docs/**", True),
        ("docs/[ab]/**", "docs/**", True),
        ("a/b/c*", "a/**", True),
        ("a/**/b/*.txt", "a/**", True),
        # Equal globs, **, and a literal inner glob (one path).
        ("docs/**", "docs/**", True),
        ("src/**/*.py", "**", True),
        ("docs/a.md", "docs/*.md", True),
        ("docs/a/b", "docs/*", False),
        ("docs", "docs/**", True),
        # A literal outer glob that the inner glob does not cover.
        ("docs/*.md", "docs/a", False),
    ],
)
def test_within_shortcuts_build_no_automaton(
    monkeypatch: pytest.MonkeyPatch, cold_caches: None, inner: str, outer: str, expected: bool
) -> None:
    with monkeypatch.context() as patch:
        _refuse_automata(patch)
        assert globs.glob_within(inner, outer) is expected
    # The automaton alone, called directly, agrees, and so does the reference matcher.
    assert _check_within(inner, outer, universe(inner, outer)) is expected


@pytest.mark.parametrize(
    ("inner", "outer", "expected"),
    [
        ("docs/**", "docs/*.md", False),
        ("docs*", "docs/**", False),  # prefix docs is no prefix under docs/
        ("**/x.py", "a/**", False),
        ("a/**/b/*.txt", "a/*/b/**", False),  # a/b/x.txt
        ("a/*/**/b/*.txt", "a/**/b/**", True),
        ("src/[ab]/x", "src/*/x", True),
        ("src/*/x", "src/[ab]/x", False),
        ("src/[a]", "src/a", True),  # one path, though not a literal glob
        # Containment is over paths: a/ (no path) is in a/* and not in a/?*, and is ignored.
        ("a/*", "a/?*", True),
        ("*/**", "?*/**", True),
        ("**/*", "**/?*", True),
        ("a/**", "a/**/*", False),  # a itself
    ],
)
def test_within_falls_back_to_the_automaton(
    monkeypatch: pytest.MonkeyPatch, cold_caches: None, inner: str, outer: str, expected: bool
) -> None:
    with monkeypatch.context() as patch:
        _refuse_automata(patch)
        with pytest.raises(AssertionError, match="automaton built"):
            globs.glob_within(inner, outer)
    assert globs.glob_within(inner, outer) is expected
    assert _check_within(inner, outer, universe(inner, outer)) is expected


def test_within_reuses_the_per_glob_automata(
    monkeypatch: pytest.MonkeyPatch, cold_caches: None
) -> None:
    builds: list[str] = []
    real_build = globs._glob_fsm.__wrapped__

    def counting(glob: str) -> object:
        builds.append(glob)
        return real_build(glob)

    monkeypatch.setattr(globs, "_glob_fsm", functools.lru_cache(maxsize=None)(counting))
    assert globs_intersect("src/**/a*.py", "src/x/*b.py")
    assert not globs.glob_within("src/**/a*.py", "src/x/*b.py")
    assert not globs.glob_within("src/x/*b.py", "src/**/a*.py")
    assert globs.glob_within("src/x/a*b.py", "src/**/a*.py")
    assert sorted(builds) == ["src/**/a*.py", "src/x/*b.py", "src/x/a*b.py"]
    assert globs._pair_outside("src/**/a*.py", "src/x/*b.py") == "src/a.py"


def test_shortest_path_outside_reads_like_a_path() -> None:
    build, outside = glob_automata.build, glob_automata.path_outside
    assert outside(build("a/**"), build("a/**")) is None
    assert outside(build("a/**"), build("a/*/**")) == "a"
    assert outside(build("**/*.py"), build("x/**")) == ".py"  # a shortest one
    # Strings that are no path (empty, a/, /a, a//b) are never the answer.
    assert outside(build("a/*"), build("a/?*")) is None
    assert outside(build("**"), build("*/**")) is None


def test_a_path_outside_not_checked_by_covers_is_refused(
    monkeypatch: pytest.MonkeyPatch, cold_caches: None
) -> None:
    monkeypatch.setattr(glob_automata, "path_outside", lambda _a, _b, **_: "src/x/b.py")
    with pytest.raises(RuntimeError, match="not covered by"):
        globs.glob_within("src/**/a*.py", "src/x/*b.py")


@pytest.mark.parametrize(
    ("raw", "glob"),
    [
        ("util.py", "src/calc/util.py"),
        ("*.py", "src/calc/*.py"),
        ("./tests/", "src/calc/tests/**"),
        ("../api/**", "src/api/**"),
        ("../../docs/*.md", "docs/*.md"),
        ("..", "src/**"),
        (".", "src/calc/**"),
    ],
)
def test_a_relative_glob_is_read_from_where_the_user_stands(
    tmp_path: Path, raw: str, glob: str
) -> None:
    assert normalize_glob(raw, tmp_path, base="src/calc") == glob


def test_an_absolute_glob_ignores_the_base(tmp_path: Path) -> None:
    assert normalize_glob(f"{tmp_path}/docs/a.md", tmp_path, base="src/calc") == "docs/a.md"


def test_a_glob_climbing_out_of_the_repository_is_refused_by_name(tmp_path: Path) -> None:
    with pytest.raises(GlobError, match=r"'\.\./\.\./\.\./x': it is outside the repository"):
        normalize_glob("../../../x", tmp_path, base="src/calc")
    with pytest.raises(GlobError, match="outside the repository"):
        normalize_glob("../x", tmp_path)
    with pytest.raises(GlobError, match="not allowed after a name"):
        normalize_glob("src/../x", tmp_path, base="src")


def test_the_base_is_where_the_directory_lies_inside_the_root(tmp_path: Path) -> None:
    (tmp_path / "src" / "calc").mkdir(parents=True)
    assert base_within(tmp_path, tmp_path / "src" / "calc") == "src/calc"
    assert base_within(tmp_path, tmp_path) == ""
    assert base_within(tmp_path / "src", tmp_path) == ""  # above the root: read from the root
    assert base_within(tmp_path, None) == ""
