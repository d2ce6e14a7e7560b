"""Task worktrees: make one per attempt, commit the agent's work there, integrate it into the
target branch, list and prune them. Every git command goes through ``run_process``.

Integration (``Worktrees.integrate``) is serialised by a file lock (``.ai/integrate.lock``),
fenced by the caller's lease (``fence`` raises before the target moves), and never half done:

1. the merged tree comes from ``git merge-tree --write-tree`` (no working tree, no index);
   a conflict refuses the integration and changes nothing;
2. the paths the merge changes are checked in the user's working tree: an uncommitted change
   (staged, unstaged or an untracked file) to one of them refuses it, changing nothing;
3. the merge commit is made with ``git commit-tree`` and recorded (``integrating``) before
4. ``git update-ref <target> <merge> <old>`` moves the branch in one atomic compare-and-swap
   (a target that moved meanwhile refuses it), then
5. the merged paths are checked out in the user's working tree, each only while it still
   holds the content of the old target (the user's edits are never overwritten).

A process killed between 4 and 5 leaves the branch with the merge and the user's files as
they were; integrating again (``aictl task integrate``) sees the merge in the target and
finishes step 5. Killed before 4, the target is as it was and integrating again merges.

With a shared remote (``remote: NAME`` under the policy's settings, for daemons on several
hosts, each in its own clone) the target of truth is the remote's branch: a worktree starts
from its fetched head, and step 4 is ``git push --force-with-lease=<target>:<fetched head>``,
the same compare-and-swap on the remote; another host's push in between refuses it, and
aictl fetches, merges again and retries (at most ``PUSH_ROUNDS`` times, fenced each time).
Then the local target follows the remote's when it can fast-forward (step 5 as above), and is
left alone, with the reason recorded, when it holds commits of its own.
"""

from __future__ import annotations

import contextlib
import os
import shutil
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from aictl.domain import worktrees as names
from aictl.domain.globs import covers
from aictl.domain.worktrees import WorktreeState, prune_verdict
from aictl.errors import AictlError, InvalidInput, TaskHeld
from aictl.services.tasks import TaskService
from aictl.store.branches import BranchRecord, BranchStore
from aictl.workspace import Workspace
from connectors.process import run_process

if TYPE_CHECKING:
    from filelock import FileLock

GIT_TIMEOUT = 120.0
LOCK_TIMEOUT = 600.0
#: How many times an integration through a remote fetches and pushes again when another
#: host's push came first.
PUSH_ROUNDS = 8
#: aictl's identity as the committer of the commits and merges it makes.
COMMITTER = ("aictl", "aictl@localhost")


class GitFailed(AictlError):
    """A git command aictl needs failed."""


def exclude_file(git: Git) -> Path:
    """The repository's ``info/exclude`` (shared by its linked worktrees, never tracked)."""
    common = Path(git.out("rev-parse", "--path-format=absolute", "--git-common-dir"))
    return common / "info" / "exclude"


def excluded_text(text: str, line: str) -> str:
    """``text`` (an exclude file) with ``line`` appended unless it is there already."""
    if line in text.splitlines():
        return text
    return text + ("" if text.endswith("\n") or not text else "\n") + line + "\n"


def exclude_in_git(git: Git, line: str) -> None:
    """Add the pattern ``line`` to ``info/exclude`` unless present; raises ``OSError``."""
    exclude = exclude_file(git)
    text = exclude.read_text(encoding="utf-8") if exclude.is_file() else ""
    changed = excluded_text(text, line)
    if changed != text:
        exclude.parent.mkdir(parents=True, exist_ok=True)
        exclude.write_text(changed, encoding="utf-8")


@dataclass(frozen=True)
class Integration:
    """How an integration ended: ``merged``, ``kept`` (branch mode), ``empty`` (nothing to
    integrate) or ``refused`` (``reason`` says why and how to finish)."""

    status: str
    reason: str | None
    record: BranchRecord

    def to_dict(self) -> dict[str, Any]:
        return {"status": self.status, "reason": self.reason, **self.record.to_dict()}


