"""An observation's products (``make_products``) on 20 and 100 full synthetic frames.

The inputs are what the plate-solver leaves per frame: the processed image (background-subtracted
float32 ``.fits.fz``, quantized to a quarter of the sky RMS as the step writes it by default), its
sources Parquet table (every detection) and a JPEG quick look.
Rendering and compressing a full frame takes seconds, so ``DISTINCT`` frames of one observation
(drift, jitter, independent noise, 2000 stars) are written once and frame i of the bench reads
file ``i % DISTINCT`` with that frame's WCS; every read decompresses its file again.

- ours: ``make_products`` on the frames; each frame's ``load_pixels`` decompresses its file and
  ``load_sources`` reads its table.
- reference: reading the same inputs alone (every frame's pixels, sources and quick look, once).

Each case also prints ``bench observation-N wall_s=... peak_rss_mb=... ref_peak_rss_mb=...``:
one run of each side in a fresh process (``VmHWM`` of /proc/self/status). 100 frames take
minutes: ``bench/run --repeat 1 observation-100``.
"""

from __future__ import annotations

import datetime as dt
import json
import re
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
from astropy.io import fits
from PIL import Image

from panoptes_network.science import fits_codec
from panoptes_network.science.observation_products import ObservationFrame, ProductsSettings, make_products
from panoptes_network.science.processed_image import QUANTIZED, stored_image
from panoptes_network.science.source_detection import detect_sources
from panoptes_network.science.sources_table import read_sources, sources_parquet
from panoptes_network.science.timelapse import render_pixels
from panoptes_network.synthetic import observation as obs
from panoptes_network.synthetic.frames import FULL_SHAPE
from panoptes_network.synthetic.star_field import StarFieldSpec

DISTINCT = 10
SPEC = obs.ObservationSpec(field=StarFieldSpec(shape=FULL_SHAPE), frames=DISTINCT, stars=2000, seed=5)
SETTINGS = ProductsSettings()


def write_inputs(folder: Path) -> Path:
    """The distinct frames' processed images, sources and quick looks, and a manifest of them."""
    folder.mkdir(parents=True, exist_ok=True)
    truth = obs.plan_observation(SPEC)
    sky = obs.bayer_sky(SPEC.field.shape) + obs.BLACK_LEVEL
    entries = []
    for planned in truth.science:
        raw, _ = obs.render_frame(truth, planned)
        pixels = (raw - sky).astype(np.float32)
        header = truth.wcs(planned).to_header(relax=True)
        stem = folder / f"frame{planned.index:02d}"
        Path(f"{stem}.fits.fz").write_bytes(stored_image(pixels, header, QUANTIZED, 16.0).data)
        sources = detect_sources(pixels, 16.0)
        Path(f"{stem}-sources.parquet").write_bytes(sources_parquet(stem.name, "bench", sources, []))
        Image.fromarray(render_pixels(pixels, 1280)).save(f"{stem}.jpg", quality=85)
        entries.append({"stem": str(stem), "time": planned.time.isoformat(), "exposure": planned.exptime})
    manifest = folder / "manifest.json"
    manifest.write_text(json.dumps(entries))
    return manifest


def load_pixels(stem: str) -> np.ndarray:
    data = Path(f"{stem}.fits.fz").read_bytes()
    return np.asarray(fits_codec.image_hdu(fits_codec.open_fits(data, stem), stem).data, dtype=np.float32)


def frames_of(manifest: Path, count: int) -> list[ObservationFrame]:
    """``count`` frames at the cadence, frame i reading distinct file ``i % DISTINCT``."""
    entries = json.loads(manifest.read_text())
    start = dt.datetime.fromisoformat(entries[0]["time"])
    frames = []
    for i in range(count):
        entry = entries[i % len(entries)]
        stem = entry["stem"]
        with fits.open(f"{stem}.fits.fz") as hdus:
            header = hdus[1].header.copy()
        frames.append(
            ObservationFrame(
                image_id=f"frame-{i:03d}",
                time=start + dt.timedelta(seconds=SPEC.cadence_s * i),
                exposure=entry["exposure"],
                airmass=1.1,
                camera_temp=18.0,
                wcs_header=header,
                load_pixels=lambda stem=stem: load_pixels(stem),
                load_preview=lambda stem=stem: Path(f"{stem}.jpg").read_bytes(),
                load_sources=lambda stem=stem: read_sources(Path(f"{stem}-sources.parquet").read_bytes()),
                sky_level=300.0,
                sky_rms=16.0,
            )
        )
    return frames


def read_alone(frames: list[ObservationFrame]) -> None:
    for frame in frames:
        frame.load_pixels()
        frame.load_sources()
        frame.load_preview()


def run_once(manifest: Path, count: int, side: str) -> None:
    """One side in this (fresh) process: prints wall seconds and peak resident MB."""
    frames = frames_of(manifest, count)
    started = time.perf_counter()
    if side == "ours":
        products = make_products("PAN000_SC5348_20261124T080000", frames, SETTINGS)
        assert products.status.value == "processed", products.reason
        sizes = " ".join(f"{key}_mb={len(f.data) / 2**20:.1f}" for key, f in products.files.items())
    else:
        read_alone(frames)
        sizes = ""
    wall = time.perf_counter() - started
    peak = int(re.search(r"VmHWM:\s+(\d+) kB", Path("/proc/self/status").read_text()).group(1)) / 1024
    print(f"wall_s={wall:.2f} peak_rss_mb={peak:.0f} {sizes}".strip())


def in_fresh_process(manifest: Path, count: int, side: str) -> dict[str, str]:
    result = subprocess.run(
        [sys.executable, __file__, str(manifest), str(count), side], capture_output=True, text=True, check=True
    )
    return dict(item.split("=") for item in result.stdout.split())


def observation_case(count: int) -> Callable[[Path], object]:
    @contextmanager
    def case(work: Path) -> Iterator[tuple[Callable[[], object], Callable[[], object]]]:
        manifest = write_inputs(work / "inputs")
        frames = frames_of(manifest, count)
        yield (lambda: make_products("PAN000_SC5348_20261124T080000", frames, SETTINGS)), lambda: read_alone(frames)
        ours, ref = in_fresh_process(manifest, count, "ours"), in_fresh_process(manifest, count, "ref")
        sizes = " ".join(f"{k}={v}" for k, v in ours.items() if k.endswith("_mb") and k != "peak_rss_mb")
        print(
            f"bench observation-{count} wall_s={ours['wall_s']} ref_wall_s={ref['wall_s']} "
            f"peak_rss_mb={ours['peak_rss_mb']} ref_peak_rss_mb={ref['peak_rss_mb']} {sizes}",
            flush=True,
        )

    return case


CASES = {"observation-20": observation_case(20), "observation-100": observation_case(100)}

if __name__ == "__main__":
    run_once(Path(sys.argv[1]), int(sys.argv[2]), sys.argv[3])
