"""The store's tests run on both backends: one parametrised fixture, not copies (the daemon's
scheduler tests too, through tests/unit/conftest.py).

Every test here that uses the ``workspace`` fixture (directly or through ``service``) runs
once on SQLite and once on PostgreSQL, in the modules listed in ``ON_BOTH``; a test that checks
something only SQLite has (its file, its pragmas, its error codes) carries
``@pytest.mark.sqlite_only`` and runs on SQLite alone.
"""

from __future__ import annotations

import pytest

from tests.conftest import postgres_wanted

ON_BOTH = {
    "tests.store.test_task_store",
    "tests.store.test_audit",
    "tests.store.test_ais",
    "tests.store.test_budgets",
    "tests.store.test_enforcement",
    "tests.store.test_person_only",
    "tests.store.test_skill_store",
    "tests.store.test_skill_runs",
    "tests.store.test_workflow_store",
    "tests.store.test_peers",
    "tests.store.test_outside_changes",
    "tests.store.test_worktrees",
    "tests.store.test_executor",
    "tests.store.test_remote_integration",
    "tests.store.test_workflow_worktrees",
}


def parametrise_backends(metafunc: pytest.Metafunc, on_both: set[str]) -> None:
    """Run ``metafunc``'s test on both backends when its module is in ``on_both``."""
    if (
        "backend" in metafunc.fixturenames
        and metafunc.module.__name__ in on_both
        and metafunc.definition.get_closest_marker("sqlite_only") is None
    ):
        backends = ["sqlite", "postgresql"] if postgres_wanted() else ["sqlite"]
        metafunc.parametrize("backend", backends, indirect=True)


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    parametrise_backends(metafunc, ON_BOTH)
