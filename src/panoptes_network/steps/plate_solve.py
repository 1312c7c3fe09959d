"""plate-solver: sources, astrometry, catalog match, postage stamps, processed image, quick look.

Input (from subtract-background on ``plate-solve``): the raw Bayer ``.fits.fz`` and, in
``extra["background"]``, the exact background file; both are read at their generations, and
``raw - background_model.load_model(...)`` is the frame everything here works on. Outputs:

- ``{processed}/{base_path}.fits.fz``: background-subtracted float32 (lossless GZIP_1), the raw
  header, the TAN-SIP WCS and pipeline keywords (PIPEVERS, BKGFILE, SOLVTIER, NMATCH; nothing that varies between
  runs, such as CPU time, so that a rerun writes the same bytes);
- ``{base_path}.png`` beside it: the quick look; ``{base_path}-sources.parquet``: the stamp table;
- the stamp rows in the context's stamp store (``stamps``: PostgreSQL in the cloud,
  ``{data_dir}/stamps.sqlite`` embedded), replacing the image's previous rows in one transaction.

Stars are matched against the context's reference catalog (``PANOPTES_REFERENCE_CATALOG``).

No solution is a science outcome: status ``unsolved`` with the reason and the attempts in the
step record, acknowledged, never retried. Outputs are deterministic, so a redelivery that finds
them already written compares bytes and goes on. A rerun of a science frame makes its
observation pending, so it is processed once more.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

import numpy as np
from astropy.io import fits

from panoptes_network import __version__
from panoptes_network.core import records
from panoptes_network.core.context import Context
from panoptes_network.core.errors import BadInput
from panoptes_network.core.messages import ObjectRef, StepMessage
from panoptes_network.core.names import parse_raw_name
from panoptes_network.core.observations import is_science
from panoptes_network.core.status import ImageStatus
from panoptes_network.core.step import Step, StepResult, Target, Work
from panoptes_network.core.step_records import now
from panoptes_network.science import fits_codec
from panoptes_network.science.background_model import load_model, load_rms, load_white_level
from panoptes_network.science.frame_astrometry import (
    AnalysisSettings,
    FrameAnalysis,
    Solved,
    analyse_frame,
    source_summary,
    stamp_rows,
)
from panoptes_network.science.quick_look import QuickLookSettings, render
from panoptes_network.science.solve_field import Solution
from panoptes_network.science.sources_table import sources_parquet

NAME = "plate-solver"

# Raw header cards that describe the raw file's storage, not the observation.
STORAGE_KEYWORDS = ("SIMPLE", "BITPIX", "EXTEND", "PCOUNT", "GCOUNT", "BZERO", "BSCALE", "BLANK", "CHECKSUM", "DATASUM")


@dataclasses.dataclass(frozen=True)
class PlateSolveSettings:
    """The step's settings; every default documented where it is defined."""

    analysis: AnalysisSettings = AnalysisSettings()
    quick_look: QuickLookSettings = QuickLookSettings()


def background_ref(message: StepMessage) -> ObjectRef:
    """The exact background file named by the message (``extra["background"]``)."""
    background = message.extra.get("background")
    if not isinstance(background, Mapping):
        raise BadInput(f"plate-solve message lacks a valid 'background' object ({background!r})")
    try:
        return ObjectRef(str(background["bucket"]), str(background["name"]), int(background["generation"]))
    except (TypeError, KeyError, ValueError) as exc:
        raise BadInput(f"plate-solve message lacks a valid 'background' object ({background!r})", exc) from exc


def inputs(message: StepMessage) -> dict[str, ObjectRef]:
    """The raw image and the exact background file subtracted from it."""
    return {"raw": message.ref, "background": background_ref(message)}


def outputs(context: Context, message: StepMessage) -> dict[str, Target]:
    """The processed image, its quick look and its sources table, side by side."""
    base = parse_raw_name(message.ref.name).base_path
    bucket = context.settings.bucket("processed")
    return {
        "processed": Target(bucket, f"{base}.fits.fz", "application/fits"),
        "quick_look": Target(bucket, f"{base}.png", "image/png"),
        "sources": Target(bucket, f"{base}-sources.parquet", "application/vnd.apache.parquet"),
    }


@dataclasses.dataclass(frozen=True)
class Frame:
    """The background-subtracted frame and what goes with it."""

    pixels: np.ndarray  # float32, raw minus the background model
    rms: np.ndarray  # per-pixel sky RMS
    header: fits.Header  # the raw header
    sky_level: float  # median of the background model
    saturated: np.ndarray  # bool: raw pixels at or above the background file's white level


def load_frame(work: Work) -> Frame:
    """The background-subtracted frame, the sky RMS, the raw header, the sky level and the saturated pixels."""
    raw = fits_codec.open_fits(work.read("raw"), "raw image", work.context.settings.limits)
    hdu = fits_codec.image_hdu(raw, "raw image")
    background_bytes = work.read("background")
    model = load_model(background_bytes)
    if model.shape != hdu.data.shape:
        raise BadInput(f"background {model.shape} and raw image {hdu.data.shape} differ in shape")
    sky_level = float(np.median(model[::4, ::4]))  # a sample: the model is smooth, and a full median copies it
    saturated = hdu.data >= load_white_level(background_bytes)
    frame = hdu.data.astype(np.float32)
    frame -= model
    return Frame(frame, load_rms(background_bytes), hdu.header, sky_level, saturated)


