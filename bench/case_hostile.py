"""The decompression bomb of issue 18 (30000 x 30000 zeros in a few kB) through
``panoptes-network process``, against the same command on a file it only ignores (the floor:
interpreter, imports, records). Also prints the steps' own time on the bomb (from the log) and
each side's peak resident memory."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))  # the bomb is built there, once
from hostile_files import run_cli_measured, write_bomb


@contextmanager
def hostile_bomb(work: Path) -> Iterator[tuple[Callable[[], object], Callable[[], object]]]:
    bomb = write_bomb(work / "in")
    ignored = bomb.with_name("20160909T081314.txt")  # a canonical name of a type image-received ignores
    ignored.write_text("not an image\n")
    runs = iter(range(1_000_000))
    peaks: dict[str, float] = {}
    steps_ms: dict[str, float] = {}

    def run(name: str, path: Path, expected: int) -> None:
        data_dir = work / f"d{next(runs)}"
        status, _, err, peak = run_cli_measured("process", "-q", "-j", "1", "--data-dir", str(data_dir), str(path))
        assert status == expected, err
        log = [json.loads(line) for line in (data_dir / "pipeline.log").read_text().splitlines()]
        peaks[name] = max(peaks.get(name, 0.0), peak)
        steps_ms[name] = max(steps_ms.get(name, 0.0), sum(entry.get("duration_ms", 0.0) for entry in log))

    yield (lambda: run("bomb", bomb, 1)), (lambda: run("ignored", ignored, 0))
    print(
        f"bench hostile-bomb steps_ms={steps_ms['bomb']:.0f} peak_mb={peaks['bomb']:.0f} "
        f"ref_peak_mb={peaks['ignored']:.0f}",
        flush=True,
    )


CASES = {"hostile-bomb": hostile_bomb}
