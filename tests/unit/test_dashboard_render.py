"""The dashboard's pure parts: waiting reasons, tool calls from a transcript, escaping, the
inline SVG charts and graph, and the token and origin checks."""

from __future__ import annotations

import json
import re

from aictl.dashboard import auth, pages, svg, views

NOW = "2026-01-01T12:00:00.000000Z"


def row(**fields: object) -> dict[str, object]:
    base: dict[str, object] = {
        "status": "queued",
        "unmet_deps": 0,
        "not_before": None,
        "paths": [],
        "approval": None,
        "blocked_reason": None,
    }
    return {**base, **fields}


def test_waiting_reasons_name_what_a_task_waits_for() -> None:
    assert views.waiting_reason(row(unmet_deps=2), [], NOW) == (
        "waiting for 2 dependencies to finish"
    )
    assert views.waiting_reason(row(unmet_deps=1), [], NOW).endswith("1 dependency to finish")
    assert "backoff until 2026-01-02" in views.waiting_reason(
        row(not_before="2026-01-02T00:00:00Z"), [], NOW
    )
    assert views.waiting_reason(row(paths=["src/a/*.py"]), ["src/*/a.py"], NOW) == (
        "waiting for a path lock held by a running task"
    )
    assert views.waiting_reason(row(paths=["docs/*.md"]), ["src/**"], NOW).startswith("ready")
    blocked = row(status="blocked", approval="pending", blocked_reason="gate: a person decides")
    assert views.waiting_reason(blocked, [], NOW) == (
        "awaiting a person's approval: gate: a person decides"
    )
    assert views.waiting_reason(row(status="running"), [], NOW) == ""


def test_tool_calls_are_read_from_stream_json_and_a_cut_line_is_skipped() -> None:
    def use(name: str, **tool_input: object) -> str:
        content = [
            {"type": "text", "text": "hm"},
            {"type": "tool_use", "name": name, "input": tool_input},
        ]
        return json.dumps({"type": "assistant", "message": {"content": content}})

    lines = [
        '_use", "name": "Cut"}]}}',  # the first line of a tail, cut in the middle
        use("Read", file_path="a.py"),
        json.dumps({"type": "user", "message": {"content": []}}),
        use("Write", file_path="b.py", content="x"),
        use("Bash", command="make test"),
    ]
    calls = views.tool_calls(lines, last=2)
    assert calls == [
        {"tool": "Write", "input": {"file_path": "b.py", "content": "x"}},
        {"tool": "Bash", "input": {"command": "make test"}},
    ]


def test_a_tail_drops_its_cut_first_line(tmp_path: object) -> None:
    from pathlib import Path

    path = Path(str(tmp_path)) / "t.jsonl"
    path.write_text("first line\nsecond\nthird\n")
    assert views.read_tail(path, size=12) == ["third"]  # "second\nthird\n" cut inside "second"
    assert views.read_tail(path) == ["first line", "second", "third"]


def test_agent_written_text_is_escaped_everywhere() -> None:
    evil = '<script>alert("x")</script>'
    graph = svg.task_graph([{"id": 1, "title": evil, "status": "queued", "why": evil}], [], [[1]])
    assert "<script>" not in graph and "&lt;script&gt;" in graph
    diff = pages.diff_html(f"+{evil}\n-old\n@@ -1 +1 @@\n")
    assert "<script>" not in diff
    assert '<span class="add">+&lt;script&gt;' in diff and '<span class="del">-old' in diff
    assert '<span class="hunk">@@' in diff
    approvals = pages.approvals_body(
        [{"id": 3, "title": evil, "blocked_reason": evil, "decision": None}], token=None
    )
    assert "<script>" not in approvals


def test_bar_chart_carries_exact_values_and_marks_bars_over_budget() -> None:
    chart = svg.bar_chart("day", [("2026-01-01", 0.25), ("2026-01-02", 1.5)], unit="$", limit=1.0)
    values = dict(re.findall(r'data-label="([^"]+)" data-value="([^"]+)"', chart))
    assert values == {"2026-01-01": "0.25", "2026-01-02": "1.5"}
    assert chart.count('class="over"') == 1 and chart.count('class="fill"') == 1
    assert 'class="limit"' in chart and "budget $1.00" in chart
    assert "nothing yet" in svg.bar_chart("ai", [])


def test_graph_places_dependencies_left_of_dependents_and_colours_by_status() -> None:
    nodes = [
        {"id": 1, "title": "schema", "status": "done", "why": ""},
        {"id": 2, "title": "api", "status": "queued", "why": "waiting for 1 dependency"},
    ]
    drawn = svg.task_graph(nodes, [(2, 1)], [[1], [2]])
    xs = {
        int(m[0]): float(m[1])
        for m in re.findall(r'data-task="(\d+)"[^>]*>.*?<rect x="([\d.]+)"', drawn)
    }
    assert xs[1] < xs[2]
    assert svg.STATUS_COLOURS["done"] in drawn and svg.STATUS_COLOURS["queued"] in drawn
    assert "#2 api (queued): waiting for 1 dependency" in drawn
    assert drawn.count('class="edge"') == 1


def test_approve_buttons_exist_only_with_the_token() -> None:
    pending = [{"id": 7, "title": "Migrate", "blocked_reason": "gate", "decision": None}]
    assert "button" not in pages.approvals_body(pending, token=None)
    writable = pages.approvals_body(pending, token="s3cret")
    assert 'class="approve" data-task="7"' in writable and 'value="s3cret"' in writable


def test_token_and_origin_checks() -> None:
    token = auth.new_token()
    assert len(token) >= 32 and token != auth.new_token()
    assert auth.same_token(token, token)
    altered = token[:-1] + ("y" if token.endswith("x") else "x")
    assert not auth.same_token(altered, token)
    assert not auth.same_token("", token) and not auth.same_token(token, None)
    assert auth.host_allowed("127.0.0.1:8080", 8080) and auth.host_allowed("localhost:8080", 8080)
    assert not auth.host_allowed("evil.example:8080", 8080)
    assert not auth.host_allowed("127.0.0.1:8081", 8080) and not auth.host_allowed(None, 8080)
    assert auth.origin_allowed("http://127.0.0.1:8080", None, 8080)
    assert auth.origin_allowed(None, "http://localhost:8080/approvals", 8080)
    assert auth.origin_allowed(None, None, 8080)  # curl: the token alone decides
    assert not auth.origin_allowed("http://evil.example", None, 8080)
    assert not auth.origin_allowed("null", None, 8080)
    assert not auth.origin_allowed("http://127.0.0.1:9999", None, 8080)
