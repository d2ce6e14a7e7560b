"""Loading one skill folder, in stages, with every problem collected (file, line, field).

Two formats are read:

- aictl's own: ``skill.yaml`` (name, version, description, requires, applies_to, inputs,
  instructions, script, checks) with its instructions in Markdown (``instructions.md`` unless
  the manifest names another file, else the body of a ``SKILL.md`` beside it);
- Claude Code's own: a ``SKILL.md`` whose YAML front matter (between ``---`` lines) gives
  ``name`` and ``description``; it is accepted as it is, so its other keys (``allowed-tools``,
  ``license``, ``metadata``...) are kept out of the way rather than refused. Its version is
  ``version`` or ``metadata.version`` when given, else ``0``.

Stages: (1) the files: a manifest present, UTF-8, YAML without syntax errors or duplicate
keys (``aictl.policy.source``, the policy loader's YAML-with-lines reader); (2) structure:
a mapping; (3) fields: required, types, unknown fields (listing the valid ones), names,
versions, ranges, durations; (4) what the fields point at: the instructions file, the script,
the folder's own name. All problems of all stages that could run are reported together as
``PolicyIssue`` values (the policy loader's issue type: file, line, field, message).
"""

from __future__ import annotations

import shlex
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aictl.domain.durations import parse_duration
from aictl.domain.skills import (
    NAME_HINT,
    NAME_PATTERN,
    Skill,
    SkillCheckSpec,
    SkillInput,
    parse_range,
    parse_version,
)
from aictl.domain.suggest import unknown_name
from aictl.errors import InvalidInput
from aictl.policy.issues import InvalidFiles, PolicyIssue

MANIFEST = "skill.yaml"
CLAUDE_FILE = "SKILL.md"
DEFAULT_INSTRUCTIONS = "instructions.md"
DEFAULT_TIMEOUT = 60.0

FIELDS: Mapping[str, str] = {
    "name": "the skill's name (lowercase letters, digits, '-')",
    "version": "its version, quoted text such as '1.2.0'",
    "description": "one line saying what it is for",
    "requires": "a mapping of other skills to version ranges",
    "applies_to": "connectors and AI labels it applies to",
    "inputs": "a list of named inputs",
    "instructions": "the Markdown file with its instructions",
    "script": "a command run before the agent, and its timeout",
    "checks": "the skill's own checks, run by `aictl skill test`",
}
REQUIRED = ("name", "version", "description")
APPLIES_TO_FIELDS = ("connectors", "labels")
INPUT_FIELDS = ("name", "description", "required", "default")
SCRIPT_FIELDS = ("command", "timeout")
CHECK_FIELDS = ("name", "input", "expect", "exit_code")

Path_ = tuple[str | int, ...]


class InvalidSkill(InvalidFiles):
    """A skill folder with errors; ``issues`` lists them all (exit code 2)."""

    kind = "skill"
    check = "fix the fields named above; `aictl skill test NAME` checks a skill again"


@dataclass
class LoadedSkill:
    """The outcome of loading one folder: the skill when valid, and every issue."""

    folder: Path
    skill: Skill | None = None
    issues: list[PolicyIssue] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.skill is not None and not self.issues


class _Collector:
    """Issues of one file, located by the line table of its YAML (shifted by ``offset``)."""

    def __init__(self, file: str, lines: Any, offset: int, issues: list[PolicyIssue]) -> None:
        self.file, self.lines, self.offset, self.issues = file, lines, offset, issues

    def add(self, path: Path_, message: str) -> None:
        from aictl.policy.source import field_path

        line = (self.lines.line_of(path) if self.lines is not None else 1) + self.offset
        self.issues.append(PolicyIssue(self.file, line, field_path(path), message))


def _read(path: Path, display: str, issues: list[PolicyIssue]) -> str | None:
    from aictl.policy import source

    try:
        return source.read_text(path)
    except source.Unreadable as problem:
        issues.append(PolicyIssue(display, problem.line, "", problem.message))
    return None


def _parse_yaml(text: str, display: str, offset: int, issues: list[PolicyIssue]) -> tuple[Any, Any]:
    from aictl.policy.source import parse

    parsed = parse(text)
    for problem in parsed.problems:
        issues.append(PolicyIssue(display, problem.line + offset, problem.field, problem.message))
    return parsed.data, parsed.lines


