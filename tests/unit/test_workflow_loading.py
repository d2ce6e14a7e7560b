"""Loading workflow files: every schema error reported, together, with file, line and field;
the documented examples load."""

from __future__ import annotations

from pathlib import Path

import pytest

from aictl.workflows.loader import InvalidWorkflow, load, load_text

EXAMPLES = sorted(
    (Path(__file__).resolve().parents[2] / "aictl/templates/workflows").glob("*.yaml")
)


def issues(text: str) -> list[str]:
    return [str(issue) for issue in load_text(text, display="flow.yaml").issues]


def one(text: str) -> str:
    found = issues(text)
    assert len(found) == 1, found
    return found[0]


HEAD = "version: 1\nname: flow\nsteps:\n"


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda path: path.name)
def test_every_documented_example_loads(path: Path) -> None:
    workflow = load(path)
    assert workflow.name == path.stem and workflow.steps


def test_there_are_examples() -> None:
    assert len(EXAMPLES) >= 3


def test_a_duplicate_key_names_both_lines() -> None:
    text = HEAD + "  - id: a\n    task: {title: A}\n    task: {title: B}\n"
    assert one(text) == "flow.yaml:6: steps[0].task: duplicate key 'task' (first at line 5)"


def test_an_unknown_field_lists_the_valid_ones() -> None:
    text = HEAD + "  - id: a\n    task: {title: A, colour: red}\n"
    assert one(text).startswith("flow.yaml:5: steps[0].task.colour: unknown field 'colour'")
    assert "valid fields: title, description, paths" in one(text)


def test_an_unknown_step_in_needs() -> None:
    text = HEAD + "  - id: a\n    task: {title: A}\n    needs: [b]\n"
    assert one(text).startswith("flow.yaml:6: steps[0].needs[0]: unknown step id 'b' in needs")


def test_a_loop_step_may_not_need_a_top_level_step() -> None:
    text = HEAD + (
        "  - id: a\n    task: {title: A}\n"
        "  - id: l\n    loop:\n      max: 2\n      until: 'true'\n      steps:\n"
        "        - id: b\n          needs: [a]\n          task: {title: B}\n"
    )
    assert "put it in the needs of 'l'" in one(text)


def test_a_cycle_is_named_step_by_step() -> None:
    text = HEAD + (
        "  - id: a\n    task: {title: A}\n    needs: [c]\n"
        "  - id: b\n    task: {title: B}\n    needs: [a]\n"
        "  - id: c\n    task: {title: C}\n    needs: [b]\n"
    )
    assert one(text) == (
        "flow.yaml:6: steps[0].needs: a cycle of needs: a -> c -> b -> a (each needs the next)"
    )


def test_a_loop_without_a_maximum() -> None:
    text = HEAD + "  - id: l\n    loop:\n      until: 'true'\n      steps:\n        - id: b\n"
    text += "          task: {title: B}\n"
    assert one(text) == (
        "flow.yaml:5: steps[0].loop.max: a loop needs a maximum: add `max: N` "
        "(the most rounds it may run)"
    )


def test_a_condition_that_does_not_compile() -> None:
    text = HEAD + "  - id: a\n    task: {title: A}\n    when: steps.a.tests ==\n"
    assert one(text).startswith("flow.yaml:6: steps[0].when: condition syntax error at column")


def test_a_condition_naming_unknown_things() -> None:
    text = HEAD + (
        "  - id: a\n    task: {title: A}\n"
        "  - id: b\n    task: {title: B}\n"
        "    when: steps.a.passed && steps.zz.status == 'done' && inputs.x == 1 && nope(1)\n"
    )
    found = issues(text)
    assert any("unknown field 'passed' of steps.a" in item for item in found)
    assert any("unknown step 'zz'" in item for item in found)
    assert any("unknown input 'x'" in item for item in found)
    assert any("unknown function 'nope'" in item for item in found)
    assert all(item.startswith("flow.yaml:8: steps[1].when:") for item in found)


def test_iteration_exists_only_inside_loops() -> None:
    text = HEAD + "  - id: a\n    task: {title: 'round {{ iteration }}'}\n"
    assert "only defined inside a loop" in one(text)


def test_a_template_error_in_a_block_points_at_its_line() -> None:
    text = HEAD + "  - id: a\n    task:\n      title: A\n      description: |\n"
    text += "        fine\n        {{ inputs.nope }}\n"
    assert one(text).startswith("flow.yaml:9: steps[0].task.description: unknown input 'nope'")


