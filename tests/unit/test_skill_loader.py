"""Loading skill folders: both formats, and every validation error with its file, line and
field, all errors of a folder reported at once."""

from __future__ import annotations

from pathlib import Path

import pytest

from aictl.skills.loader import InvalidSkill, load_skill, split_front_matter
from aictl.skills.registry import discover, skills_root

GOOD = """\
name: db-migrations
version: "1.2.0"
description: How this repository runs migrations
requires:
  git-basics: ">=1.0,<2"
  anything:
applies_to:
  connectors: [claude-code]
  labels: {team: web}
inputs:
  - name: target
    description: the database
    required: true
    default: dev
script:
  command: [python3, run.py, --verbose]
  timeout: 30s
checks:
  - name: runs
    input: {target: test}
    expect: migrated
    exit_code: 0
"""


def folder(tmp_path: Path, files: dict[str, str | bytes], name: str = "skill") -> Path:
    root = tmp_path / name
    root.mkdir(parents=True, exist_ok=True)
    for relative, content in files.items():
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content)
    return root


def test_a_full_manifest_loads_every_field(tmp_path: Path) -> None:
    path = folder(
        tmp_path, {"skill.yaml": GOOD, "instructions.md": "Run make migrate.\n", "run.py": ""}
    )
    loaded = load_skill(path, scope="claude-1")
    assert loaded.ok, loaded.issues
    skill = loaded.skill
    assert skill is not None
    assert (skill.name, skill.version, skill.scope, skill.format) == (
        "db-migrations",
        "1.2.0",
        "claude-1",
        "aictl",
    )
    assert skill.requires == {"git-basics": ">=1.0,<2", "anything": "*"}
    assert skill.connectors == ("claude-code",) and skill.labels == {"team": "web"}
    assert skill.inputs[0].name == "target" and skill.inputs[0].required
    assert skill.inputs[0].default == "dev"
    assert skill.script == ("python3", "run.py", "--verbose") and skill.timeout == 30.0
    assert skill.checks[0].input == {"target": "test"} and skill.checks[0].expect == "migrated"
    assert skill.instructions == "Run make migrate.\n"


def test_a_claude_code_skill_is_accepted_as_it_is(tmp_path: Path) -> None:
    text = (
        "---\nname: review\ndescription: The review checklist\nallowed-tools: Read, Grep\n"
        "license: MIT\nmetadata:\n  version: '2.1'\n---\n\n# Review\nCheck the tests.\n"
    )
    loaded = load_skill(folder(tmp_path, {"SKILL.md": text}))
    assert loaded.ok, loaded.issues
    assert loaded.skill is not None
    assert (loaded.skill.name, loaded.skill.version, loaded.skill.format) == (
        "review",
        "2.1",
        "claude",
    )
    assert loaded.skill.instructions == "# Review\nCheck the tests.\n"


def test_a_claude_skill_without_a_version_is_version_0(tmp_path: Path) -> None:
    loaded = load_skill(folder(tmp_path, {"SKILL.md": "---\nname: a\ndescription: d\n---\nx"}))
    assert loaded.skill is not None and loaded.skill.version == "0"


def test_a_manifest_takes_its_instructions_from_a_skill_md_beside_it(tmp_path: Path) -> None:
    manifest = "name: a\nversion: '1'\ndescription: d\n"
    skill_md = "---\nname: a\ndescription: d\n---\nBODY TEXT\n"
    loaded = load_skill(folder(tmp_path, {"skill.yaml": manifest, "SKILL.md": skill_md}))
    assert loaded.skill is not None and loaded.skill.instructions == "BODY TEXT\n"
    named = load_skill(
        folder(
            tmp_path,
            {"skill.yaml": manifest + "instructions: docs/how.md\n", "docs/how.md": "HOW\n"},
            "named",
        )
    )
    assert named.skill is not None and named.skill.instructions == "HOW\n"


