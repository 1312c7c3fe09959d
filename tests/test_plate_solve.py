"""plate-solver: the real crop and synthetic full frames solve; unsolvable frames end as recorded
``unsolved``; the step writes its outputs and stamp rows, and a redelivery or a reprocessing
changes nothing it should not.
"""

from __future__ import annotations

import io
import warnings
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute
import pyarrow.parquet as pq
import pytest
from astropy.io import fits
from astropy.wcs import WCS, FITSFixedWarning
from PIL import Image
from scipy.spatial import cKDTree

from panoptes_network.adapters.backends import local_context
from panoptes_network.adapters.tycho2_index_catalog import Tycho2IndexCatalog
from panoptes_network.core.context import Context
from panoptes_network.core.messages import ObjectRef, StepMessage
from panoptes_network.core.outcomes import Outcome
from panoptes_network.core.settings import Settings
from panoptes_network.core.topology import load_topology
from panoptes_network.science import background_model, fits_codec
from panoptes_network.science.catalog_stars import angular_distance
from panoptes_network.science.frame_astrometry import FrameAnalysis, analyse_frame, stamp_rows
from panoptes_network.science.postage_stamps import stamp_origins
from panoptes_network.science.solve_field import SolveSettings, spread_selection
from panoptes_network.science.source_detection import SOURCE_COLUMNS, away_from_edges, detect_sources
from panoptes_network.science.sources_table import DETECTION_TYPES, read_sources
from panoptes_network.synthetic.star_field import StarFieldSpec, make_star_field, wcs_error_px
from plate_solver_inputs import CROP_PATH, put_inputs
from step_harness import deliver
from step_harness import local as local_stand_ins

pytestmark = pytest.mark.filterwarnings("ignore::astropy.wcs.FITSFixedWarning")

SERVICE = load_topology().service("plate-solver")
TIER_LIMIT_S = sum(tier.cpu_limit_s for tier in SolveSettings().tiers)


def subtract(raw: np.ndarray, header: fits.Header) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The frame minus the subtract-background step's own model, its RMS, and the saturated pixels."""
    settings = background_model.BackgroundSettings()
    stored = background_model.to_fits(background_model.estimate(raw, header, settings), settings)
    frame = raw.astype(np.float32) - background_model.load_model(stored)
    return frame, background_model.load_rms(stored), raw >= background_model.load_white_level(stored)


@pytest.fixture(scope="module")
def crop(test_data: Path) -> tuple[np.ndarray, fits.Header]:
    with fits.open(test_data / "panoptes" / "unsolved.fits") as hdus:
        return hdus[0].data.copy(), hdus[0].header.copy()


@pytest.fixture(scope="module")
def crop_analysis(crop) -> tuple[np.ndarray, FrameAnalysis]:
    frame, rms, saturated = subtract(*crop)
    return frame, analyse_frame(frame, rms, crop[1], Tycho2IndexCatalog().cone, saturated=saturated)


def test_the_real_crop_solves_at_the_known_centre_and_scale(crop_analysis) -> None:
    _, analysis = crop_analysis
    geometry = analysis.geometry
    assert analysis.solution.tier == "hinted"
    assert angular_distance(303.2101, 46.0192, np.array(geometry.ra), np.array(geometry.dec)) * 3600 < 30
    assert abs(geometry.scale_arcsec / 10.306 - 1) < 0.01
    assert 0 < analysis.solution.cpu_seconds < SolveSettings().tiers[0].cpu_limit_s


def test_the_real_crop_matches_at_least_150_tycho2_stars(crop_analysis) -> None:
    _, analysis = crop_analysis
    assert len(analysis.matches) >= 150
    assert np.all(analysis.matches.separation_arcsec <= 25)
    x, y = analysis.sources.x[analysis.matches.source_index], analysis.sources.y[analysis.matches.source_index]
    assert x.min() >= 10 and y.min() >= 10 and x.max() <= 689 and y.max() <= 689
    assert np.all(analysis.stars.mag[analysis.matches.catalog_index] <= 13)


