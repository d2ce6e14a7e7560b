"""Warnings about policies that load but probably do not say what was meant.

- **Conflicts**: two rules (of any layers that apply together) whose actions overlap and whose
  effects oppose (allow against deny or require_approval; deny against require_approval), shown
  with an example request that makes both apply.
- **Shadowed rules**: a rule that applies to some example request, but wherever it applies a
  stronger rule applies too, so it never decides anything.
- **Unknown AIs**: per-AI files and ``ais:`` entries naming an AI the caller does not know
  (skipped when the caller passes no set of known AIs), and ``ais:`` entries in a per-AI file
  for another AI (they have no effect).

Conflicts and shadowing are searched, not proved. Example requests are generated,
deterministically, from a base request and *changes* suggested by the literals of the rules'
conditions: glob literals become concrete paths (exact glob witnesses), label keys and values,
tool names and input keys become field values, numbers become themselves and their
neighbours. A rule's *witnesses* are the first few sets of up to three of its own changes
under which it applies. Two rules conflict when one witness of each, applied together, makes
both apply; a rule is shadowed when, for every witness (alone and with each change the
stronger rules suggest), a stronger rule applies too. A warning always comes with a real
example; the absence of one proves nothing. Searches are capped and cached, so a 50-rule policy
lints in about half a second.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Collection, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from aictl.domain import globs
from aictl.policy import vocabulary
from aictl.policy.evaluate import build_request
from aictl.policy.issues import WARNING, PolicyIssue
from aictl.policy.layers import Layer, Needs, Rule, needs_of

MAX_MUTATIONS = 40
MAX_CANDIDATES = 1500
WITNESSES = 8

BASE_TASK: dict[str, Any] = {
    "id": 1,
    "title": "example task",
    "type": "task",
    "priority": 0,
    "status": "queued",
    "max_attempts": 3,
    "created_at": "2026-01-01T00:00:00.000000Z",
    "updated_at": "2026-01-01T00:00:00.000000Z",
}
BASE_AI: dict[str, Any] = {"id": "example-ai", "connector": "claude-code", "model": "example"}

_INTEGER_FIELDS = {"id", "priority", "attempts", "max_attempts", "lease_epoch"}
_NUMBER_FIELDS = {"lease_ttl_seconds"}
_STRING_LISTS = {("task", "requires"), ("ai", "capabilities")}
_INTEGER_LISTS = {("task", "depends_on")}


@dataclass(frozen=True)
class Mutation:
    """One change to the base request: set ``path`` to ``value``, or append it (lists)."""

    path: tuple[str, ...]
    value: Any
    append: bool = False


# ----------------------------------------------------------------------------- entry point


def lint(layers: Sequence[Layer], *, known_ais: Collection[str] | None = None) -> list[PolicyIssue]:
    """Every lint warning for these layers (in order; per-AI layers are combined with the
    other layers, never with each other)."""
    issues = _unknown_ais(layers, known_ais)
    shared = [rule for layer in layers if not layer.name.startswith("ai:") for rule in layer.rules]
    groups: list[tuple[list[Rule], list[Rule]]] = [(shared, shared)]
    for layer in layers:
        if layer.name.startswith("ai:") and layer.rules:
            groups.append(([*shared, *layer.rules], list(layer.rules)))
    searcher = _Searcher(needs_of([rule for layer in layers for rule in layer.rules]))
    reported: set[tuple[str, str]] = set()
    for group, checked in groups:
        for first, second in itertools.combinations(group, 2):
            key = (first.qualified_id, second.qualified_id)
            if key in reported or (second not in checked and first not in checked):
                continue
            reported.add(key)
            issue = _conflict(searcher, first, second)
            if issue is not None:
                issues.append(issue)
        for rule in checked:
            issue = _shadowed(searcher, rule, group)
            if issue is not None:
                issues.append(issue)
    return issues


# ----------------------------------------------------------------------------- unknown AIs


def _unknown_ais(layers: Sequence[Layer], known_ais: Collection[str] | None) -> list[PolicyIssue]:
    issues = []
    for layer in layers:
        own = layer.name.removeprefix("ai:") if layer.name.startswith("ai:") else None
        known_list = ", ".join(sorted(known_ais)) if known_ais else "none registered"
        if own is not None and known_ais is not None and own not in known_ais:
            issues.append(
                PolicyIssue(
                    layer.path,
                    1,
                    "",
                    f"per-AI file for unknown AI {own!r}; known AIs: {known_list}",
                    WARNING,
                )
            )
        for ai_id in layer.ais:
            line = layer.lines.line_of(("ais", ai_id)) if layer.lines else 1
            if own is not None and ai_id != own:
                message = (
                    f"this file applies only to {own!r}; settings for {ai_id!r} here have no effect"
                )
            elif known_ais is not None and ai_id not in known_ais:
                message = f"settings for unknown AI {ai_id!r}; known AIs: {known_list}"
            else:
                continue
            issues.append(PolicyIssue(layer.path, line, f"ais.{ai_id}", message, WARNING))
    return issues


# ----------------------------------------------------------------------------- conflicts


def _overlap(first: Rule, second: Rule) -> list[str]:
    return [
        action
        for action in vocabulary.ACTIONS
        if action in first.actions and action in second.actions
    ]


def _conflict(searcher: _Searcher, first: Rule, second: Rule) -> PolicyIssue | None:
    """The first request, built from one witness of each rule, to which both apply."""
    if not vocabulary.opposed(first.effect, second.effect):
        return None
    for action in _overlap(first, second):
        for mine in searcher.witnesses(first, action):
            for theirs in searcher.witnesses(second, action):
                for changes in (mine + theirs, theirs + mine):
                    candidate = searcher.candidate(action, changes)
                    if searcher.applies(first, candidate) and searcher.applies(second, candidate):
                        return PolicyIssue(
                            second.file,
                            second.line,
                            second.field_path,
                            f"rule {second.qualified_id} ({second.effect}) conflicts with "
                            f"{first.qualified_id} ({first.effect}, {first.file}:{first.line}): "
                            f"both apply to {candidate.describe()}",
                            WARNING,
                            rule=second.qualified_id,
                            example=candidate.request,
                        )
    return None


# ----------------------------------------------------------------------------- shadowing


def _shadowed(searcher: _Searcher, rule: Rule, group: Sequence[Rule]) -> PolicyIssue | None:
    """A warning when every request found to which ``rule`` applies has a stronger rule apply
    too. Each witness of the rule is also tried with each change the stronger rules' literals
    suggest, looking for a way out from under them."""
    if rule.effect not in vocabulary.PRECEDENCE:
        return None
    rank = vocabulary.PRECEDENCE[rule.effect]
    stronger = [
        other
        for other in group
        if vocabulary.PRECEDENCE.get(other.effect, 0) > rank and _overlap(rule, other)
    ]
    applied = 0
    shadows: dict[str, None] = {}
    for action in rule.actions:
        here = [other for other in stronger if action in other.actions]
        escapes = _mutations(here)
        for witness in searcher.witnesses(rule, action):
            tries = [witness] + [(escape, *witness) for escape in escapes]
            tries += [(*witness, escape) for escape in escapes]
            for changes in tries:
                candidate = searcher.candidate(action, changes)
                if not searcher.applies(rule, candidate):
                    continue
                applied += 1
                winner = next((other for other in here if searcher.applies(other, candidate)), None)
                if winner is None:
                    return None
                shadows[f"{winner.qualified_id} ({winner.effect})"] = None
    if not applied:
        return None
    return PolicyIssue(
        rule.file,
        rule.line,
        rule.field_path,
        f"rule {rule.qualified_id} ({rule.effect}) is shadowed: wherever it applies, a stronger "
        f"rule applies too ({', '.join(shadows)}), so it never decides",
        WARNING,
        rule=rule.qualified_id,
    )


# ----------------------------------------------------------------------------- candidates


@dataclass
class Candidate:
    request: dict[str, Any]
    changes: tuple[Mutation, ...]
    key: tuple[Mutation, ...]
    """The action and the changes in order: equal keys, equal requests (a cache key)."""

    def describe(self) -> str:
        """``action=claim, task.paths=["db/x"], task.priority=6``: what differs from the base."""
        parts = [f"action={self.request['action']}"]
        for path in dict.fromkeys(change.path for change in self.changes):
            if path == ("paths",):
                shown: Any = self.request["paths"]
                label = "paths" if self.request["action"] == "tool" else "task.paths"
            else:
                shown = _get(self.request, path)
                label = ".".join(path)
            parts.append(f"{label}={json.dumps(shown)}")
        return ", ".join(parts)


def _get(data: Any, path: tuple[str, ...]) -> Any:
    for part in path:
        data = data[part]
    return data


def _base(action: str) -> dict[str, Any]:
    return build_request(action, task=BASE_TASK, ai=BASE_AI)


def _own(request: dict[str, Any], path: tuple[str, ...], copied: set[tuple[str, ...]]) -> Any:
    """The container at ``path``, copied (with its parents) the first time it is changed: the
    base request is shared by every candidate and must not change."""
    node: Any = request
    for depth, part in enumerate(path):
        child = node[part]
        if path[: depth + 1] not in copied:
            child = dict(child) if isinstance(child, dict) else list(child)
            node[part] = child
            copied.add(path[: depth + 1])
        node = child
    return node


def _apply(request: dict[str, Any], change: Mutation, copied: set[tuple[str, ...]]) -> None:
    if change.path == ("paths",):
        _own(request, ("paths",), copied).append(change.value)
        if request["action"] == "tool":
            _own(request, ("tool", "input"), copied).setdefault("file_path", change.value)
        else:
            _own(request, ("task", "paths"), copied).append(change.value)
    elif change.append:
        _own(request, change.path, copied).append(change.value)
    else:
        _own(request, change.path[:-1], copied)[change.path[-1]] = change.value


def _combinations(mutations: list[Mutation]) -> Iterator[tuple[Mutation, ...]]:
    """No change, each change, then pairs and triples of changes that do not set the same
    field twice; at most ``MAX_CANDIDATES`` in all."""
    count = 0
    for size in range(4):
        for changes in itertools.combinations(mutations, size):
            scalar_paths = [change.path for change in changes if not change.append]
            if len(scalar_paths) != len(set(scalar_paths)):
                continue
            yield changes
            count += 1
            if count >= MAX_CANDIDATES:
                return


def _mutations(rules: Sequence[Rule]) -> list[Mutation]:
    """The changes worth trying for these rules, from their conditions' literals."""
    found: dict[tuple[tuple[str, ...], str, bool], Mutation] = {}

    def add(path: tuple[str, ...], value: Any, append: bool = False) -> None:
        key = (path, json.dumps(value, sort_keys=True), append)
        found.setdefault(key, Mutation(path, value, append))

    for rule in rules:
        analysis = rule.analysis
        if analysis is None:
            continue
        strings = [*analysis.strings, *(_regex_witness(regex) for regex in analysis.regexes)]
        strings = [text for text in dict.fromkeys(strings) if text is not None]
        for glob in analysis.globs:
            witness = _path_in(glob)
            if witness is not None:
                add(("paths",), witness, append=True)
            add(("paths",), glob, append=True)
        for text in strings:
            if "/" in text or "*" in text:
                add(("paths",), text, append=True)
        integers = [number for number in analysis.numbers if isinstance(number, int)]
        for variable, name in sorted(analysis.fields):
            path = (variable, name)
            if (variable, name) in vocabulary.OPEN_MAPS or name == "paths":
                continue
            if variable == "task" and name in _INTEGER_FIELDS:
                for number in integers:
                    for value in (number - 1, number, number + 1):
                        add(path, value)
            elif variable == "task" and name in _NUMBER_FIELDS:
                for value in analysis.numbers:
                    add(path, float(value) + 1)
            elif path in _STRING_LISTS:
                for text in strings:
                    add(path, text, append=True)
            elif path in _INTEGER_LISTS:
                for number in integers:
                    add(path, number, append=True)
            else:
                for text in strings:
                    add(path, text)
        for variable, name, key in sorted(analysis.keys):
            for text in [*strings, "example"]:
                add((variable, name, key), text)
    return list(found.values())[:MAX_MUTATIONS]