class Git:
    """git in one folder, with aictl's environment (no prompts, no pager, fixed identity)."""

    def __init__(self, cwd: Path, environ: Mapping[str, str]) -> None:
        self.cwd = cwd
        self.env = {
            **environ,
            "GIT_TERMINAL_PROMPT": "0",
            "GIT_PAGER": "cat",
            "GIT_COMMITTER_NAME": COMMITTER[0],
            "GIT_COMMITTER_EMAIL": COMMITTER[1],
            "LC_ALL": "C",
        }

    def run(
        self,
        *args: str,
        check: bool = True,
        env: Mapping[str, str] | None = None,
        survives_us: bool = False,
    ) -> tuple[int, str, str]:
        """``git args`` in this folder: exit code, stdout, stderr. With ``check``, a non-zero
        exit raises ``GitFailed`` naming the command and git's message. ``survives_us``: git
        runs to its end even if aictl is killed meanwhile (a ref update killed half-way would
        leave its ``.lock`` file, blocking the user's next commit)."""
        lines: list[str] = []
        try:
            outcome = run_process(
                ["git", *args],
                cwd=self.cwd,
                env={**self.env, **(env or {})},
                idle_timeout=None,
                total_timeout=GIT_TIMEOUT,
                on_line=lines.append,
                grace=2.0,
                dies_with_parent=not survives_us,
            )
        except OSError as error:
            raise GitFailed(f"cannot run git in {self.cwd}: {error}") from None
        code = outcome.exit_code if outcome.exit_code is not None else -1
        out = "\n".join(lines)
        if check and code != 0:
            raise GitFailed(
                f"`git {' '.join(args[:4])}` failed in {self.cwd} (exit {code}): "
                f"{(outcome.stderr or out).strip()[:500]}",
                hint="see git's message; the task's worktree and branch are kept",
            )
        return code, out, outcome.stderr

    def out(self, *args: str) -> str:
        return self.run(*args)[1].strip()

    def ok(self, *args: str) -> bool:
        return self.run(*args, check=False)[0] == 0

    def names(self, *args: str) -> list[str]:
        """Paths from a ``-z`` listing."""
        return [name for name in self.run(*args)[1].split("\0") if name.strip("\n")]


#: How many of the latest attempts are looked at for a worktree to reuse.
SPARE_LOOKUP = 4


