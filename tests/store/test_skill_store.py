"""Skill settings and task skills in SQLite: per project and per AI, audited in the same
transaction; a task's skills round-trip through the store and JSON."""

from __future__ import annotations

import json

import pytest

from aictl.clock import ManualClock
from aictl.domain.tasks import Task
from aictl.errors import InvalidInput
from aictl.services.tasks import TaskService
from aictl.store.skills import SkillStore


def test_settings_per_project_and_per_ai_with_audit_events(
    service: TaskService, clock: ManualClock
) -> None:
    store = SkillStore(service.db, clock, actor="alice")
    assert store.settings() == {}
    store.set_enabled("review", True)
    store.set_enabled("review", False, scope="claude-1")
    store.record_added("deploy", "1.0", ".ai/skills/deploy/1.0", scope="claude-2")
    store.set_enabled("review", True, scope="claude-1")
    assert store.settings() == {
        ("", "review"): True,
        ("claude-1", "review"): True,
        ("claude-2", "deploy"): True,
    }
    rows = service.db.connection.execute(
        "SELECT kind, actor, data FROM audit_log ORDER BY seq"
    ).fetchall()
    events = [(row[0], row[1], json.loads(row[2])) for row in rows]
    assert [event[0] for event in events] == [
        "skill.enabled",
        "skill.disabled",
        "skill.added",
        "skill.enabled",
    ]
    assert events[1][2] == {"skill": "review", "ai": "claude-1"}
    assert events[2][2]["version"] == "1.0" and events[2][1] == "alice"


def test_a_setting_outside_the_schema_is_refused_by_the_database(service: TaskService) -> None:
    import sqlite3

    with pytest.raises(sqlite3.IntegrityError):
        service.db.connection.execute(
            "INSERT INTO skill_settings (scope, name, enabled, updated_at) VALUES ('', 'a', 2, 'x')"
        )


def test_a_task_keeps_its_skills(service: TaskService) -> None:
    task = service.create("Migrate", skills=["db-migrations", "review", "review"])
    assert task.skills == ["db-migrations", "review"]
    again = service.get(task.id)
    assert again.skills == ["db-migrations", "review"]
    assert Task.from_dict(json.loads(json.dumps(again.to_dict()))) == again
    assert service.create("plain").skills == []


def test_a_task_refuses_an_invalid_skill_name(service: TaskService) -> None:
    with pytest.raises(InvalidInput, match="invalid skill name 'Bad Name'"):
        service.create("x", skills=["Bad Name"])
    assert service.list_tasks() == []
