"""make-rgb-fits: a camera raw (CR2, DNG, ...) -> raw Bayer FITS, R/G/B FITS and a JPEG preview.

Outputs keep the raw's path (``{unit}/{camera}/{sequence_time}/{image_time}``):
- raw bucket ``{path}.fits.fz``: the Bayer mosaic with the POCS header, create-only; when the
  unit already uploaded its own, it is left alone and the record says so. Its write notifies
  image-received like any upload, which starts record-image -> ...;
- rgb bucket ``{path}_r.fits``, ``_g.fits``, ``_b.fits`` and ``{path}.jpg``.
The raw itself is never modified or deleted. A redelivered message finds the step record and
answers ALREADY_DONE; two deliveries at once make identical outputs (deterministic), so the
second finds each object already there with the same content and writes nothing new.
"""

from __future__ import annotations

import logging

from panoptes_network.core.context import Context
from panoptes_network.core.errors import BadInput, NotFound
from panoptes_network.core.logs import log
from panoptes_network.core.messages import StepMessage
from panoptes_network.core.names import FileKind, parse_raw_name
from panoptes_network.core.outcomes import Outcome
from panoptes_network.core.outputs import IDENTICAL, KEPT, REPLACED, WRITTEN, store_output
from panoptes_network.core.status import ImageStatus, StepState
from panoptes_network.core.step_shell import Step, StepResult, done_before
from panoptes_network.science.rgb_products import RgbSettings, camera_fields, make_products

NAME = "make-rgb-fits"
SETTINGS = RgbSettings()
logger = logging.getLogger(__name__)


def handle(context: Context, message: StepMessage) -> StepResult:
    ref = message.ref
    name = parse_raw_name(ref.name)
    if name.kind is not FileKind.RAW:
        raise BadInput(f"{ref.name} is not a camera raw (extension .{name.extension})")
    if done_before(context, NAME, message.image_id, message):
        return StepResult(Outcome.ALREADY_DONE, reason="already converted")
    try:
        data = context.storage.read(ref)
    except NotFound as exc:
        raise BadInput(f"{ref.identity} no longer exists", exc) from exc
    products = make_products(data, name, SETTINGS)
    raw_bucket, rgb_bucket = context.settings.bucket("raw"), context.settings.bucket("rgb")
    raw_fits = f"{name.base_path}.fits.fz"
    outputs = {
        "raw_fits": (raw_bucket, raw_fits, products.raw_fits, "application/fits"),
        **{
            f"{color.lower()}_fits": (rgb_bucket, f"{name.base_path}_{color.lower()}.fits", data_, "application/fits")
            for color, data_ in products.color_fits.items()
        },
        "preview": (rgb_bucket, f"{name.base_path}.jpg", products.jpeg, "image/jpeg"),
    }
    rerun = message.rerun is not None  # a rerun replaces our colour products, never the raw bucket's FITS
    states = {
        key: store_output(context.storage, *output, replace=rerun and key != "raw_fits").state
        for key, output in outputs.items()
    }
    conflicts = [outputs[key][1] for key, state in states.items() if state == KEPT and key != "raw_fits"]
    for conflict in conflicts:
        log(logger, "WARNING", f"{conflict} already exists with other content; left as it is")
    locations = {key: f"{bucket}/{path}" for key, (bucket, path, _, _) in outputs.items()}
    raw_note = {WRITTEN: "made here", IDENTICAL: "made here (already written)", KEPT: "the unit's own, left"}
    new = sorted(key for key, state in states.items() if state in (WRITTEN, REPLACED))
    record = {
        "outputs": locations,
        "written": new,
        "raw_fits_source": raw_note[states["raw_fits"]],
        "method": SETTINGS.method.value,
        "preview_source": products.preview_source,
    }
    if conflicts:  # done, but a person should look: both versions are kept
        record |= {"state": StepState.CONFLICT.value, "conflict": f"kept existing, different: {', '.join(conflicts)}"}
    fields = {
        "raw_fits": locations["raw_fits"],
        "rgb_fits": {color: locations[f"{color}_fits"] for color in ("r", "g", "b")},
        "preview": locations["preview"],
        "camera": camera_fields(products.header),
    }
    reason = f"wrote {len(new)} of {len(outputs)} outputs; raw FITS {raw_note[states['raw_fits']]}"
    return StepResult(reason=reason, record=record, fields=fields, status=ImageStatus.CONVERTED)


STEP = Step(NAME, handle)
