"""Layers, merge rules, overrides, hashes and the fast path of a project without rules."""

from __future__ import annotations

import re
import subprocess
import sys
import textwrap
import time
from datetime import timedelta
from pathlib import Path

import pytest

from aictl.policy import (
    InvalidPolicy,
    build_request,
    check_overrides,
    evaluate,
    layer_paths,
    load_policy,
    per_ai_files,
)
from aictl.policy.digest import content_hash, trivial_document
from aictl.policy.layers import layer_name_for
from aictl.policy.loader import load_text

TEMPLATE = Path(__file__).resolve().parents[2] / "aictl" / "templates" / "policy.yaml"


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text))
    return path


@pytest.fixture
def three_layers(repo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A global, a project and a per-AI file for claude-1, each with settings and rules."""
    global_file = write(
        tmp_path / "global.yaml",
        """\
        version: 1
        default: allow
        settings:
          lease_ttl: 10m
          max_attempts: 3
          timeouts: {task: 30m, idle: 5m}
        ais:
          claude-1:
            denied_tools: [WebFetch]
            max_turns: 10
        rules:
          - id: no-secrets
            actions: [claim]
            when: touches(task.paths, "secrets/**")
            effect: deny
            reason: secrets are off limits
        """,
    )
    monkeypatch.setenv("AICTL_GLOBAL_POLICY", str(global_file))
    write(
        repo / ".ai" / "policy.yaml",
        """\
        version: 1
        default: require_approval
        settings:
          lease_ttl: 15m
          timeouts: {idle: 2m}
        ais:
          claude-1:
            denied_tools: [WebSearch]
            model: claude-sonnet-4-5
          other-ai:
            max_turns: 5
        rules:
          - id: everything-ok
            actions: [claim, create]
            effect: allow
            reason: the project trusts its agents
        """,
    )
    write(
        repo / ".ai" / "policies" / "claude-1.yaml",
        """\
        version: 1
        default: allow
        settings:
          max_attempts: 5
        ais:
          claude-1:
            max_turns: 30
            denied_tools: []
        rules:
          - id: docs-only
            actions: [claim]
            when: '!within(task.paths, "docs/**")'
            effect: require_approval
            reason: claude-1 writes documentation
        """,
    )
    return repo


def test_layer_paths_in_order(three_layers: Path, tmp_path: Path) -> None:
    names = [(name, path.name) for name, path in layer_paths(three_layers, "claude-1")]
    assert names == [
        ("global", "global.yaml"),
        ("project", "policy.yaml"),
        ("ai:claude-1", "claude-1.yaml"),
    ]
    assert [name for name, _ in layer_paths(three_layers)] == ["global", "project"]
    assert [name for name, _ in layer_paths(three_layers, "a/b")] == ["global", "project"]
    assert per_ai_files(three_layers) == [
        ("claude-1", three_layers / ".ai" / "policies" / "claude-1.yaml")
    ]


def test_the_global_layer_defaults_to_the_user_config(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.delenv("AICTL_GLOBAL_POLICY", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    name, path = layer_paths(tmp_path / "repo")[0]
    assert (name, path) == ("global", tmp_path / ".config" / "aictl" / "policy.yaml")
    monkeypatch.setenv("AICTL_GLOBAL_POLICY", "")
    assert [name for name, _ in layer_paths(tmp_path / "repo")] == ["project"]


def test_settings_merge_key_by_key_later_layers_win(three_layers: Path) -> None:
    policy = load_policy(three_layers, ai="claude-1")
    assert policy.setting("lease_ttl") == "15m"  # project over global
    assert policy.setting("max_attempts") == 5  # per-AI over global
    assert policy.settings["timeouts"] == {"task": "30m", "idle": "2m"}  # nested, key by key
    assert policy.duration("timeouts.idle") == timedelta(minutes=2)
    assert policy.setting("budgets.task_usd", "none") == "none"
    assert policy.duration("heartbeat_interval") is None


def test_per_ai_settings_merge_and_denied_tools_are_united(three_layers: Path) -> None:
    policy = load_policy(three_layers, ai="claude-1")
    claude = policy.ai_settings()
    assert claude["max_turns"] == 30
    assert claude["model"] == "claude-sonnet-4-5"
    assert claude["denied_tools"] == ["WebFetch", "WebSearch"]  # [] cannot un-deny
    assert policy.ai_settings("other-ai") == {"max_turns": 5}


def test_the_per_ai_layer_applies_only_to_its_ai(three_layers: Path) -> None:
    for_claude = load_policy(three_layers, ai="claude-1")
    for_other = load_policy(three_layers, ai="other-ai")
    assert [rule.qualified_id for rule in for_claude.rules] == [
        "global:no-secrets",
        "project:everything-ok",
        "ai:claude-1:docs-only",
    ]
    assert "ai:claude-1:docs-only" not in [rule.qualified_id for rule in for_other.rules]
    assert for_other.setting("max_attempts") == 3
    assert list(for_other.layer_hashes) == ["global", "project"]


def test_a_later_allow_does_not_defeat_an_earlier_deny(three_layers: Path) -> None:
    policy = load_policy(three_layers, ai="other-ai")
    decision = evaluate(policy, build_request("claim", task={"paths": ["secrets/key.pem"]}))
    assert decision.effect == "deny" and decision.decided_by == "global:no-secrets"
    assert [rule.qualified_id for rule in decision.matched] == [
        "global:no-secrets",
        "project:everything-ok",
    ]


def test_the_most_restrictive_default_wins(three_layers: Path) -> None:
    policy = load_policy(three_layers, ai="claude-1")
    assert (policy.default, policy.default_source) == ("require_approval", "project")
    decision = evaluate(policy, build_request("execute", task={"paths": ["src/a.py"]}))
    assert decision.effect == "require_approval" and decision.default_applied


def test_default_is_allow_when_no_layer_states_one(repo: Path) -> None:
    write(repo / ".ai" / "policy.yaml", "version: 1\nsettings:\n  max_attempts: 2\n")
    policy = load_policy(repo)
    assert (policy.default, policy.default_source) == ("allow", None)


def test_overrides_apply_last_and_change_the_hash(three_layers: Path) -> None:
    plain = load_policy(three_layers, ai="claude-1")
    overridden = load_policy(
        three_layers,
        ai="claude-1",
        overrides={"settings.lease_ttl": "20m", "ais.claude-1.max_turns": "40"},
    )
    assert overridden.setting("lease_ttl") == "20m"
    assert overridden.ai_settings()["max_turns"] == 40  # text read as a YAML scalar
    assert overridden.hash != plain.hash
    assert "overrides" in overridden.layer_hashes and "overrides" not in plain.layer_hashes
    again = load_policy(
        three_layers,
        ai="claude-1",
        overrides={"ais.claude-1.max_turns": 40, "settings.lease_ttl": "20m"},
    )
    assert again.hash == overridden.hash


def test_bad_overrides_are_policy_errors(three_layers: Path) -> None:
    values, issues = check_overrides(
        {
            "settings.lease_ttl": "soon",
            "settings.nope": "1",
            "rules.x": "1",
            "ais.claude.model": "sonnet",
            "settings.timeouts.task": "5m",
        }
    )
    assert values == {"ais.claude.model": "sonnet", "settings.timeouts.task": "5m"}
    by_key = {issue.field: issue.message for issue in issues}
    assert by_key["settings.lease_ttl"].startswith("invalid duration 'soon'")
    assert by_key["settings.nope"].startswith("unknown field 'nope'")
    assert "settings.NAME" in by_key["rules.x"]
    with pytest.raises(InvalidPolicy, match=re.escape("<overrides>:0: settings.lease_ttl")):
        load_policy(three_layers, overrides={"settings.lease_ttl": "soon"})


# ----------------------------------------------------------------------------- hashes


def layer_hash(text: str) -> str | None:
    return load_text(textwrap.dedent(text), display="p.yaml").hash


def test_the_hash_ignores_comments_layout_and_key_order() -> None:
    plain = layer_hash(
        """\
        version: 1
        settings: {lease_ttl: 10m, max_attempts: 3}
        rules:
          - {id: r, actions: [claim], effect: deny, reason: x}
        """
    )
    commented = layer_hash(
        """\
        # a comment
        version: 1   # trailing
        settings:
          max_attempts: 3
          lease_ttl: "10m"
        rules:
          - id: r
            reason: x
            effect: deny
            actions:
              - claim
        """
    )
    assert plain is not None and plain == commented


def test_the_hash_changes_with_content() -> None:
    base = "version: 1\nsettings: {{max_attempts: {n}}}\n"
    assert layer_hash(base.format(n=3)) != layer_hash(base.format(n=4))


def test_the_effective_hash_covers_layer_order_and_names(three_layers: Path) -> None:
    policy = load_policy(three_layers, ai="claude-1")
    assert list(policy.layer_hashes) == ["global", "project", "ai:claude-1"]
    assert len(policy.hash) == 64 and policy.hash not in policy.layer_hashes.values()
    (three_layers / ".ai" / "policy.yaml").write_text(
        (three_layers / ".ai" / "policy.yaml").read_text() + "\n# only a comment\n"
    )
    assert load_policy(three_layers, ai="claude-1").hash == policy.hash


def test_the_fast_path_gives_the_same_hash_as_the_full_path() -> None:
    for text in (TEMPLATE.read_text(), "version: 1\ndefault: deny  # note\n"):
        fast = trivial_document(text)
        assert fast is not None
        from aictl.policy import source

        parsed = source.parse(text)
        assert parsed.data == fast
        assert content_hash(fast) == content_hash(parsed.data)


@pytest.mark.parametrize(
    "text",
    [
        "version: 1\nversion: 1\n",  # a duplicate must be reported by the full path
        "version: 1\ndefault: warn\n",
        "version: 2\n",
        "default: allow\n",
        "version: 1\nrules: []\n",
        "  version: 1\n",
    ],
)
def test_anything_but_version_and_default_takes_the_full_path(text: str) -> None:
    assert trivial_document(text) is None


def test_a_project_without_rules_loads_fast_and_allows_everything(
    workspace: object, repo: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AICTL_GLOBAL_POLICY", "")
    assert (repo / ".ai" / "policy.yaml").read_text() == TEMPLATE.read_text()
    load_policy(repo)
    started = time.perf_counter()
    for _ in range(20):
        policy = load_policy(repo)
    per_load_ms = (time.perf_counter() - started) / 20 * 1000
    assert per_load_ms < 5, f"{per_load_ms:.2f} ms per load"
    assert (policy.default, policy.rules) == ("allow", ())
    decision = evaluate(policy, build_request("claim", task={"paths": ["**"]}))
    assert decision.effect == "allow" and decision.default_applied
    assert decision.reason == "no rule decided; the default is allow (built in)"


def test_the_fast_path_imports_neither_yaml_pydantic_nor_cel(workspace: object, repo: Path) -> None:
    code = textwrap.dedent(
        f"""
        import os, sys
        os.environ["AICTL_GLOBAL_POLICY"] = ""
        from pathlib import Path
        import aictl.policy as policy
        p = policy.load_policy(Path({str(repo)!r}))
        d = policy.evaluate(p, policy.build_request("claim", task={{"paths": ["a"]}}))
        heavy = [m for m in ("yaml", "pydantic", "cel", "cel.cel") if m in sys.modules]
        print(d.effect, heavy)
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert done.stdout.strip() == "allow []"


def test_layer_names_of_files_named_on_a_command_line(tmp_path: Path) -> None:
    assert layer_name_for(tmp_path / ".ai" / "policy.yaml") == "project"
    assert layer_name_for(tmp_path / ".ai" / "policies" / "claude-1.yml") == "ai:claude-1"
    assert layer_name_for(tmp_path / "global.yaml") == "global"


def test_policy_to_dict_is_the_effective_policy(three_layers: Path) -> None:
    data = load_policy(three_layers, ai="claude-1").to_dict()
    assert data["ai"] == "claude-1" and data["default"] == "require_approval"
    assert [layer["name"] for layer in data["layers"]] == ["global", "project", "ai:claude-1"]
    assert data["rules"][2]["qualified_id"] == "ai:claude-1:docs-only"
    assert data["rules"][2]["line"] == 10 and data["rules"][2]["file"].endswith("claude-1.yaml")
    assert data["settings"]["timeouts"] == {"task": "30m", "idle": "2m"}
