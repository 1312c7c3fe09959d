"""compress-fits: fpack a stray ``X.fits`` into ``X.fits.fz``, verified, then delete the original.

Nothing is deleted until the compressed file has been decompressed and compared with the
original and stored create-only; the delete carries the original's generation, so a newer
upload of the same name is never removed. The ``.fits.fz`` upload re-enters the chain through
the raw bucket's notification (image-received -> record-image).
"""

from __future__ import annotations

from panoptes_network.core.context import Context
from panoptes_network.core.errors import NotFound, PreconditionFailed
from panoptes_network.core.messages import ObjectRef, StepMessage
from panoptes_network.core.step import Step, StepResult, Target, Work
from panoptes_network.science.lossless_compression import compress_verified

NAME = "compress-fits"


def outputs(context: Context, message: StepMessage) -> dict[str, Target]:
    """``X.fits.fz`` beside ``X.fits``."""
    return {"compressed": Target(message.ref.bucket, f"{message.ref.name}.fz", "application/fits")}


def _delete_original(context: Context, ref: ObjectRef) -> str:
    """Delete exactly this generation; say what happened (it may be gone or replaced)."""
    try:
        context.storage.delete(ref)
    except NotFound:
        return "already gone"
    except PreconditionFailed:
        return "kept: a newer upload replaced it"
    return "deleted"


def do(work: Work) -> StepResult:
    ref = work.message.ref
    compressed = compress_verified(work.read(), ref.identity, work.context.settings.limits)
    work.write({"compressed": compressed.data})  # a conflict ends the step here: the original stays
    original = _delete_original(work.context, ref)
    return StepResult(
        reason=f"compressed {compressed.ratio:.2f}x, original {original}",
        record={"ratio": round(compressed.ratio, 3), "verified": True, "original": original},
    )


STEP = Step(NAME, do, writes=outputs, consumes_input=True)
