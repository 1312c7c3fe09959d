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
them already written compares bytes and goes on.
"""

from __future__ import annotations

import dataclasses
import logging
from typing import Any

import numpy as np
from astropy.io import fits

from panoptes_network import __version__
from panoptes_network.core.context import Context
from panoptes_network.core.errors import BadInput, NotFound
from panoptes_network.core.logs import log
from panoptes_network.core.messages import ObjectRef, StepMessage
from panoptes_network.core.names import parse_raw_name
from panoptes_network.core.outcomes import Outcome
from panoptes_network.core.outputs import IDENTICAL, KEPT, REPLACED, store_output
from panoptes_network.core.status import ImageStatus
from panoptes_network.core.step_shell import Step, StepResult, finished, previous_run
from panoptes_network.science import fits_codec
from panoptes_network.science.background_model import load_model, load_rms
from panoptes_network.science.frame_astrometry import (
    AnalysisSettings,
    FrameAnalysis,
    analyse_frame,
    source_summary,
    stamp_rows,
)
from panoptes_network.science.quick_look import QuickLookSettings, render
from panoptes_network.science.solve_field import Solution
from panoptes_network.science.sources_table import sources_parquet

NAME = "plate-solver"
logger = logging.getLogger(__name__)

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
    try:
        return ObjectRef(str(background["bucket"]), str(background["name"]), int(background["generation"]))
    except (TypeError, KeyError, ValueError) as exc:
        raise BadInput(f"plate-solve message lacks a valid 'background' object ({background!r})", exc) from exc


def read_input(context: Context, ref: ObjectRef, what: str) -> bytes:
    try:
        return context.storage.read(ref)
    except NotFound as exc:
        raise BadInput(f"{what} {ref.identity} no longer exists", exc) from exc


def load_frame(
    context: Context, message: StepMessage, background: ObjectRef
) -> tuple[np.ndarray, np.ndarray, fits.Header, float]:
    """The background-subtracted frame, the sky RMS, the raw header and the median sky level."""
    hdu = fits_codec.image_hdu(
        fits_codec.open_fits(read_input(context, message.ref, "raw image"), "raw image"), "raw image"
    )
    background_bytes = read_input(context, background, "background file")
    model = load_model(background_bytes)
    if model.shape != hdu.data.shape:
        raise BadInput(f"background {model.shape} and raw image {hdu.data.shape} differ in shape")
    sky_level = float(np.median(model[::4, ::4]))  # a sample: the model is smooth, and a full median copies it
    frame = hdu.data.astype(np.float32)
    frame -= model
    return frame, load_rms(background_bytes), hdu.header, sky_level


def processed_header(raw: fits.Header, analysis: FrameAnalysis, background: ObjectRef) -> fits.Header:
    header = fits.Header(
        [card for card in raw.cards if card.keyword not in STORAGE_KEYWORDS and not card.keyword.startswith("NAXIS")]
    )
    header.extend(analysis.solution.wcs.to_header(relax=True).cards, update=True)
    header["PIPEVERS"] = (__version__, "panoptes-network version")
    header["BKGFILE"] = (background.identity, "background model subtracted")
    header["BUNIT"] = ("adu", "raw ADU minus the background model")
    header["SOLVTIER"] = (analysis.solution.tier, "plate-solve attempt that solved")
    header["NMATCH"] = (len(analysis.matches), "sources matched to the reference catalog")
    return header


def write_output(
    context: Context, message: StepMessage, bucket: str, name: str, data: bytes, content_type: str
) -> dict[str, Any]:
    """Create-only write; an existing object with the same content is a redelivery, anything else
    a kept conflict, unless this run is a requested rerun (then it is replaced)."""
    stored = store_output(context.storage, bucket, name, data, content_type, replace=message.rerun is not None)
    entry: dict[str, Any] = {"name": f"{bucket}/{name}", "generation": stored.ref.generation if stored.ref else None}
    if stored.state == IDENTICAL:
        entry["existing"] = "identical"
    elif stored.state == KEPT:
        log(logger, "WARNING", "output exists with different content; kept", output=f"{bucket}/{name}")
        entry["existing"] = "different (kept)"
    elif stored.state == REPLACED:
        entry["existing"] = "different (replaced by this rerun)"
    return entry


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
    context: Context,
    message: StepMessage,
    settings: PlateSolveSettings,
    analysis: FrameAnalysis,
    frame: np.ndarray,
    header: fits.Header,
    background: ObjectRef,
) -> dict[str, Any]:
    """Processed image, quick look, sources table and SQL rows; returns where each went."""
    base = parse_raw_name(message.ref.name).base_path
    bucket = context.settings.bucket("processed")
    rows = stamp_rows(analysis, message.image_id, message.sequence_id)
    processed = fits_codec.compressed_file(frame.astype(np.float32), processed_header(header, analysis, background))
    matched = analysis.sources.take(analysis.matches.source_index)
    png = render(
        frame,
        analysis.solution.wcs,
        analysis.geometry,
        np.column_stack((matched.x, matched.y)),
        matched.flux,
        settings.quick_look,
    )
    outputs = {
        "processed": write_output(context, message, bucket, f"{base}.fits.fz", processed, "application/fits"),
        "quick_look": write_output(context, message, bucket, f"{base}.png", png, "image/png"),
        "sources": write_output(
            context, message, bucket, f"{base}-sources.parquet", sources_parquet(rows), "application/vnd.apache.parquet"
        ),
    }
    outputs["stamps"] = {"database": context.stamps.database, "rows": context.stamps.replace(message.image_id, rows)}
    return outputs


def process(context: Context, message: StepMessage, settings: PlateSolveSettings) -> StepResult:
    """The whole step with explicit settings (``handle`` uses the defaults)."""
    background = background_ref(message)
    previous = previous_run(context, NAME, message.image_id)
    if finished(previous, message) and previous.get("background") == background.identity:
        return StepResult(Outcome.ALREADY_DONE, reason="already plate-solved")
    frame, rms, header, sky_level = load_frame(context, message, background)
    sky = {"background_adu": round(sky_level, 2), "rms_adu": round(float(np.median(rms)), 3)}
    analysis = analyse_frame(frame, rms, header, context.catalog.cone, settings.analysis)
    if not analysis.solution.solved:
        return unsolved(analysis, sky, background)
    outputs = store_outputs(context, message, settings, analysis, frame, header, background)
    geometry = analysis.geometry
    summary = source_summary(analysis)
    return StepResult(
        reason=f"solved ({analysis.solution.tier}), {summary['matched']} stars matched",
        record={**solve_record(analysis.solution), "background": background.identity, "outputs": outputs},
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
            "outputs": {key: value["name"] for key, value in outputs.items() if "name" in value},
        },
        status=ImageStatus.SOLVED,
    )


def handle(context: Context, message: StepMessage) -> StepResult:
    return process(context, message, PlateSolveSettings())


STEP = Step(NAME, handle)
