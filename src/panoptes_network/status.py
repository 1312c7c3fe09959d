"""Status values stored in the metadata store (documented in resources/status.md)."""

from __future__ import annotations

import enum


class ImageStatus(str, enum.Enum):
    """``images/{image_id}.status``: where the image is in the chain."""

    RECEIVED = "received"  # routed by image-received; later steps move it on
    CONVERTED = "converted"  # make-rgb-fits wrote the raw FITS and the R/G/B FITS
    RECORDED = "recorded"  # record-image stored the header
    BACKGROUND_SUBTRACTED = "background_subtracted"  # subtract-background stored the model
    UNSOLVED = "unsolved"  # plate-solve found no solution (a science outcome, not an error)
    SOLVED = "solved"  # plate-solve stored WCS, sources and stamps
    REJECTED = "rejected"  # permanent bad input; the reason is on the step record
    ERROR = "error"  # a step failed unexpectedly; it will be retried or dead-lettered

    @property
    def rank(self) -> int:
        """Order along the chain: a step never moves an image backwards (redeliveries arrive late)."""
        return CHAIN_ORDER.index(self)


CHAIN_ORDER = (
    ImageStatus.RECEIVED,
    ImageStatus.CONVERTED,
    ImageStatus.RECORDED,
    ImageStatus.BACKGROUND_SUBTRACTED,
    ImageStatus.UNSOLVED,
    ImageStatus.SOLVED,
)


class StepState(str, enum.Enum):
    """``images/{image_id}.steps.{step}.state``."""

    DONE = "done"
    CONFLICT = "conflict"  # done, but an existing output disagreed and both were kept
    REJECTED = "rejected"
    ERROR = "error"


class ObjectStatus(str, enum.Enum):
    """``objects/{bucket/name#generation}.status``: inputs that never became an image."""

    IGNORED = "ignored"  # not for this pipeline (unknown file type, pointing image, other bucket)
    REJECTED = "rejected"  # could not be processed (e.g. an unparseable name)
