"""Stage 3 of loading: the schema of a policy file, as pydantic models with extra fields
forbidden, and the translation of pydantic's errors into :class:`Problem` values.

Importing this module imports pydantic (50-120 ms), so only the loader does, and only for a
file that is more than ``version`` and ``default``. The models validate; they are not what the
rest of aictl reads: the validated file stays plain data (merged and hashed as written), and
rules become :class:`aictl.policy.layers.Rule` values.

Models are strict (no "3" for 3, no ``true`` for a string): a policy decides what agents may do,
and a value that only works after a guess should be written the way it is meant.
"""

from __future__ import annotations

import types
import typing
from dataclasses import dataclass
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationError,
)

from aictl.domain.durations import parse_duration
from aictl.domain.suggest import unknown_name
from aictl.errors import InvalidInput
from aictl.policy import vocabulary

RULE_ID_PATTERN = r"^[a-z0-9][a-z0-9-]*$"
AI_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.:@/-]{0,127}$"


def _duration(value: str | int | float) -> str | int | float:
    try:
        parse_duration(str(value))
    except InvalidInput as error:
        raise ValueError(f"{error.message}; {error.hint}") from None
    return value


def _effect(value: str) -> str:
    return vocabulary.choose("effect", value, vocabulary.EFFECTS)


def _default_effect(value: str) -> str:
    if value == "warn":
        raise ValueError(
            "'warn' cannot be the default (it decides nothing); "
            f"valid defaults: {', '.join(vocabulary.DEFAULT_EFFECTS)}"
        )
    return vocabulary.choose("effect", value, vocabulary.EFFECTS)


def _actions(value: list[str]) -> list[str]:
    if not value:
        raise ValueError(
            f"list at least one action; valid actions: {', '.join(vocabulary.ACTIONS)}"
        )
    for item in value:
        vocabulary.choose("action", item, vocabulary.ACTIONS)
    return value


def _outside_changes(value: str) -> str:
    return vocabulary.choose("outside_changes value", value, vocabulary.OUTSIDE_CHANGES)


def _isolation(value: str) -> str:
    return vocabulary.choose("isolation", value, vocabulary.ISOLATION)


def _integrate(value: str) -> str:
    return vocabulary.choose("integrate mode", value, vocabulary.INTEGRATE)


def _remote(value: str) -> str:
    if value.startswith("-") or any(c.isspace() or c in ":~^?*[\\" for c in value):
        raise ValueError(f"{value!r} is not a git remote name (such as origin)")
    return value


def _permission_mode(value: str) -> str:
    return vocabulary.choose("permission mode", value, vocabulary.PERMISSION_MODES)


def _on_off(value: object) -> object:
    """YAML 1.1 reads a bare ``off`` as false: ``sandbox: off`` means what it says."""
    if value is False:
        return "off"
    return value


def _checkpoint_target(value: str) -> str:
    if "://" in value and not value.startswith(("http://", "https://")):
        raise ValueError(f"a checkpoint goes to a file or an http(s):// URL, got {value!r}")
    return value


Duration = Annotated[str | int | float, AfterValidator(_duration)]
Text = Annotated[str, StringConstraints(min_length=1)]
PositiveInt = Annotated[int, Field(ge=1)]
Dollars = Annotated[float, Field(gt=0)]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


class Timeouts(_Model):
    task: Duration | None = None
    """Longest a task's run may take before the executor stops it."""
    idle: Duration | None = None
    """Longest an agent may go without output before the executor stops it."""


class Budgets(_Model):
    task_usd: Dollars | None = None
    daily_usd: Dollars | None = None


class AuditCheckpoint(_Model):
    to: Annotated[str, StringConstraints(min_length=1), AfterValidator(_checkpoint_target)]
    """A file outside the repository, or an http(s):// URL that takes a POST."""
    every: Duration | None = None
    """Longest time between two checkpoints (default 10m)."""
    events: PositiveInt | None = None
    """Send sooner, once this many audit rows were appended since the last one."""


def _runs(value: int | str) -> int | str:
    """A count of finished tasks (1 or more) or a duration: one message for either mistake."""
    if isinstance(value, int):
        if value < 1:
            raise ValueError(f"runs must keep at least 1 task's runs, got {value}")
        return value
    try:
        parse_duration(value)
    except InvalidInput as error:
        raise ValueError(
            f"runs is a count of finished tasks (such as 50) or a duration (such as 30d), "
            f"got {value!r}: {error.message}"
        ) from None
    return value


