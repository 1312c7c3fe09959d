"""make-lightcurves: every star's lightcurve, comparison stars, precision and transit candidates of an observation.

Input (``make-lightcurves``, an ``ObservationMessage``): process-observation publishes it whenever
it ends an observation, with its own rerun token. One that did not end ``processed`` (a late frame
left too few usable frames, say) has its earlier lightcurves deleted, each at the generation
recorded, and ``lightcurves`` says why. The shell holds one lease per observation
(``leases/make-lightcurves:{sequence_id}``). The step reads the stamp cube process-observation
recorded (``products.stamp_cube`` on the observation) at its current generation into a scratch
file (photometry reads it memory-mapped, a block of stars at a time), makes the lightcurves
(``science.lightcurves``) and writes ``lightcurves.parquet``, ``comparisons.parquet`` and
``lightcurve.png`` create-only under the sequence's folder in the processed bucket; a rerun token
replaces them. On the observation, ``lightcurves`` holds the products' locations, the stamp cube's
generation they were made from, the precision per magnitude bin and channel, the target's, the
candidates and the comparison summary; a failure goes there too (``status: error``, ``reason``,
``error``), never on the observation's status, which stays ``processed``. It is done when that generation is the cube's current one
(and a rerun's token is the one recorded): a redelivery, or the sweep's repeated publish, does
nothing; a new cube (a late frame re-processed) makes new lightcurves.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

from panoptes_network import __version__
from panoptes_network.adapters.storage import ObjectInfo
from panoptes_network.core import records
from panoptes_network.core.context import Context
from panoptes_network.core.errors import NotFound, PreconditionFailed
from panoptes_network.core.messages import ObjectRef, ObservationMessage
from panoptes_network.core.names import sequence_folder
from panoptes_network.core.observations import PRODUCT_OBJECTS  # of FIELD: what a retirement deletes
from panoptes_network.core.settings import Settings
from panoptes_network.core.status import ObservationStatus
from panoptes_network.core.step import Step, StepResult, Target, Work
from panoptes_network.core.step_records import now
from panoptes_network.science import forced_photometry, transit_search
from panoptes_network.science.lightcurve_products import LIGHTCURVE_FILES, make_lightcurve_products
from panoptes_network.science.lightcurves import LightcurveSettings, make_lightcurves, read_cube

NAME = "make-lightcurves"
FIELD = "lightcurves"  # the observation's field this step writes


def lightcurve_settings(settings: Settings) -> LightcurveSettings:
    return LightcurveSettings(
        photometry=forced_photometry.PhotometrySettings(aperture_px=settings.aperture_px),
        search=transit_search.SearchSettings(snr_threshold=settings.transit_snr),
    )


def outputs(context: Context, message: ObservationMessage) -> dict[str, Target]:
    folder = sequence_folder(message.sequence_id)
    bucket = context.settings.bucket("processed")
    return {key: Target(bucket, f"{folder}/{suffix}", kind) for key, (suffix, kind) in LIGHTCURVE_FILES.items()}


def stamp_cube(context: Context, observation: dict[str, Any]) -> ObjectInfo | None:
    """The stamp cube process-observation recorded, as stored now (None: none recorded, or gone)."""
    location = str((observation.get("products") or {}).get("stamp_cube") or "")
    bucket, _, name = location.partition("/")
    return context.storage.stat(bucket, name) if name else None


def done(context: Context, message: ObservationMessage) -> bool:
    observation = records.observation(context.metadata, message.sequence_id) or {}
    made = observation.get(FIELD) or {}
    if observation.get("status") != ObservationStatus.PROCESSED.value:
        return not made.get(PRODUCT_OBJECTS)  # nothing of an earlier processing left to retire
    cube = stamp_cube(context, observation)
    if cube is None or made.get("stamp_cube_generation") != cube.ref.generation:
        return False
    return message.rerun is None or made.get("rerun") == message.rerun


def field_position(observation: dict[str, Any]) -> tuple[float, float] | None:
    """The observation's field (FIELD_RA/FIELD_DEC or the mount's), whose nearest star is the target."""
    field = observation.get("field") or {}
    ra, dec = field.get("ra"), field.get("dec")
    return (float(ra), float(dec)) if ra is not None and dec is not None else None


def retire(context: Context, sequence_id: str, observation: dict[str, Any]) -> StepResult:
    """The observation is no longer processed (a late frame left too few, say): the lightcurves of
    an earlier processing are deleted, each only at the generation recorded, and the field says why."""
    status = observation.get("status") or "not recorded"
    made = observation.get(FIELD) or {}
    for identity in made.get(PRODUCT_OBJECTS) or []:
        try:
            context.storage.delete(ObjectRef.from_identity(identity))
        except (NotFound, PreconditionFailed):  # deleted before a crash, or someone else's since
            continue
    if made:
        reason = f"no lightcurves: the observation is {status}"
        records.decide_observation(context.metadata, sequence_id, FIELD, {"status": status, "reason": reason}, {})
    return StepResult(
        reason=f"nothing to do: the observation is {status}; {len(made.get(PRODUCT_OBJECTS) or [])} retired"
    )


def do(work: Work) -> StepResult:
    context, message = work.context, work.message
    sequence_id = message.sequence_id
    observation = records.observation(context.metadata, sequence_id) or {}
    if observation.get("status") != ObservationStatus.PROCESSED.value:
        return retire(context, sequence_id, observation)
    cube = stamp_cube(context, observation)
    if cube is None:
        return StepResult(reason="nothing to do: no stamp cube recorded on the observation")
    started = now()
    with tempfile.TemporaryDirectory(prefix="panoptes-lightcurves-") as scratch:
        path = Path(scratch) / "stamps.fits"
        path.write_bytes(context.storage.read(cube.ref))
        lightcurves = make_lightcurves(read_cube(path), lightcurve_settings(context.settings))
    products = make_lightcurve_products(sequence_id, lightcurves, field_position(observation))
    stored = work.write(products.files)
    summary = {
        **products.record,
        "products": {key: work.outputs[key]["name"] for key in stored},
        PRODUCT_OBJECTS: sorted(ref.identity for ref in stored.values()),
        "stamp_cube_generation": cube.ref.generation,
        "rerun": message.rerun,
        "started": started,
        "finished": now(),
        "pipeline_version": __version__,
    }
    records.decide_observation(context.metadata, sequence_id, FIELD, summary, {})
    candidates = products.record["candidates"]
    return StepResult(
        reason=f"{products.record['stars']} stars, {len(candidates)} candidates",
        record={"products": summary["products"], "candidates": len(candidates)},
    )


STEP = Step(NAME, do, writes=outputs, done=done, observation_field=FIELD)
