"""`aictl daemon ...`: start, stop, status and logs of the scheduler daemon.

``daemon start`` without ``--foreground`` starts ``aictl daemon start --foreground`` as a
detached process. That is the one place in aictl/ that starts a process outside
``connectors.process.run_process``, on purpose: ``run_process`` supervises its child until it
ends (timeouts, group kill, reaping), which is right for an agent and wrong for a daemon that
must outlive the command that started it. The child gets its own session (no terminal
signals), no standard input, and its output in ``.ai/logs/daemon.out``.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path
from typing import Annotated, Any

import typer

from aictl.cli import output
from aictl.cli.common import JsonOption, Typer, state
from aictl.daemon.jsonlog import for_people, format_line
from aictl.daemon.runtime import DaemonPaths, DaemonRunning, is_running, read_pid, read_state
from aictl.errors import AictlError
from aictl.workspace import Workspace, locate

app = Typer(
    help="Run the scheduler: claim ready work and execute it until stopped.",
    no_args_is_help=True,
)

START_WAIT = 30.0
"""Longest wait for a background daemon to report that it serves."""


def _workspace(ctx: typer.Context) -> Workspace:
    return locate(state(ctx).db)


@app.command()
def start(
    ctx: typer.Context,
    foreground: Annotated[
        bool, typer.Option("--foreground", help="Run in this process (logs echoed here).")
    ] = False,
    concurrency: Annotated[
        int | None,
        typer.Option(
            "--concurrency",
            min=1,
            metavar="N",
            help="Executions at once (default: the policy's settings.concurrency, else 2).",
        ),
    ] = None,
    port: Annotated[
        int,
        typer.Option(
            "--port", min=0, max=65535, help="Port of /health and /metrics on 127.0.0.1 (0: any)."
        ),
    ] = 0,
    grace: Annotated[
        str,
        typer.Option(
            "--grace",
            metavar="DURATION",
            help="How long running tasks get to finish after SIGTERM: 30s, 2m.",
        ),
    ] = "30s",
    json_output: JsonOption = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="Print the pid only.")] = False,
) -> None:
    """Start the daemon: it claims ready tasks, runs them with the registered AIs, honours
    approvals, retries and quarantines, and serves /health and /metrics on 127.0.0.1.

    In the background by default (logs in .ai/logs/daemon.jsonl); one daemon per clone of
    the repository, and on SQLite one per state database: a second start names the running
    one and exits 4. On PostgreSQL, daemons in several clones share one queue
    (docs/scale.md).

    Example: aictl daemon start --concurrency 4 --port 9464
    """
    from aictl.dashboard.auth import ENVIRONMENT, new_token
    from aictl.domain.durations import parse_duration

    grace_seconds = parse_duration(grace, field="--grace", allow_zero=True).total_seconds()
    workspace = _workspace(ctx)
    if foreground:
        from aictl.daemon.scheduler import Daemon, DaemonConfig

        # A background start hands its token over in the environment; take it out at once, so
        # that no agent the daemon starts inherits it (and print it only when made here: the
        # background daemon's output goes to a file under .ai/).
        handed = os.environ.pop(ENVIRONMENT, None)
        config = DaemonConfig(
            concurrency=concurrency,
            port=port,
            grace=grace_seconds,
            console=sys.stdout,
            dashboard_token=handed or new_token(),
        )

        def announce(daemon: Daemon) -> None:
            if daemon.dashboard is not None:
                output.line(f"dashboard: {daemon.dashboard.url()}")
                sys.stdout.flush()

        raise typer.Exit(
            Daemon(workspace, config).run(signals=True, ready=None if handed else announce)
        )
    token = new_token()
    summary = _start_background(
        workspace, concurrency=concurrency, port=port, grace=grace_seconds, token=token
    )
    summary["dashboard"] = f"http://127.0.0.1:{summary['port']}/?token={token}"
    if json_output:
        output.emit_json(summary)
    elif quiet:
        output.line(str(summary["pid"]))
    else:
        output.line(
            f"daemon {summary['pid']} started (concurrency {summary['concurrency']}); "
            f"health: http://127.0.0.1:{summary['port']}/health; logs: `aictl daemon logs`"
        )
        output.line(f"dashboard: {summary['dashboard']}")


def _start_background(
    workspace: Workspace, *, concurrency: int | None, port: int, grace: float, token: str
) -> dict[str, Any]:
    paths = DaemonPaths.of(workspace)
    if is_running(paths):
        pid = read_pid(paths)
        raise DaemonRunning(
            f"a daemon already runs for {workspace.root}" + (f" (pid {pid})" if pid else ""),
            hint="`aictl daemon status` shows it; `aictl daemon stop` stops it",
        )
    argv = [sys.executable, "-m", "aictl", "--db", str(workspace.database), "daemon", "start"]
    argv += ["--foreground", "--port", str(port), "--grace", f"{round(grace * 1000)}ms"]
    if concurrency is not None:
        argv += ["--concurrency", str(concurrency)]
    paths.out.parent.mkdir(parents=True, exist_ok=True)
    from aictl.dashboard.auth import ENVIRONMENT

    pid = _spawn_detached(argv, cwd=workspace.root, out=paths.out, extra={ENVIRONMENT: token})
    deadline = time.monotonic() + START_WAIT
    while time.monotonic() < deadline:
        code = _exit_code(pid)
        if code is not None:
            tail = paths.out.read_text(errors="replace").strip().splitlines()[-5:]
            error = AictlError(
                f"the daemon exited with code {code} at start: " + " | ".join(tail),
                hint=f"the whole output is in {paths.out}",
            )
            error.exit_code = code
            raise error
        found = read_state(paths)
        if found and found.get("pid") == pid and found.get("port"):
            return {
                "pid": pid,
                "port": found["port"],
                "concurrency": found.get("concurrency"),
                "log": str(paths.log),
            }
        time.sleep(0.1)
    raise AictlError(
        f"the daemon (pid {pid}) did not report within {START_WAIT:g}s",
        hint=f"see {paths.out} and `aictl daemon logs`",
    )


def _spawn_detached(
    argv: list[str], *, cwd: Path, out: Path, extra: dict[str, str] | None = None
) -> int:
    """Start ``argv`` in a new session, stdin from /dev/null, stdout and stderr appended to
    ``out``, with ``extra`` added to the environment; return its pid without waiting
    (``posix_spawn``: a ``Popen`` left running would warn when collected, and the daemon must
    outlive this command)."""
    actions = [
        (os.POSIX_SPAWN_OPEN, 0, os.devnull, os.O_RDONLY, 0),
        (os.POSIX_SPAWN_OPEN, 1, str(out), os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644),
        (os.POSIX_SPAWN_DUP2, 1, 2),
    ]
    previous = Path.cwd()
    os.chdir(cwd)  # posix_spawn has no working-directory argument before Python 3.13
    try:
        environment = {**os.environ, **(extra or {})}
        return os.posix_spawn(argv[0], argv, environment, file_actions=actions, setsid=True)
    finally:
        os.chdir(previous)


def _exit_code(pid: int) -> int | None:
    """The child's exit code once it has exited (reaping it), else None."""
    try:
        done, status = os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        return 1
    if done == 0:
        return None
    return os.waitstatus_to_exitcode(status)


