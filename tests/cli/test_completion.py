"""`aictl completion SHELL` and `aictl version`: the scripts, and bash completing for real."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.cli.conftest import Result, installed


def complete(line: list[str], cwd: Path) -> list[str]:
    """What bash offers for the last word of ``line`` once `aictl completion bash` is loaded,
    asking the installed `aictl` as a user's shell would."""
    words = " ".join(f"'{word}'" for word in line)
    script = (
        'eval "$(aictl completion bash)"\n'
        f"COMP_WORDS=({words}); COMP_CWORD={len(line) - 1}\n"
        "_aictl_completion aictl\n"
        'printf "%s\\n" "${COMPREPLY[@]}"\n'
    )
    done = installed(cwd, "bash", "--norc", "--noprofile", "-c", script)
    assert done.returncode == 0, done.stderr
    return done.stdout.split()


def test_bash_completes_commands_subcommands_options_and_values(tmp_path: Path) -> None:
    assert complete(["aictl", "ta"], tmp_path) == ["task"]
    assert complete(["aictl", "task", "li"], tmp_path) == ["list", "link"]
    assert complete(["aictl", "task", "list", "--st"], tmp_path) == ["--status"]
    assert complete(["aictl", "task", "graph", "--format", "m"], tmp_path) == ["mermaid"]


@pytest.mark.parametrize(
    ("shell", "expected"),
    [
        ("bash", "complete -o default -F _aictl_completion aictl"),
        ("zsh", "#compdef aictl"),
        ("fish", "complete --command aictl"),
    ],
)
def test_each_shell_gets_its_script(
    shell: str, expected: str, aictl: Callable[..., Result]
) -> None:
    code, out, _ = aictl("completion", shell)
    assert code == 0 and expected in out and "_AICTL_COMPLETE=complete_" + shell in out


def test_an_unknown_shell_is_refused_naming_the_valid_ones(aictl: Callable[..., Result]) -> None:
    code, out, err = aictl("completion", "tcsh")
    assert code == 2 and out == ""
    assert "'tcsh' is not one of: bash, zsh, fish" in err


def test_the_version_three_ways(aictl: Callable[..., Result]) -> None:
    from importlib.metadata import version

    expected = f"aictl {version('aictl')}\n"
    assert aictl("--version")[1] == expected
    assert aictl("-V")[1] == expected
    code, out, _ = aictl("version", "--json")
    assert code == 0 and json.loads(out)["version"] == version("aictl")
