"""Cycle naming and layering of the dependency graph (pure code)."""

from __future__ import annotations

from aictl.domain.dag import cycle_closed_by, topological_layers


def test_self_dependency_is_a_cycle() -> None:
    assert cycle_closed_by([], 4, 4) == [4, 4]


def test_cycle_is_named_from_the_task_back_to_itself() -> None:
    # 3 depends on 2, 2 depends on 1: making 1 depend on 3 closes 1 -> 3 -> 2 -> 1
    ancestors_of_3 = [(3, 2), (2, 1)]
    assert cycle_closed_by(ancestors_of_3, 1, 3) == [1, 3, 2, 1]


def test_no_cycle_when_the_task_is_not_upstream() -> None:
    assert cycle_closed_by([(3, 2), (2, 1)], 5, 3) is None
    assert cycle_closed_by([], 5, 3) is None


def test_shortest_cycle_is_reported() -> None:
    edges = [(10, 1), (10, 2), (2, 3), (3, 1)]
    assert cycle_closed_by(edges, 1, 10) == [1, 10, 1]


def test_layers_put_dependencies_first() -> None:
    layers = topological_layers([1, 2, 3, 4, 5], [(2, 1), (3, 1), (4, 2), (4, 3)])
    assert layers == [[1, 5], [2, 3], [4]]
