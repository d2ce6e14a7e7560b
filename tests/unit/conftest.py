"""The daemon's scheduler tests run on both backends too (see tests/store/conftest.py)."""

from __future__ import annotations

import pytest

from tests.store.conftest import parametrise_backends

ON_BOTH = {"tests.unit.test_daemon_scheduler"}


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    parametrise_backends(metafunc, ON_BOTH)
