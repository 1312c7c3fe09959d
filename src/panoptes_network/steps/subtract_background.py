"""subtract-background: the per-Bayer-channel sky of a raw frame, stored, summarised, passed on.

Reads the raw ``.fits.fz`` at the exact generation it was told, estimates the background of
each Bayer channel (``background_model``), writes ``{backgrounds}/{base_path}-background.fits.fz``
create-only, records the per-channel statistics on the image and publishes to ``plate-solve``
the same raw ref plus ``extra["background"] = {bucket, name, generation}``.

Redelivery: the file is byte-identical for the same input, so a second run finds it identical;
with a done record for this input it answers ALREADY_DONE, without one (the first run stopped
before publishing) it publishes again. A different existing file is a conflict (the step
shell's policy): recorded, logged, never overwritten, and nothing is published.
"""

from __future__ import annotations

from panoptes_network.core.context import Context
from panoptes_network.core.messages import StepMessage
from panoptes_network.core.names import parse_raw_name
from panoptes_network.core.status import ImageStatus
from panoptes_network.core.step import Step, StepResult, Target, Work
from panoptes_network.science.background_model import BackgroundSettings, estimate, summary, to_fits
from panoptes_network.science.fits_codec import image_hdu, open_fits

NAME = "subtract-background"
NEXT_TOPIC = "plate-solve"
SETTINGS = BackgroundSettings()


def background_name(raw_name: str) -> str:
    """``{unit}/{camera}/{sequence_time}/{image_time}-background.fits.fz`` for a raw object name."""
    return f"{parse_raw_name(raw_name).base_path}-background.fits.fz"


def outputs(context: Context, message: StepMessage) -> dict[str, Target]:
    bucket = context.settings.bucket("backgrounds")
    return {"background": Target(bucket, background_name(message.ref.name), "application/fits")}


def do(work: Work) -> StepResult:
    message = work.message
    what = message.ref.identity
    hdu = image_hdu(open_fits(work.read(), what, work.context.settings.limits), what)
    background = estimate(hdu.data, hdu.header, SETTINGS)
    stats = summary(background)
    written = work.write({"background": to_fits(background, SETTINGS)})["background"]
    extra = {"background": {"bucket": written.bucket, "name": written.name, "generation": written.generation}}
    work.publish(NEXT_TOPIC, message.then(message.ref, extra))
    medians = ", ".join(f"{name} {c['median']:.1f}" for name, c in stats["channels"].items())
    return StepResult(
        reason=f"background {medians} ADU above black",
        record={"mesh_px": background.mesh, "warnings": list(background.warnings)},
        fields={"background": stats},
        status=ImageStatus.BACKGROUND_SUBTRACTED,
    )


STEP = Step(NAME, do, writes=outputs)
