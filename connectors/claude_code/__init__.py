"""The Claude Code connector (v1): drives the real ``claude`` CLI as a subprocess.

``ClaudeCodeConnector().run(request)`` builds the command (``command.build_command``) and a
scrubbed environment (``command.scrub_env``), runs it through the process runner with the
request's idle and total timeouts, parses stream-json as it arrives (``stream.StreamParser``,
each event also handed to ``request.on_event``) and judges the outcome (``judge.judge``).
With a gate, the prompt goes as stream-json on a stdin kept open and each permission request
is answered by the gate while the agent waits (``permissions``); stdin is closed at the
``result`` line so the CLI exits.
"""

from __future__ import annotations

import json
import os
import re
import tempfile
import threading
from collections.abc import Callable, Mapping
from pathlib import Path

from connectors import ConnectorError, Detection, RunRequest, RunResult
from connectors.claude_code import permissions
from connectors.claude_code.command import INSTALL_HINT, build_command, find_binary, scrub_env
from connectors.claude_code.judge import judge
from connectors.claude_code.stream import Event, Parsed, Result, StreamParser
from connectors.process import InputChannel, ProcessOutcome, run_process

NAME = "claude-code"
DETECT_TIMEOUT = 30.0
#: Detection's model address refuses at once (the discard port), with no retries.
PROBE_ENV = {
    "ANTHROPIC_BASE_URL": "http://127.0.0.1:9",
    "ANTHROPIC_API_KEY": "aictl-detection-probe",
    "CLAUDE_CODE_MAX_RETRIES": "0",
}
_VERSION = re.compile(r"\d+\.\d+\.\d+\S*")


