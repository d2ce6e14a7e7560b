"""The example workflows shipped in the package, usable from any repository.

``aictl workflow create --example NAME`` registers one; ``aictl workflow examples`` lists them.
They live in ``aictl/templates/workflows/`` so an installed aictl has them (the docs point
there), and need nothing of the repository they are used in: no capability an AI must have,
paths from an input with a default.
"""

from __future__ import annotations

from pathlib import Path

from aictl.domain.suggest import did_you_mean
from aictl.errors import InvalidInput

FOLDER = Path(__file__).resolve().parent.parent / "templates" / "workflows"


def names() -> list[str]:
    """The shipped examples' names, sorted."""
    return sorted(path.stem for path in FOLDER.glob("*.yaml"))


def path_of(name: str) -> Path:
    """The file of the example ``name``; ``InvalidInput`` (with a close match) if there is none."""
    known = names()
    if name not in known:
        raise InvalidInput(
            f"no example workflow named {name!r}",
            hint=f"{did_you_mean(name, known)}the examples are: {', '.join(known)} "
            "(aictl workflow examples)",
        )
    return FOLDER / f"{name}.yaml"
