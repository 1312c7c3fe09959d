"""plate-solver on a full synthetic frame (real Tycho-2 stars, mount hint 2 degrees off).

The reference of every case is upstream's recipe: ``solve-field --guess-scale --downsample 4
--no-verify`` on the image itself, without hints.

- ``solve-full-frame``: our detection (sep on superpixels) + hinted solve of the star list,
  on the background-subtracted frame.
- ``plate-solver-step``: the whole step (read, subtract, detect, solve, match, stamps, processed
  FITS, PNG, Parquet, SQLite), through ``process`` on local stand-ins; prints the peak memory
  of one run in a fresh process.
- ``chain-floor``: the unavoidable work of the chain with the reference tools alone, one pass
  on the same frame: ``fpack`` the ``.fits``; read the ``.fits.fz`` (astropy); sep's background on
  each Bayer channel (mesh 42 px on the channel grid, as ours), subtracted; sep's extraction on
  the 2x2 superpixels (5 sigma, as ours); ``solve-field`` on the brightest 480 clean sources
  (ours takes 10 from each of 48 cells) with the mount hint and our options; ``query-starkd``
  over the solved field. No quick look, Parquet, records, verification or stamps.
- ``chain-full-frame``: ``panoptes-network process -j 1`` on the FITS file, every step, against
  the floor (the ratio the cost issue asks about); prints wall time, peak memory and the
  per-step split from the request log lines.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tempfile
import time
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import sep
from astropy.io import fits
from astropy.wcs import WCS, FITSFixedWarning

from panoptes_network.adapters.backends import local_context
from panoptes_network.adapters.sqlite_metadata import SqliteMetadata
from panoptes_network.adapters.tycho2_index_catalog import TYCHO2_INDEX
from panoptes_network.core import records
from panoptes_network.core.messages import ObjectRef, PushMessage, StepMessage, parse_step_message
from panoptes_network.core.settings import Settings
from panoptes_network.core.step import Work
from panoptes_network.science import background_model
from panoptes_network.science.catalog_match import field_geometry
from panoptes_network.science.frame_astrometry import mount_hint
from panoptes_network.science.solve_field import SolveSettings, solve, solve_field_command
from panoptes_network.science.source_detection import detect_sources, superpixels
from panoptes_network.steps.plate_solve import STEP, PlateSolveSettings, process
from panoptes_network.synthetic.star_field import StarFieldSpec, frame_spec_for, make_star_field

ROOT = Path(__file__).resolve().parents[1]
PYTHON = ROOT / ".venv" / "bin" / "python"
CLI = ROOT / ".venv" / "bin" / "panoptes-network"
SPEC = StarFieldSpec(ra=83.8, dec=-5.4, rotation_deg=37.0, seed=5)

Pair = tuple[Callable[[], object], Callable[[], object]]


def write_star_field(work: Path) -> tuple[Path, np.ndarray, fits.Header]:
    """The frame as POCS would store it, at its canonical path under ``work/in``."""
    raw, header, _ = make_star_field(SPEC)
    path = work / "in" / frame_spec_for(SPEC).path()
    path.parent.mkdir(parents=True, exist_ok=True)
    fits.PrimaryHDU(raw, header).writeto(path)
    return path, raw, header


def upstream_solve(image: Path, work: Path) -> Callable[[], object]:
    """solve-field on the image, no hints: upstream's recipe (fresh output folder each run)."""
    runs = iter(range(1_000_000))

    def run() -> None:
        out = work / f"upstream-{next(runs)}"
        out.mkdir()
        subprocess.run(
            ["solve-field", str(image), "--guess-scale", "--downsample", "4", "--no-verify", "--no-plots",
             "--overwrite", "--dir", str(out), "--new-fits", "none", "--cpulimit", "300"],
            check=True, capture_output=True,
        )  # fmt: skip
        if not any(out.glob("*.solved")):
            raise RuntimeError("the upstream recipe did not solve the frame")
        shutil.rmtree(out)

    return run


