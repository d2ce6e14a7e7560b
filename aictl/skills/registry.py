"""Finding the skills of a repository on disk: ``.ai/skills/``.

Layout (every folder is a skill folder as ``aictl.skills.loader`` reads it)::

    .ai/skills/<name>/                 a shared skill, one version
    .ai/skills/<name>/<version>/       a shared skill, several versions side by side
    .ai/skills/<ai-id>/<name>/         a skill of one AI (wins over a shared one of that name)
    .ai/skills/<ai-id>/<name>/<version>/

A folder under ``.ai/skills/`` holding a manifest (``skill.yaml`` or ``SKILL.md``) is a skill;
one whose subfolders are named as versions and hold manifests holds versions; any other folder
is an AI's. A folder's name must match what it holds (the skill's name, or its version), and a
version must appear once per scope.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from packaging.version import InvalidVersion, Version

from aictl.domain.skills import Skill
from aictl.policy.issues import PolicyIssue
from aictl.skills.loader import CLAUDE_FILE, MANIFEST, LoadedSkill, load_skill
from aictl.workspace import STATE_DIR

SKILLS_DIR = "skills"


def skills_root(root: Path) -> Path:
    return root / STATE_DIR / SKILLS_DIR


def has_manifest(folder: Path) -> bool:
    return (folder / MANIFEST).is_file() or (folder / CLAUDE_FILE).is_file()


def _is_version(name: str) -> bool:
    try:
        Version(name)
    except InvalidVersion:
        return False
    return True


def _version_folders(folder: Path) -> list[Path]:
    return [
        child
        for child in sorted(folder.iterdir())
        if child.is_dir() and _is_version(child.name) and has_manifest(child)
    ]


@dataclass
class Registry:
    """Every valid skill found, and every problem with the others (they are left out)."""

    skills: list[Skill] = field(default_factory=list)
    issues: list[PolicyIssue] = field(default_factory=list)
    loaded: list[LoadedSkill] = field(default_factory=list)

    def names(self) -> list[str]:
        return sorted({skill.name for skill in self.skills})


def discover(root: Path) -> Registry:
    """Load every skill folder under ``root/.ai/skills`` (see the module docstring)."""
    registry = Registry()
    base = skills_root(root)
    if not base.is_dir():
        return registry
    for entry in sorted(path for path in base.iterdir() if path.is_dir()):
        if has_manifest(entry):
            _load(registry, root, entry, "", expect_name=entry.name)
        elif _version_folders(entry):
            for child in _version_folders(entry):
                _load(registry, root, child, "", expect_name=entry.name, expect_version=child.name)
        else:
            for child in sorted(path for path in entry.iterdir() if path.is_dir()):
                if has_manifest(child):
                    _load(registry, root, child, entry.name, expect_name=child.name)
                else:
                    for version in _version_folders(child):
                        _load(
                            registry,
                            root,
                            version,
                            entry.name,
                            expect_name=child.name,
                            expect_version=version.name,
                        )
    _duplicates(registry)
    return registry


def _load(
    registry: Registry,
    root: Path,
    folder: Path,
    scope: str,
    *,
    expect_name: str,
    expect_version: str | None = None,
) -> None:
    display = str(folder.relative_to(root))
    loaded = load_skill(folder, scope=scope, display=display)
    registry.loaded.append(loaded)
    skill = loaded.skill
    if skill is not None and skill.name != expect_name:
        loaded.issues.append(
            PolicyIssue(
                display,
                1,
                "name",
                f"the skill is named {skill.name!r} but its folder is {expect_name!r}: "
                "rename one so that they match",
            )
        )
    if (
        skill is not None
        and expect_version is not None
        and Version(skill.version) != Version(expect_version)
    ):
        loaded.issues.append(
            PolicyIssue(
                display,
                1,
                "version",
                f"the skill's version is {skill.version} but its folder is {expect_version!r}",
            )
        )
    registry.issues.extend(loaded.issues)
    if loaded.issues:
        loaded.skill = None
    elif skill is not None:
        registry.skills.append(skill)


def _duplicates(registry: Registry) -> None:
    seen: dict[tuple[str, str, Version], Skill] = {}
    kept: list[Skill] = []
    for skill in registry.skills:
        key = (skill.scope, skill.name, Version(skill.version))
        if key in seen:
            registry.issues.append(
                PolicyIssue(
                    skill.folder,
                    1,
                    "version",
                    f"{skill.key} is also in {seen[key].folder}: a version appears once",
                )
            )
            continue
        seen[key] = skill
        kept.append(skill)
    registry.skills = kept