class Retention(_Model):
    runs: Annotated[int | str, AfterValidator(_runs)] | None = None
    """Run folders (``.ai/runs/<task>/``) of finished tasks to keep: the N finished last, or
    those finished within a duration; ``aictl prune`` and the daemon remove the rest."""
    daemon_log_mb: Annotated[float, Field(gt=0)] | None = None
    """Rotate ``.ai/logs/daemon.jsonl`` to ``daemon.jsonl.1`` once it is larger than this."""


class Settings(_Model):
    lease_ttl: Duration | None = None
    heartbeat_interval: Duration | None = None
    max_attempts: PositiveInt | None = None
    concurrency: PositiveInt | None = None
    test_command: Text | None = None
    retry_backoff: Duration | None = None
    """Base delay before a retryable failure's retry (doubled per attempt, full jitter)."""
    retry_backoff_max: Duration | None = None
    """Cap on the retry delay."""
    quarantine_after: Annotated[int, Field(ge=0)] | None = None
    """Consecutive failed runs after which an AI is quarantined (0: never)."""
    outside_changes: Annotated[str, AfterValidator(_outside_changes)] | None = None
    """``fail`` (default) or ``warn``: a run that changed files outside its task's paths."""
    isolation: Annotated[str, AfterValidator(_isolation)] | None = None
    """``worktree`` (default): each attempt in its own git worktree; ``shared``: one tree."""
    integrate: Annotated[str, AfterValidator(_integrate)] | None = None
    """``merge`` (default), ``rebase`` or ``branch``: how a worktree's commit reaches the
    target branch."""
    remote: Annotated[str, StringConstraints(min_length=1), AfterValidator(_remote)] | None = None
    """A git remote shared by several hosts: worktrees start from its target branch and
    integration pushes there (compare-and-swap), instead of the local branch only."""
    timeouts: Timeouts | None = None
    budgets: Budgets | None = None
    sandbox: Annotated[Literal["required", "off"], BeforeValidator(_on_off)] | None = None
    """The agent's shell in an OS sandbox (default ``required``); ``off`` is at your own risk."""
    claude_settings: list[Literal["project", "user", "local"]] | None = None
    """Claude Code settings the agent loads (default ``[project]``: CLAUDE.md, .claude/)."""
    reads: Literal["repository", "anywhere"] | None = None
    """Where an agent may read: the repository only (default), or anywhere it can."""
    claude_login: Literal["api_key", "subscription"] | None = None
    """``subscription``: agents use the user's own Claude Code login instead of an API key."""
    audit_checkpoint: AuditCheckpoint | None = None
    """The daemon sends a signed audit checkpoint there periodically (docs/audit.md)."""
    retention: Retention | None = None
    """What ``aictl prune`` (and the daemon, hourly) removes (docs/maintenance.md)."""


class AiSettings(_Model):
    allowed_tools: list[Text] | None = None
    denied_tools: list[Text] | None = None
    permission_mode: Annotated[str, AfterValidator(_permission_mode)] | None = None
    model: Text | None = None
    max_turns: PositiveInt | None = None
    max_cost_usd: Dollars | None = None


def _events(value: list[str]) -> list[str]:
    for item in value:
        vocabulary.choose("notification event", item, vocabulary.NOTIFICATION_EVENTS)
    return value


def _web_url(value: str) -> str:
    if not value.startswith(("http://", "https://")):
        raise ValueError(f"a webhook url starts with http:// or https://, got {value!r}")
    return value


