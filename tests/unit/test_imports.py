"""The pure import readers: format detection, creation order, and problems named precisely."""

from __future__ import annotations

import json

import pytest

from aictl.domain.imports import ImportProblem, detect, parse


def test_tasks_come_after_their_dependencies_and_file_order_is_kept_otherwise() -> None:
    text = json.dumps(
        {
            "tasks": [
                {"id": "c", "title": "C", "depends_on": ["b"]},
                {"id": "x", "title": "X"},
                {"id": "b", "title": "B", "depends_on": ["a"]},
                {"id": "a", "title": "A"},
            ]
        }
    )
    assert [task.ref for task in parse(text, name="t.json")] == ["a", "b", "c", "x"]


def test_a_long_chain_does_not_recurse() -> None:
    tasks = [{"id": i, "title": f"t{i}", "depends_on": [i + 1]} for i in range(5000)]
    tasks.append({"id": 5000, "title": "last"})
    ordered = parse(json.dumps({"tasks": tasks}), name="t.json")
    assert ordered[0].ref == "5000"
    assert ordered[-1].ref == "0"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("tasks:\n  - id: a\n    title: A\n    depends_on: [a]\n", "dependency cycle: a -> a"),
        ("tasks:\n  - id: a\n    title: A\n  - id: a\n    title: B\n", "t.yaml:4: id 'a' is used"),
        ("tasks:\n  - title: A\n    depends_on: [zz]\n", "t.yaml:2: depends_on names 'zz'"),
        ("tasks:\n  - title: A\n    priority: high\n", "t.yaml:2: field priority must be"),
        ("tasks:\n  - description: no title\n", "t.yaml:2: field title is required"),
        ("tasks:\n  - title: A\n\tpriority: 1\n", "t.yaml:3: YAML syntax error"),
        ("tasks: []\n", "no tasks to import"),
    ],
)
def test_problems_name_file_line_and_field(text: str, message: str) -> None:
    with pytest.raises(ImportProblem) as raised:
        parse(text, name="t.yaml")
    assert message in raised.value.message


def test_detection() -> None:
    assert detect("issues.jsonl", "") == "beads"
    assert detect("tasks.json", json.dumps({"master": {"tasks": []}})) == "taskmaster"
    assert detect("tasks.json", json.dumps({"tasks": [{"id": 1, "subtasks": []}]})) == "taskmaster"
    assert detect("tasks.json", json.dumps({"tasks": [{"id": 1, "title": "t"}]})) == "aictl"
    assert detect("tasks.yaml", "tasks: []") == "aictl"


def test_taskmaster_priority_words_are_checked() -> None:
    text = json.dumps({"tasks": [{"id": 1, "title": "A", "priority": "urgent"}]})
    with pytest.raises(ImportProblem, match="task entry 1: priority 'urgent'"):
        parse(text, name="tasks.json", format="taskmaster")
