"""15. Importing many tasks: ``aictl task import`` against one ``task create`` per task.

What is measured: 1,000 tasks, each locking its own glob (``pkg{i}/**``) and depending on the
one before (a chain: the worst case for ordering and for the ``unmet_deps`` counts), imported
from an aictl JSON file through ``aictl.services.task_changes.import_file``: parsing,
ordering, validation of every task as ``task create`` validates it, one policy decision per
task, and one transaction. The baseline, in the same run: the same 1,000 tasks created by
1,000 ``TaskService.create`` calls (one transaction each, as a script calling ``aictl task
create`` in a loop would do, without the process start-ups). Rounds alternate ABBA, each on a
fresh repository with the default policy and ``synchronous=FULL``. A third figure: the whole
``aictl task import`` process, start-up included.

Every round checks that 1,000 tasks exist, that the last depends on the one before, and that
the audit chain and the state verify.
"""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path

from bench.cli import aictl_command
from bench.common import Measurement, Row, Settings, git_init, scratch_dir, summary_ms

TASKS = 1_000


def _tasks() -> list[dict[str, object]]:
    return [
        {
            "id": index,
            "title": f"imported task {index}",
            "paths": [f"pkg{index}/**"],
            "depends_on": [index - 1] if index else [],
        }
        for index in range(TASKS)
    ]


def _repository(folder: Path) -> Path:
    from aictl.workspace import initialise

    root = git_init(folder)
    initialise(root)
    (root / "tasks.json").write_text(json.dumps({"tasks": _tasks()}), encoding="utf-8")
    return root


def _check(root: Path) -> None:
    from aictl.services.audit import verify_database
    from aictl.services.tasks import TaskService
    from aictl.workspace import locate

    service = TaskService(locate(cwd=root))
    try:
        tasks = service.list_tasks()
        if len(tasks) != TASKS or tasks[-1].depends_on != [tasks[-2].id]:
            raise RuntimeError(f"expected a chain of {TASKS} tasks, found {len(tasks)}")
        result = verify_database(service.store.audit)
        if not result.ok:
            raise RuntimeError(f"audit verify failed after the import: {result.problem}")
    finally:
        service.close()


def _import(root: Path) -> float:
    from aictl.services.task_changes import import_file
    from aictl.services.tasks import TaskService
    from aictl.workspace import locate

    service = TaskService(locate(cwd=root))
    try:
        started = time.perf_counter()
        import_file(service, root / "tasks.json")
        return time.perf_counter() - started
    finally:
        service.close()


def _create_each(root: Path) -> float:
    from aictl.services.tasks import TaskService
    from aictl.workspace import locate

    service = TaskService(locate(cwd=root))
    try:
        started = time.perf_counter()
        previous: int | None = None
        for index in range(TASKS):
            previous = service.create(
                f"imported task {index}",
                paths=[f"pkg{index}/**"],
                depends_on=[previous] if previous else [],
            ).id
        return time.perf_counter() - started
    finally:
        service.close()


def _cli_import(root: Path, aictl: list[str]) -> float:
    started = time.perf_counter()
    subprocess.run(
        [*aictl, "task", "import", "tasks.json", "-q"],
        cwd=root,
        check=True,
        capture_output=True,
        timeout=600,
    )
    return time.perf_counter() - started


def run(settings: Settings) -> Measurement:
    rounds = 2 if settings.quick else 6
    aictl, aictl_text = aictl_command()
    measurement = Measurement(
        "imports",
        f"15. Importing {TASKS:,} tasks in one transaction",
        parameters={"tasks": TASKS, "rounds": rounds, "aictl": aictl_text},
    )
    imported: list[float] = []
    created: list[float] = []
    whole: list[float] = []
    with scratch_dir("imports") as folder:
        for index in range(rounds):
            order = ("import", "create") if index % 4 in (0, 3) else ("create", "import")
            for arm in order:
                root = _repository(folder / f"{arm}-{index}")
                (imported if arm == "import" else created).append(
                    _import(root) if arm == "import" else _create_each(root)
                )
                _check(root)
            root = _repository(folder / f"cli-{index}")
            whole.append(_cli_import(root, aictl))
            _check(root)
    stats = {"import": summary_ms(imported), "create": summary_ms(created)}
    baseline = f"{TASKS:,} x TaskService.create"
    measurement.rows.append(Row(
        "import_file, median", stats["import"]["median_ms"], "ms", baseline,
        stats["create"]["median_ms"], detail=stats["import"],
    ))  # fmt: skip
    measurement.rows.append(Row(
        "aictl task import (whole process), median", summary_ms(whole)["median_ms"], "ms",
        baseline, stats["create"]["median_ms"], detail=summary_ms(whole),
    ))  # fmt: skip
    measurement.notes.append(
        f"{rounds} rounds, ABBA; a chain of {TASKS:,} dependencies, one glob per task"
    )
    return measurement
