"""Staged loading of one policy file, every problem collected (cloud-custodian style).

1. **YAML** (:mod:`aictl.policy.source`): safe composition with a line for every node;
   duplicate keys and syntax errors reported with their lines.
2. **Structure**: the top level is a mapping, ``version`` is present and supported. A file
   that fails here stops: its later stages would only report noise.
3. **Schema** (:mod:`aictl.policy.models`): pydantic, extra fields forbidden, vocabularies from
   tables; each error's location mapped back to its line.
4. **Conditions and meaning** (:mod:`aictl.policy.conditions`): every rule's ``when`` compiled
   and checked against the request schema (even when stage 3 found other problems, so that a
   person sees them all in one run); duplicate rule ids; a heartbeat no shorter than the lease.

A file holding only ``version`` and ``default`` (the commented template) skips all of that: it
is read by a regular expression, without importing PyYAML, pydantic or CEL. A file loaded
with a :class:`~aictl.policy.cache.LayerCache` that validated before, unchanged, skips stages
1-3 (see :mod:`aictl.policy.cache`); stage 4 runs every time.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from aictl.policy import vocabulary
from aictl.policy.digest import content_hash, trivial_document
from aictl.policy.issues import ERROR, PolicyIssue
from aictl.policy.layers import Layer, Rule

if TYPE_CHECKING:
    from aictl.policy.cache import Entry, LayerCache
    from aictl.policy.source import Lines, Parsed


@dataclass
class LoadedFile:
    """The outcome of loading one file: its data and rules when valid, and every issue."""

    path: str
    layer: str
    data: dict[str, Any] | None = None
    hash: str | None = None
    rules: list[Rule] = field(default_factory=list)
    issues: list[PolicyIssue] = field(default_factory=list)
    lines: Lines | None = None

    @property
    def ok(self) -> bool:
        return self.data is not None and not any(issue.is_error for issue in self.issues)

    def layer_value(self) -> Layer:
        """The file as a layer; only for a file without errors."""
        assert self.data is not None and self.hash is not None
        return Layer(
            self.layer, self.path, self.hash, self.data, tuple(self.rules), lines=self.lines
        )


def load_file(
    path: Path,
    *,
    display: str | None = None,
    layer: str = "project",
    cache: LayerCache | None = None,
) -> LoadedFile:
    """Load ``path`` through every stage; ``display`` is how issues name the file.

    With a ``cache``, a file whose validated form is cached skips stages 1-3, and a file that
    validates without errors is cached. The result is the same either way (tests compare).
    """
    name = display or str(path)
    from aictl.policy import source

    try:
        raw = source.read_bytes(path)
        text = source.decode(raw)
    except source.Unreadable as problem:
        return _failed(name, layer, problem.message, problem.line)
    if cache is None or trivial_document(text) is not None:
        return load_text(text, display=name, layer=layer)
    key = cache.key(raw, layer)
    entry = cache.get(key)
    cached = _from_cache(entry, name, layer) if entry is not None else None
    if cached is not None:
        return cached
    result = load_text(text, display=name, layer=layer)
    if result.ok and result.data is not None and result.lines is not None:
        cache.put(key, result.data, result.lines)
    return result


def _from_cache(entry: Entry, name: str, layer: str) -> LoadedFile | None:
    """Stage 4 on a cached form; None when it fails, and the file itself is then loaded, so
    that the errors reported are exactly those of an uncached load (a newer CEL library may
    refuse a condition; a hand-edited entry may lack a rule's effect)."""
    result = LoadedFile(name, layer)
    try:
        _meaning(entry.data, entry.lines, result)
    except Exception:
        return None
    return result if result.ok else None


def _failed(name: str, layer: str, message: str, line: int = 1) -> LoadedFile:
    return LoadedFile(name, layer, issues=[PolicyIssue(name, line, "", message)])


def load_text(text: str, *, display: str, layer: str = "project") -> LoadedFile:
    """Load policy text (see the module docstring for the stages)."""
    result = LoadedFile(display, layer)
    trivial = trivial_document(text)
    if trivial is not None:
        result.data, result.hash = trivial, content_hash(trivial)
        return result
    from aictl.policy import source

    parsed, issues = source.parse_file(text, display=display, kind="policy")
    result.issues.extend(issues)
    if parsed.data is None:
        return result
    if not _structure(parsed, result):
        return result
    data: dict[str, Any] = parsed.data
    _schema(data, parsed.lines, result)
    _meaning(data, parsed.lines, result)
    return result


def _meaning(data: dict[str, Any], lines: Lines, result: LoadedFile) -> None:
    """Stage 4, then the file's data and hash when no stage found an error. A cached file
    starts here, with the data and lines of its first load."""
    result.lines = lines
    _rules(data, lines, result)
    _semantics(data, lines, result)
    if not any(issue.is_error for issue in result.issues):
        result.data, result.hash = data, content_hash(data)


def _issue(result: LoadedFile, lines: Lines, path: tuple[str | int, ...], message: str) -> None:
    from aictl.policy.source import field_path

    result.issues.append(
        PolicyIssue(result.path, lines.line_of(path), field_path(path), message, ERROR)
    )


def _structure(parsed: Parsed, result: LoadedFile) -> bool:
    """Stage 2: a mapping with a supported version; False stops the file here."""
    data, lines = parsed.data, parsed.lines
    if not isinstance(data, dict):
        kind = "a list" if isinstance(data, list) else f"the value {data!r}"
        _issue(
            result,
            lines,
            (),
            f"a policy file is a mapping (version, default, settings, ais, rules), not {kind}",
        )
        return False
    supported = ", ".join(str(version) for version in vocabulary.SUPPORTED_VERSIONS)
    if "version" not in data:
        _issue(result, lines, (), f"missing 'version'; start the file with `version: {supported}`")
        return False
    version = data["version"]
    if isinstance(version, bool) or version not in vocabulary.SUPPORTED_VERSIONS:
        _issue(
            result,
            lines,
            ("version",),
            f"unsupported version {version!r}; this aictl reads version {supported}",
        )
        return False
    return True


def _rule_label(data: dict[str, Any], index: int) -> str:
    rules = data.get("rules")
    rule = rules[index] if isinstance(rules, list) and index < len(rules) else None
    rule_id = rule.get("id") if isinstance(rule, dict) else None
    return f"rule {rule_id!r}: " if isinstance(rule_id, str) else ""


def _schema(data: dict[str, Any], lines: Lines, result: LoadedFile) -> None:
    """Stage 3: pydantic; every error located by its path in the document."""
    from aictl.policy import models

    _, problems = models.validate(data)
    for problem in problems:
        label = ""
        if (
            len(problem.path) >= 2
            and problem.path[0] == "rules"
            and isinstance(problem.path[1], int)
        ):
            label = _rule_label(data, problem.path[1])
        _issue(result, lines, problem.path, label + problem.message)


def _rules(data: dict[str, Any], lines: Lines, result: LoadedFile) -> None:
    """Stage 4: compile each rule's condition; build the rules if the file is valid so far."""
    from aictl.policy.conditions import compile_condition
    from aictl.policy.source import field_path

    rules = data.get("rules")
    if not isinstance(rules, list):
        return
    first_seen: dict[str, int] = {}
    for index, rule in enumerate(rules):
        if not isinstance(rule, dict):
            continue
        label = _rule_label(data, index)
        rule_id = rule.get("id")
        if isinstance(rule_id, str):
            line = lines.line_of(("rules", index, "id"))
            if rule_id in first_seen:
                _issue(
                    result,
                    lines,
                    ("rules", index, "id"),
                    f"duplicate rule id {rule_id!r} (first at line {first_seen[rule_id]})",
                )
            else:
                first_seen[rule_id] = line
        when = rule.get("when")
        program = analysis = None
        if isinstance(when, str) and when.strip():
            compiled = compile_condition(when)
            program, analysis = compiled.program, compiled.analysis
            path = ("rules", index, "when")
            base = lines.line_of(path)
            block = path in lines.literal_blocks
            for offset, message in compiled.problems:
                line = base + offset if block else base
                result.issues.append(
                    PolicyIssue(result.path, line, field_path(path), label + message, ERROR)
                )
        if any(issue.is_error for issue in result.issues):
            continue
        result.rules.append(
            Rule(
                layer=result.layer,
                id=rule["id"],
                effect=rule["effect"],
                actions=tuple(dict.fromkeys(rule["actions"])),
                reason=rule["reason"],
                description=rule.get("description", ""),
                when=when if isinstance(when, str) and when.strip() else None,
                file=result.path,
                line=lines.line_of(("rules", index)),
                field_path=field_path(("rules", index)),
                program=program,
                analysis=analysis,
            )
        )


def _semantics(data: dict[str, Any], lines: Lines, result: LoadedFile) -> None:
    """Checks across fields: a heartbeat must come more often than the lease expires."""
    from aictl.domain.durations import parse_duration
    from aictl.errors import InvalidInput

    settings = data.get("settings")
    if not isinstance(settings, dict):
        return
    ttl, heartbeat = settings.get("lease_ttl"), settings.get("heartbeat_interval")
    if ttl is None or heartbeat is None:
        return
    try:
        ttl_value, heartbeat_value = parse_duration(str(ttl)), parse_duration(str(heartbeat))
    except InvalidInput:
        return  # already reported by the schema stage
    if heartbeat_value >= ttl_value:
        _issue(
            result,
            lines,
            ("settings", "heartbeat_interval"),
            f"heartbeat_interval ({heartbeat}) must be shorter than lease_ttl ({ttl}), "
            "or every lease expires between two heartbeats",
        )
