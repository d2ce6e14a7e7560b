"""Policy evaluation: a pure function from (policy, request) to an immutable :class:`Decision`.

No I/O, no clock, no identity lookup: the caller builds the request (:func:`build_request`),
persists the decision and audits it. Semantics:

- a rule *applies* when its ``actions`` list the request's action and its condition is true
  (a rule without ``when`` is always true);
- the outcome is the strongest effect among applying rules: deny > require_approval > allow;
- ``warn`` rules never change the outcome; they are listed as warnings;
- when no allow, deny or require_approval rule applies, the policy's default decides, and the
  decision says so (``default_applied``);
- a condition that fails at run time (a missing label key, a helper given the wrong type) is
  *fail closed*: it counts as not applying for an allow rule and as applying for deny,
  require_approval and warn rules, and the error is listed in the decision.

One CEL context is built per evaluation and only the rules indexed under the action are run,
which keeps a 50-rule policy above 10,000 decisions per second (``python -m bench policy``).
"""

# No `from __future__ import annotations` here: NamedTuple turns string annotations into
# ForwardRefs, compiling each one (about 0.15 ms a field, ~10 ms for this package at import).

from collections.abc import Mapping, Sequence
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, NamedTuple

from aictl.errors import InvalidInput
from aictl.policy import vocabulary
from aictl.policy.celbinding import is_panic
from aictl.policy.layers import Needs, Policy, Rule

if TYPE_CHECKING:
    from aictl.domain.tasks import Task

DEFAULT = "default"


class MatchedRule(NamedTuple):
    """A rule that applied: where it comes from, what it says, and (fail-closed) why."""

    layer: str
    id: str
    effect: str
    reason: str
    error: str | None = None
    """Set when the rule counts as applying only because its condition failed."""

    @property
    def qualified_id(self) -> str:
        return f"{self.layer}:{self.id}"

    def to_dict(self) -> dict[str, Any]:
        return {
            "layer": self.layer,
            "id": self.id,
            "qualified_id": self.qualified_id,
            "effect": self.effect,
            "reason": self.reason,
            "error": self.error,
        }


class RuleError(NamedTuple):
    """A condition that raised; ``counted_as_match`` says how fail-closed treated it."""

    layer: str
    id: str
    effect: str
    message: str
    counted_as_match: bool

    @property
    def qualified_id(self) -> str:
        return f"{self.layer}:{self.id}"

    def to_dict(self) -> dict[str, Any]:
        return {
            "layer": self.layer,
            "id": self.id,
            "qualified_id": self.qualified_id,
            "effect": self.effect,
            "message": self.message,
            "counted_as_match": self.counted_as_match,
        }


class Decision(NamedTuple):
    """What the policy decided for one request, and everything needed to audit it.

    ``matched`` lists the applying allow/deny/require_approval rules in layer order;
    ``decided_by`` is the first of them with the winning effect, or ``"default"``.
    ``layer_hashes`` maps each layer name (and ``overrides``) to its hash; ``policy_hash`` is
    the effective policy's. :meth:`to_dict` is the JSON form a decision record stores.
    """

    action: str
    effect: str
    decided_by: str
    reason: str
    matched: tuple[MatchedRule, ...] = ()
    warnings: tuple[MatchedRule, ...] = ()
    errors: tuple[RuleError, ...] = ()
    default_applied: bool = False
    default_source: str | None = None
    layer_hashes: Mapping[str, str] = MappingProxyType({})
    policy_hash: str = ""

    @property
    def allowed(self) -> bool:
        return self.effect == "allow"

    def to_dict(self) -> dict[str, Any]:
        return {
            "action": self.action,
            "effect": self.effect,
            "decided_by": self.decided_by,
            "reason": self.reason,
            "matched": [rule.to_dict() for rule in self.matched],
            "warnings": [rule.to_dict() for rule in self.warnings],
            "errors": [error.to_dict() for error in self.errors],
            "default_applied": self.default_applied,
            "default_source": self.default_source,
            "layer_hashes": dict(self.layer_hashes),
            "policy_hash": self.policy_hash,
        }


# ----------------------------------------------------------------------------- the request

_EMPTY_AI: Mapping[str, Any] = {
    "id": "",
    "labels": {},
    "capabilities": [],
    "connector": "",
    "model": "",
}