def test_a_script_command_may_be_one_line_of_text(tmp_path: Path) -> None:
    manifest = "name: a\nversion: '1'\ndescription: d\nscript:\n  command: python3 -c 'print(1)'\n"
    loaded = load_skill(folder(tmp_path, {"skill.yaml": manifest, "instructions.md": "x"}))
    assert loaded.skill is not None
    assert loaded.skill.script == ("python3", "-c", "print(1)") and loaded.skill.timeout == 60.0


BASE = "name: a\nversion: '1'\ndescription: d\n"

# (files, the file the error names, its line, its field, a fragment of the message)
ERRORS: list[tuple[str, dict[str, str | bytes], str, int, str, str]] = [
    ("no manifest", {"notes.txt": "x"}, "skill", 1, "", "no skill.yaml or SKILL.md"),
    ("not UTF-8", {"skill.yaml": b"name: \xff\n"}, "skill.yaml", 1, "", "not UTF-8"),
    ("YAML syntax", {"skill.yaml": "name: [a\n"}, "skill.yaml", 1, "", "YAML syntax error"),
    (
        "duplicate key",
        {"skill.yaml": BASE + "name: b\n", "instructions.md": "x"},
        "skill.yaml",
        4,
        "name",
        "duplicate key 'name' (first at line 1)",
    ),
    ("empty", {"skill.yaml": ""}, "skill.yaml", 1, "", "the file is empty"),
    ("a list", {"skill.yaml": "- a\n"}, "skill.yaml", 1, "", "a skill manifest is a mapping"),
    (
        "unknown field",
        {"skill.yaml": BASE + "colour: red\n", "instructions.md": "x"},
        "skill.yaml",
        4,
        "colour",
        "unknown field 'colour'; valid fields: name, version",
    ),
    (
        "missing version",
        {"skill.yaml": "name: a\ndescription: d\n", "instructions.md": "x"},
        "skill.yaml",
        1,
        "",
        "missing required field 'version'",
    ),
    (
        "version a number",
        {"skill.yaml": "name: a\nversion: 1.0\ndescription: d\n", "instructions.md": "x"},
        "skill.yaml",
        2,
        "version",
        "expected text, got 1.0 (quote it",
    ),
    (
        "version invalid",
        {"skill.yaml": "name: a\nversion: 'one'\ndescription: d\n", "instructions.md": "x"},
        "skill.yaml",
        2,
        "version",
        "invalid version 'one'",
    ),
    (
        "name invalid",
        {"skill.yaml": "name: Big_Name\nversion: '1'\ndescription: d\n", "instructions.md": "x"},
        "skill.yaml",
        1,
        "name",
        "invalid skill name 'Big_Name'",
    ),
    (
        "description empty",
        {"skill.yaml": "name: a\nversion: '1'\ndescription: ' '\n", "instructions.md": "x"},
        "skill.yaml",
        3,
        "description",
        "must not be empty",
    ),
    (
        "requires a list",
        {"skill.yaml": BASE + "requires: [b]\n", "instructions.md": "x"},
        "skill.yaml",
        4,
        "requires",
        "expected a mapping of skill names to version ranges, got a list",
    ),
    (
        "requires a bad name",
        {"skill.yaml": BASE + "requires:\n  B_x: '1'\n", "instructions.md": "x"},
        "skill.yaml",
        5,
        "requires.B_x",
        "invalid skill name 'B_x'",
    ),
    (
        "requires a number",
        {"skill.yaml": BASE + "requires:\n  b: 1\n", "instructions.md": "x"},
        "skill.yaml",
        5,
        "requires.b",
        "expected text (a version range",
    ),
    (
        "requires a bad range",
        {"skill.yaml": BASE + "requires:\n  b: '>>1'\n", "instructions.md": "x"},
        "skill.yaml",
        5,
        "requires.b",
        "invalid version range '>>1'",
    ),
    (
        "applies_to a list",
        {"skill.yaml": BASE + "applies_to: [x]\n", "instructions.md": "x"},
        "skill.yaml",
        4,
        "applies_to",
        "expected a mapping, got a list",
    ),
    (
        "applies_to unknown",
        {"skill.yaml": BASE + "applies_to:\n  models: [x]\n", "instructions.md": "x"},
        "skill.yaml",
        5,
        "applies_to.models",
        "unknown field 'models'; valid fields: connectors, labels",
    ),
    (
        "connectors text",
        {"skill.yaml": BASE + "applies_to:\n  connectors: claude\n", "instructions.md": "x"},
        "skill.yaml",
        5,
        "applies_to.connectors",
        "expected a list of connector names",
    ),
    (
        "connector a number",
        {"skill.yaml": BASE + "applies_to:\n  connectors: [3]\n", "instructions.md": "x"},
        "skill.yaml",
        5,
        "applies_to.connectors[0]",
        "expected text, got 3",
    ),
    (
        "labels a list",
        {"skill.yaml": BASE + "applies_to:\n  labels: [a]\n", "instructions.md": "x"},
        "skill.yaml",
        5,
        "applies_to.labels",
        "expected a mapping of label keys to values",
    ),
    (
        "label value a boolean",
        {"skill.yaml": BASE + "applies_to:\n  labels:\n    gpu: yes\n", "instructions.md": "x"},
        "skill.yaml",
        6,
        "applies_to.labels.gpu",
        "expected text, got True",
    ),
    (
        "inputs a mapping",
        {"skill.yaml": BASE + "inputs: {a: 1}\n", "instructions.md": "x"},
        "skill.yaml",
        4,
        "inputs",
        "expected a list of inputs",
    ),
    (
        "input text",
        {"skill.yaml": BASE + "inputs: [target]\n", "instructions.md": "x"},
        "skill.yaml",
        4,
        "inputs[0]",
        "expected a mapping (name, description, required, default)",
    ),
    (
        "input without name",
        {"skill.yaml": BASE + "inputs:\n  - description: x\n", "instructions.md": "x"},
        "skill.yaml",
        5,
        "inputs[0]",
        "missing required field 'name'",
    ),
    (
        "input unknown field",
        {"skill.yaml": BASE + "inputs:\n  - name: t\n    kind: x\n", "instructions.md": "x"},
        "skill.yaml",
        6,
        "inputs[0].kind",
        "unknown field 'kind'; valid fields: name, description, required, default",
    ),
    (
        "input required text",
        {"skill.yaml": BASE + "inputs:\n  - name: t\n    required: 'y'\n", "instructions.md": "x"},
        "skill.yaml",
        6,
        "inputs[0].required",
        "expected true or false",
    ),
    (
        "input default a number",
        {"skill.yaml": BASE + "inputs:\n  - name: t\n    default: 3\n", "instructions.md": "x"},
        "skill.yaml",
        6,
        "inputs[0].default",
        "expected text, got 3",
    ),
    (
        "input twice",
        {"skill.yaml": BASE + "inputs:\n  - name: t\n  - name: t\n", "instructions.md": "x"},
        "skill.yaml",
        6,
        "inputs[1].name",
        "duplicate input 't'",
    ),
    (
        "script text",
        {"skill.yaml": BASE + "script: run.sh\n", "instructions.md": "x"},
        "skill.yaml",
        4,
        "script",
        "expected a mapping (command, timeout)",
    ),
    (
        "script without command",
        {"skill.yaml": BASE + "script:\n  timeout: 5s\n", "instructions.md": "x"},
        "skill.yaml",
        4,
        "script",
        "missing required field 'command'",
    ),
    (
        "script unknown field",
        {"skill.yaml": BASE + "script:\n  command: x\n  shell: true\n", "instructions.md": "x"},
        "skill.yaml",
        6,
        "script.shell",
        "unknown field 'shell'; valid fields: command, timeout",
    ),
    (
        "command unreadable",
        {"skill.yaml": BASE + 'script:\n  command: "echo \'a"\n', "instructions.md": "x"},
        "skill.yaml",
        5,
        "script.command",
        "unreadable command: No closing quotation",
    ),
    (
        "command a mapping",
        {"skill.yaml": BASE + "script:\n  command: {a: b}\n", "instructions.md": "x"},
        "skill.yaml",
        5,
        "script.command",
        "expected a command: text or a list of words",
    ),
    (
        "command empty",
        {"skill.yaml": BASE + "script:\n  command: []\n", "instructions.md": "x"},
        "skill.yaml",
        5,
        "script.command",
        "must not be empty",
    ),
    (
        "command word a number",
        {"skill.yaml": BASE + "script:\n  command: [echo, 3]\n", "instructions.md": "x"},
        "skill.yaml",
        5,
        "script.command[1]",
        "expected text, got 3",
    ),
    (
        "command file missing",
        {"skill.yaml": BASE + "script:\n  command: [./run.sh]\n", "instructions.md": "x"},
        "skill.yaml",
        5,
        "script.command",
        "./run.sh is not a file in the skill folder",
    ),
    (
        "timeout a list",
        {"skill.yaml": BASE + "script:\n  command: x\n  timeout: [1]\n", "instructions.md": "x"},
        "skill.yaml",
        6,
        "script.timeout",
        "expected a duration such as 30s",
    ),
    (
        "timeout invalid",
        {"skill.yaml": BASE + "script:\n  command: x\n  timeout: soon\n", "instructions.md": "x"},
        "skill.yaml",
        6,
        "script.timeout",
        "invalid timeout 'soon'",
    ),
    (
        "checks a mapping",
        {"skill.yaml": BASE + "checks: {a: 1}\n", "instructions.md": "x"},
        "skill.yaml",
        4,
        "checks",
        "expected a list of checks",
    ),
    (
        "checks without script",
        {"skill.yaml": BASE + "checks:\n  - name: c\n", "instructions.md": "x"},
        "skill.yaml",
        4,
        "checks",
        "checks run the skill's script",
    ),
    (
        "check text",
        {"skill.yaml": BASE + "script: {command: x}\nchecks: [c]\n", "instructions.md": "x"},
        "skill.yaml",
        5,
        "checks[0]",
        "expected a mapping (name, input, expect, exit_code)",
    ),
    (
        "check without name",
        {
            "skill.yaml": BASE + "script: {command: x}\nchecks:\n  - expect: y\n",
            "instructions.md": "x",
        },
        "skill.yaml",
        6,
        "checks[0]",
        "missing required field 'name'",
    ),
    (
        "check unknown field",
        {
            "skill.yaml": BASE + "script: {command: x}\nchecks:\n  - name: c\n    stdin: y\n",
            "instructions.md": "x",
        },
        "skill.yaml",
        7,
        "checks[0].stdin",
        "unknown field 'stdin'; valid fields: name, input, expect, exit_code",
    ),
    (
        "check input a list",
        {
            "skill.yaml": BASE + "script: {command: x}\nchecks:\n  - name: c\n    input: [1]\n",
            "instructions.md": "x",
        },
        "skill.yaml",
        7,
        "checks[0].input",
        "expected a mapping, got a list",
    ),
    (
        "check expect a number",
        {
            "skill.yaml": BASE + "script: {command: x}\nchecks:\n  - name: c\n    expect: 3\n",
            "instructions.md": "x",
        },
        "skill.yaml",
        7,
        "checks[0].expect",
        "expected text, got 3",
    ),
    (
        "check exit code text",
        {
            "skill.yaml": BASE + "script: {command: x}\nchecks:\n  - name: c\n    exit_code: 'a'\n",
            "instructions.md": "x",
        },
        "skill.yaml",
        7,
        "checks[0].exit_code",
        "expected a whole number",
    ),
    (
        "instructions a number",
        {"skill.yaml": BASE + "instructions: 3\n"},
        "skill.yaml",
        4,
        "instructions",
        "expected text (a file name), got 3",
    ),
    (
        "instructions missing file",
        {"skill.yaml": BASE + "instructions: how.md\n"},
        "skill.yaml",
        4,
        "instructions",
        "how.md is not a file in the skill folder",
    ),
    (
        "instructions outside the folder",
        {"skill.yaml": BASE + "instructions: ../secret.md\n"},
        "skill.yaml",
        4,
        "instructions",
        "../secret.md is not a file in the skill folder",
    ),
    ("no instructions", {"skill.yaml": BASE}, "skill.yaml", 1, "", "no instructions: add"),
    (
        "SKILL.md without front matter",
        {"SKILL.md": "# Just text\n"},
        "SKILL.md",
        1,
        "",
        "no front matter",
    ),
    (
        "SKILL.md front matter a list",
        {"SKILL.md": "---\n- a\n---\nx\n"},
        "SKILL.md",
        1,
        "",
        "the front matter is a mapping",
    ),
    (
        "SKILL.md without description",
        {"SKILL.md": "---\nname: a\n---\nx\n"},
        "SKILL.md",
        1,
        "",
        "missing required field 'description'",
    ),
    (
        "SKILL.md bad name",
        {"SKILL.md": "---\ndescription: d\nname: A B\n---\nx\n"},
        "SKILL.md",
        3,
        "name",
        "invalid skill name 'A B'",
    ),
    (
        "SKILL.md bad metadata version",
        {"SKILL.md": "---\nname: a\ndescription: d\nmetadata:\n  version: 'x.y'\n---\nx\n"},
        "SKILL.md",
        5,
        "metadata.version",
        "invalid version 'x.y'",
    ),
    (
        "SKILL.md duplicate key",
        {"SKILL.md": "---\nname: a\nname: b\ndescription: d\n---\nx\n"},
        "SKILL.md",
        3,
        "name",
        "duplicate key 'name' (first at line 2)",
    ),
]


