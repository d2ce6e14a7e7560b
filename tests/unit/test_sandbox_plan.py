"""The sandbox plan of a run (pure): where the agent's shell may write, and where not."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import pytest

from aictl.domain.sandbox import PROTECTED, literal_folder, plan_sandbox
from aictl.policy.layers import Policy
from aictl.services import confinement
from aictl.workspace import Workspace

TREE: Mapping[str, Sequence[str]] = {
    "": [".ai", ".git", "README.md", "docs", "src", "tests"],
    "src": ["api", "cli", "main.py"],
    "src/api": ["routes.py"],
}


def listing(folder: str) -> Sequence[str]:
    return TREE.get(folder, [])


@pytest.mark.parametrize(
    ("glob", "folder"),
    [
        ("src/**", "src"),
        ("src/api/**/*.py", "src/api"),
        ("src/*.py", "src"),
        ("*.md", ""),
        ("**", ""),
        ("README.md", ""),
        ("docs/guide/intro.md", "docs/guide"),
        ("src/[ab]pi/x.py", "src"),
    ],
)
def test_the_literal_folder_of_a_glob(glob: str, folder: str) -> None:
    assert literal_folder(glob) == folder


def test_only_the_tasks_folders_are_writable_and_everything_beside_them_is_denied() -> None:
    plan = plan_sandbox(["src/api/**"], [], listing)
    assert plan.allow == ("src/api",)
    # every existing entry on the way to src/api that is not on the way
    assert set(plan.deny) == {*PROTECTED, "README.md", "docs", "tests", "src/cli", "src/main.py"}
    assert "src" not in plan.deny and "src/api" not in plan.deny


def test_nested_globs_keep_the_outermost_folder() -> None:
    plan = plan_sandbox(["src/**", "src/api/*.py"], [], listing)
    assert plan.allow == ("src",)
    assert set(plan.deny) == {*PROTECTED, "README.md", "docs", "tests"}


def test_other_tasks_folders_inside_ours_are_denied_and_state_is_always_protected() -> None:
    plan = plan_sandbox(["src/**"], ["src/api/**", "docs/*.md", "src/*.py"], listing)
    assert "src/api" in plan.deny  # theirs, inside ours: the deny wins
    assert "docs" in plan.deny
    assert "src" not in plan.deny  # theirs holds ours: the gate and the check keep them apart
    root_task = plan_sandbox(["**"], [], listing, state_folder="var/state")
    assert root_task.allow == ("",)
    assert set(root_task.deny) == {*PROTECTED, "var/state"}


def test_a_task_without_paths_may_write_nothing() -> None:
    plan = plan_sandbox([], [], listing)
    assert plan.allow == ()
    assert set(plan.deny) == set(TREE[""])


def test_absolute_paths_join_the_root() -> None:
    plan = plan_sandbox(["src/**", "*.md"], [], listing)
    allow, deny = plan.absolute("/repo")
    assert allow == ("/repo",)
    assert "/repo/.ai" in deny and "/repo/.git" in deny


def policy(settings: Mapping[str, object]) -> Policy:
    return Policy((), (), "allow", None, dict(settings), {}, {}, None, "hash")


def test_sandbox_mode_defaults_to_required_and_off_is_read_as_yaml_writes_it() -> None:
    assert confinement.sandbox_mode(policy({})) == "required"
    assert confinement.sandbox_mode(policy({"sandbox": False})) == "off"
    assert confinement.sandbox_mode(policy({"sandbox": "off"})) == "off"
    assert confinement.setting_sources(policy({})) == ("project",)
    assert confinement.setting_sources(policy({"claude_settings": ["project", "user"]})) == (
        "project",
        "user",
    )
    assert not confinement.user_login(policy({}))
    assert confinement.user_login(policy({"claude_login": "subscription"}))


def test_a_required_sandbox_names_the_missing_packages(tmp_path: Path) -> None:
    with pytest.raises(confinement.SandboxUnavailable) as raised:
        confinement.require_sandbox(policy({}), 7, path=str(tmp_path))
    assert "task 7 was not run" in raised.value.message
    assert "bubblewrap and socat are not installed" in raised.value.message
    assert raised.value.hint and "apt-get install bubblewrap socat" in raised.value.hint
    assert confinement.require_sandbox(policy({"sandbox": "off"}), 7, str(tmp_path)) == "off"


def test_the_sandbox_of_a_workspace_lists_only_what_exists(tmp_path: Path) -> None:
    (tmp_path / "src").mkdir()
    (tmp_path / "docs").mkdir()
    (tmp_path / ".ai").mkdir()
    sandbox = confinement.sandbox_for(
        Workspace(tmp_path, tmp_path / ".ai" / "state.db"), ["src/**"], ["tests/**"]
    )
    assert sandbox.allow_write == (str(tmp_path / "src"),)
    assert sandbox.deny_write == (str(tmp_path / ".ai"), str(tmp_path / "docs"))


def test_the_users_credential_folders_are_unreadable_and_the_repository_carved_out(
    tmp_path: Path,
) -> None:
    home = tmp_path / "home"
    for name in (".ssh", ".aws", ".config", ".pyenv"):
        (home / name).mkdir(parents=True)
    repo = home / ".config" / "work" / "repo"
    (repo / ".ai").mkdir(parents=True)
    sandbox = confinement.sandbox_for(
        Workspace(repo, repo / ".ai" / "state.db"), ["src/**"], [], str(home)
    )
    assert set(sandbox.deny_read) == {str(home / n) for n in (".ssh", ".aws", ".config")}
    assert sandbox.allow_read == (str(repo),)  # inside .config: read again
    assert (
        confinement.sandbox_for(
            Workspace(repo, repo / ".ai" / "state.db"), ["src/**"], []
        ).deny_read
        == ()
    )
