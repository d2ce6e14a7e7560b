"""Stage 3 of loading a workflow: its schema, as strict pydantic models with extra fields
forbidden. Error items are translated by the policy's translator (:func:`aictl.policy.models.
_problem`), so both kinds of file speak the same words; only the list of valid fields for an
unknown one is looked up in these models.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, ValidationError

from aictl.domain.suggest import unknown_name
from aictl.policy import models as policy_models
from aictl.policy.models import Duration, Problem, Text

STEP_ID_PATTERN = r"^[a-z][a-z0-9_]{0,63}$"
"""Step ids and input names are CEL identifiers (``steps.fix_tests.status``): a hyphen would
read as a minus sign."""
NAME_PATTERN = r"^[a-z0-9][a-z0-9_.-]{0,63}$"

StepId = Annotated[str, StringConstraints(pattern=STEP_ID_PATTERN)]
WorkflowName = Annotated[str, StringConstraints(pattern=NAME_PATTERN)]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


class TaskModel(_Model):
    title: Text
    description: str = ""
    paths: list[Text] = []
    requires: list[Text] = []
    labels: dict[str, str] = {}
    ai: Text | None = None
    priority: int = 0
    type: Text = "task"
    skills: list[Text] = []


class RetryModel(_Model):
    max: Annotated[int, Field(ge=0, le=100)]
    backoff: Duration | None = None


class GotoModel(_Model):
    goto: StepId


class ApprovalModel(_Model):
    reason: Text


class LoopModel(_Model):
    max: Annotated[int, Field(ge=1, le=1000)]
    until: Text
    steps: Annotated[list[StepModel], Field(min_length=1)]


class StepModel(_Model):
    id: StepId
    description: str = ""
    task: TaskModel | None = None
    loop: LoopModel | None = None
    needs: list[StepId] = []
    when: Text | None = None
    retry: RetryModel | None = None
    on_failure: Literal["fail", "continue"] | GotoModel = "fail"
    approval: bool | ApprovalModel = False


class InputModel(_Model):
    description: str = ""
    default: str | int | float | bool | None = None
    required: bool = False


class WorkflowFile(_Model):
    version: Literal[1]
    name: WorkflowName
    description: str = ""
    inputs: dict[StepId, InputModel] = {}
    steps: Annotated[list[StepModel], Field(min_length=1)]


def validate(data: Any) -> list[Problem]:
    """Every schema problem of ``data``; none when it is a valid workflow file."""
    try:
        WorkflowFile.model_validate(data)
    except ValidationError as error:
        problems: dict[tuple[str | int, ...], Problem] = {}
        for item in error.errors(include_url=False):
            problem = _problem(item)
            problems.setdefault(problem.path, problem)  # one per field, not one per union branch
        return list(problems.values())
    return []


_BRANCHES = ("str", "int", "float", "bool", "none")


def _branch_name(part: str | int) -> bool:
    """Whether a location part names a union branch rather than a field (pydantic puts
    ``GotoModel``, ``literal['fail','continue']``, ``str``... in the location)."""
    if not isinstance(part, str):
        return False
    return part[:1].isupper() or part in _BRANCHES or part.startswith(("literal[", "function-"))


def _problem(item: Any) -> Problem:
    loc = tuple(part for part in item["loc"] if part != "[key]")
    # A union's branches appear in the location (``on_failure.GotoModel``): drop their names.
    loc = tuple(part for part in loc if not _branch_name(part))
    kind = item["type"]
    if kind == "extra_forbidden":
        return Problem(loc, unknown_name("field", loc[-1], _fields_at(loc[:-1])))
    if kind == "missing" and loc[-2:-1] == ("loop",) and loc[-1] == "max":
        return Problem(loc, "a loop needs a maximum: add `max: N` (the most rounds it may run)")
    if loc and loc[-1] == "on_failure" and kind in ("literal_error", "model_type", "dict_type"):
        return Problem(
            loc, f"on_failure is fail, continue or {{goto: STEP}}; got {item.get('input')!r}"
        )
    if kind == "string_pattern_mismatch":
        value = item.get("input")
        if loc and loc[-1] == "name":
            return Problem(loc, f"invalid workflow name {value!r}: use a-z, 0-9, '_', '.', '-'")
        return Problem(
            loc,
            f"invalid id {value!r}: use lowercase letters, digits and '_', starting with a "
            "letter (ids are read in conditions as steps.ID)",
        )
    item = {**item, "loc": loc}
    return policy_models._problem(item)


def _fields_at(loc: tuple[str | int, ...]) -> list[str]:
    model: Any = WorkflowFile
    skip = 0
    for part in loc:
        if skip:
            skip -= 1
            continue
        info = model.model_fields.get(part) if isinstance(part, str) else None
        if info is None:
            return []
        model, skip = policy_models._model_in(info.annotation)
        if model is None:
            return []
    return list(model.model_fields)