@pytest.mark.parametrize(
    ("files", "file", "line", "field", "fragment"),
    [case[1:] for case in ERRORS],
    ids=[case[0] for case in ERRORS],
)
def test_every_validation_error_names_file_line_and_field(
    tmp_path: Path,
    files: dict[str, str | bytes],
    file: str,
    line: int,
    field: str,
    fragment: str,
) -> None:
    loaded = load_skill(folder(tmp_path, files), display="skill")
    assert loaded.skill is None and not loaded.ok
    expected = "skill" if file == "skill" else f"skill/{file}"
    matching = [
        issue
        for issue in loaded.issues
        if issue.file == expected and issue.field == field and fragment in issue.message
    ]
    assert matching, [str(issue) for issue in loaded.issues]
    assert matching[0].line == line, str(matching[0])


def test_every_error_of_a_manifest_is_reported_at_once(tmp_path: Path) -> None:
    manifest = (
        "name: Bad Name\nversion: 1.0\ndescription: d\ncolour: red\n"
        "requires:\n  b: '>>1'\nscript:\n  command: []\n  timeout: soon\n"
    )
    loaded = load_skill(folder(tmp_path, {"skill.yaml": manifest}), display="s")
    where = sorted((issue.line, issue.field) for issue in loaded.issues)
    assert where == [
        (1, ""),  # no instructions
        (1, "name"),
        (2, "version"),
        (4, "colour"),
        (6, "requires.b"),
        (8, "script.command"),
        (9, "script.timeout"),
    ]
    error = InvalidSkill(loaded.issues)
    assert "invalid skill (7 errors)" in error.message and error.exit_code == 2
    assert "s/skill.yaml:2: version: expected text" in error.message