EnvName = Annotated[str, StringConstraints(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")]
Events = Annotated[list[str], AfterValidator(_events)]


class Webhook(_Model):
    url: Annotated[str, AfterValidator(_web_url)]
    secret_env: EnvName | None = None
    """Environment variable holding the HMAC-SHA256 key (a secret never sits in the file)."""
    events: Events | None = None
    """Events sent (default: all)."""
    timeout: Duration | None = None
    retries: Annotated[int, Field(ge=0, le=10)] | None = None


class ChatTarget(_Model):
    url_env: EnvName
    """Environment variable holding an apprise URL (``slack://...``): such URLs carry tokens."""
    events: Events | None = None


class Notifications(_Model):
    console: bool | None = None
    webhooks: list[Webhook] | None = None
    chat: list[ChatTarget] | None = None


class RuleModel(_Model):
    id: Annotated[str, StringConstraints(pattern=RULE_ID_PATTERN, max_length=64)]
    description: str = ""
    actions: Annotated[list[str], AfterValidator(_actions)]
    when: Text | None = None
    effect: Annotated[str, AfterValidator(_effect)]
    reason: Text


AiId = Annotated[str, StringConstraints(pattern=AI_ID_PATTERN)]


class PolicyFile(_Model):
    version: int
    default: Annotated[str, AfterValidator(_default_effect)] | None = None
    settings: Settings | None = None
    ais: dict[AiId, AiSettings] | None = None
    rules: list[RuleModel] | None = None
    notifications: Notifications | None = None


# ----------------------------------------------------------------------------- errors


@dataclass
class Problem:
    """A schema error at ``path`` (keys and indexes from the top of the document)."""

    path: tuple[str | int, ...]
    message: str


def validate(data: Any) -> tuple[PolicyFile | None, list[Problem]]:
    """The validated file, or None with every problem pydantic found."""
    try:
        return PolicyFile.model_validate(data), []
    except ValidationError as error:
        return None, [_problem(item) for item in error.errors(include_url=False)]


_TYPE_WORDS = {
    "string_type": "text",
    "int_type": "a whole number",
    "float_type": "a number",
    "list_type": "a list",
    "dict_type": "a mapping",
    "model_type": "a mapping",
    "model_attributes_type": "a mapping",
    "bool_type": "true or false",
}


def _problem(item: Any) -> Problem:
    loc = tuple(part for part in item["loc"] if part != "[key]")
    kind = item["type"]
    value = item.get("input")
    if kind == "missing":
        return Problem(loc, f"missing required field {loc[-1]!r}")
    if kind == "extra_forbidden":
        return Problem(loc, unknown_name("field", loc[-1], _fields_at(loc[:-1])))
    if kind in _TYPE_WORDS:
        message = f"expected {_TYPE_WORDS[kind]}, got {_describe(value)}"
        if kind == "string_type" and isinstance(value, bool):
            message += " (YAML reads yes, no, on, off, true and false as booleans: quote it)"
        return Problem(loc, message)
    if kind == "string_pattern_mismatch":
        if loc and loc[-1] == "id":
            return Problem(
                loc,
                f"invalid rule id {value!r}: use lowercase letters, digits and '-', "
                "starting with a letter or digit",
            )
        return Problem(
            loc,
            f"invalid AI id {value!r}: use letters, digits and _ . : @ / -, "
            "starting with a letter or digit",
        )
    if kind == "string_too_short":
        return Problem(loc, "must not be empty")
    message = str(item["msg"]).removeprefix("Value error, ")
    if kind != "value_error":
        message = message[:1].lower() + message[1:] + f", got {_describe(value)}"
    return Problem(loc, message)


def _describe(value: Any) -> str:
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    if value is None:
        return "nothing (null)"
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _fields_at(loc: tuple[str | int, ...]) -> list[str]:
    """The valid field names of the model found at ``loc`` (for an unknown-field message)."""
    model: Any = PolicyFile
    skip = 0
    for part in loc:
        if skip:  # a list index or a mapping key (an AI id) below a container field
            skip -= 1
            continue
        info = model.model_fields.get(part) if isinstance(part, str) else None
        if info is None:
            return []
        model, skip = _model_in(info.annotation)
        if model is None:
            return []
    return list(model.model_fields)


def _model_in(annotation: Any, depth: int = 0) -> tuple[Any, int]:
    """The model class inside ``X | None``, ``list[X]`` or ``dict[str, X]``, and how many
    container levels (list or dict) wrap it; (None, 0) when there is no model."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation, depth
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType, list, dict):
        inner = depth + (1 if origin in (list, dict) else 0)
        for argument in reversed(typing.get_args(annotation)):
            found = _model_in(argument, inner)
            if found[0] is not None:
                return found
    return None, 0
