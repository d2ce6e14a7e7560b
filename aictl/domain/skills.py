"""Skills as values, and the pure decisions about them: which versions an AI gets, and why not.

A skill is reusable know-how (instructions, optionally a script) loaded from a folder by
``aictl.skills``. Nothing here reads a file or the database: the loader builds ``Skill``
values, the store says which names are enabled, and these functions decide.

- ``catalogue_for``: the versions an AI may use. A per-AI skill of a name replaces every
  shared version of that name for that AI (an override, not a merge), and a version that does
  not apply to the AI's connector or labels is left out.
- ``resolve``: the highest version of every needed skill that satisfies every range naming it
  (backtracking over the candidates, highest first); a conflict or a cycle is an error that
  names the chain of requirements that led to it.
- ``check_for_ai``: what the router needs, per AI: the chosen versions, or every problem.

Versions and ranges are PEP 440 (the ``packaging`` library): ``1.2.0``, ``>=1.0,<2``.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from packaging.specifiers import InvalidSpecifier, SpecifierSet
from packaging.version import InvalidVersion, Version

from aictl.errors import InvalidInput

NAME_PATTERN = re.compile(r"[a-z0-9][a-z0-9-]{0,63}")
"""Skill names: Claude Code's own rule (lowercase letters, digits and '-', at most 64)."""
NAME_HINT = "a skill name is 1-64 lowercase letters, digits or '-', first a letter or digit"
ROOT = "task"
"""How a chain names its start: the task that asked for the skills."""
MAX_ATTEMPTS = 10_000
"""Versions tried before resolution gives up: backtracking over many versions of many skills
whose ranges cannot all hold is exponential, and the router resolves on every route."""


class SkillConflict(InvalidInput):
    """No version of a skill satisfies every range that names it; the message gives the chains."""


class SkillCycle(InvalidInput):
    """Skills that require each other in a loop; ``cycle`` lists the chain."""

    def __init__(self, cycle: Sequence[str]) -> None:
        self.cycle = list(cycle)
        super().__init__(
            "skill dependency cycle: " + " -> ".join(cycle),
            hint="remove one of these requirements",
        )


class SkillMissing(InvalidInput):
    """A needed skill has no version at all for this AI."""


def check_skill_name(value: str) -> str:
    """``value`` unchanged if it is a valid skill name, else ``InvalidInput`` saying what is."""
    if not isinstance(value, str) or not NAME_PATTERN.fullmatch(value):
        raise InvalidInput(f"invalid skill name {value!r}", hint=NAME_HINT)
    return value


def parse_version(text: str) -> Version:
    try:
        return Version(text)
    except InvalidVersion:
        raise InvalidInput(
            f"invalid version {text!r}", hint="use a version such as 1.0.0 (PEP 440)"
        ) from None


def parse_range(text: str) -> SpecifierSet:
    """A version range; ``""`` and ``"*"`` accept every version."""
    if text.strip() in ("", "*"):
        return SpecifierSet("")
    try:
        return SpecifierSet(text)
    except InvalidSpecifier:
        raise InvalidInput(
            f"invalid version range {text!r}",
            hint="write ranges such as >=1.0,<2 or ==1.4.* or ~=1.2 (PEP 440); * means any",
        ) from None


@dataclass(frozen=True)
class SkillInput:
    name: str
    description: str = ""
    required: bool = False
    default: str | None = None


@dataclass(frozen=True)
class SkillCheckSpec:
    """One of a skill's own checks: its script given ``input`` must exit ``exit_code`` and
    print text containing ``expect``."""

    name: str
    input: Mapping[str, Any] = field(default_factory=dict)
    expect: str | None = None
    exit_code: int = 0


@dataclass(frozen=True)
class Skill:
    """One version of one skill, as loaded. ``scope`` is ``""`` for a shared skill, else the
    AI id it belongs to. ``connectors`` and ``labels`` restrict which AIs it applies to (empty:
    all). ``script`` is an argv list run in ``folder`` (None: no script)."""

    name: str
    version: str
    description: str
    instructions: str
    folder: str
    scope: str = ""
    format: str = "aictl"  # aictl (skill.yaml) | claude (SKILL.md)
    requires: Mapping[str, str] = field(default_factory=dict)
    connectors: tuple[str, ...] = ()
    labels: Mapping[str, str] = field(default_factory=dict)
    inputs: tuple[SkillInput, ...] = ()
    script: tuple[str, ...] | None = None
    timeout: float = 60.0
    checks: tuple[SkillCheckSpec, ...] = ()

    @property
    def key(self) -> str:
        return f"{self.name} {self.version}"

    def applies_to(self, connector: str, labels: Mapping[str, str]) -> str | None:
        """None when this version applies to an AI with ``connector`` and ``labels``, else why
        not."""
        if self.connectors and connector not in self.connectors:
            return f"{self.key} applies to connectors {', '.join(self.connectors)}, not {connector}"
        for key, value in sorted(self.labels.items()):
            if labels.get(key) != value:
                return f"{self.key} applies to AIs labelled {key}={value}"
        return None

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "version": self.version,
            "description": self.description,
            "scope": self.scope,
            "format": self.format,
            "folder": self.folder,
            "requires": dict(self.requires),
            "applies_to": {"connectors": list(self.connectors), "labels": dict(self.labels)},
            "inputs": [
                {
                    "name": item.name,
                    "description": item.description,
                    "required": item.required,
                    "default": item.default,
                }
                for item in self.inputs
            ],
            "script": list(self.script) if self.script is not None else None,
            "timeout": self.timeout,
            "checks": [check.name for check in self.checks],
        }


