"""subtract-background: the per-Bayer-channel sky of a raw frame, stored, summarised, passed on.

Reads the raw ``.fits.fz`` at the exact generation it was told, estimates the background of
each Bayer channel (``background_model``), writes ``{backgrounds}/{base_path}-background.fits.fz``
create-only, records the per-channel statistics on the image and publishes to ``plate-solve``
the same raw ref plus ``extra["background"] = {bucket, name, generation}``.

Redelivery: the file is byte-identical for the same input, so a second run finds it identical;
with a done record for this input it answers ALREADY_DONE, without one (the first run stopped
before publishing) it publishes again. A different existing file is a conflict: recorded,
logged, never overwritten, and nothing is published.
"""

from __future__ import annotations

import logging

from panoptes_network.core.context import Context
from panoptes_network.core.errors import BadInput, NotFound
from panoptes_network.core.logs import log
from panoptes_network.core.messages import StepMessage
from panoptes_network.core.names import parse_raw_name
from panoptes_network.core.outcomes import Outcome
from panoptes_network.core.outputs import store_output
from panoptes_network.core.status import ImageStatus
from panoptes_network.core.step_shell import Step, StepResult, done_before
from panoptes_network.science.background_model import BackgroundSettings, estimate, summary, to_fits
from panoptes_network.science.fits_codec import image_hdu, open_fits

NAME = "subtract-background"
NEXT_TOPIC = "plate-solve"
SETTINGS = BackgroundSettings()
logger = logging.getLogger(__name__)


def background_name(raw_name: str) -> str:
    """``{unit}/{camera}/{sequence_time}/{image_time}-background.fits.fz`` for a raw object name."""
    return f"{parse_raw_name(raw_name).base_path}-background.fits.fz"


def handle(context: Context, message: StepMessage) -> StepResult:
    if done_before(context, NAME, message.image_id, message):
        return StepResult(Outcome.ALREADY_DONE, reason="background already stored and published")
    target = background_name(message.ref.name)
    try:
        raw = context.storage.read(message.ref)
    except NotFound as exc:
        raise BadInput(f"{message.ref.identity} no longer exists", exc) from exc
    hdu = image_hdu(open_fits(raw, message.ref.identity), message.ref.identity)
    background = estimate(hdu.data, hdu.header, SETTINGS)
    stats = summary(background)
    bucket = context.settings.bucket("backgrounds")
    stored = store_output(
        context.storage,
        bucket,
        target,
        to_fits(background, SETTINGS),
        "application/fits",
        replace=message.rerun is not None,
    )
    written = stored.ref
    record = {
        "output": f"{bucket}/{target}",
        "existing_output": stored.state,
        "mesh_px": background.mesh,
        "warnings": list(background.warnings),
    }
    if written is None:
        reason = f"conflict: {record['output']} exists with different content; kept, not overwritten"
        log(logger, "WARNING", reason, input=message.ref.identity)
        return StepResult(reason=reason, record={**record, "conflict": reason})
    extra = {"background": {"bucket": written.bucket, "name": written.name, "generation": written.generation}}
    message_id = context.publish(NEXT_TOPIC, message.then(message.ref, extra))
    medians = ", ".join(f"{name} {c['median']:.1f}" for name, c in stats["channels"].items())
    return StepResult(
        reason=f"background {medians} ADU above black",
        published={NEXT_TOPIC: message_id},
        record={**record, "output_generation": written.generation},
        fields={"background": stats},
        status=ImageStatus.BACKGROUND_SUBTRACTED,
    )


STEP = Step(NAME, handle)