def processed_header(raw: fits.Header, analysis: FrameAnalysis, solved: Solved, background: ObjectRef) -> fits.Header:
    header = fits.Header(
        [card for card in raw.cards if card.keyword not in STORAGE_KEYWORDS and not card.keyword.startswith("NAXIS")]
    )
    header.extend(solved.wcs.to_header(relax=True).cards, update=True)
    header["PIPEVERS"] = (__version__, "panoptes-network version")
    header["BKGFILE"] = (background.identity, "background model subtracted")
    header["BUNIT"] = ("adu", "raw ADU minus the background model")
    header["SOLVTIER"] = (analysis.solution.tier, "plate-solve attempt that solved")
    header["NMATCH"] = (len(solved.matches), "sources matched to the reference catalog")
    return header


def solve_record(solution: Solution) -> dict[str, Any]:
    return {"solve": solution.summary()}


def unsolved(analysis: FrameAnalysis, sky: dict[str, Any], background: ObjectRef) -> StepResult:
    reason = analysis.solution.reason
    return StepResult(
        reason=f"unsolved: {reason}",
        record={**solve_record(analysis.solution), "background": background.identity},
        fields={"solved": False, "unsolved_reason": reason, "sources": source_summary(analysis), "sky": sky},
        status=ImageStatus.UNSOLVED,
    )


def store_outputs(
    work: Work,
    settings: PlateSolveSettings,
    analysis: FrameAnalysis,
    solved: Solved,
    frame: np.ndarray,
    header: fits.Header,
    background: ObjectRef,
) -> dict[str, Any]:
    """Processed image, quick look, sources table and SQL rows; what the stamp rows went into."""
    message = work.message
    context = work.context
    rows = stamp_rows(analysis, message.image_id, message.sequence_id)
    processed = fits_codec.compressed_file(
        frame.astype(np.float32), processed_header(header, analysis, solved, background)
    )
    matched = analysis.sources.take(solved.matches.source_index)
    png = render(
        frame,
        solved.wcs,
        solved.geometry,
        np.column_stack((matched.x, matched.y)),
        matched.flux,
        settings.quick_look,
    )
    work.write({"processed": processed, "quick_look": png, "sources": sources_parquet(rows)})
    return {"database": context.stamps.database, "rows": context.stamps.replace(message.image_id, rows)}


def process(work: Work, settings: PlateSolveSettings) -> StepResult:
    """The whole step with explicit settings (``do`` uses the deployment's)."""
    context = work.context
    background = work.inputs["background"]
    frame = load_frame(work)
    sky = {"background_adu": round(frame.sky_level, 2), "rms_adu": round(float(np.median(frame.rms)), 3)}
    analysis = analyse_frame(
        frame.pixels, frame.rms, frame.header, context.catalog.cone, settings.analysis, frame.saturated
    )
    solved = analysis.solved()
    if solved is None:
        return unsolved(analysis, sky, background)
    stamps = store_outputs(work, settings, analysis, solved, frame.pixels, frame.header, background)
    geometry = solved.geometry
    summary = source_summary(analysis)
    return StepResult(
        reason=f"solved ({analysis.solution.tier}), {summary['matched']} stars matched",
        record={**solve_record(analysis.solution), "background": background.identity, "stamps": stamps},
        fields={
            "solved": True,
            "ra_image": round(geometry.ra, 6),
            "dec_image": round(geometry.dec, 6),
            "wcs": {
                "scale_arcsec": round(geometry.scale_arcsec, 4),
                "rotation_deg": round(geometry.rotation_deg, 3),
                "width_deg": round(geometry.width_deg, 4),
                "height_deg": round(geometry.height_deg, 4),
                "tier": analysis.solution.tier,
                "matched_in_solve": analysis.solution.matched,
                "residual_px": analysis.solution.summary()["residual_px"],
            },
            "sources": summary,
            "sky": sky,
            "outputs": {key: output["name"] for key, output in work.outputs.items()},
        },
        status=ImageStatus.SOLVED,
    )


def rerun_changes_observation(context: Context, message: StepMessage) -> None:
    """A re-run science frame (``reprocess``; the token came down the chain) changes what its
    observation's products are made of: like a late frame, it makes the observation pending, so
    the sweep (or the embedded run) processes it once more and replaces its products."""
    if is_science(records.image(context.metadata, message.image_id) or {}):
        records.frame_arrived(context.metadata, message.sequence_id, now())


def do(work: Work) -> StepResult:
    result = process(work, PlateSolveSettings())
    if work.message.rerun is not None:
        rerun_changes_observation(work.context, work.message)
    return result


STEP = Step(NAME, do, reads=inputs, writes=outputs)
