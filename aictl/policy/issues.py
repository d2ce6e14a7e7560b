"""Problems found in policy files, as values, and the one error that carries them.

Loading collects every problem of every file as a :class:`PolicyIssue` instead of stopping at
the first (cloud-custodian's staged loading): a person fixing a policy sees all of it at once.
Only when the caller needs a usable policy are the errors raised, together, as
:class:`InvalidPolicy`.
"""

# No `from __future__ import annotations` here: NamedTuple turns string annotations into
# ForwardRefs, compiling each one (about 0.15 ms a field, ~10 ms for this package at import).

from collections.abc import Iterable, Mapping, Sequence
from typing import Any, NamedTuple

from aictl.errors import InvalidInput

ERROR = "error"
WARNING = "warning"


class PolicyIssue(NamedTuple):
    """One problem: where (file, 1-based line, field path such as ``rules[2].when``) and what.

    ``severity`` is ``error`` (the file cannot be used) or ``warning`` (it can, but something
    looks wrong). ``rule`` names the rule concerned, if any; ``example`` is a request that
    shows a conflict (lint warnings only).
    """

    file: str
    line: int
    field: str
    message: str
    severity: str = ERROR
    rule: str | None = None
    example: Mapping[str, Any] | None = None

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}"
        return (
            f"{where}: {self.field}: {self.message}" if self.field else f"{where}: {self.message}"
        )

    @property
    def is_error(self) -> bool:
        return self.severity == ERROR

    def to_dict(self) -> dict[str, Any]:
        return {
            "file": self.file,
            "line": self.line,
            "field": self.field,
            "message": self.message,
            "severity": self.severity,
            "rule": self.rule,
            "example": None if self.example is None else dict(self.example),
        }


def errors_of(issues: Iterable[PolicyIssue]) -> list[PolicyIssue]:
    return [issue for issue in issues if issue.is_error]


class InvalidFiles(InvalidInput):
    """A YAML file (or several) with errors; ``issues`` lists every one (exit code 2).

    The message lists the errors one per line as ``FILE:LINE: FIELD: message``, so a command
    that fails on a bad file shows all of them, not just the first. Subclasses name what was
    loaded (``kind``) and how to check it again (``check``).
    """

    kind = "file"
    check = "fix the places named above"

    def __init__(self, issues: Sequence[PolicyIssue]) -> None:
        self.issues = list(issues)
        count = len(self.issues)
        lines = "\n".join(f"  {issue}" for issue in self.issues)
        super().__init__(
            f"invalid {self.kind} ({count} error{'s' if count != 1 else ''}):\n{lines}",
            hint=self.check,
        )


class InvalidPolicy(InvalidFiles):
    """One or more policy files are invalid."""

    kind = "policy"
    check = "fix the files named above; `aictl policy validate` checks them again"
