"""The lightcurves of an observation (``make_lightcurves`` and its products) from a 50- and a 100-frame stamp cube.

The input is the stamp cube file process-observation stores (``stamps.fits``) of a synthetic
night of 50 or 100 full frames with the realism of ``synthetic.night_conditions`` and 5000 random stars
(and 40 blended pairs), cut from each rendered frame by ``synthetic.night_cube`` (about two
minutes, once).

- ours: ``read_cube`` on the file, ``make_lightcurves`` (photometry of every star in every frame,
  comparisons, detrending, BLS of every star) and ``make_lightcurve_products``.
- reference: reading the same cube alone (every stamp once).

It also prints ``bench lightcurves-100 wall_s=... peak_rss_mb=... stars=... frames=...``: one run
of ours in a fresh process (``VmHWM`` of /proc/self/status). Goal: under 60 s and 2 GB.
``bench/run --repeat 1 lightcurves-100``.
"""

from __future__ import annotations

import re
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from panoptes_network.science.lightcurve_products import make_lightcurve_products
from panoptes_network.science.lightcurves import make_lightcurves, read_cube
from panoptes_network.synthetic import observation as obs
from panoptes_network.synthetic.frames import FULL_SHAPE
from panoptes_network.synthetic.night_cube import night_cube
from panoptes_network.synthetic.star_field import StarFieldSpec

SEQUENCE = "PAN000_SC5348_20261124T080000"


def write_cube(folder: Path, frames: int) -> Path:
    spec = obs.ObservationSpec(
        field=StarFieldSpec(shape=FULL_SHAPE), frames=frames, stars=5000, conditions=obs.Conditions(), seed=9
    )
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "stamps.fits"
    path.write_bytes(night_cube(obs.plan_observation(spec)).data)
    return path


def ours(path: Path) -> tuple[int, int]:
    made = make_lightcurves(read_cube(path))
    make_lightcurve_products(SEQUENCE, made)
    return made.fluxes.shape


def read_alone(path: Path) -> float:
    return float(np.nansum(read_cube(path).stamps))


def run_once(path: Path) -> None:
    """Ours in this (fresh) process: prints wall seconds, peak resident MB, stars and frames."""
    started = time.perf_counter()
    stars, frames = ours(path)
    wall = time.perf_counter() - started
    peak = int(re.search(r"VmHWM:\s+(\d+) kB", Path("/proc/self/status").read_text()).group(1)) / 1024
    print(f"wall_s={wall:.2f} peak_rss_mb={peak:.0f} stars={stars} frames={frames}")


def lightcurves_case(frames: int) -> Callable[[Path], object]:
    @contextmanager
    def case(work: Path) -> Iterator[tuple[Callable[[], object], Callable[[], object]]]:
        path = write_cube(work / "inputs", frames)
        result = subprocess.run([sys.executable, __file__, str(path)], capture_output=True, text=True, check=True)
        fields = dict(item.split("=") for item in result.stdout.split())
        print(
            f"bench lightcurves-{frames} " + " ".join(f"{k}={v}" for k, v in fields.items())
            + f" cube_mb={path.stat().st_size / 2**20:.0f}",
            flush=True,
        )  # fmt: skip
        yield (lambda: ours(path)), lambda: read_alone(path)

    return case


CASES = {"lightcurves-50": lightcurves_case(50), "lightcurves-100": lightcurves_case(100)}

if __name__ == "__main__":
    run_once(Path(sys.argv[1]))
