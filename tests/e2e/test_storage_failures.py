"""A full disk and a read-only mount under the real `aictl`, on real file systems.

Each test mounts a small tmpfs in a private mount namespace (``unshare --user --map-root-user
--mount``: no privileges needed where user namespaces are allowed), so the disk really fills
and the mount really is read-only. Each ends with a clear error and its exit code, the state
unchanged and ``audit verify`` intact. Under CI a missing ``unshare`` fails these tests; it
never skips them.
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.e2e

AICTL = f"{shlex.quote(sys.executable)} -m aictl"


def in_namespace(tmp_path: Path, script: str) -> dict[str, tuple[int, str]]:
    """Run ``script`` (bash) with a 2 MiB tmpfs mounted at ``$D``; each ``step NAME ARGS``
    runs ``aictl ARGS`` there. Returns every step's (exit code, stderr)."""
    if (
        shutil.which("unshare") is None
        or subprocess.run(
            ["unshare", "--user", "--map-root-user", "--mount", "true"], check=False
        ).returncode
    ):
        message = "unshare cannot make a user and mount namespace here (util-linux, userns)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    results = tmp_path / "results"
    results.mkdir()
    mount = tmp_path / "mnt"
    mount.mkdir()
    prelude = f"""
set -u
D={shlex.quote(str(mount))}
R={shlex.quote(str(results))}
mount -t tmpfs -o size=2m none "$D"
cd "$D"
git init -q .  # aictl init needs a git repository
export AICTL_GLOBAL_POLICY=
step() {{ name=$1; shift; {AICTL} "$@" >"$R/$name.out" 2>"$R/$name.err"; echo $? >"$R/$name.rc"; }}
"""
    env = {k: v for k, v in os.environ.items() if k != "AICTL_DB"}
    env["PYTHONPATH"] = str(Path(__file__).resolve().parents[2])
    done = subprocess.run(
        ["unshare", "--user", "--map-root-user", "--mount", "bash", "-c", prelude + script],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env=env,
    )
    assert done.returncode == 0, done.stderr
    return {
        path.stem: (int(path.read_text()), (results / f"{path.stem}.err").read_text())
        for path in results.glob("*.rc")
    }


def test_a_full_disk_is_a_clear_error_and_changes_nothing(tmp_path: Path) -> None:
    steps = in_namespace(
        tmp_path,
        """
step init init
step create1 task create one
dd if=/dev/zero of="$D/fill" bs=4k >/dev/null 2>&1 || true
step create2 task create two
step list_full task list
rm "$D/fill"
step list task list -q
step verify audit verify
""",
    )
    assert steps["create1"][0] == 0
    for name in ("create2", "list_full"):
        code, err = steps[name]
        assert code == 1, err
        assert "the disk is full" in err and "internal error" not in err, err
    assert steps["list"][0] == 0
    assert (tmp_path / "results" / "list.out").read_text() == "1\n"
    assert steps["verify"][0] == 0, steps["verify"][1]


def test_a_read_only_mount_is_a_clear_error_for_reads_and_writes(tmp_path: Path) -> None:
    steps = in_namespace(
        tmp_path,
        """
step init init
step create task create one
mount -o remount,ro "$D"
step list task list
step create2 task create two
step verify_ro audit verify
mount -o remount,rw "$D"
step list_rw task list -q
step verify audit verify
""",
    )
    for name in ("list", "create2", "verify_ro"):
        code, err = steps[name]
        assert code == 1, err
        assert "read-only file system" in err and "internal error" not in err, err
    assert steps["list_rw"][0] == 0
    assert (tmp_path / "results" / "list_rw.out").read_text() == "1\n"
    assert steps["verify"][0] == 0, steps["verify"][1]
