"""process-observation: an observation's products from its usable frames.

Input (``process-observation``, an ``ObservationMessage``): the sequence id and why now (its end
marker, the quiet period, a late frame, a person). The shell holds one lease per observation
(``leases/process-observation:{sequence_id}``) and answers "already done" when the observation
was processed, no frame arrived since and a rerun's token is the one recorded.

The usable frames (status ``solved``, frame type ``science``) are handed to
``science.observation_products.make_products`` as ``ObservationFrame``s: the WCS header is read
from the plate-solver's processed image (a ranged read of its header), the background-subtracted
pixels, the quick look and the sources table (every detection: not detected again) only when the
science asks for them. Every product is written
create-only under the processed bucket at ``{sequence folder}/{suffix}``; a rerun token
replaces them. The outcome (``processed``, ``not_enough_frames``, ``too_much_drift`` with the
drift), the products' locations and objects, frame counts and the field go on the observation,
and each excluded frame's reason on its image (``observation_excluded``). A frame that arrived
while this ran leaves the observation pending, for the sweep. Earlier products this run did not
make (a ``processed`` night re-processed into ``not_enough_frames``) are retired with the
outcome, then deleted at the generation recorded; a redelivery finishes what a crash left.
"""

from __future__ import annotations

import datetime as dt
from functools import partial
from typing import Any

import numpy as np
from astropy.io import fits
from astropy.wcs import WCS

from panoptes_network import __version__
from panoptes_network.core import records
from panoptes_network.core.context import Context
from panoptes_network.core.errors import NotFound, PreconditionFailed
from panoptes_network.core.messages import ObjectRef, ObservationMessage
from panoptes_network.core.names import sequence_folder
from panoptes_network.core.observations import (
    FORCED,
    FRAMES,
    PRODUCT_OBJECTS,
    RETIRED,
    already_done,
    field_of,
    frame_summary,
    last_arrival,
    pending_after,
    recorded_products,
    retired,
    unfinished,
    usable,
)
from panoptes_network.core.settings import Settings
from panoptes_network.core.status import ObservationStatus
from panoptes_network.core.step import Conflict, Step, StepResult, Target, Work
from panoptes_network.core.step_records import now
from panoptes_network.science import fits_codec
from panoptes_network.science.catalog_match import MatchSettings, field_geometry
from panoptes_network.science.catalog_stars import CatalogStars
from panoptes_network.science.fits_header import read_image_header
from panoptes_network.science.observation_products import (
    PRODUCT_FILES,
    ObservationFrame,
    ProductsSettings,
    make_products,
)
from panoptes_network.science.source_detection import Sources
from panoptes_network.science.sources_table import read_sources

NAME = "process-observation"
SOLVER = "plate-solver"  # the step whose outputs the frames are read from
LIGHTCURVES_TOPIC = "make-lightcurves"  # the next step: lightcurves of a processed observation, else none


def products_settings(settings: Settings) -> ProductsSettings:
    return ProductsSettings(
        min_frames=settings.min_frames, max_drift_px=settings.max_drift_px, stamp_size=settings.stamp_size
    )


def outputs(context: Context, message: ObservationMessage) -> dict[str, Target]:
    """Every product the science may make, under the sequence's folder in the processed bucket."""
    folder = sequence_folder(message.sequence_id)
    bucket = context.settings.bucket("processed")
    return {key: Target(bucket, f"{folder}/{suffix}", kind) for key, (suffix, kind) in PRODUCT_FILES.items()}


def solver_output(image: dict[str, Any], key: str) -> ObjectRef | None:
    """The exact object the plate-solver wrote as its output ``key`` for this image."""
    output = records.step_record(image, SOLVER).outputs.get(key) or {}
    bucket, _, name = str(output.get("name") or "").partition("/")
    generation = output.get("generation")
    return ObjectRef(bucket, name, int(generation)) if name and generation else None


def _pixels(context: Context, ref: ObjectRef) -> np.ndarray:
    data = context.storage.read(ref)
    hdu = fits_codec.image_hdu(fits_codec.open_fits(data, ref.identity, context.settings.limits), ref.identity)
    return np.asarray(hdu.data, dtype=np.float32)


def _preview(context: Context, ref: ObjectRef | None) -> bytes | None:
    return None if ref is None else context.storage.read(ref)


def _sources(context: Context, ref: ObjectRef | None) -> Sources | None:
    return None if ref is None else read_sources(context.storage.read(ref))


def observation_frame(context: Context, image_id: str, image: dict[str, Any]) -> ObservationFrame | None:
    """A usable frame as the science sees it; None when the plate-solver recorded no processed image."""
    processed = solver_output(image, "processed")
    if processed is None:
        return None
    read_range = partial(context.storage.read_range, processed)
    header = read_image_header(read_range, processed.identity, context.settings.limits).header
    sky = image.get("sky") or {}
    return ObservationFrame(
        image_id=image_id,
        time=image.get("time") or dt.datetime.fromisoformat(str(header.get("DATE-OBS"))).replace(tzinfo=dt.UTC),
        exposure=float(image.get("exptime") or header.get("EXPTIME") or 0.0),
        airmass=image.get("airmass"),
        camera_temp=(image.get("camera") or {}).get("temperature"),
        wcs_header=header,
        load_pixels=partial(_pixels, context, processed),
        load_preview=partial(_preview, context, solver_output(image, "quick_look")),
        load_sources=partial(_sources, context, solver_output(image, "sources")),
        sky_level=sky.get("background_adu"),
        sky_rms=sky.get("rms_adu"),
    )