def _empty_task() -> dict[str, Any]:
    """Every task field with an empty value, for a request without a task."""
    out: dict[str, Any] = {}
    for name in vocabulary.TASK_FIELDS:
        out[name] = None
    out.update(
        id=0,
        title="",
        description="",
        type="",
        priority=0,
        status="",
        labels={},
        requires=[],
        skills=[],
        paths=[],
        depends_on=[],
        attempts=0,
        max_attempts=0,
        lease_epoch=0,
    )
    return out


def tool_paths(tool_input: Mapping[str, Any]) -> list[str]:
    """The file paths a tool call touches: the values of its path-naming input keys."""
    found = []
    for key in vocabulary.TOOL_PATH_KEYS:
        value = tool_input.get(key)
        if isinstance(value, str) and value:
            found.append(value)
    return found


def build_request(
    action: str,
    *,
    task: "Task | Mapping[str, Any] | None" = None,
    ai: Mapping[str, Any] | str | None = None,
    tool: str | None = None,
    tool_input: Mapping[str, Any] | None = None,
    paths: Sequence[str] | None = None,
    root: Path | None = None,
) -> dict[str, Any]:
    """The request mapping :func:`evaluate` reads: ``action``, ``task``, ``ai``, ``tool``,
    ``paths``.

    ``task`` is a Task or its ``to_dict()``; ``ai`` an AI's mapping (id, labels, capabilities,
    connector, model) or just its id; missing parts get empty values, so a condition reading
    them sees "" / 0 / [] / {} rather than failing. ``paths`` defaults to the task's paths, or
    for a tool call to the paths named by its input (``file_path``, ``notebook_path``,
    ``path``). With ``root``, absolute tool paths inside the repository are made relative to
    it (agents report absolute paths), so they compare with the task's globs; others stay as
    they are. Raises ``InvalidInput`` for an unknown action, listing the valid ones.
    """
    try:
        vocabulary.choose("action", action, vocabulary.ACTIONS)
    except ValueError as error:
        raise InvalidInput(str(error)) from None
    task_data = _empty_task()
    if task is not None:
        task_data.update(task if isinstance(task, Mapping) else task.to_dict())
    ai_data = dict(_EMPTY_AI)
    if isinstance(ai, str):
        ai_data["id"] = ai
    elif ai is not None:
        ai_data.update(ai)
    input_data = dict(tool_input or {})
    if paths is None and action == "tool":
        paths = [_relative(path, root) for path in tool_paths(input_data)]
    elif paths is None:
        paths = task_data.get("paths") or []
    return {
        "action": action,
        "task": task_data,
        "ai": ai_data,
        "tool": {"name": tool or "", "input": input_data},
        "paths": list(paths),
    }


def _relative(path: str, root: Path | None) -> str:
    if root is None or not path.startswith("/"):
        return path
    from aictl.domain.globs import GlobError, normalize_glob

    try:
        return normalize_glob(path, root)
    except GlobError:
        return path


# ----------------------------------------------------------------------------- evaluation


_CEL: list[Any] = []
"""``[cel.Context, helper functions]`` once the first context is built (CEL loads lazily)."""


def context_for(request: Mapping[str, Any], needs: Needs = None) -> Any:
    """The CEL context of one request: its variables (only those in ``needs``, when given;
    see :func:`aictl.policy.layers.needs_of`) and the helper functions.

    Converting a value into CEL costs about 1.4 us per string or container (measured with
    common-expression-language 0.10), so this conversion is most of a decision's cost; hence
    ``needs``.
    """
    if not _CEL:
        from aictl.policy.celbinding import cel
        from aictl.policy.functions import FUNCTIONS

        _CEL.extend((cel().Context, dict(FUNCTIONS)))
    if needs is None:
        variables = dict(request)
    else:
        variables = {}
        for name, fields in needs.items():
            value = request.get(name)
            if fields is None or not isinstance(value, dict):
                variables[name] = value
            else:
                variables[name] = {field: value[field] for field in fields if field in value}
    return _CEL[0](variables=variables, functions=_CEL[1])


def _run(rule: Rule, context: Any) -> tuple[bool, str | None]:
    """(condition value, error message) for one rule; a non-boolean result is an error."""
    if rule.program is None:
        return True, None
    try:
        value = rule.program.execute(context)
    except Exception as error:
        return False, _error_text(error)
    except BaseException as error:  # a panic of the CEL library: an error of this rule
        if not is_panic(error):
            raise
        return False, _panic_text(error)
    if not isinstance(value, bool):
        return False, f"the condition gave {value!r}, not true or false"
    return value, None