def _path_in(glob: str) -> str | None:
    """A concrete path ``glob`` covers; for ``dir/**`` one inside ``dir`` (``dir/x``), which
    reads better than ``dir`` itself."""
    if glob.endswith("/**"):
        inside = globs.intersection_witness(glob, glob[:-2] + "*")
        if inside is not None:
            return inside
    return globs.intersection_witness(glob, glob)


def _regex_witness(pattern: str) -> str | None:
    """A short string the regular expression ``pattern`` matches somewhere, or None."""
    try:
        from interegular import parse_pattern
        from interegular.fsm import anything_else

        fsm = parse_pattern(pattern.lstrip("^").rstrip("$")).to_fsm()
        for letters in itertools.islice(fsm.strings(), 1):  # type: ignore[no-untyped-call]
            return "".join("x" if letter is anything_else else letter for letter in letters)
    except Exception:
        return None
    return None


class _Searcher:
    """Builds candidate requests and runs conditions on them, each result computed once: the
    CEL context of a candidate and a rule's verdict on it are cached, and so are the
    witnesses (changes that make a rule apply) of each rule for each action."""

    def __init__(self, needs: Needs) -> None:
        self._needs = needs
        self._bases: dict[str, dict[str, Any]] = {}
        self._contexts: dict[tuple[Mutation, ...], Any] = {}
        self._results: dict[tuple[str, tuple[Mutation, ...]], bool] = {}
        self._witnesses: dict[tuple[str, str], list[tuple[Mutation, ...]]] = {}

    def candidate(self, action: str, changes: tuple[Mutation, ...]) -> Candidate:
        base = self._bases.get(action)
        if base is None:
            base = self._bases[action] = _base(action)
        request = dict(base)
        copied: set[tuple[str, ...]] = set()
        for change in changes:
            _apply(request, change, copied)
        key = (Mutation(("action",), action), *changes)
        return Candidate(request, changes, key)

    def witnesses(self, rule: Rule, action: str) -> list[tuple[Mutation, ...]]:
        """Up to ``WITNESSES`` sets of changes (from the rule's own literals) under which the
        rule applies to ``action``."""
        key = (rule.qualified_id, action)
        found = self._witnesses.get(key)
        if found is None:
            found = []
            for changes in _combinations(_mutations([rule])):
                if self.applies(rule, self.candidate(action, changes)):
                    found.append(changes)
                    if len(found) >= WITNESSES:
                        break
            self._witnesses[key] = found
        return found

    def applies(self, rule: Rule, candidate: Candidate) -> bool:
        if candidate.request["action"] not in rule.actions:
            return False
        if rule.program is None:
            return True
        key = (rule.qualified_id, candidate.key)
        if key not in self._results:
            context = self._contexts.get(candidate.key)
            if context is None:
                from aictl.policy.evaluate import context_for

                context = context_for(candidate.request, self._needs)
                self._contexts[candidate.key] = context
            try:
                self._results[key] = rule.program.execute(context) is True
            except Exception:
                self._results[key] = False
        return self._results[key]