class Worktrees:
    """The worktrees of one workspace's tasks."""

    def __init__(
        self,
        workspace: Workspace,
        branches: BranchStore,
        environ: Mapping[str, str] | None = None,
        progress: Callable[[str], None] | None = None,
        remote: str | None = None,
    ) -> None:
        self.workspace = workspace
        self.remote = remote
        self.root = workspace.root
        self.branches = branches
        self.environ = dict(os.environ if environ is None else environ)
        self.git = Git(self.root, self.environ)
        self.progress = progress or (lambda text: None)

    # making one

    def current_branch(self) -> str | None:
        """The branch checked out in the main working tree (None when HEAD is detached)."""
        code, out, _ = self.git.run("symbolic-ref", "--quiet", "--short", "HEAD", check=False)
        return out.strip() if code == 0 else None

    def create(
        self,
        task_id: int,
        attempt: int,
        mode: str,
        *,
        continues: int | None = None,
        paths: Sequence[str] = (),
    ) -> BranchRecord:
        """A new worktree for ``attempt`` of ``task_id`` on ``aictl/task-<id>``, from the
        target branch's head (the branch checked out in the main tree), or, when the task
        ``continues`` another whose committed work is not merged yet (a workflow's fix step
        after a failed step), from that work (see ``continuation``). An earlier attempt's
        worktree is left where it is (detached, its files untouched); an earlier branch with
        commits not in the target is renamed ``aictl/task-<id>-attempt-<n>``, never reset."""
        target = self.current_branch()
        if target is None:
            raise InvalidInput(
                f"task {task_id} was not run: the main working tree has no branch checked out "
                "(detached HEAD), so there is no target branch to integrate into",
                hint="check out a branch, or set `isolation: shared` under settings",
            )
        base = self.target_head(target)
        if continues is not None:
            base = self.continuation(task_id, continues, base, paths) or base
        branch = names.branch_name(task_id)
        self._free_branch(task_id, branch, target)
        relative = names.worktree_path(task_id, attempt)
        path = self.root / relative
        if path.exists():  # a run that gave its attempt number back left it: keep it aside
            path.rename(path.with_name(f"{path.name}-old-{os.getpid()}"))
            self.git.run("worktree", "repair", check=False)
        self._ignore_worktrees()
        record = self.branches.add(
            task_id=task_id,
            attempt=attempt,
            branch=branch,
            worktree=relative,
            target=target,
            base_commit=base,
            mode=mode,
        )
        # Choosing a spare and taking it is one step: two runs starting at once (the
        # daemon's workers, or two `task execute`) would otherwise both pick the same one.
        with self._state_lock("worktrees.lock"):
            spare = self._spare()
            if spare is not None:
                # a merged, clean worktree: switching it rewrites only the files that differ,
                # where `worktree add` writes every file of the repository again
                self.git.run("worktree", "move", str(spare), str(path))
        if spare is not None:
            moved = Git(path, self.environ)
            moved.run("switch", "--quiet", "-C", branch, base)
            # ignored files too: nothing an earlier agent left may reach this task
            moved.run("clean", "-ffdxq")
        else:
            # `worktree add` writes an all-zero HEAD for the new worktree before the real one
            # (git 2.39), and a fetch meanwhile fails ("bad object worktrees/<name>/HEAD"):
            # seen when two tasks of one daemon start at once, so both take the remote's lock
            with self._talking_to_remote():
                self.git.run("worktree", "add", "--quiet", "-B", branch, str(path), base)
        return record

    def continuation(
        self, task_id: int, continued: int, head: str, paths: Sequence[str]
    ) -> str | None:
        """The commit of task ``continued``'s latest attempt when it holds work that is not in
        the target's ``head`` and every path that work changed lies within ``paths`` (the
        continuing task's globs, which its lease locks); None, said in the progress, when
        there is nothing to continue or the work reaches outside those globs. Merging the
        continuing task later merges that work with it."""
        record = self.branches.latest(continued)
        commit = record.task_commit if record is not None else None
        if commit is None or not self._count(f"{head}..{commit}"):
            self.progress(
                f"task {task_id}: task {continued} left no unmerged commit to continue; "
                "starting from the target's head"
            )
            return None
        changed = self.git.names(
            "diff", "--name-only", "-z", "--no-renames", f"{head}...{commit}"
        )  # fmt: skip
        outside = [path for path in changed if not any(covers(glob, path) for glob in paths)]
        if outside:
            self.progress(
                f"task {task_id}: not continuing task {continued}: its work changed "
                f"{', '.join(outside[:5])}, outside this task's paths"
            )
            return None
        self.progress(f"task {task_id}: continuing task {continued}'s work ({commit[:12]})")
        return commit

    def target_head(self, target: str) -> str:
        """The commit a task starts from and merges into: the local branch's head, or with a
        remote, its branch's head there (fetched now)."""
        if self.remote is None:
            return self.git.out("rev-parse", "--verify", f"refs/heads/{target}^{{commit}}")
        tracking = f"refs/remotes/{self.remote}/{target}"
        with self._talking_to_remote():
            code, _, err = self.git.run(
                "fetch", "--quiet", "--no-tags", self.remote, f"+refs/heads/{target}:{tracking}",
                check=False,
            )  # fmt: skip
        if code != 0:
            raise GitFailed(
                f"cannot fetch {target} from the remote {self.remote!r}: {err.strip()[:300]}",
                hint=f"check `git remote -v` and that {target} exists there "
                f"(`git push {self.remote} {target}`), or remove `remote:` from the policy",
            )
        return self.git.out("rev-parse", "--verify", f"{tracking}^{{commit}}")

    def _spare(self) -> Path | None:
        """A worktree left by a merged attempt that prune would remove (every commit in the
        target, nothing uncommitted, no run in it): the newest of the last few, or None."""
        for record in reversed(self.branches.list_all()[-SPARE_LOOKUP:]):
            path = self.root / record.worktree
            if record.status != "merged" or not path.is_dir():
                continue
            remove, _ = prune_verdict(self.state(record, live=False))
            if remove:
                return path
        return None

    def _free_branch(self, task_id: int, branch: str, target: str) -> None:
        if not self.git.ok("rev-parse", "--verify", "--quiet", f"refs/heads/{branch}"):
            return
        for worktree, checked_out in self._worktrees().items():
            if checked_out == f"refs/heads/{branch}" and worktree != self.root:
                Git(worktree, self.environ).run("switch", "--quiet", "--detach", check=False)
        unmerged = self._count(f"refs/heads/{target}..refs/heads/{branch}")
        if unmerged:
            previous = self.branches.latest(task_id)
            kept = names.kept_branch_name(task_id, previous.attempt if previous else 0)
            self.git.run("branch", "-m", branch, kept)
            if previous is not None:
                self.branches.update(task_id, previous.attempt, branch=kept)
            self.progress(f"task {task_id}: the earlier attempt's commits are kept on {kept}")

    def _ignore_worktrees(self) -> None:
        """Keep ``.ai/worktrees/`` out of the user's ``git status`` even in a repository
        whose ``.ai/.gitignore`` predates worktrees (``info/exclude`` is not tracked)."""
        with contextlib.suppress(OSError):  # only cosmetic: aictl's status checks skip .ai/
            exclude_in_git(self.git, f"/{names.WORKTREES_FOLDER}/")

    # committing

    def commit(
        self, record: BranchRecord, *, author: str, message: str
    ) -> tuple[BranchRecord, list[str]]:
        """Commit everything the run changed in its worktree on its branch (the AI as author;
        no hooks: the user's hooks are not the agent's). Returns the updated record and the
        changed paths (empty: nothing to commit, status ``empty``)."""
        tree = Git(self.root / record.worktree, self.environ)
        tree.run("add", "--all", "--", ".")
        changed = tree.names("diff", "--cached", "--name-only", "-z", "--no-renames", "HEAD")
        if not changed:
            return self.branches.update(record.task_id, record.attempt, status="empty"), []
        email = f"{author}@aictl.invalid"
        tree.run(
            "commit",
            "--quiet",
            "--no-verify",
            "--no-gpg-sign",
            f"--author={author} <{email}>",
            "-m",
            message,
        )
        commit = tree.out("rev-parse", "HEAD")
        updated = self.branches.update(
            record.task_id, record.attempt, task_commit=commit, status="committed"
        )
        return updated, changed

    def diffstat(self, base: str, commit: str) -> tuple[str, str]:
        """``git diff --stat`` and the diff itself between two commits."""
        stat = self.git.out("diff", "--stat", "--no-color", base, commit)
        diff = self.git.run("diff", "--no-color", base, commit)[1]
        return stat, diff

    # integrating

    def integrate(
        self,
        record: BranchRecord,
        *,
        title: str,
        fence: Callable[[], None] = lambda: None,
        mode: str | None = None,
    ) -> Integration:
        """Put the task's commit on its target branch (see the module's docstring for the
        steps and what a kill at each step leaves). ``fence`` is called right before the
        target moves: it raises (``LeaseLost``) when the caller may no longer integrate.
        Serialised by ``.ai/integrate.lock``; a rerun of a merged record only finishes
        updating the user's files."""
        chosen = mode or record.mode
        if record.task_commit is None:
            return Integration("empty", None, record)
        if chosen == "branch":
            where = f"branch {record.branch}"
            if self.remote is not None:  # reviewers on other hosts see it there
                self._push(f"+{record.task_commit}:refs/heads/{record.branch}")
                where += f" (pushed to {self.remote})"
            kept = self.branches.update(record.task_id, record.attempt, status="kept")
            return Integration("kept", f"the work is on {where}", kept)
        with self._state_lock("integrate.lock"):
            if self.remote is not None:
                return self._integrate_remote(record, chosen, title, fence)
            return self._integrate(record, chosen, title, fence)

    def _integrate(
        self, record: BranchRecord, mode: str, title: str, fence: Callable[[], None]
    ) -> Integration:
        assert record.task_commit is not None and record.target is not None
        ref = f"refs/heads/{record.target}"
        current = self.git.out("rev-parse", "--verify", f"{ref}^{{commit}}")
        finished = self._already_in(record, current)
        if finished is not None:
            return finished
        new = self._merged(record, mode, title, current)
        if isinstance(new, Integration):
            return new
        paths = self.git.names("diff", "--name-only", "-z", "--no-renames", current, new)
        touching = self._main_tree_on(record.target)
        if touching:
            edited = self._changed_since(current, paths)
            if edited:
                return self._refuse(
                    record,
                    "the main working tree has uncommitted changes to "
                    f"{', '.join(edited[:20])}, which the merge would change",
                )
        record = self._integrating(record, current, new)
        fence()
        moved = self.git.run(
            "update-ref", "-m", f"aictl: integrate task {record.task_id}", ref, new, current,
            check=False, survives_us=True,
        )  # fmt: skip
        if moved[0] != 0:
            return self._refuse(
                record,
                f"git could not move {record.target} to the merge (it moved meanwhile, or its "
                f"ref is locked): {moved[2].strip()[:300]}",
            )
        return self._finish(record, current, new)

    def _merged(
        self, record: BranchRecord, mode: str, title: str, current: str
    ) -> str | Integration:
        """The commit that puts the task's work on ``current`` (a merge, or the task's commit
        replayed), or the refusal when the two conflict."""
        assert record.task_commit is not None
        if mode == "rebase" and current == record.base_commit:
            return record.task_commit  # nothing to replay over: a fast-forward
        code, out, _ = self.git.run(
            "merge-tree", "--write-tree", "--name-only", current, record.task_commit,
            check=False,
        )  # fmt: skip
        if code != 0:
            listed = out.splitlines()[1:]
            conflicted = listed[: listed.index("")] if "" in listed else listed
            return self._refuse(
                record,
                f"the task's branch conflicts with {record.target}, which moved since the "
                f"run began: {', '.join(conflicted) or 'see git merge-tree'}",
            )
        tree = out.splitlines()[0].strip()
        return self._make_commit(record, mode, tree, current, title)

    def _integrate_remote(
        self, record: BranchRecord, mode: str, title: str, fence: Callable[[], None]
    ) -> Integration:
        """Integration through the shared remote (see the module's docstring)."""
        assert record.task_commit is not None and record.target is not None
        for _ in range(PUSH_ROUNDS):
            head = self.target_head(record.target)
            if self._holds(record, head):  # pushed by an earlier run of this integration
                return self._follow(record, head)
            new = self._merged(record, mode, title, head)
            if isinstance(new, Integration):
                return new
            record = self._integrating(record, head, new)
            fence()
            lease = f"--force-with-lease=refs/heads/{record.target}:{head}"
            code, out, err = self._push(f"{new}:refs/heads/{record.target}", lease, check=False)
            if code == 0:
                tracking = f"refs/remotes/{self.remote}/{record.target}"
                self.git.run("update-ref", tracking, new, check=False)
                return self._follow(record, new)
            said = (out + err).lower()
            if "stale info" not in said and "fetch first" not in said and "rejected" not in said:
                return self._refuse(
                    record, f"git push to {self.remote} failed: {err.strip()[:300]}"
                )
            self.progress(
                f"task {record.task_id}: {record.target} on {self.remote} moved meanwhile "
                "(another host merged first): merging again"
            )
        return self._refuse(
            record,
            f"{record.target} on {self.remote} kept moving: {PUSH_ROUNDS} pushes in a row "
            "were overtaken by other hosts'",
        )

    def _integrating(self, record: BranchRecord, before: str, new: str) -> BranchRecord:
        """Record, before the target moves, what it moves from and to (a killed run's rerun
        reads it)."""
        return self.branches.update(
            record.task_id,
            record.attempt,
            status="integrating",
            target_before=before,
            merge_commit=new,
            reason=None,
        )

    def _push(self, refspec: str, *options: str, check: bool = True) -> tuple[int, str, str]:
        assert self.remote is not None
        with self._talking_to_remote():
            return self.git.run(
                "push", "--quiet", "--porcelain", *options, self.remote, refspec,
                check=check, survives_us=True,
            )  # fmt: skip

    def _talking_to_remote(self) -> FileLock:
        """``.ai/remote.lock``: one fetch, push or ``worktree add`` at a time in this clone.
        Fetch and push update the remote-tracking ref, and git refuses a second update under
        way ("cannot lock ref 'refs/remotes/origin/main'"): seen with two tasks of one daemon
        starting at once."""
        return self._state_lock("remote.lock")

    def _state_lock(self, name: str) -> FileLock:
        """The lock file ``.ai/NAME``, shared by every aictl process of this clone."""
        from filelock import FileLock

        return FileLock(str(self.workspace.state_dir / name), timeout=LOCK_TIMEOUT)

    def _holds(self, record: BranchRecord, head: str) -> bool:
        """Whether ``head`` holds the task's work (its commit, or the merge aictl made)."""
        assert record.task_commit is not None
        made = [record.task_commit] + ([record.merge_commit] if record.merge_commit else [])
        return any(self.git.ok("merge-base", "--is-ancestor", c, head) for c in made)

    def _follow(self, record: BranchRecord, merged: str) -> Integration:
        """The remote's target holds the task's work at ``merged``: bring the local target
        there when that is a fast-forward (and the user's files as in step 5); a local target
        with commits of its own is left alone, and the record says so."""
        assert record.target is not None
        ref = f"refs/heads/{record.target}"
        local = self.git.out("rev-parse", "--verify", f"{ref}^{{commit}}")
        if local != merged and self.git.ok("merge-base", "--is-ancestor", local, merged):
            self.git.run("update-ref", "-m", "aictl: follow the remote", ref, merged, local)
            return self._finish(record, local, merged)
        reason = None
        if not self.git.ok("merge-base", "--is-ancestor", merged, local):
            reason = (
                f"merged on {self.remote}/{record.target}; your local {record.target} has "
                f"commits of its own, so it was left as it is (`git pull` brings the merge in)"
            )
        done = self.branches.update(record.task_id, record.attempt, status="merged", reason=reason)
        return Integration("merged", reason, done)

    def _already_in(self, record: BranchRecord, current: str) -> Integration | None:
        """The integration is done when the target holds the task's commit (or the merge
        aictl made of it): finish updating the user's files, once."""
        assert record.task_commit is not None
        made = [record.task_commit] + ([record.merge_commit] if record.merge_commit else [])
        # a rebase's replayed commit does not hold the task's commit: either one will do
        if not any(self.git.ok("merge-base", "--is-ancestor", c, current) for c in made):
            return None
        if record.status == "merged":
            return Integration("merged", None, record)
        if record.target_before and record.merge_commit:
            return self._finish(record, record.target_before, record.merge_commit)
        return Integration(
            "merged", None, self.branches.update(record.task_id, record.attempt, status="merged")
        )

    def _make_commit(
        self, record: BranchRecord, mode: str, tree: str, current: str, title: str
    ) -> str:
        assert record.task_commit is not None
        if mode == "rebase":  # the task's one commit, replayed: same author and message
            meta = self.git.out("log", "-1", "--format=%an%x00%ae%x00%aI", record.task_commit)
            name, email, date = meta.split("\0")
            message = self.git.run("log", "-1", "--format=%B", record.task_commit)[1]
            env = {"GIT_AUTHOR_NAME": name, "GIT_AUTHOR_EMAIL": email, "GIT_AUTHOR_DATE": date}
            return self._commit_tree(tree, [current], message, env)
        message = names.merge_message(record.task_id, title, record.branch)
        env = {"GIT_AUTHOR_NAME": COMMITTER[0], "GIT_AUTHOR_EMAIL": COMMITTER[1]}
        return self._commit_tree(tree, [current, record.task_commit], message, env)

    def _commit_tree(
        self, tree: str, parents: Sequence[str], message: str, env: Mapping[str, str]
    ) -> str:
        args = ["commit-tree", "--no-gpg-sign", tree]
        for parent in parents:
            args += ["-p", parent]
        return self.git.run(*args, "-m", message.rstrip("\n"), env=env)[1].strip()

    def _finish(self, record: BranchRecord, before: str, after: str) -> Integration:
        """The target holds the merge: bring the merged paths of the user's working tree from
        ``before`` to ``after`` where they still hold ``before``'s content, then record it."""
        skipped: list[str] = []
        if self._main_tree_on(record.target):
            paths = self.git.names("diff", "--name-only", "-z", "--no-renames", before, after)
            edited = set(self._changed_since(before, paths))
            skipped = sorted(edited)
            self._check_out(after, [path for path in paths if path not in edited])
        reason = (
            f"left as you changed them in the working tree: {', '.join(skipped[:20])}"
            if skipped
            else None
        )
        merged = self.branches.update(
            record.task_id, record.attempt, status="merged", reason=reason
        )
        return Integration("merged", reason, merged)

    def _main_tree_on(self, target: str | None) -> bool:
        return target is not None and self.current_branch() == target

    def _changed_since(self, commit: str, paths: Sequence[str]) -> list[str]:
        """Those of ``paths`` whose index entry or file in the main working tree differs from
        ``commit`` (an untracked file where ``commit`` has none counts too)."""
        if not paths:
            return []
        spec = [f":(literal){path}" for path in paths]
        found = set(
            self.git.names("diff", "--name-only", "-z", "--no-renames", commit, "--", *spec)
        )
        found |= set(
            self.git.names(
                "diff", "--cached", "--name-only", "-z", "--no-renames", commit, "--", *spec
            )
        )
        found |= set(self.git.names("ls-files", "--others", "-z", "--", *spec))
        return sorted(found)

    def _check_out(self, commit: str, paths: Sequence[str]) -> None:
        if not paths:
            return
        present = set(self.git.names("ls-tree", "-r", "-z", "--name-only", commit, "--", *paths))
        kept = [f":(literal){path}" for path in paths if path in present]
        gone = [path for path in paths if path not in present]
        if kept:
            self.git.run("checkout", "--quiet", commit, "--", *kept)
        if gone:
            literal = [f":(literal){path}" for path in gone]
            self.git.run("rm", "--quiet", "--cached", "--ignore-unmatch", "--", *literal)
            for path in gone:
                (self.root / path).unlink(missing_ok=True)

    def _refuse(self, record: BranchRecord, why: str) -> Integration:
        reason = (
            f"not integrated: {why}; the work is kept on branch {record.branch}; "
            f"`aictl task integrate {record.task_id}` retries"
        )
        updated = self.branches.update(
            record.task_id, record.attempt, status="refused", reason=reason
        )
        return Integration("refused", reason, updated)

    # listing and pruning

    def _worktrees(self) -> dict[Path, str | None]:
        """Every worktree git knows: its folder and the ref checked out (None: detached)."""
        found: dict[Path, str | None] = {}
        current: Path | None = None
        for line in self.git.run("worktree", "list", "--porcelain")[1].splitlines():
            if line.startswith("worktree "):
                current = Path(line[len("worktree ") :])
                found[current] = None
            elif line.startswith("branch ") and current is not None:
                found[current] = line[len("branch ") :]
        return found

    def _count(self, revisions: str) -> int | None:
        code, out, _ = self.git.run("rev-list", "--count", revisions, check=False)
        return int(out.strip()) if code == 0 and out.strip().isdigit() else None

    def state(self, record: BranchRecord, live: bool) -> WorktreeState:
        """What prune judges of one recorded attempt (read from git, not from the record)."""
        path = self.root / record.worktree
        exists = path.is_dir()
        has_branch = self.git.ok("rev-parse", "--verify", "--quiet", f"refs/heads/{record.branch}")
        unmerged: int | None = 0
        if has_branch and record.target:
            unmerged = self._count(f"refs/heads/{record.target}..refs/heads/{record.branch}")
        elif has_branch:
            unmerged = None
        uncommitted: int | None = 0
        if exists:
            code, out, _ = Git(path, self.environ).run(
                "status", "--porcelain", "-z", "--untracked-files=all", check=False
            )
            uncommitted = len([e for e in out.split("\0") if e.strip()]) if code == 0 else None
            if code == 0:  # a detached worktree's own commits count as unmerged work
                head = Git(path, self.environ).run("rev-parse", "HEAD", check=False)[1].strip()
                if head and record.target:
                    extra = self._count(f"refs/heads/{record.target}..{head}")
                    if extra is None or extra:
                        unmerged = None if extra is None else max(unmerged or 0, extra)
        return WorktreeState(exists, unmerged, uncommitted, live)

    def listing(self, live: Callable[[BranchRecord], bool]) -> list[dict[str, Any]]:
        """Every recorded attempt, newest state from git: path, branch, task, status,
        whether it is merged, what prune would do and why."""
        rows = []
        for record in self.branches.list_all():
            state = self.state(record, live(record))
            remove, why = prune_verdict(state)
            rows.append(
                {
                    "task_id": record.task_id,
                    "attempt": record.attempt,
                    "worktree": record.worktree,
                    "exists": state.exists,
                    "branch": record.branch,
                    "target": record.target,
                    "status": record.status,
                    "merged": state.unmerged_commits == 0 and record.task_commit is not None,
                    "unmerged_commits": state.unmerged_commits,
                    "uncommitted": state.uncommitted,
                    "prunable": remove,
                    "why": why,
                }
            )
        return rows

    def prune(self, live: Callable[[BranchRecord], bool], *, dry_run: bool) -> list[dict[str, Any]]:
        """Remove every worktree (and branch) ``prune_verdict`` allows, judged afresh right
        before each removal; keep the others. Returns one row per attempt: ``removed`` (or,
        dry run, ``would remove``) or ``kept``, and why."""
        results = []
        for row in self.listing(live):
            if not row["prunable"]:
                results.append({**row, "action": "kept"})
                continue
            if dry_run:
                results.append({**row, "action": "would remove"})
                continue
            record = next(
                r
                for r in self.branches.list_all()
                if (r.task_id, r.attempt) == (row["task_id"], row["attempt"])
            )
            remove, why = prune_verdict(self.state(record, live(record)))  # judged again
            if not remove:
                results.append({**row, "action": "kept", "why": why})
                continue
            path = self.root / record.worktree
            if path.is_dir():
                self.git.run("worktree", "remove", str(path))  # refuses a dirty one: no --force
            shared = any(
                other.branch == record.branch and other.attempt != record.attempt
                and (self.root / other.worktree).is_dir()
                for other in self.branches.list_all()
            )  # fmt: skip
            if not shared and self.git.ok(
                "rev-parse", "--verify", "--quiet", f"refs/heads/{record.branch}"
            ):
                # -D: `git branch -d` checks against HEAD, which need not be the target;
                # prune_verdict, judged just above, proved every commit is in the target
                self.git.run("branch", "-D", record.branch)
            results.append({**row, "action": "removed", "exists": False})
        if not dry_run:
            self.git.run("worktree", "prune", check=False)
            _remove_empty(self.root / names.WORKTREES_FOLDER)
        return results


