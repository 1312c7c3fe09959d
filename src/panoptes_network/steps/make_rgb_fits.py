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

from panoptes_network.core.context import Context
from panoptes_network.core.errors import BadInput
from panoptes_network.core.messages import StepMessage
from panoptes_network.core.names import FileKind, parse_raw_name
from panoptes_network.core.outputs import IDENTICAL, KEPT, REPLACED, WRITTEN
from panoptes_network.core.status import ImageStatus
from panoptes_network.core.step import Step, StepResult, Target, Work
from panoptes_network.science.rgb_products import RgbSettings, camera_fields, make_products

NAME = "make-rgb-fits"
SETTINGS = RgbSettings()
COLORS = ("r", "g", "b")
RAW_FITS_SOURCE = {WRITTEN: "made here", IDENTICAL: "made here (already written)", KEPT: "the unit's own, left"}


def outputs(context: Context, message: StepMessage) -> dict[str, Target]:
    """The raw bucket's ``.fits.fz`` (shared: the unit may upload its own) and the rgb bucket's products."""
    base = parse_raw_name(message.ref.name).base_path
    raw_bucket, rgb_bucket = context.settings.bucket("raw"), context.settings.bucket("rgb")
    return {
        "raw_fits": Target(raw_bucket, f"{base}.fits.fz", "application/fits", shared=True),
        **{f"{c}_fits": Target(rgb_bucket, f"{base}_{c}.fits", "application/fits") for c in COLORS},
        "preview": Target(rgb_bucket, f"{base}.jpg", "image/jpeg"),
    }


def do(work: Work) -> StepResult:
    name = parse_raw_name(work.message.ref.name)
    if name.kind is not FileKind.RAW:
        raise BadInput(f"{work.message.ref.name} is not a camera raw (extension .{name.extension})")
    products = make_products(work.read(), name, SETTINGS, work.context.settings.limits)
    work.write(
        {
            "raw_fits": products.raw_fits,
            **{f"{color.lower()}_fits": data for color, data in products.color_fits.items()},
            "preview": products.jpeg,
        }
    )
    locations = {key: target.location for key, target in work.targets().items()}
    raw_note = RAW_FITS_SOURCE[work.outputs["raw_fits"]["state"]]
    fields = {
        "raw_fits": locations["raw_fits"],
        "rgb_fits": {color: locations[f"{color}_fits"] for color in COLORS},
        "preview": locations["preview"],
        "camera": camera_fields(products.header),
    }
    new = sum(output["state"] in (WRITTEN, REPLACED) for output in work.outputs.values())
    return StepResult(
        reason=f"wrote {new} of {len(work.outputs)} outputs; raw FITS {raw_note}",
        record={
            "raw_fits_source": raw_note,
            "method": SETTINGS.method.value,
            "preview_source": products.preview_source,
        },
        fields=fields,
        status=ImageStatus.CONVERTED,
    )


STEP = Step(NAME, do, writes=outputs)