def field_stars(context: Context, header: fits.Header) -> CatalogStars:
    """The reference catalog's stars over a frame (the stamp cube follows every one the WCS puts
    inside every usable frame, detected or not)."""
    shape = (int(header["NAXIS2"]), int(header["NAXIS1"]))
    geometry = field_geometry(WCS(header), shape)
    match = MatchSettings()
    return context.catalog.cone(geometry.ra, geometry.dec, geometry.radius_deg + match.cone_margin_deg, match.mag_range)


def record_exclusions(context: Context, frames: list[tuple[str, dict[str, Any]]], excluded: dict[str, str]) -> None:
    """Each excluded frame's reason on its image; a frame excluded by an earlier run and used now loses it."""
    for image_id, image in frames:
        reason = excluded.get(image_id)
        if reason is not None or image.get("observation_excluded") is not None:
            records.merge_image(context.metadata, image_id, {"observation_excluded": reason})


def delete_retired(context: Context, sequence_id: str, identities: list[str]) -> None:
    """Delete the retired products, each only at the generation recorded, then forget them. One
    already gone (deleted before a crash) or replaced by a newer object is not this run's to delete."""
    for identity in identities:
        try:
            context.storage.delete(ObjectRef.from_identity(identity))
        except (NotFound, PreconditionFailed):
            continue
    records.merge_observation(context.metadata, sequence_id, {RETIRED: []})


def done(context: Context, message: ObservationMessage) -> bool:
    """Already done (see ``already_done``); the retired products a crash left are deleted first."""
    observation = records.observation(context.metadata, message.sequence_id)
    if not already_done(observation, message.rerun):
        return False
    if observation and observation.get(RETIRED):
        delete_retired(context, message.sequence_id, list(observation[RETIRED]))
    return True


def do(work: Work) -> StepResult:
    context, message = work.context, work.message
    sequence_id = message.sequence_id
    observation = records.observation(context.metadata, sequence_id) or {}
    images = records.sequence_images(context.metadata, sequence_id)
    waiting = unfinished(images)
    if not images or (waiting and message.reason != FORCED):
        why = f"{len(waiting)} frames still in the chain" if images else "no frames recorded"
        return StepResult(reason=f"not ready: {why}; the sweep publishes it again")
    arrival_seen = last_arrival(observation, images)
    started = now()
    records.merge_observation(
        context.metadata, sequence_id, {"status": ObservationStatus.PROCESSING.value, "reason": message.reason}
    )
    candidates = [(image_id, image) for image_id, image in images if usable(image)]
    frames = [f for image_id, image in candidates if (f := observation_frame(context, image_id, image)) is not None]
    stars = field_stars(context, frames[0].wcs_header) if frames else None
    products = make_products(sequence_id, frames, products_settings(context.settings), stars)
    try:
        stored = work.write({key: product.data for key, product in products.files.items()})
    except Conflict as exc:
        records.merge_observation(
            context.metadata,
            sequence_id,
            {"status": ObservationStatus.ERROR.value, "reason": f"conflict: {exc.message}", "conflict": exc.message},
        )
        raise
    record_exclusions(context, candidates, dict(products.excluded))
    locations = {key: work.outputs[key]["name"] for key in stored}
    header = frames[0].wcs_header if frames else fits.Header()
    processing = {
        "reason": message.reason,
        "rerun": message.rerun,
        "started": started,
        "finished": now(),
        "frames_used": len(frames) - len(products.excluded),
        "arrival_seen": arrival_seen,
        PRODUCT_OBJECTS: sorted(ref.identity for ref in stored.values()),
    }
    retiring = retired(recorded_products(observation), stored.values())

    summary = frame_summary(images)
    records.decide_observation(context.metadata, sequence_id, FRAMES, summary.pop(FRAMES), {})

    def outcome(current: dict[str, Any]) -> dict[str, Any]:
        return {
            **summary,
            "status": products.status.value,
            "reason": products.reason,
            "drift_px": products.drift_px,
            "field": field_of(header, current),
            "pipeline_version": __version__,
            "processed": processing["finished"],
            "processing": processing,
            records.PENDING: pending_after(current, arrival_seen),
            RETIRED: retiring,
        }

    records.decide_observation(context.metadata, sequence_id, "products", locations, outcome)
    if retiring:
        delete_retired(context, sequence_id, retiring)
    work.publish(LIGHTCURVES_TOPIC, ObservationMessage(sequence_id, products.status.value, message.rerun))
    return StepResult(
        reason=f"{products.status.value}: {products.reason}",
        record={"products": locations, "excluded": len(products.excluded)},
    )


STEP = Step(NAME, do, writes=outputs, done=done)