class ClaudeCodeConnector:
    """Claude Code as a connector. ``environ`` is where the binary is looked up
    (``AICTL_CLAUDE_BIN``, ``PATH``; default ``os.environ``); ``bundled`` replaces the binary of
    the installed ``claude-agent-sdk`` (tests point it elsewhere)."""

    name = NAME
    capabilities = frozenset({"code", "edit", "read", "shell"})

    def __init__(
        self, *, environ: Mapping[str, str] | None = None, bundled: Path | None = None
    ) -> None:
        self._environ = os.environ if environ is None else environ
        self._bundled = bundled
        self._lock = threading.Lock()
        self._cancel: threading.Event | None = None
        self.last_parsed: Parsed | None = None
        self._detected: Detection | None = None
        self.last_outcome: ProcessOutcome | None = None

    def detect(self) -> Detection:
        """Find the binary, then learn its version and tools from the ``init`` line of a
        one-turn run whose model is unreachable (127.0.0.1:9, no retries: nothing leaves the
        machine, and the CLI reports itself before it calls the model). When that run says
        nothing, ``claude --version`` decides, and its failure is the error."""
        binary, searched = find_binary(self._environ, self._bundled)
        if binary is None:
            return Detection(NAME, error=_not_found(searched), searched=tuple(searched))
        parser = StreamParser()
        try:
            self._probe(binary, [], parser)
            init = parser.parsed.init
            if init is not None and init.version:
                version, tools = init.version, init.tools
            else:
                lines: list[str] = []
                outcome = self._probe(binary, ["--version"], lines)
                match = _VERSION.search(" ".join(lines))
                if outcome.exit_code != 0 or match is None:
                    said = (" ".join(lines) + " " + outcome.stderr).strip()[:500]
                    return Detection(
                        NAME,
                        binary,
                        error=f"`{binary} --version` failed (exit {outcome.exit_code}): {said}",
                    )
                version, tools = match.group(), ()
        except OSError as error:
            return Detection(NAME, binary, error=f"{binary} cannot be run: {error}")
        self._detected = Detection(
            NAME, binary, version=version, searched=tuple(searched), tools=tools
        )
        return self._detected

    def _probe(
        self, binary: Path, argv: list[str], sink: StreamParser | list[str]
    ) -> ProcessOutcome:
        """Run ``binary`` with ``argv`` (none: a one-turn run against no model) in a
        throw-away HOME, with aictl's PATH (a CLI installed as a node script needs node),
        handing its lines to ``sink``."""
        with tempfile.TemporaryDirectory(prefix="aictl-claude-detect-") as home:
            environment = scrub_env(self._environ, home=Path(home), config_dir=Path(home))
            environment.update(PROBE_ENV)
            prompt = None
            if not argv:
                request = RunRequest(prompt="Reply OK.", cwd=Path(home), run_dir=Path(home))
                argv = [*build_command(request, binary)[1:], "--max-turns=1"]
                prompt = request.prompt
            return run_process(
                [str(binary), *argv],
                cwd=home,
                env=environment,
                stdin_text=prompt,
                idle_timeout=None,
                total_timeout=DETECT_TIMEOUT,
                on_line=sink.append if isinstance(sink, list) else _feeder(sink),
                grace=1.0,
            )

    def _binary(self) -> Path:
        """The binary to run: found, not asked for its version (``detect`` does that, at
        registration); a run then costs no extra process."""
        if self._detected is not None and self._detected.binary is not None:
            return self._detected.binary
        binary, searched = find_binary(self._environ, self._bundled)
        if binary is None:
            raise ConnectorError(_not_found(searched))
        return binary

    def run(self, request: RunRequest) -> RunResult:
        """Run the agent on ``request``; raises ``ConnectorError`` when it cannot start."""
        binary = self._binary()
        home, config = request.run_dir / "home", request.run_dir / "config"
        for folder in (home, config):
            folder.mkdir(parents=True, exist_ok=True)
        parser = StreamParser()
        channel = InputChannel() if request.gate is not None else None
        if channel is not None:
            channel.send(permissions.initialize_line())
            channel.send(permissions.prompt_line(request.prompt))

        def on_line(line: str) -> None:
            if request.on_line is not None:
                request.on_line(line)
            control = "control_request" in line[:200]
            if channel is not None and control and self._answer(request, channel, line):
                return
            events: list[Event] = parser.feed(line)
            if request.on_event is not None:
                for event in events:
                    request.on_event(event)
            if channel is not None and any(isinstance(e, Result) for e in events):
                channel.close()  # the CLI waits for more input until stdin closes

        cancel = threading.Event()
        with self._lock:
            self._cancel = cancel
        try:
            outcome = run_process(
                build_command(request, binary),
                cwd=request.cwd,
                env=scrub_env(
                    request.base_env,
                    home=home,
                    config_dir=config,
                    allow=request.allow_env,
                    user_login=request.user_login,
                ),
                stdin_text=None if channel is not None else request.prompt,
                channel=channel,
                idle_timeout=request.idle_timeout,
                total_timeout=request.total_timeout,
                on_line=on_line,
                grace=request.grace,
                cancel=cancel,
            )
        except OSError as error:
            raise ConnectorError(f"{binary} cannot be run: {error}") from error
        finally:
            with self._lock:
                self._cancel = None
        self.last_parsed, self.last_outcome = parser.parsed, outcome
        return judge(outcome, parser.parsed)

    @staticmethod
    def _answer(request: RunRequest, channel: InputChannel, line: str) -> bool:
        """Answer ``line`` if it is a control request (a permission request by the gate,
        others refused); False when it is not one."""
        try:
            message = json.loads(line)
        except ValueError:
            return False
        found = permissions.control_request(message) if isinstance(message, dict) else None
        if found is None or request.gate is None:
            return False
        request_id, body = found
        hooked = permissions.hook_request(request_id, body)
        if hooked is not None:
            verdict = permissions.ask(request.gate, hooked.call)
            channel.send(permissions.hook_response_line(request_id, verdict))
            return True
        asked = permissions.permission_request(request_id, body)
        if asked is None:
            subtype = body.get("subtype")
            channel.send(permissions.error_line(request_id, f"aictl does not serve {subtype!r}"))
            return True
        verdict = permissions.ask(request.gate, asked.call)
        channel.send(permissions.response_line(request_id, asked.call, verdict))
        return True

    def cancel(self) -> None:
        """Stop the run in progress, if any (SIGINT, then SIGTERM, then SIGKILL)."""
        with self._lock:
            if self._cancel is not None:
                self._cancel.set()


def _feeder(parser: StreamParser) -> Callable[[str], None]:
    def feed(line: str) -> None:
        parser.feed(line)

    return feed


def _not_found(searched: list[str]) -> str:
    return (
        "the Claude Code CLI (claude) was not found; looked at: "
        + ", ".join(searched)
        + f"; {INSTALL_HINT}"
    )


__all__ = ["NAME", "ClaudeCodeConnector", "build_command", "judge", "scrub_env"]
