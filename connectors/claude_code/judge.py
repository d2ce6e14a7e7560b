"""How a Claude Code run is judged: from its ``result`` line, never from the exit code alone.

Observed with 2.1.197, and why each rule exists:

- an API error ends with exit 1, ``is_error: true`` and yet ``subtype: "success"``;
- a tool denied by permissions leaves exit 0 and ``subtype: "success"``: only
  ``permission_denials`` shows it, and the model may claim it did the work anyway;
- ``--max-turns`` reached: ``error_max_turns``; ``--max-budget-usd`` reached:
  ``error_max_budget_usd`` (both exit 1);
- SIGTERM: exit 143 and no ``result`` line. No ``result`` line means the run failed.

Reasons (stable words) and whether a retry may help:

=====================  =========  ====================================================
reason                 retryable  when
=====================  =========  ====================================================
``idle_timeout``       yes        no result line; no output for the idle timeout
``total_timeout``      yes        no result line; the run outlived the total timeout
``cancelled``          no         no result line; ``cancel()`` was called
``interrupted``        yes        no result line; ended by a signal (or exit 130/143)
``crashed``            yes        no result line otherwise
``permission_denied``  no         the result lists permission denials (policy)
``max_turns``          no         ``error_max_turns``
``max_budget``         no         ``error_max_budget_usd``
``api_error``          5xx, 429,  ``is_error`` with ``api_error_status`` (or an
                       overloaded overloaded message); other statuses are not retryable
``agent_error``        yes        any other ``is_error: true`` or unknown subtype
=====================  =========  ====================================================

When aictl stopped the run (a timeout or ``cancel()``) the stop's reason replaces
``agent_error`` and ``api_error``: interrupted by SIGINT, 2.1.197 still writes a ``result``
line (``error_during_execution``, ``terminal_reason: aborted_streaming``) and exits 0.
"""

from __future__ import annotations

from dataclasses import replace

from connectors import RunResult
from connectors.claude_code.stream import Parsed, Result
from connectors.process import ProcessOutcome

#: Exit codes a shell gives a process ended by SIGINT and SIGTERM.
INTERRUPTED_EXIT_CODES = frozenset({130, 143})
STDERR_TAIL = 2000
#: Verdicts that, when aictl itself stopped the run, are a consequence of the stop.
STOPPED_LOOKS_LIKE = frozenset({"agent_error", "api_error"})


def _retryable_status(status: int | None, text: str) -> bool:
    if status is not None:
        return status >= 500 or status == 429
    return "overloaded" in text.lower()


def judge(outcome: ProcessOutcome, parsed: Parsed) -> RunResult:
    """The ``RunResult`` of a finished run; success only when a ``result`` line says
    ``is_error: false`` with subtype ``success`` and lists no permission denials."""
    evidence = RunResult(
        status="failed",
        exit_code=outcome.exit_code,
        signal=outcome.signal,
        stderr=outcome.stderr,
        duration=outcome.duration,
        malformed_lines=len(parsed.malformed),
        session_id=parsed.init.session_id if parsed.init else None,
    )
    result = parsed.result
    if result is None:
        reason, retryable, detail = _without_result(outcome)
        return replace(evidence, reason=reason, retryable=retryable, detail=detail)
    evidence = replace(
        evidence,
        session_id=result.session_id or evidence.session_id,
        num_turns=result.num_turns,
        total_cost_usd=result.total_cost_usd,
        usage=result.usage,
        permission_denials=result.permission_denials,
        api_error_status=result.api_error_status,
        result_text=result.text,
    )
    verdict = _with_result(result)
    if verdict is None:
        return replace(evidence, status="success")
    reason, retryable, detail = verdict
    if outcome.stopped and reason in STOPPED_LOOKS_LIKE:
        # Observed: SIGINT during a stalled stream makes 2.1.197 write a result line
        # (error_during_execution, terminal_reason aborted_streaming) and exit 0. The cause is
        # our stop, not the agent.
        reason, retryable, why = _without_result(outcome)
        detail = f"{why}; the CLI reported {result.subtype!r} ({result.terminal_reason})"
    return replace(evidence, reason=reason, retryable=retryable, detail=detail)


def _without_result(outcome: ProcessOutcome) -> tuple[str, bool, str]:
    tail = outcome.stderr.strip()[-STDERR_TAIL:]
    said = f"; stderr: {tail}" if tail else ""
    if outcome.timed_out == "idle":
        return "idle_timeout", True, f"no output for the idle timeout; stopped{said}"
    if outcome.timed_out == "total":
        return "total_timeout", True, f"the run outlived the total timeout; stopped{said}"
    if outcome.cancelled:
        return "cancelled", False, "cancelled before a result line"
    if outcome.signal is not None or outcome.exit_code in INTERRUPTED_EXIT_CODES:
        how = f"signal {outcome.signal}" if outcome.signal else f"exit {outcome.exit_code}"
        return "interrupted", True, f"interrupted ({how}) before a result line{said}"
    return "crashed", True, f"exit {outcome.exit_code} without a result line{said}"


def _with_result(result: Result) -> tuple[str, bool, str] | None:
    text = result.text or ""
    if result.permission_denials:
        tools = sorted({str(d.get("tool_name", "?")) for d in result.permission_denials})
        return (
            "permission_denied",
            False,
            f"{len(result.permission_denials)} tool call(s) denied by permissions: "
            + ", ".join(tools),
        )
    if result.subtype == "error_max_turns":
        return "max_turns", False, f"max turns reached after {result.num_turns} turns"
    if result.subtype == "error_max_budget_usd":
        return "max_budget", False, f"max budget reached (cost {result.total_cost_usd} USD)"
    if result.is_error and (result.api_error_status is not None or "API Error" in text):
        status = result.api_error_status
        return (
            "api_error",
            _retryable_status(status, text),
            f"API error {status if status is not None else '(no status)'}: {text[:500]}",
        )
    if result.is_error or result.subtype != "success":
        return "agent_error", True, f"result {result.subtype!r} with is_error: {text[:500]}"
    return None
