"""`aictl task edit`, `task comment` and `task import` through the CLI: exit codes, what is
stored, the audit events, and that `audit verify` still agrees with the state."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from aictl.workspace import Workspace
from tests.cli.conftest import Result

Aictl = Callable[..., Result]


def ok(aictl: Aictl, *args: str) -> str:
    code, out, err = aictl(*args)
    assert code == 0, err
    return out


def show(aictl: Aictl, task_id: int) -> dict[str, object]:
    data: dict[str, object] = json.loads(ok(aictl, "task", "show", str(task_id), "--json"))
    return data


def audit(aictl: Aictl) -> list[dict[str, object]]:
    entries: list[dict[str, object]] = json.loads(ok(aictl, "audit", "log", "--json"))
    return entries


def verified(aictl: Aictl) -> None:
    code, out, err = aictl("audit", "verify")
    assert code == 0, out + err


def test_edit_changes_every_field_audits_it_and_verify_agrees(aictl: Aictl) -> None:
    ok(aictl, "task", "create", "First", "-q")
    ok(aictl, "task", "create", "Second", "--label", "team=web", "--label", "old=1", "-q")
    out = ok(
        aictl,
        *("task", "edit", "2", "--title", "Second, renamed", "--description", "more"),
        *("--priority", "7", "--path", "src/**", "--path", "docs/*.md"),
        *("--label", "area=api", "--label", "old-", "--depends-on", "1", "--json"),
    )
    task = json.loads(out)
    assert task["title"] == "Second, renamed"
    assert task["description"] == "more"
    assert task["priority"] == 7
    assert task["paths"] == ["src/**", "docs/*.md"]
    assert task["labels"] == {"team": "web", "area": "api"}
    assert task["depends_on"] == [1]
    edited = [e for e in audit(aictl) if e["kind"] == "task.edited"]
    assert len(edited) == 1
    assert edited[0]["data"]["depends_on"] == [1]  # type: ignore[index]
    assert edited[0]["data"]["title"] == "Second, renamed"  # type: ignore[index]
    verified(aictl)
    ready = json.loads(ok(aictl, "task", "list", "--ready", "--json"))
    assert [t["id"] for t in ready] == [1]  # 2 now waits for 1
    task = json.loads(ok(aictl, "task", "edit", "2", "--remove-dependency", "1", "--json"))
    assert task["depends_on"] == []
    task = json.loads(ok(aictl, "task", "edit", "2", "--clear-paths", "--json"))
    assert task["paths"] == []
    verified(aictl)


def test_edit_refuses_a_cycle_naming_it_and_changes_nothing(aictl: Aictl) -> None:
    for title in ("A", "B", "C"):
        ok(aictl, "task", "create", title, "-q")
    ok(aictl, "task", "link", "2", "1")
    ok(aictl, "task", "link", "3", "2")
    before = audit(aictl)
    code, _, err = aictl("task", "edit", "1", "--depends-on", "3", "--title", "A2")
    assert code == 2
    assert "dependency cycle: 1 -> 3 -> 2 -> 1" in err
    assert show(aictl, 1)["title"] == "A"
    assert audit(aictl) == before


def test_edit_of_a_claimed_task_exits_4_and_of_a_done_task_exits_2(aictl: Aictl) -> None:
    ok(aictl, "task", "create", "Held", "-q")
    token = ok(aictl, "task", "claim", "1", "--as", "worker-1", "-q").strip()
    code, _, err = aictl("task", "edit", "1", "--title", "New")
    assert code == 4
    assert "claimed by worker-1" in err
    ok(aictl, "task", "start", "1", "--lease", token)
    ok(aictl, "task", "complete", "1", "--lease", token)
    code, _, err = aictl("task", "edit", "1", "--title", "New")
    assert code == 2
    assert "it is done" in err
    assert show(aictl, 1)["title"] == "Held"


def test_edit_checks_paths_as_create_does(aictl: Aictl) -> None:
    ok(aictl, "task", "create", "T", "--path", "src/**", "-q")
    code, _, err = aictl("task", "edit", "1", "--path", "../outside/**")
    assert code == 2
    assert "'../outside/**': it is outside the repository" in err
    assert show(aictl, 1)["paths"] == ["src/**"]
    code, _, err = aictl("task", "edit", "1")
    assert code == 2
    assert "nothing to change" in err
    code, _, err = aictl("task", "edit", "1", "--path", "lib/**", "--clear-paths")
    assert code == 2
    assert "contradict" in err


def deny_secrets(workspace: Workspace) -> None:
    """A policy that refuses to create a task touching secrets/."""
    (workspace.state_dir / "policy.yaml").write_text(
        "version: 1\ndefault: allow\nrules:\n"
        "  - id: no-secrets\n    effect: deny\n    actions: [create]\n"
        "    when: \"task.paths.exists(p, p.startsWith('secrets/'))\"\n"
        "    reason: secrets are off limits\n",
        encoding="utf-8",
    )


def test_edit_is_judged_by_the_policy_as_a_new_task(aictl: Aictl, workspace: Workspace) -> None:
    ok(aictl, "task", "create", "T", "--path", "src/**", "-q")
    deny_secrets(workspace)
    code, _, err = aictl("task", "edit", "1", "--path", "secrets/**")
    assert code == 3
    assert "secrets are off limits" in err
    assert show(aictl, 1)["paths"] == ["src/**"]
    verified(aictl)


def test_comments_are_appended_shown_and_audited(
    aictl: Aictl, monkeypatch: object, workspace: Workspace
) -> None:
    ok(aictl, "task", "create", "T", "-q")
    first = json.loads(ok(aictl, "task", "comment", "1", "waiting on review", "--json"))
    assert first["author"].startswith("user:")
    assert ok(aictl, "task", "comment", "1", "second", "-q").strip() == "2"
    task = show(aictl, 1)
    assert [c["body"] for c in task["comments"]] == ["waiting on review", "second"]  # type: ignore[union-attr, index]
    table = ok(aictl, "task", "show", "1")
    assert "waiting on review" in table
    kinds = [e["kind"] for e in audit(aictl)]
    assert kinds.count("task.commented") == 2
    verified(aictl)
    code, _, err = aictl("task", "comment", "1", "   ")
    assert code == 2
    assert "needs text" in err
    code, _, _ = aictl("task", "comment", "99", "x")
    assert code == 2


def test_comments_cannot_be_changed_in_the_database(aictl: Aictl, workspace: Workspace) -> None:
    import sqlite3

    import pytest

    ok(aictl, "task", "create", "T", "-q")
    ok(aictl, "task", "comment", "1", "kept")
    connection = sqlite3.connect(workspace.db_path)
    with pytest.raises(sqlite3.IntegrityError, match="append-only"):
        connection.execute("UPDATE task_comments SET body = 'changed'")
    with pytest.raises(sqlite3.IntegrityError, match="append-only"):
        connection.execute("DELETE FROM task_comments")
    connection.close()


def write(workspace: Workspace, name: str, text: str) -> Path:
    path = workspace.root / name
    path.write_text(text, encoding="utf-8")
    return path


def test_import_of_aictl_yaml_creates_all_with_dependencies(
    aictl: Aictl, workspace: Workspace
) -> None:
    write(
        workspace,
        "tasks.yaml",
        "tasks:\n"
        "  - id: api\n    title: Build the API\n    depends_on: [schema]\n"
        "    labels: {area: api}\n    priority: 3\n"
        "  - id: schema\n    title: Design the schema\n    paths: [db/**]\n",
    )
    plan = json.loads(ok(aictl, "task", "import", "tasks.yaml", "--dry-run", "--json"))
    assert plan["dry_run"] is True
    assert [t["ref"] for t in plan["tasks"]] == ["schema", "api"]
    assert json.loads(ok(aictl, "task", "list", "--json")) == []
    done = json.loads(ok(aictl, "task", "import", "tasks.yaml", "--json"))
    ids = {t["ref"]: t["id"] for t in done["tasks"]}
    api = show(aictl, ids["api"])
    assert api["depends_on"] == [ids["schema"]]
    assert api["labels"] == {"area": "api"}
    assert show(aictl, ids["schema"])["paths"] == ["db/**"]
    verified(aictl)


def test_import_refuses_a_cycle_and_a_bad_field_creating_nothing(
    aictl: Aictl, workspace: Workspace
) -> None:
    write(
        workspace,
        "cycle.yaml",
        "tasks:\n  - id: a\n    title: A\n    depends_on: [b]\n"
        "  - id: b\n    title: B\n    depends_on: [a]\n",
    )
    code, _, err = aictl("task", "import", "cycle.yaml")
    assert code == 2
    assert "dependency cycle: a -> b -> a" in err
    write(
        workspace,
        "bad.yaml",
        "tasks:\n  - title: fine\n  - title: also fine\n    paths: ['../x']\n",
    )
    code, _, err = aictl("task", "import", "bad.yaml")
    assert code == 2
    assert "bad.yaml:3:" in err
    assert "'../x': it is outside the repository" in err
    write(workspace, "typo.yaml", "tasks:\n  - title: x\n    priorty: 3\n")
    code, _, err = aictl("task", "import", "typo.yaml")
    assert code == 2
    assert "typo.yaml:2: unknown field 'priorty'" in err
    assert "did you mean `priority`?" in err
    assert json.loads(ok(aictl, "task", "list", "--json")) == []


def test_import_of_a_taskmaster_file(aictl: Aictl, workspace: Workspace) -> None:
    data = {
        "master": {
            "tasks": [
                {"id": 1, "title": "Setup", "status": "done", "priority": "high"},
                {
                    "id": 2,
                    "title": "Schema",
                    "description": "tables",
                    "details": "use migrations",
                    "testStrategy": "run them",
                    "status": "pending",
                    "priority": "high",
                    "dependencies": [1],
                    "subtasks": [
                        {"id": 1, "title": "Tables", "dependencies": [], "status": "pending"},
                        {"id": 2, "title": "Migrations", "dependencies": [1], "status": "pending"},
                    ],
                },
                {"id": 3, "title": "API", "priority": "low", "dependencies": ["2"]},
            ]
        }
    }
    write(workspace, "tasks.json", json.dumps(data))
    done = json.loads(ok(aictl, "task", "import", "tasks.json", "--json"))
    assert done["format"] == "taskmaster"
    ids = {t["ref"]: t["id"] for t in done["tasks"]}
    assert sorted(ids) == ["2", "2.1", "2.2", "3"]  # the done task is left out
    schema = show(aictl, ids["2"])
    assert schema["depends_on"] == sorted([ids["2.1"], ids["2.2"]])
    assert "Details:\nuse migrations" in str(schema["description"])
    assert schema["priority"] == 2
    assert show(aictl, ids["2.2"])["depends_on"] == [ids["2.1"]]
    assert show(aictl, ids["3"])["depends_on"] == [ids["2"]]
    verified(aictl)


def test_import_of_beads_names_the_line_of_a_problem(aictl: Aictl, workspace: Workspace) -> None:
    lines = [
        {"id": "bd-1", "title": "One", "status": "open", "priority": 0, "issue_type": "bug"},
        {
            "id": "bd-2",
            "title": "Two",
            "priority": 2,
            "dependencies": [
                {"issue_id": "bd-2", "depends_on_id": "bd-1", "type": "blocks"},
                {"issue_id": "bd-2", "depends_on_id": "bd-3", "type": "related"},
            ],
        },
        {"id": "bd-3", "title": "Three", "status": "closed"},
    ]
    write(workspace, "issues.jsonl", "\n".join(json.dumps(line) for line in lines) + "\n")
    done = json.loads(ok(aictl, "task", "import", "issues.jsonl", "--json"))
    ids = {t["ref"]: t["id"] for t in done["tasks"]}
    assert sorted(ids) == ["bd-1", "bd-2"]
    one = show(aictl, ids["bd-1"])
    assert (one["type"], one["priority"]) == ("bug", 4)
    assert show(aictl, ids["bd-2"])["depends_on"] == [ids["bd-1"]]
    write(workspace, "broken.jsonl", json.dumps(lines[0]) + '\n{"id": "bd-9", "priority": 2}\n')
    code, _, err = aictl("task", "import", "broken.jsonl")
    assert code == 2
    assert "broken.jsonl:2: field title is required" in err
    assert len(json.loads(ok(aictl, "task", "list", "--json"))) == 2


def test_audit_verify_names_a_comment_changed_or_inserted_outside_aictl(
    aictl: Aictl, workspace: Workspace
) -> None:
    import sqlite3

    ok(aictl, "task", "create", "T", "-q")
    ok(aictl, "task", "comment", "1", "genuine")
    connection = sqlite3.connect(workspace.db_path)
    connection.execute("DROP TRIGGER task_comments_no_update")
    connection.execute("UPDATE task_comments SET body = 'rewritten'")
    connection.commit()
    code, out, err = aictl("audit", "verify")
    assert code == 1
    assert "comment 1 differs from its audit row" in out + err
    connection.execute("UPDATE task_comments SET body = 'genuine'")
    connection.execute(
        "INSERT INTO task_comments (task_id, author, body, created_at)"
        " VALUES (1, 'user:mallory', 'forged', '2026-01-01T00:00:00Z')"
    )
    connection.commit()
    connection.close()
    code, out, err = aictl("audit", "verify")
    assert code == 1
    assert "comment 2 is not in the audit log" in out + err


def test_import_denied_by_the_policy_creates_nothing(aictl: Aictl, workspace: Workspace) -> None:
    deny_secrets(workspace)
    write(
        workspace,
        "tasks.yaml",
        "tasks:\n  - title: fine\n  - title: not fine\n    paths: [secrets/**]\n",
    )
    decisions = len(json.loads(ok(aictl, "policy", "decisions", "--json")))
    code, _, err = aictl("task", "import", "tasks.yaml", "--dry-run")
    assert code == 3
    assert "policy denies creating tasks.yaml:3: project:no-secrets: secrets are off" in err
    assert len(json.loads(ok(aictl, "policy", "decisions", "--json"))) == decisions
    code, _, err = aictl("task", "import", "tasks.yaml")
    assert code == 3
    assert json.loads(ok(aictl, "task", "list", "--json")) == []
    verified(aictl)