def split_front_matter(text: str) -> tuple[str, str] | None:
    """``SKILL.md`` text → (front matter, body), or None without front matter."""
    lines = text.split("\n")
    if not lines or lines[0].strip() != "---":
        return None
    for index in range(1, len(lines)):
        if lines[index].strip() == "---":
            return "\n".join(lines[1:index]), "\n".join(lines[index + 1 :]).lstrip("\n")
    return None


def load_skill(folder: Path, *, scope: str = "", display: str | None = None) -> LoadedSkill:
    """Load the skill in ``folder`` (see the module docstring for the stages). ``display`` is
    how issues name the folder (a path relative to the repository, usually)."""
    shown = display or str(folder)
    result = LoadedSkill(folder)
    if not folder.is_dir():
        result.issues.append(PolicyIssue(shown, 1, "", "not a folder"))
        return result
    if (folder / MANIFEST).is_file():
        _load_manifest(folder, shown, scope, result)
    elif (folder / CLAUDE_FILE).is_file():
        _load_claude(folder, shown, scope, result)
    else:
        result.issues.append(
            PolicyIssue(
                shown,
                1,
                "",
                f"no {MANIFEST} or {CLAUDE_FILE}: a skill folder holds a {MANIFEST} manifest "
                f"or a Claude Code {CLAUDE_FILE} with front matter",
            )
        )
    if result.issues:
        result.skill = None
    return result


# ------------------------------------------------------------------------ Claude Code's format


def _load_claude(folder: Path, shown: str, scope: str, result: LoadedSkill) -> None:
    display = f"{shown}/{CLAUDE_FILE}"
    text = _read(folder / CLAUDE_FILE, display, result.issues)
    if text is None:
        return
    split = split_front_matter(text)
    if split is None:
        result.issues.append(
            PolicyIssue(
                display, 1, "", "no front matter: start the file with --- lines around YAML"
            )
        )
        return
    front, body = split
    # a blank line stands for the opening ---: lines (and "first at line N") match the file
    data, lines = _parse_yaml("\n" + front, display, 0, result.issues)
    issues = _Collector(display, lines, 0, result.issues)
    if not isinstance(data, dict):
        issues.add((), "the front matter is a mapping with at least name and description")
        return
    name = _name(data, issues)
    description = _text(data, ("description",), issues, required=True)
    raw_version = data.get("version")
    where: Path_ = ("version",)
    metadata = data.get("metadata")
    if raw_version is None and isinstance(metadata, dict) and "version" in metadata:
        raw_version, where = metadata["version"], ("metadata", "version")
    version = _version(raw_version if raw_version is not None else "0", where, issues)
    if result.issues or name is None or description is None or version is None:
        return
    result.skill = Skill(
        name=name,
        version=version,
        description=description,
        instructions=body,
        folder=str(folder),
        scope=scope,
        format="claude",
    )


# ------------------------------------------------------------------------ aictl's manifest


def _load_manifest(folder: Path, shown: str, scope: str, result: LoadedSkill) -> None:
    display = f"{shown}/{MANIFEST}"
    text = _read(folder / MANIFEST, display, result.issues)
    if text is None:
        return
    data, lines = _parse_yaml(text, display, 0, result.issues)
    issues = _Collector(display, lines, 0, result.issues)
    if data is None:
        if not result.issues:
            issues.add((), "the file is empty; a manifest starts with name, version, description")
        return
    if not isinstance(data, dict):
        issues.add((), "a skill manifest is a mapping (" + ", ".join(FIELDS) + ")")
        return
    _unknown(data, FIELDS, (), issues)
    for required in REQUIRED:
        if required not in data:
            issues.add((), f"missing required field {required!r}")
    name = _name(data, issues) if "name" in data else None
    version = _version(data["version"], ("version",), issues) if "version" in data else None
    description = _text(data, ("description",), issues, required=False)
    requires = _requires(data.get("requires"), issues)
    connectors, labels = _applies_to(data.get("applies_to"), issues)
    inputs = _inputs(data.get("inputs"), issues)
    script, timeout = _script(data.get("script"), folder, issues)
    checks = _checks(data.get("checks"), issues, has_script=script is not None)
    instructions = _instructions(data.get("instructions"), folder, shown, issues)
    if result.issues or name is None or version is None or description is None:
        return
    result.skill = Skill(
        name=name,
        version=version,
        description=description,
        instructions=instructions or "",
        folder=str(folder),
        scope=scope,
        format="aictl",
        requires=requires,
        connectors=connectors,
        labels=labels,
        inputs=inputs,
        script=script,
        timeout=timeout,
        checks=checks,
    )


