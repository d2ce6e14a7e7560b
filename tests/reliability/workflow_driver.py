"""``python -m tests.reliability.workflow_driver ARGS``: the real ``aictl`` CLI (``run(ARGS)``)
in its own process, with a fake connector registered, so that a test can SIGKILL a process that
is driving a workflow run.

The connector appends the first line of every prompt to ``runs.log`` in the repository; while
a file ``stall`` exists there, a prompt containing ``Stall here`` writes ``stalled`` and sleeps
(the moment the test kills the process).
"""

from __future__ import annotations

import sys
import time

import connectors
from connectors import Detection, RunRequest, RunResult


class SlowAgent:
    name = "fake"
    capabilities = frozenset({"edit"})

    def detect(self) -> Detection:
        return Detection("fake")

    def run(self, request: RunRequest) -> RunResult:
        with (request.cwd / "runs.log").open("a") as log:
            log.write(request.prompt.splitlines()[0] + "\n")
        if "Stall here" in request.prompt and (request.cwd / "stall").exists():
            (request.cwd / "stalled").write_text("yes\n")
            time.sleep(600)
        return RunResult(status="success", num_turns=1)

    def cancel(self) -> None:
        pass


def main() -> int:
    connectors.register("fake", SlowAgent)
    from aictl.cli import run

    return run(sys.argv[1:])


if __name__ == "__main__":
    sys.exit(main())
