"""The skill service: the registry on disk, the settings in the store, and skill runs.

- Reading: ``list_skills``, ``show``, ``check`` (how a task's skills resolve for an AI) and
  ``checks_for`` (the same for every AI: the router's input).
- Changing: ``add`` (validate, copy the folder into ``.ai/skills/``, enable it for its scope),
  ``enable``, ``disable``.
- Running: ``prepare_run`` resolves a task's skills for the AI about to run it, runs their
  scripts as a chain (each script's output is the next one's input), and returns the text the
  agent receives (appended to its system prompt) and the evidence. ``test`` does the same for
  one skill outside any task and runs the skill's own checks.

Scripts run through ``connectors.process.run_process``: an argv list, no shell, a scrubbed
environment built from an allow-list, the skill's timeout, and only after the policy allowed
the command as a ``tool`` action for the tool ``Bash`` (the decision is recorded either way).
"""

from __future__ import annotations

import json
import shlex
import shutil
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aictl.clock import Clock
from aictl.domain.skills import (
    Skill,
    SkillCheck,
    check_for_ai,
    check_skill_name,
    context_text,
    effective_enabled,
)
from aictl.domain.tasks import Task
from aictl.errors import InvalidInput
from aictl.services.tasks import TaskService
from aictl.skills.loader import InvalidSkill, load_skill
from aictl.skills.registry import Registry, discover, skills_root
from aictl.store.ais import AIStore
from aictl.store.db import Database
from aictl.store.skills import SkillStore
from aictl.workspace import Workspace

#: Names a skill script gets from aictl's environment when present; nothing else passes.
SCRIPT_ENV = ("PATH", "LANG", "LC_ALL", "TERM", "TZ")
SCRIPT_DEFAULTS = {"PATH": "/usr/local/bin:/usr/bin:/bin", "LANG": "C.UTF-8"}
OUTPUT_LIMIT = 20_000
"""Characters of a script's output kept in evidence and passed on (the tail beyond is cut)."""
TEST_SUBJECT = "skill-test"
"""The subject of policy decisions for scripts run by ``aictl skill test`` (no AI in view)."""


@dataclass(frozen=True)
class ScriptRun:
    """One skill script run (or not run): ``status`` is ok, failed, timed_out, denied, error
    or not_run."""

    skill: str
    version: str
    status: str
    reason: str = ""
    exit_code: int | None = None
    output: str = ""
    stderr: str = ""
    duration: float = 0.0
    decision: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "skill": self.skill,
            "version": self.version,
            "status": self.status,
            "reason": self.reason,
            "exit_code": self.exit_code,
            "output": self.output,
            "stderr": self.stderr,
            "duration": round(self.duration, 3),
            "decision": self.decision,
        }


@dataclass(frozen=True)
class PreparedSkills:
    """What a run gets from its skills: ``context`` for the agent (None without skills) and
    ``evidence`` for the task's evidence."""

    context: str | None
    evidence: dict[str, Any]


@dataclass(frozen=True)
class CheckResult:
    name: str
    passed: bool
    run: ScriptRun
    why: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "passed": self.passed,
            "why": self.why,
            "run": self.run.to_dict(),
        }


@dataclass(frozen=True)
class TestReport:
    skill: str
    ai: str | None
    chosen: list[Skill]
    context: str
    checks: list[CheckResult] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return all(check.passed for check in self.checks)

    def to_dict(self) -> dict[str, Any]:
        return {
            "skill": self.skill,
            "ai": self.ai,
            "resolved": [skill.key for skill in self.chosen],
            "context": self.context,
            "checks": [check.to_dict() for check in self.checks],
            "passed": self.passed,
        }


