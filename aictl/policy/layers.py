"""Layers of policy files, how they merge into one effective policy, and the hashes of both.

Layers, in order: ``global`` (``$AICTL_GLOBAL_POLICY``, else ``~/.config/aictl/policy.yaml``),
``project`` (``<root>/.ai/policy.yaml``), and ``ai:<id>`` (``<root>/.ai/policies/<id>.yaml``),
which applies only when a policy is loaded for that AI. A missing file is an absent layer.

Merge rules (:func:`merge`):

- ``settings`` and per-AI settings (``ais``) merge key by key (``timeouts`` and ``budgets``
  too); a later layer's value replaces an earlier one's. One exception keeps "deny overrides"
  true for tools: ``denied_tools`` lists are united, so no layer can un-deny a tool.
- ``rules`` are the union of every layer's rules, known as ``<layer>:<id>``. A later layer
  cannot remove or weaken an earlier layer's rule: evaluation takes the strongest matching
  effect, whichever layer it comes from.
- ``default``: the most restrictive default any layer states (deny > require_approval >
  allow); allow when none states one.
- overrides (recorded by ``aictl policy override``) are applied last, to settings only.

Hashes: a layer's hash is the SHA-256 of its parsed content as canonical JSON (comments and
layout do not change it); the effective hash covers the ordered layer names and hashes and the
overrides' hash. This module is pure and light: no YAML, no pydantic, no CEL.
"""

# No `from __future__ import annotations` here: NamedTuple turns string annotations into
# ForwardRefs, compiling each one (about 0.15 ms a field, ~10 ms for this package at import).

import os
from collections.abc import Mapping, Sequence
from datetime import timedelta
from pathlib import Path
from types import MappingProxyType
from typing import Any, NamedTuple

from aictl.domain.durations import parse_duration
from aictl.policy import vocabulary
from aictl.policy.digest import content_hash

GLOBAL_ENV = "AICTL_GLOBAL_POLICY"
PROJECT_FILE = Path(".ai") / "policy.yaml"
PER_AI_DIR = Path(".ai") / "policies"
OVERRIDES_LAYER = "overrides"
UNION_KEYS = frozenset({"denied_tools"})
Needs = Mapping[str, frozenset[str] | None] | None
"""Per-AI settings whose lists are united across layers instead of replaced."""


class Rule(NamedTuple):
    """A rule as evaluated: its layer, its compiled condition (None: always) and its origin."""

    layer: str
    id: str
    effect: str
    actions: tuple[str, ...]
    reason: str
    description: str = ""
    when: str | None = None
    file: str = ""
    line: int = 0
    field_path: str = ""
    """Where the rule sits in its file (``rules[2]``), for messages."""
    program: Any = None
    """The compiled CEL program of ``when`` (None: the rule always applies)."""
    analysis: Any = None
    """What the condition refers to (:class:`~aictl.policy.conditions.Analysis`), for lint."""

    @property
    def qualified_id(self) -> str:
        return f"{self.layer}:{self.id}"

    def to_dict(self) -> dict[str, Any]:
        return {
            "layer": self.layer,
            "id": self.id,
            "qualified_id": self.qualified_id,
            "description": self.description,
            "actions": list(self.actions),
            "when": self.when,
            "effect": self.effect,
            "reason": self.reason,
            "file": self.file,
            "line": self.line,
        }


class Layer(NamedTuple):
    """One loaded policy file. ``data`` is its parsed content (what ``hash`` covers)."""

    name: str
    path: str
    hash: str
    data: Mapping[str, Any]
    rules: tuple[Rule, ...] = ()
    lines: Any = None
    """The file's :class:`~aictl.policy.source.Lines` (None when read by the fast path)."""

    @property
    def default(self) -> str | None:
        value = self.data.get("default")
        return value if isinstance(value, str) else None

    @property
    def settings(self) -> Mapping[str, Any]:
        return self.data.get("settings") or {}

    @property
    def ais(self) -> Mapping[str, Mapping[str, Any]]:
        return self.data.get("ais") or {}

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "path": self.path, "hash": self.hash, "rules": len(self.rules)}


