"""Inline SVG drawn on the server (pure): bar charts for money, the task graph for tasks.

No script draws anything: a chart is markup in the page, so it shows with JavaScript off, in a
screenshot, and in a test that reads its ``data-value`` attributes (each bar carries the exact
figure it draws, so a test can compare the chart with the evidence's sums).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from html import escape
from typing import Any

#: Fill colour of a task node by status (the legend in the page uses the same table).
STATUS_COLOURS: Mapping[str, str] = {
    "queued": "#9aa5b1",
    "claimed": "#f0b429",
    "running": "#2186eb",
    "done": "#3ebd93",
    "failed": "#e12d39",
    "blocked": "#9446ed",
    "cancelled": "#52606d",
}

BAR_HEIGHT = 22
LABEL_WIDTH = 180
CHART_WIDTH = 640


def bar_chart(
    name: str,
    bars: Sequence[tuple[str, float]],
    *,
    unit: str = "",
    limit: float | None = None,
    limit_label: str = "budget",
    decimals: int = 2,
) -> str:
    """A horizontal bar chart: one bar per ``(label, value)``, scaled to the largest value or
    ``limit`` (drawn as a dashed line: the budget), whichever is larger. Bars over ``limit``
    are red. ``name`` is the chart's ``data-chart`` attribute."""
    if not bars:
        return f'<p class="empty" data-chart="{escape(name)}">nothing yet</p>'
    top = max([value for _, value in bars] + [limit or 0.0]) or 1.0
    span = CHART_WIDTH - LABEL_WIDTH - 90
    height = BAR_HEIGHT * len(bars) + 24
    parts = [
        f'<svg class="chart" data-chart="{escape(name)}" role="img" width="{CHART_WIDTH}"'
        f' height="{height}" viewBox="0 0 {CHART_WIDTH} {height}">'
    ]
    for index, (label, value) in enumerate(bars):
        y = index * BAR_HEIGHT + 4
        width = max(value / top * span, 1.0 if value else 0.0)
        over = limit is not None and value > limit
        shown = f"{unit}{value:,.{decimals}f}"
        parts.append(
            f'<g class="bar" data-label="{escape(label)}" data-value="{value!r}">'
            f"<title>{escape(label)}: {escape(shown)}</title>"
            f'<text x="{LABEL_WIDTH - 6}" y="{y + 15}" text-anchor="end">'
            f"{escape(_clip(label, 26))}</text>"
            f'<rect x="{LABEL_WIDTH}" y="{y}" width="{width:.1f}" height="{BAR_HEIGHT - 6}"'
            f' class="{"over" if over else "fill"}"/>'
            f'<text x="{LABEL_WIDTH + width + 6:.1f}" y="{y + 15}">{escape(shown)}</text></g>'
        )
    if limit is not None:
        x = LABEL_WIDTH + limit / top * span
        parts.append(
            f'<line class="limit" x1="{x:.1f}" x2="{x:.1f}" y1="0" y2="{height - 18}"/>'
            f'<text class="limit" x="{x:.1f}" y="{height - 4}" text-anchor="middle">'
            f"{escape(limit_label)} {escape(unit)}{limit:,.{decimals}f}</text>"
        )
    parts.append("</svg>")
    return "".join(parts)


NODE_WIDTH = 150
NODE_HEIGHT = 34
LAYER_GAP = 60
ROW_GAP = 12


def task_graph(
    nodes: Sequence[Mapping[str, Any]],
    edges: Sequence[tuple[int, int]],
    layers: Sequence[Sequence[int]],
    *,
    link: str = "/task/{id}",
) -> str:
    """The dependency graph, one column per layer (dependencies left of their dependents),
    each node coloured by status with its waiting reason as the hover title. ``nodes`` are
    dicts with ``id``, ``title``, ``status`` and ``why`` (the waiting reason, or "")."""
    if not nodes:
        return '<p class="empty">no tasks</p>'
    by_id = {int(node["id"]): node for node in nodes}
    place: dict[int, tuple[float, float]] = {}
    for column, layer in enumerate(layers):
        for row, task_id in enumerate(sorted(layer)):
            place[task_id] = (
                column * (NODE_WIDTH + LAYER_GAP) + 8,
                row * (NODE_HEIGHT + ROW_GAP) + 8,
            )
    width = max(x for x, _ in place.values()) + NODE_WIDTH + 16
    height = max(y for _, y in place.values()) + NODE_HEIGHT + 16
    parts = [
        f'<svg class="graph" role="img" width="{width:.0f}" height="{height:.0f}"'
        f' viewBox="0 0 {width:.0f} {height:.0f}">'
    ]
    for task_id, depends_on in edges:
        if task_id not in place or depends_on not in place:
            continue
        x1, y1 = place[depends_on]
        x2, y2 = place[task_id]
        parts.append(
            f'<path class="edge" d="M{x1 + NODE_WIDTH:.0f},{y1 + NODE_HEIGHT / 2:.0f}'
            f" C{x1 + NODE_WIDTH + LAYER_GAP / 2:.0f},{y1 + NODE_HEIGHT / 2:.0f}"
            f" {x2 - LAYER_GAP / 2:.0f},{y2 + NODE_HEIGHT / 2:.0f}"
            f' {x2:.0f},{y2 + NODE_HEIGHT / 2:.0f}"/>'
        )
    for task_id, (x, y) in place.items():
        node = by_id[task_id]
        status = str(node["status"])
        why = str(node.get("why") or "")
        title = f"#{task_id} {node['title']} ({status})" + (f": {why}" if why else "")
        parts.append(
            f'<a href="{escape(link.format(id=task_id))}"><g class="node" data-task="{task_id}"'
            f' data-status="{escape(status)}"><title>{escape(title)}</title>'
            f'<rect x="{x:.0f}" y="{y:.0f}" width="{NODE_WIDTH}" height="{NODE_HEIGHT}" rx="6"'
            f' fill="{STATUS_COLOURS.get(status, "#ccc")}"/>'
            f'<text x="{x + 8:.0f}" y="{y + 21:.0f}">#{task_id} '
            f"{escape(_clip(str(node['title']), 16))}</text></g></a>"
        )
    parts.append("</svg>")
    return "".join(parts)


def _clip(text: str, size: int) -> str:
    return text if len(text) <= size else text[: size - 1] + "…"