class SkillService:
    def __init__(
        self,
        workspace: Workspace,
        *,
        db: Database | None = None,
        clock: Clock | None = None,
        environ: Mapping[str, str] | None = None,
        tasks: TaskService | None = None,
    ) -> None:
        from aictl.services.tasks import default_actor

        self.workspace = workspace
        self.tasks = tasks or TaskService(workspace, clock=clock, db=db)
        self.db = self.tasks.db
        self.clock = self.tasks.store.clock
        self.store = SkillStore(self.db, self.clock, actor=default_actor())
        self.environ = dict(environ) if environ is not None else None
        self._registry: Registry | None = None

    def close(self) -> None:
        self.db.close()

    # ----------------------------------------------------------------- reading

    def registry(self) -> Registry:
        if self._registry is None:
            self._registry = discover(self.workspace.root)
        return self._registry

    def _ai(self, ai_id: str) -> tuple[str, dict[str, str]]:
        found = AIStore(self.db, self.clock).get(ai_id)
        return found.connector, dict(found.labels)

    def list_skills(self, ai_id: str | None = None) -> list[dict[str, Any]]:
        """Every skill version an AI (or, without one, the project) can see, with whether its
        name is enabled there and whether it is the version in use."""
        registry = self.registry()
        settings = self.store.settings()
        if ai_id is not None:
            self._ai(ai_id)
        visible = [s for s in registry.skills if s.scope in ("", ai_id or "")]
        names = sorted({skill.name for skill in visible})
        enabled = effective_enabled(settings, names, ai_id)
        overridden = {s.name for s in visible if s.scope and s.scope == ai_id}
        rows = []
        for skill in sorted(visible, key=lambda s: (s.name, s.scope, _version_key(s))):
            shadowed = skill.scope == "" and skill.name in overridden
            rows.append(
                {
                    **skill.to_dict(),
                    "enabled": enabled[skill.name],
                    "overridden": shadowed,
                }
            )
        return rows

    def show(self, name: str, ai_id: str | None = None) -> dict[str, Any]:
        """Every version of ``name`` (shared and per AI), its settings, and the version an AI
        (or the project) would get with what it requires."""
        check_skill_name(name)
        registry = self.registry()
        versions = [skill for skill in registry.skills if skill.name == name]
        problems = [issue for issue in registry.issues if _names(issue.file, name)]
        if not versions and not problems:
            raise InvalidInput(
                f"no skill named {name!r}",
                hint="`aictl skill list` shows the skills; `aictl skill add PATH` adds one",
            )
        settings = {
            (scope or "project"): value
            for (scope, skill), value in self.store.settings().items()
            if skill == name
        }
        check = self.check([name], ai_id, require_enabled=False)
        chosen = next((skill for skill in check.chosen if skill.name == name), None)
        return {
            "name": name,
            "versions": [skill.to_dict() for skill in versions],
            "settings": settings,
            "ai": ai_id,
            "resolved": [skill.key for skill in check.chosen],
            "problems": list(check.problems),
            "instructions": chosen.instructions if chosen else "",
            "issues": [issue.to_dict() for issue in problems],
        }

    def check(
        self, names: Sequence[str], ai_id: str | None, *, require_enabled: bool = True
    ) -> SkillCheck:
        """How ``names`` resolve for ``ai_id`` (None: shared skills, no AI restrictions)."""
        skills = self.registry().skills
        connector, labels = self._ai(ai_id) if ai_id is not None else ("", {})
        all_names = {skill.name for skill in skills} | set(names)
        if require_enabled:
            enabled = effective_enabled(self.store.settings(), all_names, ai_id)
        else:
            enabled = dict.fromkeys(all_names, True)
        return check_for_ai(names, skills, enabled, ai_id=ai_id, connector=connector, labels=labels)

    def checks_for(self, task: Task) -> dict[str, SkillCheck]:
        """The router's input: how ``task``'s skills resolve for every registered AI."""
        if not task.skills:
            return {}
        registry = self.registry().skills
        settings = self.store.settings()
        names = {skill.name for skill in registry} | set(task.skills)
        out = {}
        for ai in AIStore(self.db, self.clock).list_ais():
            out[ai.id] = check_for_ai(
                task.skills,
                registry,
                effective_enabled(settings, names, ai.id),
                ai_id=ai.id,
                connector=ai.connector,
                labels=ai.labels,
            )
        return out

    # ----------------------------------------------------------------- changing

    def add(self, path: Path, *, ai_id: str | None = None, replace: bool = False) -> Skill:
        """Validate the skill folder at ``path`` (every error at once: ``InvalidSkill``), copy
        it to ``.ai/skills/[<ai>/]<name>/<version>/`` and enable it for that scope. A version
        already there is refused unless ``replace``. Nothing is copied on any error."""
        source = Path(path).expanduser().resolve()
        if ai_id is not None:
            self._ai(ai_id)
        loaded = load_skill(source, scope=ai_id or "", display=str(path))
        if not loaded.ok or loaded.skill is None:
            raise InvalidSkill(loaded.issues)
        skill = loaded.skill
        base = skills_root(self.workspace.root)
        target = (base / ai_id if ai_id else base) / skill.name / skill.version
        flat = target.parent
        if (flat / "skill.yaml").is_file() or (flat / "SKILL.md").is_file():
            raise InvalidInput(
                f"{flat.relative_to(self.workspace.root)} holds a skill without a version folder",
                hint=f"move it into {flat.name}/<its version>/ so that versions can coexist",
            )
        if base in source.parents or source == base:
            raise InvalidInput(f"{path} is already inside {base.relative_to(self.workspace.root)}")
        if target.exists():
            if not replace:
                raise InvalidInput(
                    f"{skill.key} is already in {target.relative_to(self.workspace.root)}",
                    hint="pass --replace to overwrite it",
                )
            shutil.rmtree(target)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copytree(source, target, ignore=shutil.ignore_patterns(".git", "__pycache__"))
        self.store.record_added(
            skill.name,
            skill.version,
            str(target.relative_to(self.workspace.root)),
            scope=ai_id or "",
        )
        self._registry = None
        return load_skill(target, scope=ai_id or "").skill or skill

    def enable(self, name: str, ai_id: str | None = None) -> None:
        check_skill_name(name)
        if ai_id is not None:
            self._ai(ai_id)
        if name not in {skill.name for skill in self.registry().skills}:
            raise InvalidInput(
                f"no valid skill named {name!r}",
                hint="`aictl skill list` shows the skills; `aictl skill test NAME` says what "
                "is wrong with one",
            )
        self.store.set_enabled(name, True, scope=ai_id or "")

    def disable(self, name: str, ai_id: str | None = None) -> None:
        check_skill_name(name)
        if ai_id is not None:
            self._ai(ai_id)
        self.store.set_enabled(name, False, scope=ai_id or "")

    # ----------------------------------------------------------------- running

    def prepare_run(self, task: Task, ai_id: str, run_dir: Path) -> PreparedSkills:
        """Resolve ``task``'s skills for ``ai_id``, run their scripts as a chain under policy,
        and return the agent's context and the evidence. Never raises for a skill problem: it
        is recorded in the evidence (the router has already checked the skills, unless the AI
        was named by hand)."""
        if not task.skills:
            return PreparedSkills(None, {"skills": [], "scripts": [], "problems": []})
        check = self.check(task.skills, ai_id)
        runs = self._chain(check.chosen, task, ai_id, run_dir / "skills", task.lease_epoch)
        outputs = {run.skill: run.output for run in runs if run.status == "ok"}
        context = context_text(check.chosen, outputs) or None
        evidence = {
            "skills": [
                {"name": skill.name, "version": skill.version, "scope": skill.scope}
                for skill in check.chosen
            ],
            "problems": list(check.problems),
            "scripts": [run.to_dict() for run in runs],
            "context_chars": len(context or ""),
        }
        return PreparedSkills(context, evidence)

    def test(self, name: str, ai_id: str | None = None) -> TestReport:
        """Validate every folder of ``name`` (``InvalidSkill`` with all errors), resolve it
        with what it requires (``InvalidInput`` on a conflict or cycle), build what an agent
        would receive, and run the skill's own checks."""
        check_skill_name(name)
        registry = self.registry()
        issues = [issue for issue in registry.issues if _names(issue.file, name)]
        if issues:
            raise InvalidSkill(issues)
        check = self.check([name], ai_id, require_enabled=False)
        if not check.ok:
            raise InvalidInput(check.problems[0])
        chosen = list(check.chosen)
        skill = next(item for item in chosen if item.name == name)
        results = []
        folder = self.workspace.state_dir / "skills-test" / name
        for number, spec in enumerate(skill.checks, start=1):
            payload = {"task": None, "inputs": dict(spec.input), "previous": None}
            run = self._run_script(
                skill, payload, None, ai_id, folder / str(number), lease_epoch=None
            )
            why = ""
            if run.status in ("denied", "timed_out", "error"):
                why = run.reason
            elif run.exit_code != spec.exit_code:
                why = f"exited {run.exit_code}, expected {spec.exit_code}"
            elif spec.expect is not None and spec.expect not in run.output:
                why = f"output does not contain {spec.expect!r}"
            results.append(CheckResult(spec.name, not why, run, why))
        return TestReport(name, ai_id, chosen, context_text(chosen), results)

    def _chain(
        self,
        chosen: Sequence[Skill],
        task: Task,
        ai_id: str,
        folder: Path,
        lease_epoch: int | None,
    ) -> list[ScriptRun]:
        """Run the scripts of ``chosen`` in order; each gets the previous script's output.
        After a script that did not succeed the rest are not run (their input is missing)."""
        runs: list[ScriptRun] = []
        previous: dict[str, str] | None = None
        broken: str | None = None
        for skill in chosen:
            if skill.script is None:
                continue
            if broken is not None:
                runs.append(
                    ScriptRun(skill.name, skill.version, "not_run", f"{broken} did not succeed")
                )
                continue
            inputs = _inputs(skill, task)
            missing = [
                item.name for item in skill.inputs if item.required and item.name not in inputs
            ]
            if missing:
                run = ScriptRun(
                    skill.name,
                    skill.version,
                    "not_run",
                    "missing input "
                    + ", ".join(missing)
                    + f" (set it with a task label {skill.name}.{missing[0]}=VALUE)",
                )
            else:
                payload = {
                    "task": task.to_dict(),
                    "inputs": inputs,
                    "previous": previous,
                }
                run = self._run_script(
                    skill, payload, task, ai_id, folder / skill.name, lease_epoch=lease_epoch
                )
            runs.append(run)
            if run.status == "ok":
                previous = {"skill": skill.name, "output": run.output}
            else:
                broken = skill.name
        return runs

    def _run_script(
        self,
        skill: Skill,
        payload: Mapping[str, Any],
        task: Task | None,
        ai_id: str | None,
        home: Path,
        *,
        lease_epoch: int | None,
    ) -> ScriptRun:
        """Ask the policy, record its decision, and run the script if it allows it."""
        from connectors.process import run_process

        assert skill.script is not None
        argv = script_argv(skill)
        command = shlex.join(argv)
        enforcer = self.tasks.enforcer
        ruling = enforcer.ruling(
            "tool",
            subject=ai_id or TEST_SUBJECT,
            task=task,
            ai=ai_id,
            tool="Bash",
            tool_input={"command": command, "skill": skill.name},
        )
        with self.db.transaction():
            self.tasks.store.decisions.enforce(
                ruling,
                at=self.clock.now(),
                task_id=task.id if task is not None else None,
                lease_epoch=lease_epoch,
            )
        if ruling.effect != "allow":
            return ScriptRun(
                skill.name,
                skill.version,
                "denied",
                f"policy {ruling.effect}: {ruling.reason}",
                decision=ruling.effect,
            )
        home.mkdir(parents=True, exist_ok=True)
        lines: list[str] = []
        started = time.monotonic()
        try:
            outcome = run_process(
                argv,
                cwd=self.workspace.root,
                env=self.script_env(skill, home, task),
                stdin_text=json.dumps({**payload, "skill": _identity(skill)}),
                idle_timeout=None,
                total_timeout=skill.timeout,
                on_line=lines.append,
                grace=1.0,
            )
        except OSError as error:
            return ScriptRun(
                skill.name,
                skill.version,
                "error",
                f"cannot start {argv[0]}: {error.strerror or error}",
                duration=time.monotonic() - started,
                decision="allow",
            )
        output = "\n".join(lines)[-OUTPUT_LIMIT:]
        if outcome.timed_out is not None:
            status, reason = "timed_out", f"stopped after its timeout of {skill.timeout:g}s"
        elif outcome.exit_code == 0:
            status, reason = "ok", ""
        else:
            status = "failed"
            reason = (
                f"exited {outcome.exit_code}"
                if outcome.exit_code is not None
                else f"killed by signal {outcome.signal}"
            )
        return ScriptRun(
            skill.name,
            skill.version,
            status,
            reason,
            outcome.exit_code,
            output,
            outcome.stderr[-OUTPUT_LIMIT:],
            outcome.duration,
            "allow",
        )

    def script_env(self, skill: Skill, home: Path, task: Task | None) -> dict[str, str]:
        """A script's whole environment, from an allow-list: a secret in aictl's environment
        does not reach a skill script."""
        import os

        base = self.environ if self.environ is not None else os.environ
        environment = dict(SCRIPT_DEFAULTS)
        for name in SCRIPT_ENV:
            if name in base:
                environment[name] = base[name]
        environment.update(
            {
                "HOME": str(home),
                "AICTL_SKILL": skill.name,
                "AICTL_SKILL_VERSION": skill.version,
                "AICTL_SKILL_DIR": skill.folder,
                "AICTL_TASK": str(task.id) if task is not None else "",
            }
        )
        return environment