def test_a_path_that_is_not_a_folder_is_an_error(tmp_path: Path) -> None:
    loaded = load_skill(tmp_path / "missing", display="missing")
    assert [issue.message for issue in loaded.issues] == ["not a folder"]


def test_front_matter_needs_its_closing_line() -> None:
    assert split_front_matter("---\nname: a\n") is None
    assert split_front_matter("---\nname: a\n---\n\nbody") == ("name: a", "body")


# ------------------------------------------------------------------------ the registry


def write_skill(base: Path, relative: str, name: str, version: str, extra: str = "") -> None:
    target = base / relative
    target.mkdir(parents=True)
    (target / "skill.yaml").write_text(
        f"name: {name}\nversion: '{version}'\ndescription: {name} {version}\n{extra}"
    )
    (target / "instructions.md").write_text(f"{name} {version} instructions\n")


def test_the_registry_finds_shared_versioned_and_per_ai_skills(tmp_path: Path) -> None:
    base = skills_root(tmp_path)
    write_skill(base, "flat", "flat", "1.0")
    write_skill(base, "multi/1.0", "multi", "1.0")
    write_skill(base, "multi/2.0", "multi", "2.0")
    write_skill(base, "claude-1/multi", "multi", "3.0")
    write_skill(base, "claude-1/own/0.5", "own", "0.5")
    registry = discover(tmp_path)
    assert registry.issues == []
    found = sorted((skill.scope, skill.name, skill.version) for skill in registry.skills)
    assert found == [
        ("", "flat", "1.0"),
        ("", "multi", "1.0"),
        ("", "multi", "2.0"),
        ("claude-1", "multi", "3.0"),
        ("claude-1", "own", "0.5"),
    ]
    assert registry.names() == ["flat", "multi", "own"]