def _panic_text(error: BaseException) -> str:
    return f"the CEL library failed on this condition: {str(error)[:200]}"


def _error_text(error: Exception) -> str:
    if isinstance(error, KeyError):
        return f"no such key: {error.args[0]!r}" if error.args else "no such key"
    text = str(error).strip() or type(error).__name__
    return text if len(text) <= 300 else text[:297] + "..."


def evaluate(policy: Policy, request: Mapping[str, Any]) -> Decision:
    """Decide ``request`` (from :func:`build_request`) under ``policy``; see the module
    docstring for precedence and fail-closed semantics. Pure: no I/O, no time.

    This is the hot path (a daemon decides every claim and tool call), so the loop is written
    for speed: the CEL context is built on the first rule that has a condition, and the
    strongest effect is tracked as the rules run.
    """
    action = request["action"]
    context = None
    matched: list[MatchedRule] = []
    warnings: list[MatchedRule] = []
    errors: list[RuleError] = []
    winner: MatchedRule | None = None
    winner_rank = 0
    for rule in policy.by_action.get(action, ()):
        error = None
        program = rule.program
        if program is not None:
            if context is None:
                context = context_for(request, policy.needs.get(action))
            try:
                value = program.execute(context)
            except Exception as exception:
                error = _error_text(exception)
            except BaseException as exception:  # a panic of the CEL library (see celbinding)
                if not is_panic(exception):
                    raise
                error = _panic_text(exception)
            else:
                if value is False:
                    continue
                if value is not True:
                    error = f"the condition gave {value!r}, not true or false"
        effect = rule.effect
        if error is not None:
            applies = effect != "allow"
            errors.append(RuleError(rule.layer, rule.id, effect, error, applies))
            if not applies:
                continue
        item = MatchedRule(rule.layer, rule.id, effect, rule.reason, error)
        if effect == "warn":
            warnings.append(item)
            continue
        matched.append(item)
        rank = _RANK[effect]
        if rank > winner_rank:
            winner, winner_rank = item, rank
    if winner is not None:
        effect, decided_by, reason = winner.effect, winner.qualified_id, winner.reason
    else:
        source = f"the {policy.default_source} layer" if policy.default_source else "built in"
        effect, decided_by = policy.default, DEFAULT
        reason = f"no rule decided; the default is {policy.default} ({source})"
    return Decision(
        action,
        effect,
        decided_by,
        reason,
        tuple(matched),
        tuple(warnings),
        tuple(errors),
        winner is None,
        policy.default_source,
        policy.layer_hashes,
        policy.hash,
    )


_RANK = vocabulary.PRECEDENCE


# ----------------------------------------------------------------------------- explanation

MATCHED = "matched"
CONDITION_FALSE = "condition false"
ACTION_NOT_LISTED = "action not listed"
CONDITION_ERROR = "condition error"


class RuleTrace(NamedTuple):
    """How one rule fared against a request, for ``aictl policy explain``."""

    rule: Rule
    outcome: str
    error: str | None = None
    counted_as_match: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {
            "rule": self.rule.qualified_id,
            "effect": self.rule.effect,
            "actions": list(self.rule.actions),
            "when": self.rule.when,
            "outcome": self.outcome,
            "error": self.error,
            "counted_as_match": self.counted_as_match,
        }


class Explanation(NamedTuple):
    decision: Decision
    trace: tuple[RuleTrace, ...]

    def to_dict(self) -> dict[str, Any]:
        return {
            "decision": self.decision.to_dict(),
            "rules": [item.to_dict() for item in self.trace],
        }


def explain(policy: Policy, request: Mapping[str, Any]) -> Explanation:
    """The decision of :func:`evaluate` and, for every rule of every layer, whether it applied
    and, if not, why not (action not listed, condition false, condition error)."""
    decision = evaluate(policy, request)
    action = request["action"]
    context = (
        context_for(request) if any(rule.program is not None for rule in policy.rules) else None
    )
    trace = []
    for rule in policy.rules:
        if action not in rule.actions:
            trace.append(RuleTrace(rule, ACTION_NOT_LISTED))
            continue
        value, error = _run(rule, context)
        if error is not None:
            trace.append(RuleTrace(rule, CONDITION_ERROR, error, rule.effect != "allow"))
        else:
            trace.append(RuleTrace(rule, MATCHED if value else CONDITION_FALSE))
    return Explanation(decision, tuple(trace))
