"""The cache of validated policy files: a hit skips YAML, structure and schema and gives the
same policy; anything else (new bytes, another aictl, a broken entry, an invalid file) loads
the file itself."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time
import tomllib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from aictl.policy import (
    InvalidPolicy,
    Policy,
    PolicyIssue,
    build_request,
    evaluate,
    load_policy,
    loader,
    models,
    source,
    validate_files,
    validate_repository,
)
from aictl.policy import cache as cache_module
from aictl.policy.cache import LayerCache
from aictl.policy.source import Lines

POLICY = textwrap.dedent(
    """\
    # A project policy with settings, per-AI settings and rules (one condition a block).
    version: 1
    default: allow
    settings:
      lease_ttl: 15m
      heartbeat_interval: 1m
      budgets: {task_usd: 3.0, daily_usd: 40.0}
    ais:
      claude-1:
        denied_tools: [WebFetch]
        max_turns: 40
    rules:
      - id: migrations-need-approval
        actions: [claim]
        when: touches(task.paths, "db/migrations/**")
        effect: require_approval
        reason: migrations are irreversible
      - id: no-prod
        actions: [claim, execute]
        when: |
          get(task.labels, "env", "") == "prod"
          && task.priority < 9
        effect: deny
        reason: production is off limits
      - id: always-warn
        actions: [tool]
        effect: warn
        reason: every tool call is looked at
    """
)


@pytest.fixture
def project(repo: Path) -> Path:
    """``repo`` with ``.ai/policy.yaml`` holding :data:`POLICY`."""
    (repo / ".ai").mkdir()
    (repo / ".ai" / "policy.yaml").write_text(POLICY)
    return repo


def entries(root: Path) -> list[Path]:
    folder = root / cache_module.FOLDER
    return sorted(folder.glob("*.json")) if folder.is_dir() else []


def errors(issues: list[PolicyIssue]) -> list[PolicyIssue]:
    return [issue for issue in issues if issue.is_error]


def forbid_stages_1_to_3(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make YAML parsing, the structure check and pydantic validation fail if called."""

    def refuse(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("stages 1-3 ran although the file is cached")

    monkeypatch.setattr(source, "parse", refuse)
    monkeypatch.setattr(loader, "_structure", refuse)
    monkeypatch.setattr(loader, "_schema", refuse)
    monkeypatch.setattr(models, "validate", refuse)


def count_schema_runs(monkeypatch: pytest.MonkeyPatch) -> list[object]:
    """A list that grows by one each time pydantic validates a document."""
    runs: list[object] = []
    validate = models.validate

    def counting(data: Any) -> Any:
        runs.append(data)
        return validate(data)

    monkeypatch.setattr(models, "validate", counting)
    return runs


def assert_same_policy(first: Policy, second: Policy) -> None:
    """Equal in everything but the compiled programs (objects of the CEL library)."""
    assert second.hash == first.hash and dict(second.layer_hashes) == dict(first.layer_hashes)
    assert [rule._replace(program=None) for rule in second.rules] == [
        rule._replace(program=None) for rule in first.rules
    ]
    assert all(rule.program is not None for rule in second.rules if rule.when)
    assert (second.default, second.settings, second.ais) == (
        first.default,
        first.settings,
        first.ais,
    )
    assert dict(second.needs) == dict(first.needs)
    for old, new in zip(first.layers, second.layers, strict=True):
        assert (new.name, new.path, new.hash, new.data, new.lines) == (
            old.name,
            old.path,
            old.hash,
            old.data,
            old.lines,
        )
    assert second.to_dict() == first.to_dict()


def test_a_second_load_skips_yaml_and_the_schema_and_gives_the_same_policy(
    project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = load_policy(project, ai="claude-1")
    assert len(entries(project)) == 1
    forbid_stages_1_to_3(monkeypatch)
    second = load_policy(project, ai="claude-1")
    assert_same_policy(first, second)
    assert second.layers[0].lines.literal_blocks == {("rules", 1, "when")}
    request = build_request(
        "claim", task={"paths": ["src/a.py"], "labels": {"env": "prod"}, "priority": 3}
    )
    assert evaluate(second, request).to_dict() == evaluate(first, request).to_dict()
    assert evaluate(second, request).effect == "deny"


def test_a_warm_load_in_a_fresh_process_imports_neither_yaml_nor_pydantic(
    project: Path,
) -> None:
    code = textwrap.dedent(
        f"""
        import os, sys
        os.environ["AICTL_GLOBAL_POLICY"] = ""
        from pathlib import Path
        import aictl.policy as policy
        found = policy.load_policy(Path({str(project)!r}))
        heavy = [name for name in ("yaml", "pydantic") if name in sys.modules]
        print(len(found.rules), heavy)
        """
    )

    def run() -> str:
        done = subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
        )
        return done.stdout.strip()

    assert run() == "3 ['yaml', 'pydantic']"  # cold: the file is validated, then cached
    assert run() == "3 []"


def test_changing_one_byte_loads_and_validates_the_new_content(
    project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = load_policy(project)
    runs = count_schema_runs(monkeypatch)
    path = project / ".ai" / "policy.yaml"
    path.write_text(POLICY.replace("lease_ttl: 15m", "lease_ttl: 16m"))
    second = load_policy(project)
    assert len(runs) == 1
    assert second.setting("lease_ttl") == "16m" and second.hash != first.hash
    assert len(entries(project)) == 2
    path.write_text(POLICY.replace("effect: deny", "effect: denx"))
    with pytest.raises(InvalidPolicy, match="unknown effect 'denx'"):
        load_policy(project)
    assert len(runs) == 2


def test_an_invalid_file_is_never_cached_and_its_errors_come_every_time(
    project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (project / ".ai" / "policy.yaml").write_text(
        POLICY.replace("max_turns: 40", "max_turns: 0").replace("task.priority", "task.prio")
    )
    runs = count_schema_runs(monkeypatch)
    messages = []
    for _ in range(2):
        with pytest.raises(InvalidPolicy) as caught:
            load_policy(project)
        messages.append(caught.value.message)
    assert len(runs) == 2 and messages[0] == messages[1]
    assert "ais.claude-1.max_turns" in messages[0] and "unknown field 'prio'" in messages[0]
    assert entries(project) == []


def _truncate(entry: Path) -> None:
    entry.write_bytes(entry.read_bytes()[:100])


def _garbage(entry: Path) -> None:
    entry.write_bytes(b"\xff\xfe\x00 not json")


def _empty(entry: Path) -> None:
    entry.write_bytes(b"")


def _edit(change: Callable[[dict[str, Any]], object]) -> Callable[[Path], None]:
    def edit(entry: Path) -> None:
        stored = json.loads(entry.read_text())
        change(stored)
        entry.write_text(json.dumps(stored))

    return edit


CORRUPTIONS = {
    "truncated": _truncate,
    "not UTF-8": _garbage,
    "empty": _empty,
    "a list": _edit(lambda stored: stored.clear()),
    "another format": _edit(lambda stored: stored.update(format=-1)),
    "another key": _edit(lambda stored: stored.update(key="0" * 64)),
    "a line that is text": _edit(lambda stored: stored["lines"][0].__setitem__(1, "one")),
    "a path that is a mapping": _edit(lambda stored: stored["literal_blocks"].append({})),
    "a rule without its effect": _edit(lambda stored: stored["data"]["rules"][0].pop("effect")),
    "a condition that fails to compile": _edit(
        lambda stored: stored["data"]["rules"][0].update(when="task.paths ==")
    ),
}


@pytest.mark.parametrize("corrupt", CORRUPTIONS.values(), ids=CORRUPTIONS.keys())
def test_a_corrupt_entry_is_ignored_and_rebuilt(
    project: Path, monkeypatch: pytest.MonkeyPatch, corrupt: Callable[[Path], None]
) -> None:
    first = load_policy(project)
    [entry] = entries(project)
    good = entry.read_bytes()
    corrupt(entry)
    assert entry.read_bytes() != good
    runs = count_schema_runs(monkeypatch)
    assert_same_policy(first, load_policy(project))
    assert len(runs) == 1
    assert entry.read_bytes() == good


def test_another_aictl_version_or_format_misses(
    project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = load_policy(project)
    runs = count_schema_runs(monkeypatch)
    monkeypatch.setattr(cache_module, "AICTL_VERSION", "99.0.0")
    assert_same_policy(first, load_policy(project))
    monkeypatch.setattr(cache_module, "FORMAT", cache_module.FORMAT + 1)
    assert_same_policy(first, load_policy(project))
    assert len(runs) == 2 and len(entries(project)) == 3


def test_the_key_covers_content_version_format_and_layer(tmp_path: Path) -> None:
    cache = LayerCache(tmp_path)
    key = cache.key(b"version: 1\n", "project")
    assert key == cache.key(b"version: 1\n", "project")
    assert key != cache.key(b"version: 1 \n", "project")
    assert key != cache.key(b"version: 1\n", "ai:claude-1")
    assert key != cache.key(b"version: 1\n", "global")


def test_the_version_constant_is_the_package_version() -> None:
    pyproject = Path(__file__).resolve().parents[2] / "pyproject.toml"
    assert tomllib.loads(pyproject.read_text())["project"]["version"] == (
        cache_module.AICTL_VERSION
    )


def test_validation_never_reads_or_writes_the_cache(
    project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    load_policy(project)

    def refuse(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("the validator used the cache")

    monkeypatch.setattr(LayerCache, "get", refuse)
    monkeypatch.setattr(LayerCache, "put", refuse)
    runs = count_schema_runs(monkeypatch)
    assert errors(validate_files([project / ".ai" / "policy.yaml"])) == []
    checked, issues = validate_repository(project)
    assert checked and errors(issues) == []
    assert len(runs) == 2


def test_the_global_layer_is_cached_in_the_users_folder_not_the_repository(
    project: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Nothing an agent writes inside the repository may change how the global layer loads."""
    global_file = tmp_path / "global.yaml"
    global_file.write_text(POLICY.replace("default: allow", "default: deny"))
    monkeypatch.setenv("AICTL_GLOBAL_POLICY", str(global_file))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "user-cache"))
    first = load_policy(project)
    assert [layer.name for layer in first.layers] == ["global", "project"]
    assert len(entries(project)) == 1  # the project layer only
    assert len(list((tmp_path / "user-cache" / "aictl" / "policy").glob("*.json"))) == 1
    assert not (tmp_path / ".ai").exists()
    forbid_stages_1_to_3(monkeypatch)
    assert_same_policy(first, load_policy(project))


def test_same_bytes_in_two_layers_are_two_entries(
    project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (project / ".ai" / "policies").mkdir()
    (project / ".ai" / "policies" / "claude-1.yaml").write_text(POLICY)
    first = load_policy(project, ai="claude-1")
    assert len(entries(project)) == 2
    forbid_stages_1_to_3(monkeypatch)
    second = load_policy(project, ai="claude-1")
    assert_same_policy(first, second)
    assert {rule.layer for rule in second.rules} == {"project", "ai:claude-1"}


def test_no_cache_without_an_ai_folder_nor_for_the_template(
    repo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    global_file = tmp_path / "global.yaml"
    global_file.write_text(POLICY)
    monkeypatch.setenv("AICTL_GLOBAL_POLICY", str(global_file))
    assert len(load_policy(repo).rules) == 3
    assert not (repo / ".ai").exists()
    monkeypatch.setenv("AICTL_GLOBAL_POLICY", "")
    (repo / ".ai").mkdir()
    (repo / ".ai" / "policy.yaml").write_text("# the template\nversion: 1\ndefault: allow\n")
    assert load_policy(repo).default == "allow"
    assert not (repo / cache_module.FOLDER).exists()


def test_windows_line_endings_load_as_the_same_policy(project: Path) -> None:
    path = project / ".ai" / "policy.yaml"
    unix = load_policy(project)
    path.write_bytes(POLICY.replace("\n", "\r\n").encode())
    windows = load_policy(project)
    assert_same_policy(unix, windows)
    assert_same_policy(unix, load_policy(project))  # and again, from the cache
    assert errors(validate_files([path])) == []


def test_a_document_json_cannot_carry_exactly_is_not_stored(tmp_path: Path) -> None:
    cache = LayerCache(tmp_path / "cache")
    cache.put("a" * 64, {"version": 1, "pair": (1, 2)}, Lines())  # would come back a list
    cache.put("b" * 64, {"version": 1, 3: "an integer key"}, Lines())
    cache.put("c" * 64, {"version": 1, "at": object()}, Lines())
    cache.put("e" * 64, {"version": 1, "nan": float("nan")}, Lines())
    assert list((tmp_path / "cache").glob("*")) == []
    cache.put("d" * 64, {"version": 1}, Lines())
    entry = cache.get("d" * 64)
    assert entry is not None and entry.data == {"version": 1} and entry.lines == Lines()


def test_the_folder_keeps_the_newest_entries_and_drops_stale_temporary_files(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(cache_module, "MAX_ENTRIES", 5)
    folder = tmp_path / "cache"
    cache = LayerCache(folder)
    now = time.time()
    for index in range(8):
        cache.put(f"{index:064d}", {"version": 1}, Lines())
        os.utime(folder / f"{index:064d}.json", (now - 100 + index, now - 100 + index))
    stale, fresh = folder / ".old.1.tmp", folder / ".new.2.tmp"
    stale.write_text("{")
    fresh.write_text("{")
    os.utime(stale, (now - 2 * cache_module.STALE_TEMPORARY_SECONDS,) * 2)
    cache.prune()
    kept = sorted(path.name for path in folder.glob("*.json"))
    assert kept == [f"{index:064d}.json" for index in range(3, 8)]
    assert fresh.exists() and not stale.exists()


WRITER = """
import sys, time
from pathlib import Path
from aictl.policy.cache import LayerCache
from aictl.policy.source import Lines

folder, letter, go = Path(sys.argv[1]), sys.argv[2], Path(sys.argv[3])
data = {"version": 1, "settings": {"test_command": letter * 300_000}}
while not go.exists():
    time.sleep(0.001)
for _ in range(40):
    LayerCache(folder).put("f" * 64, data, Lines())
"""


@pytest.mark.slow
def test_concurrent_writers_never_leave_a_partial_entry(tmp_path: Path) -> None:
    """Two processes rewrite one entry (300 kB, written in many system calls) while this one
    reads it: every read is a whole entry of one writer or the other, never a mix or a part."""
    folder, go = tmp_path / "cache", tmp_path / "go"
    writers = [
        subprocess.Popen([sys.executable, "-c", WRITER, str(folder), letter, str(go)])
        for letter in "ab"
    ]
    target = folder / f"{'f' * 64}.json"
    seen: set[str] = set()
    go.touch()
    deadline = time.monotonic() + 60
    while any(writer.poll() is None for writer in writers) and time.monotonic() < deadline:
        try:
            raw = target.read_bytes()
        except FileNotFoundError:
            continue
        command = json.loads(raw)["data"]["settings"]["test_command"]
        assert command in ("a" * 300_000, "b" * 300_000)
        seen.add(command[0])
    assert [writer.wait(timeout=60) for writer in writers] == [0, 0]
    assert seen, "the reader never saw an entry"
    entry = LayerCache(folder).get("f" * 64)
    assert entry is not None and entry.data["settings"]["test_command"][0] in "ab"
    assert sorted(path.name for path in folder.iterdir()) == [target.name]
