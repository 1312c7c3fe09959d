"""compress-fits: fpack a stray ``X.fits`` into ``X.fits.fz``, verified, then delete the original.

Nothing is deleted until the compressed file has been decompressed and compared with the
original and stored create-only; the delete carries the original's generation, so a newer
upload of the same name is never removed. The ``.fits.fz`` upload re-enters the chain through
the raw bucket's notification (image-received -> record-image).
"""

from __future__ import annotations

import logging

from panoptes_network.core.context import Context
from panoptes_network.core.errors import AlreadyExists, BadInput, NotFound, PreconditionFailed
from panoptes_network.core.logs import log
from panoptes_network.core.messages import ObjectRef, StepMessage
from panoptes_network.core.outcomes import Outcome
from panoptes_network.core.status import StepState
from panoptes_network.core.step_shell import Step, StepResult
from panoptes_network.science.lossless_compression import compress_verified, holds_same_content

NAME = "compress-fits"
logger = logging.getLogger(__name__)


def _delete_original(context: Context, ref: ObjectRef) -> str:
    """Delete exactly this generation; say what happened (it may be gone or replaced)."""
    try:
        context.storage.delete(ref)
    except NotFound:
        return "already gone"
    except PreconditionFailed:
        return "kept: a newer upload replaced it"
    return "deleted"


def handle(context: Context, message: StepMessage) -> StepResult:
    ref = message.ref
    target = f"{ref.name}.fz"
    try:
        original = context.storage.read(ref)
    except NotFound:
        done = context.storage.stat(ref.bucket, target)
        if done is not None:
            return StepResult(Outcome.ALREADY_DONE, reason=f"{ref.identity} is gone and {target} exists")
        raise BadInput(f"{ref.identity} no longer exists and there is no {target}") from None
    compressed = compress_verified(original, ref.identity)
    record = {"output": f"{ref.bucket}/{target}", "ratio": round(compressed.ratio, 3), "verified": True}
    try:
        written = context.storage.write_new(ref.bucket, target, compressed.data, "application/fits")
        record["output_generation"] = written.generation
    except AlreadyExists:
        existing = context.storage.stat(ref.bucket, target)
        if existing is None or not holds_same_content(original, context.storage.read(existing.ref), target):
            reason = f"conflict: {target} already exists with different content; both kept"
            log(logger, "WARNING", reason, input=ref.identity)
            return StepResult(reason=reason, record={**record, "state": StepState.CONFLICT.value, "conflict": reason})
        record["output_generation"] = existing.ref.generation
        record["existing_output"] = "identical"
    record["original"] = _delete_original(context, ref)
    return StepResult(reason=f"compressed {compressed.ratio:.2f}x, original {record['original']}", record=record)


STEP = Step(NAME, handle)