def test_the_real_crops_stars_sit_on_their_tycho2_positions(crop_analysis) -> None:
    """Saturated stars kept out of the solve and windowed centroids: before, the solve used only
    saturated stars, whose clipped cores carried the PSF's wing, and matched stars sat a median
    12.4" (dy -0.96 px) from Tycho-2. A scientist accepts a few arcsec at 10.3"/px (0.4 px)."""
    _, analysis = crop_analysis
    matches, sources = analysis.matches, analysis.sources
    dx = sources.x[matches.source_index] - matches.catalog_x
    dy = sources.y[matches.source_index] - matches.catalog_y
    assert np.median(matches.separation_arcsec) < 4.0
    assert abs(np.median(dy)) < 0.3 and abs(np.median(dx)) < 0.3
    unsaturated = ~sources.saturated[matches.source_index]
    assert np.median(matches.separation_arcsec[unsaturated]) < 4.0


def test_saturated_stars_are_flagged_and_kept_out_of_the_solve(crop_analysis) -> None:
    frame, analysis = crop_analysis
    sources = analysis.sources
    assert 10 <= sources.saturated.sum() < len(sources) / 5  # the brightest few percent clip on this crop
    assert not sources.saturated[spread_selection(sources, frame.shape, SolveSettings())].any()
    assert np.median(sources.flux[sources.saturated]) > 10 * np.median(sources.flux[~sources.saturated])
    rows = stamp_rows(analysis, "image", "sequence")
    flagged = [row for row in rows if row["saturated"]]
    assert flagged and all(row["pixels"].max() > 9_000 for row in flagged)  # clipped: 11,535 above black less sky
    assert sources.windowed.mean() > 0.9  # windowed centroids for nearly all; the rest keep sep's


def test_stamps_are_bayer_aligned_cutouts_around_their_stars(crop_analysis) -> None:
    frame, analysis = crop_analysis
    rows = stamp_rows(analysis, "image", "sequence")
    assert len(rows) == len(analysis.matches)
    for row in rows:
        x0, y0 = row["stamp_x0"], row["stamp_y0"]
        assert x0 % 2 == 0 and y0 % 2 == 0
        assert row["pixels"].shape == (10, 10) and row["pixels"].dtype == np.float32
        assert np.array_equal(row["pixels"], frame[y0 : y0 + 10, x0 : x0 + 10])
        assert x0 + 3 <= row["x"] <= x0 + 6 and y0 + 3 <= row["y"] <= y0 + 6


def test_stamp_origins_keep_the_phase_at_the_frame_edges() -> None:
    x0, y0 = stamp_origins(np.array([0.2, 4.5, 698.9]), np.array([699.0, 5.4, 1.0]), 10, (700, 700))
    assert x0.tolist() == [0, 0, 690] and y0.tolist() == [690, 0, 0]
    with pytest.raises(ValueError, match="even"):
        stamp_origins(np.array([5.0]), np.array([5.0]), 9, (700, 700))