def test_goto_must_go_to_a_known_step_that_has_not_run() -> None:
    text = HEAD + (
        "  - id: a\n    task: {title: A}\n"
        "  - id: b\n    needs: [a]\n    task: {title: B}\n    on_failure: {goto: a}\n"
        "  - id: c\n    task: {title: C}\n    on_failure: {goto: zz}\n"
    )
    found = issues(text)
    assert any("goto 'a' would run a step that 'b' needs" in item for item in found)
    assert any("unknown step id 'zz' in goto" in item for item in found)


def test_shape_errors_of_steps() -> None:
    text = HEAD + (
        "  - id: a\n"
        "  - id: a\n    task: {title: A}\n"
        "  - id: Bad-Id\n    task: {title: B}\n"
        "  - id: l\n    approval: true\n    loop:\n      max: 1\n      until: 'true'\n"
        "      steps:\n        - id: m\n"
        "          loop: {max: 1, until: 'true', steps: [{id: n, task: {title: N}}]}\n"
    )
    found = issues(text)
    assert any("step 'a' needs a task" in item for item in found)
    assert any("duplicate step id 'a' (first at line 4)" in item for item in found)
    assert any("invalid id 'Bad-Id'" in item for item in found)
    assert any("approval applies to a task step" in item for item in found)
    assert any("loops do not nest" in item for item in found)


def test_all_errors_are_reported_together_and_raised_as_one(tmp_path: Path) -> None:
    path = tmp_path / "flow.yaml"
    path.write_text(
        HEAD
        + "  - id: a\n    task: {title: A}\n    task: {title: B}\n    needs: [zz]\n"
        + "  - id: l\n    loop:\n      until: 'steps.a.nope'\n"
        + "      steps: [{id: b, task: {title: B}}]\n"
    )
    with pytest.raises(InvalidWorkflow) as caught:
        load(path)
    fields = [issue.field for issue in caught.value.issues]
    assert fields == [
        "steps[0].task",
        "steps[0].needs[0]",
        "steps[1].loop.max",
        "steps[1].loop.until",
    ]


def test_unreadable_files_and_structure(tmp_path: Path) -> None:
    assert issues("") == ["flow.yaml:1: the file is empty; a workflow starts with `version: 1`"]
    assert "a workflow file is a mapping" in one("- 1\n")
    assert "unsupported 'version'" in one("version: 2\nname: x\nsteps: []\n")
    assert "YAML syntax error" in one("version: 1\nname: [\n")
    missing = tmp_path / "missing.yaml"
    with pytest.raises(InvalidWorkflow, match="cannot read the file"):
        load(missing)
    binary = tmp_path / "binary.yaml"
    binary.write_bytes(b"\xff\xfe")
    with pytest.raises(InvalidWorkflow, match="not UTF-8"):
        load(binary)


def test_on_failure_words() -> None:
    text = HEAD + "  - id: a\n    task: {title: A}\n    on_failure: retry\n"
    assert "on_failure is fail, continue or {goto: STEP}; got 'retry'" in one(text)


def test_every_yaml_block_in_the_workflows_doc_loads() -> None:
    import re

    doc = Path(__file__).resolve().parents[2] / "docs" / "workflows.md"
    blocks = re.findall(r"```yaml\n(.*?)```", doc.read_text(encoding="utf-8"), re.DOTALL)
    assert blocks
    for block in blocks:
        loaded = load_text(block, display="docs/workflows.md")
        assert loaded.ok, [str(issue) for issue in loaded.issues]


def test_a_misspelt_field_gets_a_did_you_mean() -> None:
    text = HEAD + "  - id: a\n    task: {title: A, pahts: [src/**]}\n"
    assert one(text).startswith(
        "flow.yaml:5: steps[0].task.pahts: unknown field 'pahts'; did you mean `paths`? "
    )


def test_a_workflow_syntax_error_is_reported_at_the_line_to_fix() -> None:
    text = HEAD + "  - id: a\n    task\n      title: A\n"
    assert one(text).startswith("flow.yaml:5: YAML syntax error (column 5): could not find")


def test_a_misspelt_step_field_in_a_condition_gets_a_did_you_mean() -> None:
    text = HEAD + (
        "  - id: a\n    task: {title: A}\n"
        "  - id: b\n    task: {title: B}\n    when: steps.a.stauts == 'done'\n"
    )
    assert any(
        "unknown field 'stauts' of steps.a; did you mean `status`?" in i for i in issues(text)
    )
