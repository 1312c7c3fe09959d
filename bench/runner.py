"""Benchmark runner: ours against a reference measured in the same run, as ratios.

Cases live in ``bench/case_*.py``; each module exports ``CASES``, a dict of name -> context
manager that takes a scratch folder and yields (ours, reference) callables on prepared inputs.
The runner times both alternately and prints medians:
``bench <case> ours=<s> ref=<s> ratio=<ours/ref>``. A case may print extra lines of its own
(``bench <case> <metric>=<value> ...``) from its context manager, or only those: a case that
yields None is a report (``cost``), not timed.
"""

from __future__ import annotations

import argparse
import importlib.util
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

HERE = Path(__file__).resolve().parent


def load_cases() -> dict[str, Callable]:
    cases: dict[str, Callable] = {}
    for path in sorted(HERE.glob("case_*.py")):
        spec = importlib.util.spec_from_file_location(path.stem, path)
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        cases.update(module.CASES)
    return cases


def elapsed(function: Callable[[], object]) -> float:
    started = time.perf_counter()
    function()
    return time.perf_counter() - started


def main() -> None:
    cases = load_cases()
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("cases", nargs="*", metavar="CASE", help="cases to run (default: all): " + ", ".join(cases))
    parser.add_argument("--repeat", type=int, default=5, help="timed runs of each side (default: %(default)s)")
    args = parser.parse_args()
    unknown = set(args.cases) - set(cases)
    if unknown:
        parser.error(f"unknown case(s) {', '.join(sorted(unknown))}; known: {', '.join(cases)}")
    for name in args.cases or cases:
        with tempfile.TemporaryDirectory() as scratch, cases[name](Path(scratch)) as pair:
            if pair is None:  # a report (bench/case_cost.py), printed by the case itself
                continue
            ours, reference = pair
            ours(), reference()  # warm caches and imports
            times_ours, times_ref = [], []
            for _ in range(args.repeat):
                times_ours.append(elapsed(ours))
                times_ref.append(elapsed(reference))
            a, b = statistics.median(times_ours), statistics.median(times_ref)
            print(f"bench {name} ours={a:.4f} ref={b:.4f} ratio={a / b:.2f}", flush=True)


if __name__ == "__main__":
    sys.exit(main())