def test_the_solver_gets_sources_spread_over_the_whole_frame(crop_analysis) -> None:
    _, analysis = crop_analysis
    settings = SolveSettings()
    chosen = spread_selection(analysis.sources, (700, 700), settings)
    first = chosen[: settings.grid[0] * settings.grid[1]]
    cells = {
        (int(y // (700 / 6)), int(x // (700 / 8))) for x, y in zip(analysis.sources.x[first], analysis.sources.y[first])
    }
    assert len(cells) >= 40  # the first pass takes one star from (nearly) every one of the 48 cells
    assert len(chosen) == len(set(chosen.tolist()))


@pytest.mark.parametrize(
    ("ra", "dec", "rotation", "seed"),
    [(303.2, 46.0, 0.0, 1), (83.8, -5.4, 37.0, 2), (10.0, 80.0, 200.0, 3), (250.0, -60.0, 95.0, 4)],
)
def test_synthetic_full_frames_solve_in_the_hinted_tier_to_a_fraction_of_a_pixel(
    ra: float, dec: float, rotation: float, seed: int
) -> None:
    spec = StarFieldSpec(ra=ra, dec=dec, rotation_deg=rotation, seed=seed)
    raw, header, truth = make_star_field(spec)
    hint_offset = angular_distance(ra, dec, np.array(header["RA-MNT"]), np.array(header["DEC-MNT"]))
    assert abs(hint_offset - 2.0) < 1e-6
    frame, rms, saturated = subtract(raw, header)
    analysis = analyse_frame(frame, rms, header, Tycho2IndexCatalog().cone, saturated=saturated)
    assert analysis.solution.tier == "hinted", analysis.solution.reason
    assert np.median(wcs_error_px(analysis.solution.wcs, truth, raw.shape)) < 0.3
    assert len(analysis.matches) > 1000


def test_synthetic_truth_windowed_centroids_within_a_tenth_of_a_pixel_and_bright_stars_flagged() -> None:
    """Isolated stars of a synthetic frame against where the true WCS puts them. Its PSFs are
    symmetric Gaussians, so clipping does not shift a saturated star here as the real PSF's
    wing does; what this checks is the centroid itself and which stars get flagged."""
    spec = StarFieldSpec(shape=(1000, 1400), seed=3)
    raw, header, truth = make_star_field(spec)
    frame, rms, saturated = subtract(raw, header)
    sources = detect_sources(frame, rms, saturated=saturated)
    stars = Tycho2IndexCatalog().cone(spec.ra, spec.dec, 2.7, (-2.0, spec.mag_limit))  # the half-diagonal is 2.5 deg
    tx, ty = truth.all_world2pix(stars.ra, stars.dec, 0)
    tree = cKDTree(np.column_stack((tx, ty)))
    isolated = tree.query(np.column_stack((tx, ty)), k=2)[0][:, 1] > 8  # no other star within 8 px
    distance, nearest = tree.query(np.column_stack((sources.x, sources.y)), distance_upper_bound=2.0)
    found = np.flatnonzero(np.isfinite(distance) & away_from_edges(sources, raw.shape, 10))
    found = found[isolated[nearest[found]]]
    error = np.hypot(sources.x[found] - tx[nearest[found]], sources.y[found] - ty[nearest[found]])
    flagged, mag = sources.saturated[found], stars.mag[nearest[found]]
    assert len(found) > 500 and flagged.sum() >= 10
    assert np.median(error[~flagged]) < 0.1 and np.percentile(error[~flagged], 90) < 0.15
    assert np.median(error[flagged]) < 0.1
    assert np.all(flagged[mag < 7.5]) and np.all(mag[flagged] < 9.0)  # clipping starts near mag 8 here


def downsampled(raw: np.ndarray) -> np.ndarray:
    """2x2 binning as a camera's half-size mode would do: twice the pixel scale."""
    return (raw[0::2, 0::2].astype(np.uint32) + raw[1::2, 0::2] + raw[0::2, 1::2] + raw[1::2, 1::2]) // 4


def blank(raw: np.ndarray) -> np.ndarray:
    rng = np.random.default_rng(7)
    return (2048 + rng.normal(400, 15, raw.shape)).astype(np.uint16)


def without_hints(header: fits.Header) -> fits.Header:
    header = header.copy()
    del header["RA-MNT"], header["DEC-MNT"]
    return header


# --- the step, through the step harness on the local stand-ins----------------------------------------


@pytest.fixture
def local(tmp_path: Path) -> Context:
    return local_stand_ins(tmp_path)[0]


@pytest.fixture(scope="module")
def solved_run(crop, tmp_path_factory):
    """The step once on the real crop, in its own data dir."""
    data_dir = tmp_path_factory.mktemp("plate-solver")
    context = local_stand_ins(data_dir)[0]
    push = put_inputs(context, *crop)
    return context, push, deliver(context, SERVICE.name, push)


def test_the_step_records_the_solution_on_the_image(solved_run) -> None:
    context, push, handled = solved_run
    assert handled.outcome is Outcome.DONE and handled.outcome.acknowledged
    image = context.metadata.get("images", handled.image_id)
    assert image["status"] == "solved" and image["solved"] is True
    assert abs(image["ra_image"] - 303.2101) < 0.02 and abs(image["dec_image"] - 46.0192) < 0.01
    assert abs(image["wcs"]["scale_arcsec"] - 10.306) < 0.1 and image["wcs"]["tier"] == "hinted"
    assert image["sources"]["matched"] >= 150 and image["sources"]["median_fwhm_px"] > 1
    assert 0 < image["sources"]["matched_saturated"] <= image["sources"]["saturated"]
    assert image["sources"]["median_separation_arcsec"] < 4.0
    assert image["sky"]["background_adu"] > 2048
    record = image["steps"]["plate-solver"]
    assert record["state"] == "done" and record["solve"]["tier"] == "hinted" and record["solve"]["cpu_seconds"] > 0
    assert record["stamps"] == {"database": "sqlite", "rows": image["sources"]["matched"]}


def test_the_processed_image_is_the_subtracted_frame_with_its_wcs(solved_run, crop) -> None:
    context, _, handled = solved_run
    base = CROP_PATH.removesuffix(".fits.fz")
    processed = context.storage.stat("panoptes-processed-images", f"{base}.fits.fz")
    hdu = fits_codec.image_hdu(fits_codec.open_fits(context.storage.read(processed.ref), "processed"), "processed")
    frame, rms, _ = subtract(*crop)
    step = hdu.header["QSTEP"]  # quantized by default: within half a step of the frame in memory
    record = context.metadata.get("images", handled.image_id)["steps"]["plate-solver"]
    assert record["processed_storage"] == {"storage": "quantized", "step_adu": step}
    assert hdu.header["PSTORAGE"] == "quantized" and step == pytest.approx(0.25 * np.median(rms), rel=1e-3)
    assert hdu.data.dtype == np.float32 and np.abs(hdu.data - frame).max() <= step / 2 * 1.0001
    assert hdu.header["SOLVTIER"] == "hinted" and hdu.header["BKGFILE"].startswith("panoptes-backgrounds/")
    assert hdu.header["PIPEVERS"] and hdu.header["RA-MNT"] == crop[1]["RA-MNT"]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FITSFixedWarning)
        centre = WCS(hdu.header).all_pix2world([[349.5, 349.5]], 0)[0]
    assert angular_distance(303.2101, 46.0192, np.array(centre[0]), np.array(centre[1])) * 3600 < 30


def test_lossless_storage_keeps_every_bit_and_the_stamps_do_not_depend_on_the_choice(
    solved_run, crop, tmp_path: Path
) -> None:
    context, push, handled = solved_run
    lossless, _ = local_context(Settings(data_dir=tmp_path, processed_storage="lossless"), tmp_path)
    again = deliver(lossless, SERVICE.name, put_inputs(lossless, *crop))
    assert again.outcome is Outcome.DONE, again.reason
    processed = lossless.storage.stat("panoptes-processed-images", CROP_PATH)
    hdu = fits_codec.image_hdu(fits_codec.open_fits(lossless.storage.read(processed.ref), "processed"), "processed")
    assert hdu.header["PSTORAGE"] == "lossless" and "QSTEP" not in hdu.header
    assert np.array_equal(hdu.data, subtract(*crop)[0])
    record = lossless.metadata.get("images", again.image_id)["steps"]["plate-solver"]
    assert record["processed_storage"] == {"storage": "lossless", "step_adu": None}
    quantized_rows, lossless_rows = context.stamps.rows(handled.image_id), lossless.stamps.rows(again.image_id)
    assert len(lossless_rows) == len(quantized_rows) >= 150  # photometry and stamps: the frame in memory
    for a, b in zip(quantized_rows, lossless_rows):
        assert a["flux"] == b["flux"] and np.array_equal(a["pixels"], b["pixels"]), a["catalog_id"]


def test_quick_look_and_sources_table_sit_beside_the_processed_image(solved_run, crop_analysis) -> None:
    context, _, handled = solved_run
    base = CROP_PATH.removesuffix(".fits.fz")
    png = context.storage.read(context.storage.stat("panoptes-processed-images", f"{base}.png").ref)
    image = Image.open(io.BytesIO(png))
    assert image.size == (700, 700) and image.mode == "P"  # a palette: greys, the grid's blue, the circles' green
    colours = np.asarray(image.convert("RGB"), np.int16)
    assert (colours[..., 1] > colours[..., 0] + 100).sum() > 150  # green circles drawn
    data = context.storage.read(context.storage.stat("panoptes-processed-images", f"{base}-sources.parquet").ref)
    table = pq.read_table(io.BytesIO(data))
    detected = context.metadata.get("images", handled.image_id)["sources"]["detected"]
    assert table.num_rows == detected and table.column("source_id").to_pylist() == list(range(detected))
    stored = read_sources(data)  # every detection, as the step found it on the frame
    assert stored is not None
    for name, column in crop_analysis[1].sources.columns().items():
        assert np.array_equal(getattr(stored, name), column), name
    rows = {row["source_id"]: row for row in context.stamps.rows(handled.image_id)}
    matched = table.filter(table.column("matched")).to_pylist()
    assert sorted(row["source_id"] for row in matched) == sorted(rows) and len(rows) >= 150
    for row in matched:
        stamp = rows[row["source_id"]]
        assert row["catalog_id"] == stamp["catalog_id"] and row["saturated"] == stamp["saturated"]
        assert np.array_equal(np.array(row["pixels"], np.float32).reshape(10, 10), stamp["pixels"])
    unmatched = table.filter(pa.compute.invert(table.column("matched"))).to_pylist()
    assert unmatched and all(row["catalog_id"] is None and row["pixels"] is None for row in unmatched)
    assert 0 < sum(row["saturated"] for row in rows.values()) < len(rows) / 2


def test_a_table_of_matched_stars_only_gives_no_sources() -> None:
    """Tables written before every detection was stored: process-observation detects again."""
    buffer = io.BytesIO()
    pq.write_table(pa.table({"source_id": [0, 3], "x": [1.0, 2.0]}), buffer)
    assert read_sources(buffer.getvalue()) is None


def test_the_sources_table_holds_every_detection_column() -> None:
    assert tuple(DETECTION_TYPES) == SOURCE_COLUMNS


def test_a_redelivery_is_already_done_and_a_reprocessing_replaces_the_rows(solved_run) -> None:
    context, push, handled = solved_run
    before = context.stamps.rows(handled.image_id)
    assert deliver(context, SERVICE.name, push).outcome is Outcome.ALREADY_DONE
    context.metadata.replace_field("images", handled.image_id, ("steps", "plate-solver"), {})  # forget the run
    again = deliver(context, SERVICE.name, push)
    assert again.outcome is Outcome.DONE
    after = context.stamps.rows(handled.image_id)
    assert len(after) == len(before) and [r["catalog_id"] for r in after] == [r["catalog_id"] for r in before]
    outputs = context.metadata.get("images", handled.image_id)["steps"]["plate-solver"]["outputs"]
    assert {outputs[k]["state"] for k in ("processed", "quick_look", "sources")} == {"identical"}, outputs


@pytest.mark.parametrize(
    ("case", "make"),
    [
        ("tiny downsampled", lambda tiny, header: (downsampled(tiny), header)),
        ("blank frame", lambda tiny, header: (blank(tiny), header)),
        ("tiny without hints", lambda tiny, header: (downsampled(tiny), without_hints(header))),
    ],
)
def test_frames_that_cannot_solve_end_unsolved_and_acknowledged(local: Context, test_data: Path, case, make) -> None:
    with fits.open(test_data / "panoptes" / "tiny.fits") as hdus:
        raw, header = make(hdus[0].data.copy(), hdus[0].header.copy())
    handled = deliver(local, SERVICE.name, put_inputs(local, raw, header))
    assert handled.outcome is Outcome.DONE and handled.outcome.acknowledged, handled.reason
    image = local.metadata.get("images", handled.image_id)
    assert image["status"] == "unsolved" and image["solved"] is False and image["unsolved_reason"]
    solve = image["steps"]["plate-solver"]["solve"]
    assert solve["solved"] is False and solve["cpu_seconds"] <= TIER_LIMIT_S
    assert not list(local.storage.list("panoptes-processed-images"))


def test_a_message_without_its_background_is_rejected(local: Context) -> None:
    message = StepMessage(
        ObjectRef("panoptes-raw-images", CROP_PATH, 1), "PAN001_XXXXXX_20160909T081314", "PAN001_XXXXXX_20160909T081152"
    )
    handled = deliver(local, SERVICE.name, message)
    assert handled.outcome is Outcome.REJECTED and "background" in handled.reason
    assert local.metadata.get("images", handled.image_id)["status"] == "rejected"
