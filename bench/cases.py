"""Benchmark cases: ours against a reference measured in the same run, as ratios.

Each case is a function that returns (ours, reference) callables on prepared inputs; the
runner times both alternately and prints medians. Step issues add their cases to CASES.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from panoptes_network.adapters.folder_storage import FolderStorage
from panoptes_network.ingest import ingest
from panoptes_network.synthetic import FrameSpec, write_frame

Pair = tuple[Callable[[], object], Callable[[], object]]


@contextmanager
def ingest_full_frame(work: Path) -> Iterator[Pair]:
    """Our ingest (name from the header, create-only verified copy) vs a plain file copy."""
    frame = write_frame(FrameSpec(), work / "in")
    # A non-canonical name makes ingest read the header, as for a file on a laptop.
    loose = frame.rename(work / "frame.fits")
    runs = iter(range(1_000_000))

    def ours() -> None:
        ingest(FolderStorage(work / f"ours-{next(runs)}"), "raw", loose)

    def reference() -> None:
        shutil.copyfile(loose, work / f"copy-{next(runs)}.fits")

    yield ours, reference


CASES = {"ingest-full-frame": ingest_full_frame}


def elapsed(function: Callable[[], object]) -> float:
    started = time.perf_counter()
    function()
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("cases", nargs="*", metavar="CASE", help="cases to run (default: all): " + ", ".join(CASES))
    parser.add_argument("--repeat", type=int, default=5, help="timed runs of each side (default: %(default)s)")
    args = parser.parse_args()
    unknown = set(args.cases) - set(CASES)
    if unknown:
        parser.error(f"unknown case(s) {', '.join(sorted(unknown))}; known: {', '.join(CASES)}")
    for name in args.cases or CASES:
        with tempfile.TemporaryDirectory() as scratch, CASES[name](Path(scratch)) as (ours, reference):
            ours(), reference()  # warm caches and imports
            times_ours, times_ref = [], []
            for _ in range(args.repeat):
                times_ours.append(elapsed(ours))
                times_ref.append(elapsed(reference))
            a, b = statistics.median(times_ours), statistics.median(times_ref)
            print(f"bench {name} ours={a:.4f} ref={b:.4f} ratio={a / b:.2f}", flush=True)


if __name__ == "__main__":
    main()