def script_argv(skill: Skill) -> list[str]:
    """The script's argv, a word naming a file of the skill folder made absolute (scripts
    run in the repository root, but their own files live beside their manifest)."""
    assert skill.script is not None
    folder = Path(skill.folder)
    return [
        str(folder / word)
        if not word.startswith(("-", "/")) and (folder / word).is_file()
        else word
        for word in skill.script
    ]


def _identity(skill: Skill) -> dict[str, str]:
    return {"name": skill.name, "version": skill.version, "folder": skill.folder}


def _inputs(skill: Skill, task: Task) -> dict[str, str]:
    """A skill's input values: its defaults, overridden by task labels ``<skill>.<input>``."""
    values = {item.name: item.default for item in skill.inputs if item.default is not None}
    prefix = f"{skill.name}."
    for key, value in task.labels.items():
        if key.startswith(prefix) and key[len(prefix) :] in {item.name for item in skill.inputs}:
            values[key[len(prefix) :]] = value
    return values


def _version_key(skill: Skill) -> Any:
    from packaging.version import Version

    return Version(skill.version)


def _names(file: str, name: str) -> bool:
    """Whether an issue's file lies in a folder of skill ``name`` (``.../<name>/...``)."""
    return name in Path(file).parts


def prepare_skills(service: TaskService, task: Task, ai_id: str, run_dir: Path) -> PreparedSkills:
    """For the executor: ``SkillService.prepare_run`` on the executor's own connection."""
    return SkillService(service.workspace, tasks=service).prepare_run(task, ai_id, run_dir)


def skill_checks(service: TaskService, task: Task) -> dict[str, SkillCheck]:
    """For the executor's router call: ``SkillService.checks_for`` on its connection."""
    if not task.skills:
        return {}
    return SkillService(service.workspace, tasks=service).checks_for(task)