def peak_rss_mb(command: list[str], env: dict[str, str] | None = None) -> tuple[float, float]:
    """(wall seconds, peak resident memory in MB) of a command and the children it waited for.

    Measured by GNU time: Linux gives a child forked from this process this process's resident
    size as its starting peak (and this one holds full frames), so waiting for it here would
    report this process's size, not the command's."""
    started = time.perf_counter()
    done = subprocess.run(
        ["/usr/bin/time", "-f", "%M", *command], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env, text=True
    )
    if done.returncode != 0:
        raise RuntimeError(f"{command[:3]} exited {done.returncode}: {done.stderr[-2000:]}")
    return time.perf_counter() - started, int(done.stderr.split()[-1]) / 1024


@contextmanager
def solve_full_frame(work: Path) -> Iterator[Pair]:
    image, raw, header = write_star_field(work)
    settings = background_model.BackgroundSettings()
    stored = background_model.to_fits(background_model.estimate(raw, header, settings), settings)
    frame = raw.astype(np.float32) - background_model.load_model(stored)
    rms = background_model.load_rms(stored)

    def ours() -> None:
        solution = solve(detect_sources(frame, rms), frame.shape, mount_hint(header))
        if not solution.solved:
            raise RuntimeError(f"our solve failed: {solution.reason}")

    yield ours, upstream_solve(image, work)


@contextmanager
def plate_solver_step(work: Path) -> Iterator[Pair]:
    image, _, _ = write_star_field(work)
    data_dir = work / "data"
    subprocess.run([str(CLI), "process", "-q", "-j", "1", "--data-dir", str(data_dir), str(image)], check=True)
    context, _ = local_context(Settings(data_dir=data_dir), data_dir)
    push = captured_plate_solve_message(data_dir)
    message = parse_step_message(push)
    settings = PlateSolveSettings()

    def ours() -> None:
        result = process(Work(context, STEP, message), settings)
        if not result.fields.get("solved"):
            raise RuntimeError(f"the step did not solve: {result.reason}")

    probe = f"import sys; sys.path.insert(0, {str(ROOT / 'bench')!r}); from case_plate_solve import step_in_fresh_process; step_in_fresh_process({str(data_dir)!r})"
    _, peak = peak_rss_mb([str(PYTHON), "-c", probe])
    print(f"bench plate-solver-step peak_rss_mb={peak:.0f}", flush=True)
    yield ours, upstream_solve(image, work)


def captured_plate_solve_message(data_dir: Path) -> PushMessage:
    """Rebuild the message subtract-background sent, from its step record."""
    ((image_id, image),) = records.images(SqliteMetadata(data_dir / "metadata.sqlite"))
    record = records.step_record(image, "subtract-background")
    background = record.outputs["background"]
    bg_bucket, _, bg_name = background["name"].partition("/")
    message = StepMessage(
        ObjectRef.from_identity(record.input), image_id, image["sequence_id"],
        {"background": {"bucket": bg_bucket, "name": bg_name, "generation": background["generation"]}},
    )  # fmt: skip
    data, attributes = message.encode()
    return PushMessage("bench", data, attributes)


def step_in_fresh_process(data_dir: str) -> None:
    """One run of the step in this (fresh) process: its peak memory is the step's."""
    path = Path(data_dir)
    context, _ = local_context(Settings(data_dir=path), path)
    message = parse_step_message(captured_plate_solve_message(path))
    process(Work(context, STEP, message), PlateSolveSettings())


@contextmanager
def chain_full_frame(work: Path) -> Iterator[Pair]:
    image, _, _ = write_star_field(work)
    runs = iter(range(1_000_000))

    def chain() -> tuple[float, float, Path]:
        data_dir = work / f"chain-{next(runs)}"
        wall, peak = peak_rss_mb([str(CLI), "process", "-q", "-j", "1", "--data-dir", str(data_dir), str(image)])
        return wall, peak, data_dir

    wall, peak, data_dir = chain()
    split = per_step_ms(data_dir / "pipeline.log")
    status = json.loads(
        subprocess.run(
            [str(CLI), "status", "--json", "--data-dir", str(data_dir)], capture_output=True, text=True
        ).stdout.splitlines()[0]
    )["status"]
    steps = " ".join(f"{name}_ms={ms:.0f}" for name, ms in split.items())
    print(f"bench chain-full-frame wall_s={wall:.2f} peak_rss_mb={peak:.0f} status={status} {steps}", flush=True)
    yield (lambda: chain()), floor_run(image, work)