class Policy(NamedTuple):
    """The effective policy for one AI (or for none): what :func:`evaluate` reads.

    Immutable; ``rules_for(action)`` is an index built once, so an evaluation touches only the
    rules that list its action.
    """

    layers: tuple[Layer, ...]
    rules: tuple[Rule, ...]
    default: str
    default_source: str | None
    settings: Mapping[str, Any]
    ais: Mapping[str, Mapping[str, Any]]
    overrides: Mapping[str, Any]
    overrides_hash: str | None
    hash: str
    ai: str | None = None
    layer_hashes: Mapping[str, str] = MappingProxyType({})
    by_action: Mapping[str, tuple[Rule, ...]] = MappingProxyType({})
    needs: Mapping[str, Needs] = MappingProxyType({})
    """Per action, what of the request its rules' conditions read (see :func:`needs_of`)."""

    def rules_for(self, action: str) -> tuple[Rule, ...]:
        return self.by_action.get(action, ())

    def setting(self, key: str, default: Any = None) -> Any:
        """A merged setting by dotted key: ``lease_ttl``, ``timeouts.task``."""
        value: Any = self.settings
        for part in key.split("."):
            if not isinstance(value, Mapping) or part not in value:
                return default
            value = value[part]
        return value

    def duration(self, key: str) -> timedelta | None:
        """A duration setting (``lease_ttl``, ``timeouts.idle``...) as a timedelta, or None."""
        value = self.setting(key)
        return None if value is None else parse_duration(str(value), field=key)

    def ai_settings(self, ai: str | None = None) -> Mapping[str, Any]:
        """The merged per-AI settings of ``ai`` (default: the AI the policy was loaded for)."""
        return self.ais.get(ai or self.ai or "", {})

    def to_dict(self) -> dict[str, Any]:
        """The effective policy as JSON-ready data (``aictl policy show --effective --json``)."""
        return {
            "ai": self.ai,
            "hash": self.hash,
            "layers": [layer.to_dict() for layer in self.layers],
            "overrides": dict(self.overrides),
            "overrides_hash": self.overrides_hash,
            "default": self.default,
            "default_source": self.default_source,
            "settings": _plain(self.settings),
            "ais": _plain(self.ais),
            "rules": [rule.to_dict() for rule in self.rules],
        }