def _remove_empty(folder: Path) -> None:
    try:
        if folder.is_dir() and not any(folder.iterdir()):
            shutil.rmtree(folder)
    except OSError:
        pass


# the commands


def remote_of(service: TaskService) -> str | None:
    """The shared remote the policy names (``settings.remote``), or None."""
    remote = service.enforcer.policy(None).setting("remote")
    return str(remote) if remote else None


def _worktrees(service: TaskService, progress: Callable[[str], None] | None) -> Worktrees:
    branches = BranchStore(service.db, service.store.clock)
    return Worktrees(service.workspace, branches, progress=progress, remote=remote_of(service))


def _live(service: TaskService) -> Callable[[BranchRecord], bool]:
    """Whether a recorded attempt is its task's current run (claimed or running)."""

    def live(record: BranchRecord) -> bool:
        task = service.get(record.task_id)
        if str(task.status) not in ("claimed", "running"):
            return False
        latest = BranchStore(service.db, service.store.clock).latest(record.task_id)
        return latest is not None and latest.attempt == record.attempt

    return live


def integrate_task(
    service: TaskService, task_id: int, progress: Callable[[str], None] | None = None
) -> Integration:
    """``aictl task integrate``: put the latest attempt's committed work of ``task_id`` on its
    target branch (a refused integration, a run killed while integrating, or a branch left by
    ``integrate: branch``), then mark the task done if it was not. Finishes a half-done
    integration (the target moved, the user's files not yet updated) without merging twice.

    Raises ``InvalidInput`` when the task has no committed work to integrate, ``TaskHeld``
    (exit 4) while a run of it holds its lease."""
    service.sweep()  # a dead run's expired lease goes back to the queue first
    task = service.get(task_id)
    worktrees = _worktrees(service, progress)
    record = worktrees.branches.latest(task_id)
    if record is None or record.task_commit is None:
        raise InvalidInput(
            f"task {task_id} has no committed work in a worktree to integrate"
            + (f" (its last attempt is {record.status})" if record else ""),
            hint="`aictl worktree list` shows the worktrees and what they hold",
        )
    if str(task.status) in ("claimed", "running"):
        raise TaskHeld(
            f"task {task_id} is {task.status} by {task.lease_holder} until "
            f"{task.to_dict()['lease_expires_at']}; its run integrates its own work",
            hint="wait for the run to end (or its lease to expire), then retry",
        )
    mode = "merge" if record.mode == "branch" else record.mode
    done = worktrees.integrate(record, title=task.title, mode=mode)
    if done.status == "merged" and str(task.status) != "done":
        evidence = dict(task.evidence or {})
        evidence.update(
            integration={"status": done.status, "reason": done.reason},
            task_commit=done.record.task_commit,
            merge_commit=done.record.merge_commit,
        )
        service.store.integrated(
            task_id, f"integrated {record.branch} into {record.target}", evidence
        )
    return done


def list_worktrees(service: TaskService) -> list[dict[str, Any]]:
    """``aictl worktree list``: every task attempt's worktree, see ``Worktrees.listing``."""
    return _worktrees(service, None).listing(_live(service))


def prune_worktrees(service: TaskService, *, dry_run: bool) -> list[dict[str, Any]]:
    """``aictl worktree prune``: see ``Worktrees.prune``."""
    return _worktrees(service, None).prune(_live(service), dry_run=dry_run)