@app.command()
def stop(
    ctx: typer.Context,
    timeout: Annotated[
        str,
        typer.Option(
            "--timeout", metavar="DURATION", help="How long to wait for it to stop: 60s, 5m."
        ),
    ] = "2m",
    json_output: JsonOption = False,
    quiet: Annotated[
        bool, typer.Option("--quiet", "-q", help="Print the pid stopped only.")
    ] = False,
) -> None:
    """Stop the daemon (SIGTERM): no new claims; running tasks get the grace period to
    finish, then are interrupted and released. Waits until it has stopped. With no daemon
    running there is nothing to do: it says so and exits 0, so stopping twice is safe.

    Example: aictl daemon stop --timeout 60s
    """
    from aictl.daemon.status import DaemonNotRunning, stop_daemon
    from aictl.domain.durations import parse_duration

    seconds = parse_duration(timeout, field="--timeout", allow_zero=True).total_seconds()
    try:
        pid: int | None = stop_daemon(_workspace(ctx), timeout=seconds)
    except DaemonNotRunning:
        pid = None
    fmt = output.pick(json_output, quiet)
    if fmt is output.Format.JSON:
        output.emit_json({"stopped": pid is not None, "pid": pid})
    elif fmt is output.Format.QUIET:
        if pid is not None:
            output.line(str(pid))
    elif pid is None:
        output.line("no daemon running: nothing to stop")
    else:
        output.line(f"daemon {pid} stopped")


