"""The dashboard's HTML, rendered on the server from the dicts ``views`` returns (pure).

Every value from the database goes through ``html.escape``: titles, reasons and tool inputs
are written by agents and must not become markup. A page is a frame (navigation, the live
region, the script) around a body; the live region alone is what ``?fragment=1`` returns, so
the page's script can swap it in when the server says something changed.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from html import escape
from typing import Any
from urllib.parse import urlencode

from aictl.dashboard import svg
from aictl.domain.budgets import format_usd

NAV = (
    ("/", "Tasks"),
    ("/agents", "Agents"),
    ("/locks", "Locks"),
    ("/approvals", "Approvals"),
    ("/decisions", "Decisions"),
    ("/money", "Money"),
)


def frame(title: str, active: str, body: str, *, controls: str = "", writable: bool) -> str:
    """A whole page: ``controls`` (forms that live updates must not reset) above the live
    region holding ``body``."""
    links = "".join(
        f'<a href="{path}"{" class=active" if path == active else ""}>{name}</a>'
        for path, name in NAV
    )
    mode = (
        '<span class="mode write">approvals enabled</span>'
        if writable
        else '<span class="mode">read-only (open the URL with its token to approve)</span>'
    )
    return (
        "<!doctype html><html lang=en><head><meta charset=utf-8>"
        f"<title>{escape(title)} · aictl</title>"
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        '<link rel="stylesheet" href="/static/dashboard.css"></head><body>'
        f"<header><strong>aictl</strong><nav>{links}</nav>{mode}"
        '<span id="live-state" title="live updates">●</span></header>'
        f"<h1>{escape(title)}</h1>{controls}"
        f'<main id="live">{body}</main>'
        '<script src="/static/dashboard.js"></script></body></html>'
    )


def _table(headers: Sequence[str], rows: Sequence[Sequence[str]], *, cls: str = "") -> str:
    """An HTML table; cells are given already escaped (some hold links)."""
    if not rows:
        return '<p class="empty">none</p>'
    head = "".join(f"<th>{escape(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{cell}</td>" for cell in row) + "</tr>" for row in rows)
    return f'<table class="{cls}"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'


def _status(status: str) -> str:
    return f'<span class="status {escape(status)}">{escape(status)}</span>'


def _task_link(task_id: Any, title: str = "") -> str:
    text = f"#{task_id}" + (f" {escape(title)}" if title else "")
    return f'<a href="/task/{int(task_id)}">{text}</a>'


def _text(value: Any) -> str:
    return "" if value is None else escape(str(value))


def tasks_controls(statuses: Sequence[str], label: str, text: str) -> str:
    boxes = "".join(
        f'<label><input type="checkbox" name="status" value="{s}"'
        f"{' checked' if s in statuses else ''}>{s}</label>"
        for s in svg.STATUS_COLOURS
    )
    return (
        '<form class="filters" method="get" action="/">'
        f"{boxes}"
        f'<input name="label" placeholder="label key=value" value="{escape(label)}">'
        f'<input name="q" placeholder="title contains" value="{escape(text)}">'
        "<button>Filter</button></form>"
    )


def tasks_body(data: Mapping[str, Any]) -> str:
    counts = data["counts"]
    summary = " ".join(
        f'{_status(status)} <b data-count="{status}">{counts.get(status, 0)}</b>'
        for status in svg.STATUS_COLOURS
    )
    graph = data["graph"]
    rows = [
        (
            _task_link(row["id"]),
            _text(row["title"]),
            _status(row["status"]),
            _text(row["priority"]),
            _text(row["lease_holder"]),
            f'<span class="why">{_text(row["why"])}</span>',
            _text(", ".join(f"{k}={v}" for k, v in row["labels"].items())),
            _text(", ".join(row["paths"])),
        )
        for row in data["rows"]
    ]
    shown = len(data["rows"])
    more = f" (the newest {shown} shown)" if shown < data["total"] else ""
    return (
        f'<p class="counts">{summary}</p>'
        f"<h2>Graph</h2><p class=note>The newest {len(graph['nodes'])} matching tasks; hover a "
        "node for why it waits.</p>"
        f'<div class="scroll">{svg.task_graph(graph["nodes"], graph["edges"], graph["layers"])}'
        f"</div><h2>Tasks: {data['total']} matching{more}</h2>"
        + _table(
            ["ID", "TITLE", "STATUS", "PRI", "HOLDER", "WAITING", "LABELS", "PATHS"],
            rows,
            cls="tasks",
        )
    )


def agents_body(rows: Sequence[Mapping[str, Any]]) -> str:
    if not rows:
        return '<p class="empty">no agent is running</p>'
    parts = []
    for row in rows:
        calls = "".join(
            f"<li><code>{escape(call['tool'])}</code> "
            f"<span class=input>{escape(_short_json(call['input']))}</span></li>"
            for call in row["tool_calls"]
        )
        parts.append(
            f'<section class="agent" data-task="{int(row["id"])}">'
            f"<h2>{_task_link(row['id'], row['title'])} {_status(row['status'])}</h2>"
            f"<p>AI <b>{_text(row['lease_holder'])}</b> · lease expires "
            f"<time>{_text(row['lease_expires_at'])}</time> · last heartbeat "
            f"{_text(row['heartbeat_at'])} · attempt {_text(row['attempts'])}</p>"
            f"<p>paths: {_text(', '.join(row['paths']))}</p>"
            + _worktree(row.get("worktree"))
            + (
                f'<ol class="tools">{calls}</ol>'
                if calls
                else "<p class=empty>no tool call yet</p>"
            )
            + "</section>"
        )
    return "".join(parts)


def _worktree(found: Mapping[str, str] | None) -> str:
    if not found:
        return '<p class="worktree">worktree: none (the main working tree)</p>'
    return (
        f'<p class="worktree">worktree <code>{escape(found["worktree"])}</code> · branch '
        f"<code>{escape(found['branch'])}</code></p>"
    )


def locks_controls(path: str) -> str:
    return (
        '<form class="filters" method="get" action="/locks">'
        f'<input name="path" size="50" placeholder="a path or glob: who holds it?"'
        f' value="{escape(path)}"><button>Who holds it</button></form>'
    )


def locks_body(data: Mapping[str, Any]) -> str:
    query = data["query"]
    answer = ""
    if query["error"]:
        answer = f'<p class="error">{escape(query["error"])}</p>'
    elif query["path"]:
        holders = query["holders"]
        answer = (
            f'<p class="answer">{escape(query["path"])}: '
            + (
                "held by "
                + ", ".join(
                    f"{_task_link(lock['task_id'])} ({escape(lock['holder'])},"
                    f" <code>{escape(lock['glob'])}</code>)"
                    for lock in holders
                )
                if holders
                else "free: no running task holds it"
            )
            + "</p>"
        )
    rows = [
        (
            f"<code>{_text(lock['glob'])}</code>",
            _task_link(lock["task_id"], lock["title"]),
            _text(lock["holder"]),
            _text(lock["lease_epoch"]),
            _text(lock["acquired_at"]),
            _text(lock["lease_expires_at"]),
        )
        for lock in data["locks"]
    ]
    return answer + _table(["GLOB", "TASK", "HOLDER", "EPOCH", "SINCE", "EXPIRES"], rows)


def approvals_body(rows: Sequence[Mapping[str, Any]], token: str | None) -> str:
    """Pending approvals; the approve and reject forms only with the token (``token`` None:
    read-only, no button at all)."""
    if not rows:
        return '<p class="empty">nothing awaits approval</p>'
    parts = []
    for row in rows:
        decision = row.get("decision") or {}
        rules = "; ".join(
            f"{rule.get('id')}: {rule.get('reason', '')}" for rule in decision.get("rules", [])
        )
        forms = ""
        if token is not None:
            hidden = (
                f'<input type="hidden" name="task" value="{int(row["id"])}">'
                f'<input type="hidden" name="token" value="{escape(token)}">'
            )
            forms = (
                f'<form method="post" action="/approve" class="inline">{hidden}'
                f'<button class="approve" data-task="{int(row["id"])}">Approve</button></form>'
                f'<form method="post" action="/reject" class="inline">{hidden}'
                '<input name="reason" required placeholder="why reject (recorded)">'
                f'<button class="reject" data-task="{int(row["id"])}">Reject</button></form>'
            )
        parts.append(
            f'<section class="approval" data-task="{int(row["id"])}">'
            f"<h2>{_task_link(row['id'], row['title'])}</h2>"
            f"<p>rule: <b>{escape(rules) or '-'}</b></p>"
            f"<p>reason: {_text(row['blocked_reason'])}</p>"
            f"<p class=note>decision {_text(decision.get('id'))} at {_text(decision.get('at'))}"
            f" for {_text(decision.get('action'))}</p>{forms}</section>"
        )
    return "".join(parts)


def decisions_body(data: Mapping[str, Any]) -> str:
    verify = data["verify"]
    if verify["ok"]:
        verdict = (
            f'<p class="verify ok">audit verify: intact, {verify["rows"]} rows,'
            f" head {verify.get('head_seq')}</p>"
        )
    else:
        verdict = (
            f'<p class="verify broken">audit verify: BROKEN: {_text(verify["problem"])}'
            + (f" (row {verify['bad_seq']})" if verify.get("bad_seq") else "")
            + "</p>"
        )
    decisions = [
        (
            _text(d["at"]),
            _text(d["action"]),
            _text(d["subject"]),
            _task_link(d["task_id"]) if d["task_id"] is not None else "",
            f'<span class="effect {escape(d["effect"])}">{escape(d["effect"])}</span>',
            _text(", ".join(str(rule.get("id")) for rule in d["rules"])),
            f"<code>{_text(d['id'])}</code>",
        )
        for d in data["decisions"]
    ]
    audit = [
        (
            _text(a["seq"]),
            _text(a["at"]),
            _text(a["kind"]),
            _text(a["actor"]),
            _task_link(a["task_id"]) if a["task_id"] is not None else "",
            f"<code>{escape(_clip(a['data'], 140))}</code>",
        )
        for a in data["audit"]
    ]
    return (
        verdict
        + "<h2>Decision records (newest 100)</h2>"
        + _table(["AT", "ACTION", "SUBJECT", "TASK", "EFFECT", "RULES", "ID"], decisions)
        + "<h2>Audit log (newest 100)</h2>"
        + _table(["SEQ", "AT", "KIND", "ACTOR", "TASK", "DATA"], audit)
    )


def money_body(data: Mapping[str, Any]) -> str:
    budgets = data["budgets"]
    note = (
        f'<p class="error">budgets unknown: {escape(budgets["error"])}</p>'
        if budgets["error"]
        else "<p class=note>budgets: daily "
        + (f"${budgets['daily_usd']:g}" if budgets["daily_usd"] is not None else "none")
        + ", per task run "
        + (f"${budgets['task_usd']:g}" if budgets["task_usd"] is not None else "none")
        + "</p>"
    )
    by_day = data["by_day"]
    by_ai = data["by_ai"]
    by_task = data["by_task"]

    def tokens(row: Mapping[str, Any]) -> str:
        return f"{int(row['input_tokens'] or 0):,} in / {int(row['output_tokens'] or 0):,} out"

    return (
        note
        + "<h2>Cost per day (USD)</h2>"
        + svg.bar_chart(
            "day",
            [(row["day"], float(row["cost_usd"])) for row in by_day],
            unit="$",
            limit=budgets["daily_usd"],
            limit_label="daily budget",
        )
        + "<h2>Cost per AI (USD)</h2>"
        + svg.bar_chart("ai", [(row["ai"], float(row["cost_usd"])) for row in by_ai], unit="$")
        + "<h2>Cost per task (USD, costliest 50)</h2>"
        + svg.bar_chart(
            "task",
            [(f"#{row['task_id']} {row['title']}", float(row["cost_usd"])) for row in by_task],
            unit="$",
        )
        + "<h2>Tokens</h2>"
        + _table(
            ["AI", "RUNS", "COST", "TOKENS"],
            [
                (_text(r["ai"]), _text(r["runs"]), format_usd(float(r["cost_usd"])), tokens(r))
                for r in by_ai
            ],
        )
        + _table(
            ["TASK", "RUNS", "COST", "TOKENS"],
            [
                (
                    _task_link(r["task_id"], r["title"]),
                    _text(r["runs"]),
                    format_usd(float(r["cost_usd"])),
                    tokens(r),
                )
                for r in by_task
            ],
        )
    )


def task_body(row: Mapping[str, Any]) -> str:
    evidence = row.get("evidence") or {}
    facts = _table(
        ["FIELD", "VALUE"],
        [
            (escape(key), _text(row.get(key)))
            for key in (
                "status",
                "priority",
                "lease_holder",
                "lease_expires_at",
                "attempts",
                "blocked_reason",
                "failure_reason",
                "approval",
                "approval_by",
                "result",
            )
            if row.get(key) not in (None, "")
        ],
    )
    tests = evidence.get("tests") or {}
    tests_html = (
        f'<p class="tests {escape(str(tests.get("status")))}">tests: '
        f"{_text(tests.get('status'))} {_text(tests.get('command'))}</p>"
        + (f"<pre>{_text(tests.get('output'))}</pre>" if tests.get("output") else "")
        if tests
        else "<p class=empty>no test results</p>"
    )
    agent = evidence.get("agent") or {}
    calls = "".join(
        f"<li><code>{escape(call['tool'])}</code> {escape(_short_json(call['input']))}</li>"
        for call in row.get("tool_calls", [])
    )
    lines = "\n".join(_clip(line, 400) for line in row.get("transcript_lines", []))
    return (
        facts
        + (
            f"<p>cost {format_usd(float(agent.get('total_cost_usd') or 0))}, "
            f"{_text(agent.get('num_turns'))} turns, session {_text(agent.get('session_id'))}</p>"
            if agent
            else ""
        )
        + "<h2>Diff</h2>"
        + diff_html(str(evidence.get("diff") or ""))
        + "<h2>Tests</h2>"
        + tests_html
        + "<h2>Tool calls</h2>"
        + (f'<ol class="tools">{calls}</ol>' if calls else "<p class=empty>none recorded</p>")
        + "<h2>Transcript (last 200 lines)</h2>"
        + (f'<pre class="transcript">{escape(lines)}</pre>' if lines else "<p class=empty>none</p>")
    )


def diff_html(diff: str) -> str:
    """A unified diff with each line classed by its first character (added, removed, hunk,
    file header), for colour."""
    if not diff.strip():
        return '<p class="empty">no changes recorded</p>'
    out = []
    for line in diff.splitlines():
        if line.startswith(("+++", "---", "diff ", "index ")):
            cls = "file"
        elif line.startswith("+"):
            cls = "add"
        elif line.startswith("-"):
            cls = "del"
        elif line.startswith("@@"):
            cls = "hunk"
        else:
            cls = "ctx"
        out.append(f'<span class="{cls}">{escape(line)}</span>')
    return '<pre class="diff">' + "\n".join(out) + "</pre>"


def message_page(title: str, message: str, hint: str | None = None) -> str:
    return (
        "<!doctype html><html lang=en><head><meta charset=utf-8>"
        f"<title>{escape(title)}</title>"
        '<link rel="stylesheet" href="/static/dashboard.css"></head><body>'
        f'<h1>{escape(title)}</h1><p class="error">Error: {escape(message)}</p>'
        + (f"<p>hint: {escape(hint)}</p>" if hint else "")
        + '<p><a href="/approvals">back</a></p></body></html>'
    )


def query_string(params: Mapping[str, Any]) -> str:
    return urlencode(params, doseq=True)


def _short_json(value: Any) -> str:
    return _clip(json.dumps(value, sort_keys=True, default=str), 200)


def _clip(text: str, size: int) -> str:
    return text if len(text) <= size else text[: size - 1] + "…"
