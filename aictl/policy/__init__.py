"""The policy engine: who may do what, decided from layered YAML files with CEL conditions.

The public API, for the services and the CLI::

    policy = load_policy(root, ai="claude-1", overrides={"settings.lease_ttl": "15m"})
    request = build_request("claim", task=task, ai={"id": "claude-1", "labels": {}})
    decision = evaluate(policy, request)          # pure: no I/O, no time
    decision.effect, decision.decided_by, decision.to_dict()

    issues = validate_files([Path(".ai/policy.yaml")], known_ais={"claude-1"})

Importing this package is cheap: PyYAML, pydantic and CEL are imported only when a file that
needs them is loaded or a rule condition is evaluated. See ``docs/policy.md`` for the schema,
the request variables, layering and merge rules, evaluation and hashing.

Modules: :mod:`~aictl.policy.vocabulary` (the words, as tables), :mod:`~aictl.policy.source`
(YAML with lines, hashing), :mod:`~aictl.policy.models` (the pydantic schema),
:mod:`~aictl.policy.conditions` and :mod:`~aictl.policy.functions` (CEL and its helpers),
:mod:`~aictl.policy.loader` (staged loading), :mod:`~aictl.policy.layers` (layers, merge,
hashes), :mod:`~aictl.policy.evaluate` (decisions), :mod:`~aictl.policy.lint` (warnings),
:mod:`~aictl.policy.service` (what reads files).
"""

from __future__ import annotations

from aictl.policy.evaluate import (
    Decision,
    Explanation,
    MatchedRule,
    RuleError,
    RuleTrace,
    build_request,
    evaluate,
    explain,
)
from aictl.policy.issues import InvalidPolicy, PolicyIssue
from aictl.policy.layers import Layer, Policy, Rule, layer_paths, per_ai_files
from aictl.policy.service import (
    check_overrides,
    load_layers,
    load_policy,
    validate_files,
    validate_repository,
)

__all__ = [
    "Decision",
    "Explanation",
    "InvalidPolicy",
    "Layer",
    "MatchedRule",
    "Policy",
    "PolicyIssue",
    "Rule",
    "RuleError",
    "RuleTrace",
    "build_request",
    "check_overrides",
    "evaluate",
    "explain",
    "layer_paths",
    "load_layers",
    "load_policy",
    "per_ai_files",
    "validate_files",
    "validate_repository",
]
