"""The helper functions rule conditions may call, beside CEL's own.

They are registered by name in :data:`FUNCTIONS` (the field check at load time accepts exactly
these and CEL's built-ins) and documented in :data:`DESCRIPTIONS` and ``docs/policy.md``. Path
arguments are path-lock globs or concrete paths, read with the glob language of
:mod:`aictl.domain.globs`; overlap and containment are decided exactly, never by prefix.

A helper that raises makes its condition fail at run time (the rule then fails closed, see
:mod:`aictl.policy.evaluate`). The CEL library also writes one line about it to stderr, which
cannot be turned off, so helpers raise only for a real misuse (a glob that is not one, a list
that is not a list), never for an ordinary "no".
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping
from typing import Any

from aictl.domain import globs

DESCRIPTIONS: Mapping[str, str] = {
    "touches": "touches(paths, glob): some entry of paths (paths or globs) overlaps glob",
    "within": "within(paths, glob): paths is not empty and glob covers every entry of it",
    "covers": "covers(glob, path): glob covers the concrete path",
    "get": "get(map, key, default): map[key] if the key is present, else default",
}


@functools.lru_cache(maxsize=4096)
def _glob(text: str) -> str:
    """The canonical form of a glob argument; ``ValueError`` naming it when it is not one."""
    try:
        return globs.normalize_glob(text)
    except globs.GlobError as error:
        raise ValueError(error.message) from None


@functools.lru_cache(maxsize=4096)
def _entry(text: str) -> str | None:
    """The canonical form of a path-list entry, or None for one outside the repository (an
    absolute path, a ``..``): such an entry overlaps no repository glob."""
    try:
        return globs.normalize_glob(text)
    except globs.GlobError:
        return None


def _entries(paths: Any, function: str) -> list[str]:
    if isinstance(paths, str):
        return [paths]
    if not isinstance(paths, list) or not all(isinstance(item, str) for item in paths):
        raise TypeError(f"{function}() takes a list of paths first, got {type(paths).__name__}")
    return paths


def touches(paths: Any, glob: str) -> bool:
    return _touches(tuple(_entries(paths, "touches")), glob)


@functools.lru_cache(maxsize=8192)
def _touches(paths: tuple[str, ...], glob: str) -> bool:
    pattern = _glob(glob)
    for entry in paths:
        canonical = _entry(entry)
        if canonical is not None and globs.globs_intersect(canonical, pattern):
            return True
    return False


def within(paths: Any, glob: str) -> bool:
    return _within(tuple(_entries(paths, "within")), glob)


@functools.lru_cache(maxsize=8192)
def _within(paths: tuple[str, ...], glob: str) -> bool:
    if not paths:
        return False
    pattern = _glob(glob)
    for entry in paths:
        canonical = _entry(entry)
        if canonical is None or not glob_within(canonical, pattern):
            return False
    return True


def covers(glob: str, path: str) -> bool:
    if not isinstance(path, str):
        raise TypeError(f"covers() takes a path second, got {type(path).__name__}")
    canonical = _entry(path)
    return canonical is not None and globs.covers(_glob(glob), canonical)


def get(mapping: Any, key: Any, default: Any) -> Any:
    if not isinstance(mapping, dict):
        raise TypeError(f"get() takes a map first, got {type(mapping).__name__}")
    return mapping.get(key, default)


FUNCTIONS: Mapping[str, Callable[..., Any]] = {
    "touches": touches,
    "within": within,
    "covers": covers,
    "get": get,
}


@functools.lru_cache(maxsize=4096)
def glob_within(inner: str, outer: str) -> bool:
    """Whether every path canonical glob ``inner`` covers is covered by ``outer`` (exact).

    :func:`aictl.domain.globs.glob_within`, cached per pair here: it settles the common shapes
    (a literal path, diverging literal prefixes, ``P/**`` around a glob under ``P/``) without
    automata, and otherwise reuses the per-glob automata that overlap tests build.
    """
    return globs.glob_within(inner, outer)