def per_step_ms(log: Path) -> dict[str, float]:
    """duration_ms of each step's one line per message in the pipeline log (the embedded runner's)."""
    split: dict[str, float] = {}
    for line in log.read_text().splitlines():
        entry = json.loads(line)
        if "step" in entry and "outcome" in entry and "duration_ms" in entry:
            split[entry["step"]] = split.get(entry["step"], 0.0) + entry["duration_ms"]
    return split


# --- the floor: the unavoidable work with the reference tools alone ----------------------------

MESH = 42  # px on a channel grid: the background estimate's mesh
STARS = 480  # sources in the star list: ours takes 10 from each of 48 cells


def floor_run(image: Path, work: Path) -> Callable[[], None]:
    """One pass of the floor on ``image`` (a ``.fits``), in a fresh scratch folder each time."""
    fpack = shutil.which("fpack")
    if fpack is None:
        raise SystemExit("bench: fpack is missing (bin/install bench installs libcfitsio-bin)")
    hint = mount_hint(fits.getheader(image))
    settings = SolveSettings()

    def run() -> None:
        with tempfile.TemporaryDirectory(dir=work) as scratch:
            folder = Path(scratch)
            copy = folder / "frame.fits"
            shutil.copyfile(image, copy)
            subprocess.run([fpack, "-D", str(copy)], check=True)  # -D: the .fits goes, as compress-fits does
            raw = fits.getdata(folder / "frame.fits.fz")
            frame = raw.astype(np.float32)
            variance = 0.0
            for row, col in ((0, 0), (0, 1), (1, 0), (1, 1)):
                channel = np.ascontiguousarray(frame[row::2, col::2])
                background = sep.Background(channel, bw=MESH, bh=MESH)
                frame[row::2, col::2] = channel - background.back()
                variance += background.globalrms**2
            objects = sep.extract(superpixels(frame), 5.0, err=float(np.sqrt(variance)), minarea=3)
            clean = objects[objects["flag"] == 0]
            brightest = clean[np.argsort(clean["flux"])[::-1][:STARS]]
            star_list = folder / "stars.xyls"
            fits.BinTableHDU.from_columns(
                [
                    fits.Column("X", "D", array=2.0 * brightest["x"] + 1.5),
                    fits.Column("Y", "D", array=2.0 * brightest["y"] + 1.5),
                    fits.Column("FLUX", "D", array=brightest["flux"]),
                ]
            ).writeto(star_list)
            command = solve_field_command(star_list, raw.shape, hint, settings.tiers[0], settings)
            subprocess.run(command, check=True, capture_output=True)
            solution = star_list.with_suffix(".wcs")
            if not solution.exists():
                raise RuntimeError("the floor's solve-field did not solve the frame")
            with warnings.catch_warnings():  # solve-field's header says NAXIS = 0
                warnings.simplefilter("ignore", FITSFixedWarning)
                geometry = field_geometry(WCS(fits.getheader(solution)), raw.shape)
            cone = [
                "query-starkd", "-r", f"{geometry.ra:.6f}", "-d", f"{geometry.dec:.6f}",
                "-R", f"{geometry.radius_deg + 0.1:.6f}", "-T", "-o", str(folder / "cone.fits"), str(TYCHO2_INDEX),
            ]  # fmt: skip
            subprocess.run(cone, check=True, capture_output=True)

    return run


@contextmanager
def chain_floor(work: Path) -> Iterator[tuple[Callable[[], object], Callable[[], object]]]:
    image, _, _ = write_star_field(work)
    yield floor_run(image, work), upstream_solve(image, work)


CASES = {
    "chain-floor": chain_floor,
    "solve-full-frame": solve_full_frame,
    "plate-solver-step": plate_solver_step,
    "chain-full-frame": chain_full_frame,
}

if __name__ == "__main__":
    sys.exit("run through bench/run")