def _plain(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {key: _plain(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(item) for item in value]
    return value


# ----------------------------------------------------------------------------- where


def global_path() -> Path | None:
    """``$AICTL_GLOBAL_POLICY`` if set (empty: no global layer), else the user's config file."""
    configured = os.environ.get(GLOBAL_ENV)
    if configured is not None:
        return Path(configured).expanduser() if configured.strip() else None
    return Path("~/.config/aictl/policy.yaml").expanduser()


def per_ai_path(root: Path, ai: str) -> Path | None:
    """``.ai/policies/<ai>.yaml`` (or ``.yml`` when only that exists); None for an id that
    cannot be a file name (one with a ``/``)."""
    if "/" in ai or ai in ("", ".", ".."):
        return None
    folder = root / PER_AI_DIR
    preferred = folder / f"{ai}.yaml"
    alternative = folder / f"{ai}.yml"
    return alternative if alternative.is_file() and not preferred.is_file() else preferred


def layer_paths(root: Path, ai: str | None = None) -> list[tuple[str, Path]]:
    """The ordered (layer name, path) pairs that apply to ``ai`` in the repository at ``root``,
    whether or not the files exist (a missing file is an absent layer)."""
    pairs: list[tuple[str, Path]] = []
    global_file = global_path()
    if global_file is not None:
        pairs.append(("global", global_file))
    pairs.append(("project", root / PROJECT_FILE))
    if ai is not None:
        path = per_ai_path(root, ai)
        if path is not None:
            pairs.append((f"ai:{ai}", path))
    return pairs


def per_ai_files(root: Path) -> list[tuple[str, Path]]:
    """Every existing per-AI file, as (AI id, path), sorted by id."""
    folder = root / PER_AI_DIR
    if not folder.is_dir():
        return []
    found = {
        path.stem: path
        for suffix in (".yml", ".yaml")  # .yaml wins over .yml for the same id
        for path in sorted(folder.glob(f"*{suffix}"))
        if path.is_file()
    }
    return sorted(found.items())


def layer_name_for(path: Path) -> str:
    """The layer a file would be, judged from where it lives (for files named on a command
    line): ``ai:<id>`` under ``.ai/policies/``, ``project`` for ``.ai/policy.yaml``, else
    ``global``."""
    absolute = Path(os.path.abspath(path))
    if absolute.parent.name == PER_AI_DIR.name and absolute.parent.parent.name == ".ai":
        return f"ai:{absolute.stem}"
    if absolute.parent.name == ".ai" and absolute.stem == "policy":
        return "project"
    return "global"


# ----------------------------------------------------------------------------- merge


def merge(
    layers: Sequence[Layer],
    *,
    ai: str | None = None,
    overrides: Mapping[str, Any] | None = None,
) -> Policy:
    """The effective policy of ``layers`` (in order) for ``ai``, with ``overrides`` applied
    last. ``overrides`` must already be valid (see ``aictl.policy.service``)."""
    settings: dict[str, Any] = {}
    ais: dict[str, dict[str, Any]] = {}
    default, default_source = "allow", None
    for layer in layers:
        _merge_into(settings, layer.settings)
        own_ai = layer.name.removeprefix("ai:") if layer.name.startswith("ai:") else None
        for ai_id, values in layer.ais.items():
            if own_ai is None or ai_id == own_ai:
                _merge_ai(ais.setdefault(ai_id, {}), values)
        stated = layer.default
        if stated is not None and (
            default_source is None or vocabulary.stronger(stated, default) != default
        ):
            default, default_source = stated, layer.name
    overrides = dict(overrides or {})
    for key, value in overrides.items():
        _apply_override(settings, ais, key, value)
    rules = tuple(rule for layer in layers for rule in layer.rules)
    by_action: dict[str, list[Rule]] = {}
    for rule in rules:
        for action in rule.actions:
            by_action.setdefault(action, []).append(rule)
    needs = {action: needs_of(items) for action, items in by_action.items()}
    hashes = {layer.name: layer.hash for layer in layers}
    overrides_hash = content_hash(overrides) if overrides else None
    if overrides_hash is not None:
        hashes[OVERRIDES_LAYER] = overrides_hash
    return Policy(
        layers=tuple(layers),
        rules=rules,
        default=default,
        default_source=default_source,
        settings=settings,
        ais=ais,
        overrides=overrides,
        overrides_hash=overrides_hash,
        hash=effective_hash(layers, overrides_hash),
        ai=ai,
        layer_hashes=MappingProxyType(hashes),
        by_action={action: tuple(items) for action, items in by_action.items()},
        needs=needs,
    )


def needs_of(rules: Sequence[Rule]) -> Needs:
    """The request variables these rules' conditions read: for a record variable (task, ai,
    tool) the set of its fields, or None when some condition needs all of it; None for the
    whole mapping when a rule's condition was not analysed.

    Converting a value into CEL costs about 2 us, so a decision converts only these: a task
    has 27 fields, and a typical rule reads two of them.
    """
    needs: dict[str, frozenset[str] | None] = {}
    for rule in rules:
        if rule.program is None:
            continue
        if rule.analysis is None:
            return None
        for variable in rule.analysis.variables:
            if vocabulary.VARIABLES.get(variable) is None or variable in rule.analysis.whole:
                needs[variable] = None
                continue
            fields = frozenset(name for owner, name in rule.analysis.fields if owner == variable)
            current = needs.get(variable, frozenset())
            needs[variable] = None if current is None else current | fields
    return MappingProxyType(needs)


def effective_hash(layers: Sequence[Layer], overrides_hash: str | None) -> str:
    """SHA-256 over the ordered ``[name, hash]`` pairs of the layers and the overrides' hash."""
    return content_hash(
        {"layers": [[layer.name, layer.hash] for layer in layers], "overrides": overrides_hash}
    )


def _merge_into(target: dict[str, Any], source: Mapping[str, Any]) -> None:
    for key, value in source.items():
        if isinstance(value, Mapping) and isinstance(target.get(key), dict):
            _merge_into(target[key], value)
        elif isinstance(value, Mapping):
            target[key] = {}
            _merge_into(target[key], value)
        else:
            target[key] = list(value) if isinstance(value, list) else value


def _merge_ai(target: dict[str, Any], source: Mapping[str, Any]) -> None:
    for key, value in source.items():
        if key in UNION_KEYS and isinstance(target.get(key), list):
            target[key] = list(dict.fromkeys([*target[key], *value]))
        else:
            target[key] = list(value) if isinstance(value, list) else value


def split_override_key(key: str) -> tuple[str, ...]:
    """``settings.timeouts.task`` → ("settings", "timeouts", "task");
    ``ais.claude-1.max_turns`` → ("ais", "claude-1", "max_turns") (the AI id may hold dots)."""
    section, _, rest = key.partition(".")
    if section == "ais":
        ai_id, _, name = rest.rpartition(".")
        return ("ais", ai_id, name)
    return (section, *rest.split("."))


def _apply_override(
    settings: dict[str, Any], ais: dict[str, dict[str, Any]], key: str, value: Any
) -> None:
    parts = split_override_key(key)
    if parts[0] == "ais":
        ais.setdefault(parts[1], {})[parts[2]] = value
        return
    target = settings
    for part in parts[1:-1]:
        target = target.setdefault(part, {})
    target[parts[-1]] = value
