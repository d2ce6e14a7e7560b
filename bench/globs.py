"""9. Glob overlap on adversarial pairs (``globs``).

What is measured: ``globs.globs_intersect`` on pairs built to defeat glob engines (``*a`` then
a run of ``?``, ``*a*a...`` against ``*b*b...``, long ``**/`` chains, many classes, many
segments), each glob up to 200 characters, every glob cache emptied before each call (so the
automata are built inside the figure). Five calls per pair, the median per pair; the rows give
the median (p50) and the maximum over the pairs. Goal: the maximum under 5 ms.

Baseline: the engine of main ``70c8445`` (DFAs built with interegular), extracted from git into
a scratch folder and run in a child process on the ``*a`` + ``?`` x n against ``*b*`` pairs, n
growing until one call takes over 2 s; the new engine is timed on the same pairs in this run.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path
from statistics import median

from aictl.domain import globs
from bench.common import Goal, Measurement, Row, Settings, scratch_dir, summary_ms
from bench.locks import clear_glob_caches

GOAL = Goal("max < 5 ms", "value", "<", 5.0)
OLD_COMMIT = "70c8445"
OLD_LIMIT_S = 2.0


def adversarial_pairs(length: int) -> list[tuple[str, str, str]]:
    """(family, a, b), every glob at most ``length`` characters and valid."""
    one = min(length, 252)
    fives, thirds = length // 5 - 1, length // 3 - 1
    raw = [
        ("*a then ?s", "*a" + "?" * (one - 2), "*b*"),
        ("*a then ?s, disjoint", "*a" + "?" * (one - 3) + "c", "*b"),
        ("*a*a against *b*b", "*a" * (one // 2), "*b" * (one // 2)),
        ("**/ chain against segments", "**/a/" * fives + "c", "a/" * (length // 2 - 1) + "b"),
        ("**/ chain against **/ chain", "**/" + "a/**/" * fives, "**/" + "b/**/" * fives),
        ("many classes", "[ab]" * (one // 4), "[bc]" * (one // 4)),
        ("stars between classes", "*".join(["[a-c]"] * (one // 6)),
         "*[!b]" * (one // 7) + "*[!a-c]"),
        ("? segments against * segments", "?/" * thirds + "??", "*/" * thirds + "*x"),
    ]  # fmt: skip
    pairs = []
    for family, raw_a, raw_b in raw:
        a, b = globs.normalize_glob(raw_a), globs.normalize_glob(raw_b)
        if len(a) > length or len(b) > length:
            raise RuntimeError(f"{family}: a glob is over {length} characters")
        pairs.append((family, a, b))
    return pairs


def _time_pair(a: str, b: str, repeat: int) -> float:
    """Median seconds of ``globs_intersect(a, b)`` with every glob cache emptied before."""
    samples = []
    for _ in range(repeat):
        clear_glob_caches()
        started = time.perf_counter()
        globs.globs_intersect(a, b)
        samples.append(time.perf_counter() - started)
    return median(samples)


_OLD_RUNNER = """
import json, sys, time
sys.path.insert(0, sys.argv[1])
from old_engine import globs
limit = float(sys.argv[2])
out = []
for n in range(4, 40):
    a, b = "*a" + "?" * n, "*b*"
    started = time.perf_counter()
    globs.globs_intersect(a, b)
    took = time.perf_counter() - started
    out.append([n, took])
    print(json.dumps(out), flush=True)
    if took > limit:
        break
"""


def _old_engine(folder: Path) -> list[tuple[int, float]]:
    """Durations of the old engine on ``*a`` + ``?`` x n against ``*b*``, from git."""
    root = Path(__file__).resolve().parent.parent
    package = folder / "old_engine"
    package.mkdir()
    (package / "__init__.py").write_text("")
    for name in ("globs.py", "glob_automata.py"):
        source = subprocess.run(
            ["git", "show", f"{OLD_COMMIT}:aictl/domain/{name}"],
            cwd=root, capture_output=True, text=True, check=True, timeout=30,
        ).stdout  # fmt: skip
        source = source.replace(
            "from aictl.domain import glob_automata", "from . import glob_automata"
        )
        (package / name).write_text(source)
    done = subprocess.run(
        [sys.executable, "-c", _OLD_RUNNER, str(folder), str(OLD_LIMIT_S)],
        cwd=root, capture_output=True, text=True, check=True, timeout=600,
    )  # fmt: skip
    lines = done.stdout.strip().splitlines()
    return [(int(n), float(took)) for n, took in json.loads(lines[-1])]


def run(settings: Settings) -> Measurement:
    repeat = 3 if settings.quick else 5
    lengths = (50, 200) if settings.quick else (20, 50, 100, 200)
    measurement = Measurement(
        "globs",
        "9. Glob overlap on adversarial pairs (cold caches, automata built in the figure)",
        parameters={"lengths": list(lengths), "calls_per_pair": repeat},
    )
    per_pair: dict[str, float] = {}
    for length in lengths:
        for family, a, b in adversarial_pairs(length):
            per_pair[f"{family} ({length})"] = _time_pair(a, b, repeat)
    stats = summary_ms(list(per_pair.values()))
    slowest = max(per_pair, key=lambda key: per_pair[key])
    with scratch_dir("globs") as folder:
        old = _old_engine(folder)
    new = {n: _time_pair("*a" + "?" * n, "*b*", repeat) for n, _ in old}
    measurement.rows += [
        Row("globs_intersect, p50 over pairs", stats["median_ms"], "ms", detail=stats),
        Row("globs_intersect, max over pairs", stats["max_ms"], "ms", goal=GOAL,
            detail={"slowest": slowest}),
    ]  # fmt: skip
    for n, took in old:
        measurement.rows.append(
            Row(f"'*a'+'?'x{n} vs '*b*', this engine", new[n] * 1000, "ms",
                f"main {OLD_COMMIT}", took * 1000)
        )  # fmt: skip
    measurement.notes += [
        f"{len(per_pair)} pairs; slowest: {slowest} at {per_pair[slowest] * 1000:.2f} ms",
        f"the old engine was stopped after the first call over {OLD_LIMIT_S:.0f} s; its time "
        "roughly triples with every '?'",
    ]
    return measurement