# ------------------------------------------------------------------------ catalogue


def catalogue_for(
    skills: Iterable[Skill], ai_id: str | None, connector: str = "", labels: Mapping[str, str] = {}
) -> tuple[dict[str, list[Skill]], dict[str, list[str]]]:
    """The versions of each name an AI may use, highest first, and why others were left out.

    For ``ai_id`` None (no AI in view, as in ``aictl skill test``) only shared skills count
    and ``applies_to`` is not checked. A per-AI skill replaces every shared version of its name.
    """
    shared: dict[str, list[Skill]] = {}
    own: dict[str, list[Skill]] = {}
    for skill in skills:
        if skill.scope == "":
            shared.setdefault(skill.name, []).append(skill)
        elif skill.scope == ai_id:
            own.setdefault(skill.name, []).append(skill)
    merged = {**shared, **own}
    usable: dict[str, list[Skill]] = {}
    left_out: dict[str, list[str]] = {}
    for name, versions in merged.items():
        kept = []
        for skill in versions:
            why = None if ai_id is None else skill.applies_to(connector, labels)
            if why is None:
                kept.append(skill)
            else:
                left_out.setdefault(name, []).append(why)
        usable[name] = sorted(kept, key=lambda item: Version(item.version), reverse=True)
    return usable, left_out


# ------------------------------------------------------------------------ resolution


@dataclass(frozen=True)
class _Need:
    range: str
    chain: tuple[str, ...]  # from the task to the skill that states the range


def _chain_text(chain: Sequence[str], name: str) -> str:
    return " -> ".join([*chain, name])


def resolve(
    wanted: Sequence[str],
    catalogue: Mapping[str, Sequence[Skill]],
    left_out: Mapping[str, Sequence[str]] | None = None,
) -> list[Skill]:
    """The versions to use for ``wanted`` and everything they require, dependencies first.

    Each name gets the highest version (of those in ``catalogue``, listed highest first) that
    satisfies every range naming it; when a choice makes a later requirement impossible the
    next lower version is tried (backtracking). Raises ``SkillMissing`` when a name has no
    version, ``SkillConflict`` naming each range and the chain that stated it, and
    ``SkillCycle`` when the chosen versions require each other in a loop.
    """
    needs: dict[str, list[_Need]] = {}
    for name in wanted:
        needs.setdefault(name, []).append(_Need("", (ROOT,)))
    failures: list[InvalidInput] = []
    attempts = [MAX_ATTEMPTS]
    try:
        chosen = _search(needs, {}, catalogue, left_out or {}, failures, attempts)
    except _GaveUp:
        raise SkillConflict(
            f"no combination of versions found after {MAX_ATTEMPTS} attempts; "
            f"the first conflict: {failures[0].message}",
            hint="pin narrower ranges, or remove versions no skill should get",
        ) from None
    if chosen is None:
        # the first failure found is the one on the path of the highest versions: the most useful
        raise failures[0]
    return _ordered(chosen)


class _GaveUp(Exception):
    """The resolver's attempt budget ran out."""


def _search(
    needs: dict[str, list[_Need]],
    chosen: dict[str, Skill],
    catalogue: Mapping[str, Sequence[Skill]],
    left_out: Mapping[str, Sequence[str]],
    failures: list[InvalidInput],
    attempts: list[int],
) -> dict[str, Skill] | None:
    """Choose a version for the pending name with the fewest candidates left (a name with
    none fails at once; ties by name), highest version first, and recurse. ``chosen`` always
    satisfies every need stated so far: a candidate's own requirements are checked against the
    choices already made before going deeper."""
    pending = sorted(name for name in needs if name not in chosen)
    if not pending:
        return chosen
    options = {
        name: [
            skill
            for skill in catalogue.get(name, ())
            if all(_contains(need.range, skill.version) for need in needs[name])
        ]
        for name in pending
    }
    name = min(pending, key=lambda item: len(options[item]))
    candidates = options[name]
    if not catalogue.get(name):
        chains = "; ".join(_chain_text(need.chain, name) for need in needs[name])
        why = "; ".join(left_out.get(name, ())) or "no such skill"
        failures.append(SkillMissing(f"skill {name} is not available ({chains}): {why}"))
        return None
    if not candidates:
        failures.append(_conflict(name, needs[name], catalogue))
        return None
    chain = needs[name][0].chain
    for skill in candidates:
        attempts[0] -= 1
        if attempts[0] < 0:
            raise _GaveUp
        step = (*chain, f"{name} {skill.version}")
        now = {**chosen, name: skill}
        more = dict(needs)
        broken = None
        for required, text in sorted(skill.requires.items()):
            more[required] = [*more.get(required, ()), _Need(text, step)]
            if required in now and not _contains(text, now[required].version):
                broken = required
        if broken is not None:
            failures.append(_conflict(broken, more[broken], catalogue))
            continue
        found = _search(more, now, catalogue, left_out, failures, attempts)
        if found is not None:
            return found
    return None


