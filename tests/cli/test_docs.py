"""Docs are tested: the command reference is generated from the CLI and every command has help."""

from __future__ import annotations

from pathlib import Path

import typer.main

from aictl.cli import app
from aictl.docgen import render

ROOT = Path(__file__).resolve().parents[2]


def test_cli_reference_is_current() -> None:
    committed = (ROOT / "docs" / "cli.md").read_text(encoding="utf-8")
    assert committed == render(), "docs/cli.md is stale: run `make docs`"


def test_every_command_has_help_ending_with_an_example() -> None:
    def leaves(command: object, path: str) -> list[tuple[str, object]]:
        children = getattr(command, "commands", None)
        if not children:
            return [(path, command)]
        return [
            item for name, child in children.items() for item in leaves(child, f"{path} {name}")
        ]

    found = leaves(typer.main.get_command(app), "aictl")
    assert len(found) >= 17
    for path, command in found:
        text = getattr(command, "help", "") or ""
        assert text.strip(), f"{path} has no help"
        assert "Example: aictl" in text.strip().splitlines()[-1], f"{path} help lacks an example"


def test_readme_opens_with_the_two_setup_commands() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    head = readme[: readme.index("\n## ", readme.index("make test"))]
    assert "make demo" in head and "make test" in head
