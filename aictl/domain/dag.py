"""Pure dependency-graph functions. Edges are ``(task, depends_on)`` pairs.

networkx is imported inside the functions: it costs ~160 ms to import, and only the commands
that analyse the graph (link, graph, deps) should pay for it.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any


def _graph(edges: Iterable[Sequence[int]]) -> Any:
    import networkx as nx

    graph = nx.DiGraph()
    graph.add_edges_from((int(edge[0]), int(edge[1])) for edge in edges)
    return graph


def cycle_closed_by(
    ancestor_edges: Iterable[Sequence[int]], task: int, dependency: int
) -> list[int] | None:
    """The cycle that the new edge ``task -> dependency`` would close, or None.

    ``ancestor_edges`` are the edges reachable upwards from ``dependency``. The cycle is
    returned as a closed walk starting and ending at ``task``: ``[task, dependency, ..., task]``.
    """
    if task == dependency:
        return [task, task]
    import networkx as nx

    graph = _graph(ancestor_edges)
    if task not in graph or dependency not in graph:
        return None
    try:
        path: list[int] = nx.shortest_path(graph, dependency, task)
    except nx.NetworkXNoPath:
        return None
    return [task, *path]


def topological_layers(nodes: Iterable[int], edges: Iterable[Sequence[int]]) -> list[list[int]]:
    """Nodes grouped so that every dependency sits in an earlier layer than its dependents."""
    import networkx as nx

    graph = _graph(edges)
    graph.add_nodes_from(nodes)
    reverse = graph.reverse(copy=False)  # dependency -> dependent, so roots come first
    return [sorted(layer) for layer in nx.topological_generations(reverse)]