def test_the_registry_reports_folders_that_disagree_with_their_skill(tmp_path: Path) -> None:
    base = skills_root(tmp_path)
    write_skill(base, "wrong-name", "other", "1.0")
    write_skill(base, "multi/2.0", "multi", "1.0")
    write_skill(base, "multi/1.0", "multi", "1.0")
    write_skill(base, "multi/1.0.0", "multi", "1.0")
    registry = discover(tmp_path)
    messages = [str(issue) for issue in registry.issues]
    assert any(
        ".ai/skills/wrong-name:1: name: the skill is named 'other' but its folder is 'wrong-name'"
        in message
        for message in messages
    ), messages
    assert any("version: the skill's version is 1.0 but its folder is '2.0'" in m for m in messages)
    assert any("multi 1.0 is also in" in message for message in messages), messages
    assert [(s.name, s.version) for s in registry.skills] == [("multi", "1.0")]


def test_no_skills_folder_is_an_empty_registry(tmp_path: Path) -> None:
    registry = discover(tmp_path)
    assert registry.skills == [] and registry.issues == []


DOC = Path(__file__).resolve().parents[2] / "docs" / "skills.md"


def doc_yaml_blocks() -> list[str]:
    import re

    return re.findall(r"```yaml\n(.*?)```", DOC.read_text(encoding="utf-8"), re.DOTALL)


def test_the_manifest_in_the_docs_loads(tmp_path: Path) -> None:
    manifest = next(block for block in doc_yaml_blocks() if block.startswith("name:"))
    files = {"skill.yaml": manifest, "instructions.md": "x", "pending.py": ""}
    loaded = load_skill(folder(tmp_path, files), display="db-migrations")
    assert loaded.ok, [str(issue) for issue in loaded.issues]
    assert loaded.skill is not None and loaded.skill.requires == {"git-basics": ">=1.0,<2"}


def test_the_policy_in_the_docs_validates(tmp_path: Path) -> None:
    from aictl.policy.loader import load_text

    policy = next(block for block in doc_yaml_blocks() if block.startswith("version:"))
    loaded = load_text(policy, display="skills.md")
    assert loaded.ok, [str(issue) for issue in loaded.issues]
