"""Pure skill decisions: version resolution (highest satisfying, backtracking, conflicts and
cycles naming the chain), per-AI overrides, applies_to, enabled settings, and the router."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from aictl.domain.ais import AI
from aictl.domain.routing import route
from aictl.domain.skills import (
    Skill,
    SkillConflict,
    SkillCycle,
    SkillMissing,
    catalogue_for,
    check_for_ai,
    check_skill_name,
    context_text,
    effective_enabled,
    parse_range,
    resolve,
)
from aictl.domain.tasks import Task
from aictl.errors import InvalidInput

NOW = datetime(2026, 1, 1, tzinfo=UTC)


def skill(
    name: str,
    version: str,
    requires: dict[str, str] | None = None,
    *,
    scope: str = "",
    connectors: tuple[str, ...] = (),
    labels: dict[str, str] | None = None,
) -> Skill:
    return Skill(
        name=name,
        version=version,
        description=f"{name} does things",
        instructions=f"{name} {version} instructions",
        folder=f"/skills/{name}/{version}",
        scope=scope,
        requires=requires or {},
        connectors=connectors,
        labels=labels or {},
    )


def keys(chosen: list[Skill]) -> list[str]:
    return [item.key for item in chosen]


def shared(*skills: Skill) -> dict[str, list[Skill]]:
    catalogue, _ = catalogue_for(skills, None)
    return catalogue


def test_the_highest_version_satisfying_every_range_is_chosen() -> None:
    catalogue = shared(
        skill("app", "1.0", {"lib": ">=1.0,<3"}),
        skill("lib", "1.0"),
        skill("lib", "2.5"),
        skill("lib", "3.0"),
    )
    assert keys(resolve(["app"], catalogue)) == ["lib 2.5", "app 1.0"]


def test_without_a_range_the_newest_version_wins() -> None:
    catalogue = shared(skill("lib", "1.10"), skill("lib", "1.9"), skill("lib", "1.2"))
    assert keys(resolve(["lib"], catalogue)) == ["lib 1.10"]  # a version, not text, compares


def test_ranges_from_two_skills_are_intersected() -> None:
    catalogue = shared(
        skill("a", "1.0", {"lib": ">=1.2"}),
        skill("b", "1.0", {"lib": "<2"}),
        *(skill("lib", v) for v in ("1.0", "1.5", "2.0")),
    )
    assert keys(resolve(["a", "b"], catalogue)) == ["lib 1.5", "a 1.0", "b 1.0"]


def test_a_lower_version_is_tried_when_the_highest_leads_to_a_conflict() -> None:
    # app 2.0 needs lib>=2, which the task's other skill forbids; app 1.0 needs lib 1.x
    catalogue = shared(
        skill("app", "2.0", {"lib": ">=2"}),
        skill("app", "1.0", {"lib": "<2"}),
        skill("pin", "1.0", {"lib": "==1.*"}),
        skill("lib", "1.4"),
        skill("lib", "2.1"),
    )
    assert keys(resolve(["app", "pin"], catalogue)) == ["lib 1.4", "app 1.0", "pin 1.0"]


def test_a_conflict_names_every_range_and_the_chain_that_stated_it() -> None:
    catalogue = shared(
        skill("deploy", "1.0", {"db": ">=2"}),
        skill("review", "3.1", {"db": "<2"}),
        skill("db", "1.0"),
        skill("db", "2.0"),
    )
    with pytest.raises(SkillConflict) as caught:
        resolve(["deploy", "review"], catalogue)
    message = caught.value.message
    assert "no version of skill db satisfies every range" in message
    assert ">=2 (task -> deploy 1.0 -> db)" in message
    assert "<2 (task -> review 3.1 -> db)" in message
    assert "available: 2.0, 1.0" in message
    assert caught.value.exit_code == 2


def test_a_range_nothing_satisfies_is_a_conflict() -> None:
    catalogue = shared(skill("a", "1.0", {"b": ">=5"}), skill("b", "1.0"))
    with pytest.raises(SkillConflict, match=r">=5 \(task -> a 1.0 -> b\); available: 1.0"):
        resolve(["a"], catalogue)


def test_a_cycle_is_an_error_naming_the_chain() -> None:
    catalogue = shared(
        skill("a", "1.0", {"b": "*"}),
        skill("b", "1.0", {"c": ">=1"}),
        skill("c", "1.0", {"a": ""}),
    )
    with pytest.raises(SkillCycle) as caught:
        resolve(["a"], catalogue)
    assert caught.value.cycle == ["a", "b", "c", "a"]
    assert "skill dependency cycle: a -> b -> c -> a" in caught.value.message


def test_a_missing_skill_names_who_asked_for_it() -> None:
    catalogue = shared(skill("a", "1.0", {"ghost": "*"}))
    with pytest.raises(
        SkillMissing, match=r"skill ghost is not available \(task -> a 1.0 -> ghost\)"
    ):
        resolve(["a"], catalogue)


def test_a_per_ai_skill_overrides_every_shared_version_of_its_name() -> None:
    skills = [
        skill("review", "1.0"),
        skill("review", "9.0"),
        skill("review", "0.1", scope="claude-1"),
        skill("other", "1.0", scope="claude-2"),
    ]
    mine, _ = catalogue_for(skills, "claude-1", "claude-code")
    theirs, _ = catalogue_for(skills, "claude-2", "claude-code")
    assert keys(mine["review"]) == ["review 0.1"] and mine["review"][0].scope == "claude-1"
    assert keys(theirs["review"]) == ["review 9.0", "review 1.0"]
    assert "other" not in mine and keys(theirs["other"]) == ["other 1.0"]


def test_applies_to_leaves_out_versions_for_other_connectors_and_labels() -> None:
    skills = [
        skill("gpu", "2.0", labels={"gpu": "yes"}),
        skill("gpu", "1.0"),
        skill("codex-only", "1.0", connectors=("codex",)),
    ]
    catalogue, left_out = catalogue_for(skills, "claude-1", "claude-code", {"gpu": "no"})
    assert keys(catalogue["gpu"]) == ["gpu 1.0"]
    assert catalogue["codex-only"] == []
    assert left_out["codex-only"] == ["codex-only 1.0 applies to connectors codex, not claude-code"]
    assert left_out["gpu"] == ["gpu 2.0 applies to AIs labelled gpu=yes"]
    with pytest.raises(SkillMissing, match="applies to connectors codex"):
        resolve(["codex-only"], catalogue, left_out)


def test_check_for_ai_requires_every_resolved_skill_enabled() -> None:
    skills = [skill("app", "1.0", {"lib": "*"}), skill("lib", "1.0")]
    ok = check_for_ai(["app"], skills, {"app": True, "lib": True}, ai_id="c1")
    assert ok.ok and keys(list(ok.chosen)) == ["lib 1.0", "app 1.0"]
    off = check_for_ai(["app"], skills, {"app": True}, ai_id="c1")
    assert off.problems == ("skill lib is not enabled",)
    broken = check_for_ai(["nope"], skills, {}, ai_id="c1")
    assert broken.problems == ("skill nope is not available (task -> nope): no such skill",)
    assert check_for_ai([], skills, {}, ai_id="c1").ok


def test_an_ai_setting_wins_over_the_project_setting() -> None:
    settings = {("", "a"): True, ("c1", "a"): False, ("c2", "b"): True}
    assert effective_enabled(settings, ["a", "b", "c"], "c1") == {
        "a": False,
        "b": False,
        "c": False,
    }
    assert effective_enabled(settings, ["a", "b"], "c2") == {"a": True, "b": True}
    assert effective_enabled(settings, ["a", "b"], None) == {"a": True, "b": False}


def test_names_and_ranges_are_checked() -> None:
    assert check_skill_name("db-migrations") == "db-migrations"
    for bad in ("DB", "-a", "a_b", "", "x" * 65):
        with pytest.raises(InvalidInput, match="invalid skill name"):
            check_skill_name(bad)
    assert "3.0" in parse_range("*") and "3.0" in parse_range("")
    with pytest.raises(InvalidInput, match="invalid version range"):
        parse_range("=>1")


def test_the_context_carries_each_skill_its_instructions_and_script_output() -> None:
    chosen = [skill("lib", "1.0"), skill("app", "2.0")]
    text = context_text(chosen, {"app": "generated notes\n"})
    assert text.index("## Skill: lib 1.0") < text.index("## Skill: app 2.0")
    assert "lib 1.0 instructions" in text and "app does things" in text
    assert "Output of the app script:\n\ngenerated notes" in text
    assert context_text([]) == ""


# ------------------------------------------------------------------------ the router


def make_ai(ai_id: str) -> AI:
    return AI(id=ai_id, connector="claude-code", created_at=NOW, updated_at=NOW)


def make_task(skills: list[str]) -> Task:
    return Task(id=3, title="t", skills=skills, created_at=NOW, updated_at=NOW)


def test_the_router_qualifies_only_ais_with_every_skill() -> None:
    skills = [skill("review", "1.0"), skill("review", "2.0", scope="b")]
    checks = {
        "a": check_for_ai(["review"], skills, {"review": False}, ai_id="a"),
        "b": check_for_ai(["review"], skills, {"review": True}, ai_id="b"),
    }
    answer = route(make_task(["review"]), [make_ai("a"), make_ai("b")], {}, checks)
    assert answer.ai == "b"
    reasons = {candidate.ai: candidate.reasons for candidate in answer.candidates}
    assert reasons["a"] == ["skill review is not enabled"]
    assert reasons["b"][0] == "skills ready: review 2.0"


def test_a_task_with_skills_qualifies_no_ai_when_skills_were_not_checked() -> None:
    answer = route(make_task(["review"]), [make_ai("a")], {})
    assert answer.ai is None
    assert answer.candidates[0].reasons == ["skills review required, not checked"]
    plain = route(make_task([]), [make_ai("a")], {})
    assert plain.ai == "a"


def test_resolution_gives_up_after_its_attempt_budget(monkeypatch: pytest.MonkeyPatch) -> None:
    import aictl.domain.skills as module

    monkeypatch.setattr(module, "MAX_ATTEMPTS", 5)
    catalogue = shared(
        *(skill("a", f"{v}.0", {"c": ">=5"}) for v in range(30)),
        *(skill("b", f"{v}.0", {"c": "<5"}) for v in range(30)),
        *(skill("c", f"{v}.0") for v in range(10)),
    )
    with pytest.raises(SkillConflict) as caught:
        resolve(["a", "b"], catalogue)
    assert caught.value.message.startswith("no combination of versions found after 5 attempts")
    assert "the first conflict: no version of skill c satisfies every range" in caught.value.message


def test_the_most_constrained_skill_is_chosen_first() -> None:
    # each skill's newest version needs versions of the next ones that the task's pin excludes;
    # choosing the pinned name first avoids exploring the newest versions of the others
    catalogue = shared(
        *(skill("x", f"{v}.0", {"y": f">={v}"}) for v in range(1, 6)),
        *(skill("y", f"{v}.0") for v in range(1, 6)),
        skill("pin", "1.0", {"y": "<3"}),
    )
    assert keys(resolve(["x", "pin"], catalogue)) == ["y 2.0", "pin 1.0", "x 2.0"]
