"""Every policy example aictl ships validates: docs/policy.md, the template, the dogfood policy,
and the pre-commit hook points at the right command and files."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from aictl.policy import validate_files

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "policy.md"
TEMPLATE = ROOT / "aictl" / "templates" / "policy.yaml"
DOGFOOD = ROOT / ".ai" / "policy.yaml"


def yaml_blocks() -> list[str]:
    return re.findall(r"```yaml\n(.*?)```", DOC.read_text(encoding="utf-8"), re.DOTALL)


def errors_in(path: Path) -> list[str]:
    return [str(issue) for issue in validate_files([path]) if issue.is_error]


def test_the_policy_doc_has_at_least_three_complete_examples() -> None:
    complete = [block for block in yaml_blocks() if "rules:" in block and "settings:" in block]
    assert len(complete) >= 3


@pytest.mark.parametrize("index", range(len(yaml_blocks())))
def test_every_yaml_block_in_the_policy_doc_validates(index: int, tmp_path: Path) -> None:
    path = tmp_path / f"block{index}.yaml"
    path.write_text(yaml_blocks()[index], encoding="utf-8")
    assert errors_in(path) == []


def test_the_template_validates_as_written_and_uncommented(tmp_path: Path) -> None:
    assert errors_in(TEMPLATE) == []
    lines = []
    for line in TEMPLATE.read_text(encoding="utf-8").splitlines():
        body = line[2:] if line.startswith("# ") else line[1:] if line == "#" else None
        if body is not None and (body == "" or re.match(r"\s*(- )?[a-z_][a-z0-9_-]*:", body)):
            lines.append(body)
        elif not line.startswith("#"):
            lines.append(line)
    uncommented = tmp_path / "policy.yaml"
    uncommented.write_text("\n".join(lines) + "\n", encoding="utf-8")
    data = yaml.safe_load(uncommented.read_text(encoding="utf-8"))
    assert {"default", "settings", "ais", "rules"} <= set(data), "an example stayed commented"
    assert errors_in(uncommented) == []


def test_this_repositorys_own_policy_is_valid_and_clean() -> None:
    assert validate_files([DOGFOOD]) == []
    data = yaml.safe_load(DOGFOOD.read_text(encoding="utf-8"))
    assert len(data["rules"]) >= 5 and data["settings"]["test_command"] == "make test"


def test_the_pre_commit_hook_runs_validate_on_policy_files() -> None:
    [hook] = yaml.safe_load((ROOT / ".pre-commit-hooks.yaml").read_text(encoding="utf-8"))
    assert hook["id"] == "aictl-policy-validate"
    assert hook["entry"] == "aictl policy validate"
    files = re.compile(hook["files"])
    for path in (".ai/policy.yaml", ".ai/policies/claude-1.yaml", ".ai/policies/x.yml"):
        assert files.search(path), path
    for path in (".ai/state.db", "docs/policy.yaml", ".ai/policy.yaml.bak"):
        assert not files.search(path), path


def test_the_docs_local_pre_commit_hook_is_the_shipped_one_and_names_no_tag() -> None:
    """The example in docs/policy.md works without a release tag (none exists) and runs the
    same command on the same files as the hook the repository ships."""
    [block] = [
        body
        for body in re.findall(r"```text\n(.*?)```", DOC.read_text(encoding="utf-8"), re.DOTALL)
        if "repo: local" in body
    ]
    [repo] = yaml.safe_load(block)["repos"]
    [local] = repo["hooks"]
    [shipped] = yaml.safe_load((ROOT / ".pre-commit-hooks.yaml").read_text(encoding="utf-8"))
    assert "rev" not in repo
    assert (local["id"], local["entry"], local["files"]) == (
        shipped["id"],
        shipped["entry"],
        shipped["files"],
    )
    assert local["language"] == "system"