@app.command()
def status(
    ctx: typer.Context,
    json_output: JsonOption = False,
    quiet: Annotated[
        bool, typer.Option("--quiet", "-q", help="Print the pid only (nothing when stopped).")
    ] = False,
) -> None:
    """The daemon (pid, uptime, last tick, running tasks with their AI and elapsed time),
    the queue by status and the health of every AI.

    Example: aictl daemon status --json
    """
    from aictl.daemon.status import daemon_status

    report = daemon_status(_workspace(ctx))
    if json_output:
        output.emit_json(report)
        return
    if quiet:
        if report["running"]:
            output.line(str(report["pid"]))
        return
    if report["running"]:
        output.line(
            f"daemon {report['pid']} {report['state']} ({report['health']}), "
            f"up {report['uptime_seconds']}s, last tick {report['last_tick_age_seconds']}s ago, "
            f"concurrency {report['concurrency']}, port {report['port']}"
        )
    else:
        output.line("no daemon is running")
    output.line("queue: " + ", ".join(f"{name} {count}" for name, count in report["queue"].items()))
    if report["running_tasks"]:
        output.table(
            "running",
            ["TASK", "AI", "ELAPSED", "TITLE"],
            (
                (t["task_id"], t["ai"], f"{t['elapsed_seconds']}s", t["title"])
                for t in report["running_tasks"]
            ),
        )
    if report["ais"]:
        output.table(
            "AIs",
            ["AI", "STATUS", "LOAD", "FAILURES", "LAST ERROR"],
            (
                (
                    ai["id"],
                    ai["status"],
                    f"{ai['load']}/{ai['max_concurrency']}",
                    ai["consecutive_failures"],
                    ai["last_error"],
                )
                for ai in report["ais"]
            ),
        )


@app.command()
def logs(
    ctx: typer.Context,
    follow: Annotated[
        bool, typer.Option("--follow", "-f", help="Keep printing new lines until Ctrl-C.")
    ] = False,
    lines: Annotated[
        int,
        typer.Option(
            "--lines", "-n", min=0, metavar="N", help="How many of the last lines to show."
        ),
    ] = 50,
    json_output: Annotated[
        bool, typer.Option("--json", help="Print the JSON lines as written.")
    ] = False,
) -> None:
    """Show the daemon's log (.ai/logs/daemon.jsonl): the last lines, then new ones with
    --follow.

    Example: aictl daemon logs --follow
    """
    import json

    from aictl.daemon.status import follow as follow_log
    from aictl.daemon.status import log_lines

    path = DaemonPaths.of(_workspace(ctx)).log

    def show(record: dict[str, Any]) -> None:
        if json_output:
            output.line(json.dumps(record))
        elif for_people(record):
            output.line(format_line(record))
        sys.stdout.flush()

    # The last lines shown: the text form counts only the lines it shows.
    shown = log_lines(path) if not json_output else log_lines(path, last=lines)
    if not json_output:
        shown = [record for record in shown if for_people(record)]
        shown = shown[-lines:] if lines else []
    for record in shown:
        show(record)
    if follow:
        for record in follow_log(path, stop=lambda: False):
            show(record)