@functools.lru_cache(maxsize=65_536)
def _contains(range_text: str, version: str) -> bool:
    """Whether ``version`` is in the range (cached: parsing a range costs more than testing)."""
    return Version(version) in _range(range_text)


@functools.lru_cache(maxsize=4096)
def _range(text: str) -> SpecifierSet:
    return parse_range(text)


def _conflict(
    name: str, needs: Sequence[_Need], catalogue: Mapping[str, Sequence[Skill]]
) -> SkillConflict:
    ranges = "; ".join(f"{need.range or '*'} ({_chain_text(need.chain, name)})" for need in needs)
    available = ", ".join(skill.version for skill in catalogue.get(name, ())) or "none"
    return SkillConflict(
        f"no version of skill {name} satisfies every range: {ranges}; available: {available}",
        hint="relax one of the ranges, or add a version that satisfies them all",
    )


def _ordered(chosen: Mapping[str, Skill]) -> list[Skill]:
    """Dependencies before the skills that require them (then by name); a cycle is an error."""
    order: list[Skill] = []
    state: dict[str, int] = {}  # 1 visiting, 2 done

    def visit(name: str, path: list[str]) -> None:
        if state.get(name) == 2:
            return
        if state.get(name) == 1:
            start = path.index(name)
            raise SkillCycle([*path[start:], name])
        state[name] = 1
        for required in sorted(chosen[name].requires):
            if required in chosen:
                visit(required, [*path, name])
        state[name] = 2
        order.append(chosen[name])

    for name in sorted(chosen):
        visit(name, [])
    return order


# ------------------------------------------------------------------------ per AI


@dataclass(frozen=True)
class SkillCheck:
    """The skills of one task as one AI would get them: ``chosen`` versions in dependency
    order, or the ``problems`` that keep the AI from qualifying."""

    chosen: tuple[Skill, ...] = ()
    problems: tuple[str, ...] = ()

    @property
    def ok(self) -> bool:
        return not self.problems


def check_for_ai(
    wanted: Sequence[str],
    skills: Iterable[Skill],
    enabled: Mapping[str, bool],
    *,
    ai_id: str | None,
    connector: str = "",
    labels: Mapping[str, str] = {},
) -> SkillCheck:
    """Whether an AI can have every skill in ``wanted``: each resolvable for it, and each
    resolved skill (the named ones and what they require) enabled for it (``enabled`` maps a
    name to its effective setting for this AI; a missing name is disabled)."""
    if not wanted:
        return SkillCheck()
    catalogue, left_out = catalogue_for(skills, ai_id, connector, labels)
    try:
        chosen = resolve(wanted, catalogue, left_out)
    except InvalidInput as error:
        return SkillCheck(problems=(error.message,))
    disabled = [skill.name for skill in chosen if not enabled.get(skill.name, False)]
    if disabled:
        return SkillCheck(tuple(chosen), tuple(f"skill {name} is not enabled" for name in disabled))
    return SkillCheck(tuple(chosen))


def effective_enabled(
    settings: Mapping[tuple[str, str], bool], names: Iterable[str], ai_id: str | None
) -> dict[str, bool]:
    """Each name's setting for ``ai_id``: the AI's own setting, else the project's, else off.
    ``settings`` maps (scope, name) to enabled, scope ``""`` being the project."""
    out = {}
    for name in names:
        if ai_id is not None and (ai_id, name) in settings:
            out[name] = settings[(ai_id, name)]
        else:
            out[name] = settings.get(("", name), False)
    return out


# ------------------------------------------------------------------------ the agent's view


def context_text(chosen: Sequence[Skill], outputs: Mapping[str, str] | None = None) -> str:
    """The text an agent receives for ``chosen`` skills (appended to its system prompt):
    each skill's name, version, description and full instructions, and the output of its
    script when it ran."""
    if not chosen:
        return ""
    parts = [
        "# Skills provided by aictl for this task",
        "Follow these instructions where they apply to the task.",
    ]
    for skill in chosen:
        parts.append(f"## Skill: {skill.name} {skill.version}\n\n{skill.description}")
        if skill.instructions.strip():
            parts.append(skill.instructions.strip())
        if outputs and skill.name in outputs:
            parts.append(f"Output of the {skill.name} script:\n\n{outputs[skill.name].strip()}")
    return "\n\n".join(parts) + "\n"
