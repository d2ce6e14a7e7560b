"""Fail when any package's line coverage is under the floor (run by `make test` after pytest).

`coverage report --fail-under` checks the total only; a well-tested store can hide an untested
CLI. This sums statements and misses per package folder from the combined data file.
"""

from __future__ import annotations

import sys
from collections import defaultdict
from pathlib import Path

import coverage

FLOOR = 80.0


def main() -> int:
    root = Path(__file__).resolve().parents[1]
    cov = coverage.Coverage(data_file=str(root / ".coverage"))
    cov.load()
    totals: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for measured in cov.get_data().measured_files():
        path = Path(measured)
        if root not in path.parents:
            continue
        _, statements, _, missing, _ = cov.analysis2(measured)
        package = str(path.parent.relative_to(root)).replace("/", ".")
        totals[package][0] += len(statements)
        totals[package][1] += len(missing)
    failed = False
    print(f"\n{'package':<24} {'statements':>10} {'missed':>7} {'cover':>6}")
    for package, (statements, missed) in sorted(totals.items()):
        percent = 100.0 * (statements - missed) / statements if statements else 100.0
        flag = "" if percent >= FLOOR else f"  < {FLOOR:.0f}%"
        failed |= bool(flag)
        print(f"{package:<24} {statements:>10} {missed:>7} {percent:>5.1f}%{flag}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