def _describe(value: Any) -> str:
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    if value is None:
        return "nothing (null)"
    return repr(value)[:40]


def _unknown(data: Mapping[str, Any], valid: Any, path: Path_, issues: _Collector) -> None:
    for key in data:
        if key not in valid:
            issues.add((*path, key), unknown_name("field", key, valid))


def _expect(
    value: Any, kind: type | tuple[type, ...], word: str, path: Path_, issues: _Collector
) -> bool:
    if isinstance(value, kind) and not (kind is not bool and isinstance(value, bool)):
        return True
    hint = ""
    if word == "text" and isinstance(value, bool | int | float):
        hint = " (quote it: YAML reads 1.0 as a number and yes/no as booleans)"
    issues.add(path, f"expected {word}, got {_describe(value)}{hint}")
    return False


def _text(
    data: Mapping[Any, Any], path: Path_, issues: _Collector, *, required: bool
) -> str | None:
    key = path[-1]
    if key not in data:
        if required:
            issues.add(path[:-1], f"missing required field {key!r}")
        return None
    value = data[key]
    if not _expect(value, str, "text", path, issues):
        return None
    if not value.strip():
        issues.add(path, "must not be empty")
        return None
    return str(value)


def _name(data: Mapping[str, Any], issues: _Collector) -> str | None:
    value = _text(data, ("name",), issues, required=True)
    if value is not None and not NAME_PATTERN.fullmatch(value):
        issues.add(("name",), f"invalid skill name {value!r}: {NAME_HINT}")
        return None
    return value


def _version(value: Any, path: Path_, issues: _Collector) -> str | None:
    if not _expect(value, str, "text", path, issues):
        return None
    try:
        return str(parse_version(value))
    except InvalidInput as error:
        issues.add(path, f"{error.message}; {error.hint}")
        return None


def _requires(value: Any, issues: _Collector) -> dict[str, str]:
    out: dict[str, str] = {}
    if value is None:
        return out
    if not _expect(
        value, dict, "a mapping of skill names to version ranges", ("requires",), issues
    ):
        return out
    for name, given in value.items():
        path: Path_ = ("requires", name)
        text = "*" if given is None else given
        if not isinstance(name, str) or not NAME_PATTERN.fullmatch(name):
            issues.add(path, f"invalid skill name {name!r}: {NAME_HINT}")
            continue
        if not _expect(text, str, "text (a version range such as '>=1.0,<2')", path, issues):
            continue
        try:
            parse_range(text)
        except InvalidInput as error:
            issues.add(path, f"{error.message}; {error.hint}")
            continue
        out[name] = text
    return out


def _applies_to(value: Any, issues: _Collector) -> tuple[tuple[str, ...], dict[str, str]]:
    if value is None or not _expect(value, dict, "a mapping", ("applies_to",), issues):
        return (), {}
    _unknown(value, APPLIES_TO_FIELDS, ("applies_to",), issues)
    connectors: list[str] = []
    raw = value.get("connectors", [])
    if _expect(raw, list, "a list of connector names", ("applies_to", "connectors"), issues):
        for index, item in enumerate(raw):
            if _expect(item, str, "text", ("applies_to", "connectors", index), issues):
                connectors.append(item)
    labels: dict[str, str] = {}
    raw = value.get("labels", {})
    if _expect(raw, dict, "a mapping of label keys to values", ("applies_to", "labels"), issues):
        for key, item in raw.items():
            if _expect(item, str, "text", ("applies_to", "labels", key), issues):
                labels[str(key)] = item
    return tuple(connectors), labels


def _inputs(value: Any, issues: _Collector) -> tuple[SkillInput, ...]:
    if value is None or not _expect(value, list, "a list of inputs", ("inputs",), issues):
        return ()
    out = []
    seen: set[str] = set()
    for index, item in enumerate(value):
        path: Path_ = ("inputs", index)
        if not _expect(
            item, dict, "a mapping (name, description, required, default)", path, issues
        ):
            continue
        _unknown(item, INPUT_FIELDS, path, issues)
        name = _text(item, (*path, "name"), issues, required=True)
        description = _text(item, (*path, "description"), issues, required=False) or ""
        required = item.get("required", False)
        _expect(required, bool, "true or false", (*path, "required"), issues)
        default = item.get("default")
        if default is not None:
            _expect(default, str, "text", (*path, "default"), issues)
        if name is not None:
            if name in seen:
                issues.add((*path, "name"), f"duplicate input {name!r}")
            seen.add(name)
            out.append(SkillInput(name, description, required is True, default))
    return tuple(out)


