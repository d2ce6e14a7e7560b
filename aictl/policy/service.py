"""What the rest of aictl calls: load the effective policy, validate files, check overrides.

Everything here reads files; the decisions themselves are pure (:mod:`aictl.policy.evaluate`).
Loading a repository whose policy files hold nothing but ``version`` and ``default`` imports
neither PyYAML, pydantic nor CEL, and takes well under a millisecond. Loading a policy
(:func:`load_policy`) reads unchanged, valid files from a cache; validating never does.
"""

from __future__ import annotations

import os
from collections.abc import Collection, Iterable, Mapping
from pathlib import Path
from typing import Any

from aictl.policy import layers as layer_module
from aictl.policy.cache import LayerCache
from aictl.policy.issues import ERROR, InvalidPolicy, PolicyIssue, errors_of
from aictl.policy.layers import Layer, Policy
from aictl.policy.loader import LoadedFile, load_file

OVERRIDES_FILE = "<overrides>"


def display_path(path: Path, root: Path | None = None) -> str:
    """``path`` relative to ``root`` (or the working directory) when inside it, else as is."""
    base = Path(root) if root is not None else Path.cwd()
    try:
        return str(Path(os.path.abspath(path)).relative_to(os.path.abspath(base)))
    except ValueError:
        return str(path)


def load_layers(root: Path, *, ai: str | None = None) -> tuple[list[Layer], list[PolicyIssue]]:
    """The existing layer files for ``ai``, loaded in order, and every error among them.

    Files that validated before, unchanged, are read from a cache (:mod:`aictl.policy.cache`),
    skipping YAML and pydantic: the repository's for its own layers, the user's for the global
    layer (an agent confined to the repository cannot reach it).
    """
    found: list[Layer] = []
    issues: list[PolicyIssue] = []
    repository = LayerCache.for_repository(root)
    for name, path in layer_module.layer_paths(root, ai):
        if not path.is_file():
            continue
        cache = LayerCache.for_user() if name == "global" and repository else repository
        loaded = load_file(path, display=display_path(path, root), layer=name, cache=cache)
        issues += errors_of(loaded.issues)
        if loaded.ok:
            found.append(loaded.layer_value())
    return found, issues


def load_policy(
    root: Path, *, ai: str | None = None, overrides: Mapping[str, Any] | None = None
) -> Policy:
    """The effective policy of the repository at ``root`` for ``ai`` (None: no per-AI layer),
    with ``overrides`` (``settings.KEY`` / ``ais.ID.KEY`` → value) applied last.

    Raises :class:`InvalidPolicy` listing every error of every layer file and override.
    """
    found, issues = load_layers(root, ai=ai)
    checked: dict[str, Any] = {}
    if overrides:
        checked, override_issues = check_overrides(overrides)
        issues += override_issues
    if issues:
        raise InvalidPolicy(issues)
    return layer_module.merge(found, ai=ai, overrides=checked)


def check_overrides(overrides: Mapping[str, Any]) -> tuple[dict[str, Any], list[PolicyIssue]]:
    """Validate override keys and values against the schema; text values are read as YAML
    scalars (``"30"`` is 30, ``"[Read, Edit]"`` a list), as typed on a command line.

    Returns the values to apply and the problems (file ``<overrides>``, field = the key).
    """
    from aictl.policy import models

    values: dict[str, Any] = {}
    issues: list[PolicyIssue] = []
    for key, raw in overrides.items():
        parts = layer_module.split_override_key(key)
        value = _scalar(raw) if isinstance(raw, str) else raw
        if parts[0] == "settings" and len(parts) in (2, 3) and all(parts):
            document: dict[str, Any] = {"settings": {}}
            target = document["settings"]
            for part in parts[1:-1]:
                target = target.setdefault(part, {})
            target[parts[-1]] = value
        elif parts[0] == "ais" and len(parts) == 3 and parts[1] and parts[2]:
            document = {"ais": {parts[1]: {parts[2]: value}}}
        else:
            issues.append(
                PolicyIssue(
                    OVERRIDES_FILE,
                    0,
                    key,
                    "an override key is settings.NAME (settings.timeouts.task) or ais.ID.NAME",
                )
            )
            continue
        _, problems = models.validate({"version": 1, **document})
        for problem in problems:
            issues.append(PolicyIssue(OVERRIDES_FILE, 0, key, problem.message))
        if not problems:
            values[key] = value
    return values, issues


def _scalar(text: str) -> Any:
    import yaml

    try:
        return yaml.safe_load(text)
    except yaml.YAMLError:
        return text


def validate_files(
    paths: Iterable[Path],
    *,
    known_ais: Collection[str] | None = None,
    root: Path | None = None,
) -> list[PolicyIssue]:
    """Every error and warning of the given files, all stages, then the lint warnings.

    Each file's layer is judged from where it lives (``.ai/policies/ID.yaml`` is per-AI). Lint
    (:mod:`aictl.policy.lint`) runs on the files that loaded cleanly: per-AI files are combined
    with the other files, never with each other. ``known_ais`` enables the unknown-AI check.
    """
    loaded = [
        load_file(
            Path(path),
            display=display_path(Path(path), root),
            layer=layer_module.layer_name_for(Path(path)),
        )
        for path in paths
    ]
    return _with_lint(loaded, known_ais)


def validate_repository(
    root: Path, *, known_ais: Collection[str] | None = None
) -> tuple[list[str], list[PolicyIssue]]:
    """Validate every existing layer file of the repository (global, project, every per-AI
    file): the files checked (as displayed) and the issues."""
    loaded: list[LoadedFile] = []
    candidates = [
        (name, path) for name, path in layer_module.layer_paths(root) if path.is_file()
    ] + [(f"ai:{ai}", path) for ai, path in layer_module.per_ai_files(root)]
    for name, path in candidates:
        loaded.append(load_file(path, display=display_path(path), layer=name))
    return [item.path for item in loaded], _with_lint(loaded, known_ais)


def _with_lint(loaded: list[LoadedFile], known_ais: Collection[str] | None) -> list[PolicyIssue]:
    issues = [issue for item in loaded for issue in item.issues]
    clean = [item for item in loaded if item.ok]
    if clean:
        from aictl.policy import lint

        issues += lint.lint([item.layer_value() for item in clean], known_ais=known_ais)
    order = {item.path: index for index, item in enumerate(loaded)}
    return sorted(
        issues, key=lambda issue: (issue.severity != ERROR, order.get(issue.file, 0), issue.line)
    )