def _script(value: Any, folder: Path, issues: _Collector) -> tuple[tuple[str, ...] | None, float]:
    if value is None:
        return None, DEFAULT_TIMEOUT
    if not _expect(value, dict, "a mapping (command, timeout)", ("script",), issues):
        return None, DEFAULT_TIMEOUT
    _unknown(value, SCRIPT_FIELDS, ("script",), issues)
    timeout = DEFAULT_TIMEOUT
    if "timeout" in value:
        raw = value["timeout"]
        if _expect(raw, (str, int, float), "a duration such as 30s", ("script", "timeout"), issues):
            try:
                timeout = parse_duration(str(raw), field="timeout").total_seconds()
            except InvalidInput as error:
                issues.add(("script", "timeout"), f"{error.message}; {error.hint}")
    command = value.get("command")
    argv: list[str] = []
    if command is None:
        issues.add(("script",), "missing required field 'command'")
    elif isinstance(command, str):
        try:
            argv = shlex.split(command)
        except ValueError as error:
            issues.add(("script", "command"), f"unreadable command: {error}")
    elif _expect(
        command, list, "a command: text or a list of words", ("script", "command"), issues
    ):
        for index, word in enumerate(command):
            if _expect(word, str, "text", ("script", "command", index), issues):
                argv.append(word)
    if command is not None and not argv and isinstance(command, str | list):
        issues.add(("script", "command"), "must not be empty")
    if argv and ("/" in argv[0]) and not argv[0].startswith("/"):
        target = folder / argv[0]
        if not target.is_file():
            issues.add(("script", "command"), f"{argv[0]} is not a file in the skill folder")
    return (tuple(argv) if argv else None), timeout


def _checks(value: Any, issues: _Collector, *, has_script: bool) -> tuple[SkillCheckSpec, ...]:
    if value is None or not _expect(value, list, "a list of checks", ("checks",), issues):
        return ()
    if value and not has_script:
        issues.add(("checks",), "checks run the skill's script: add a script, or remove them")
    out = []
    for index, item in enumerate(value):
        path: Path_ = ("checks", index)
        if not _expect(item, dict, "a mapping (name, input, expect, exit_code)", path, issues):
            continue
        _unknown(item, CHECK_FIELDS, path, issues)
        name = _text(item, (*path, "name"), issues, required=True)
        given = item.get("input", {})
        _expect(given, dict, "a mapping", (*path, "input"), issues)
        expect = item.get("expect")
        if expect is not None:
            _expect(expect, str, "text", (*path, "expect"), issues)
        exit_code = item.get("exit_code", 0)
        _expect(exit_code, int, "a whole number", (*path, "exit_code"), issues)
        if name is not None:
            out.append(
                SkillCheckSpec(
                    name,
                    given if isinstance(given, dict) else {},
                    expect if isinstance(expect, str) else None,
                    exit_code if isinstance(exit_code, int) else 0,
                )
            )
    return tuple(out)


def _instructions(value: Any, folder: Path, shown: str, issues: _Collector) -> str | None:
    """The instructions: the named file, else ``instructions.md``, else a SKILL.md body."""
    if value is not None:
        if not _expect(value, str, "text (a file name)", ("instructions",), issues):
            return None
        target = (folder / value).resolve()
        if folder.resolve() not in target.parents or not target.is_file():
            issues.add(("instructions",), f"{value} is not a file in the skill folder")
            return None
        return _read_markdown(target, f"{shown}/{value}", issues)
    if (folder / DEFAULT_INSTRUCTIONS).is_file():
        return _read_markdown(
            folder / DEFAULT_INSTRUCTIONS, f"{shown}/{DEFAULT_INSTRUCTIONS}", issues
        )
    if (folder / CLAUDE_FILE).is_file():
        text = _read_markdown(folder / CLAUDE_FILE, f"{shown}/{CLAUDE_FILE}", issues)
        split = split_front_matter(text or "")
        return split[1] if split else text
    issues.add(
        (),
        f"no instructions: add {DEFAULT_INSTRUCTIONS} (or {CLAUDE_FILE}), "
        "or name a file in 'instructions'",
    )
    return None


def _read_markdown(path: Path, display: str, issues: _Collector) -> str | None:
    found: list[PolicyIssue] = []
    text = _read(path, display, found)
    issues.issues.extend(found)
    return text
