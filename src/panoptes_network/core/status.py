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
    def stage(self) -> int | None:
        """Place along the chain (None for rejected/error): a step never moves an image back to an
        earlier stage (messages arrive late and out of order); within one stage the latest run
        wins (a plate-solve rerun may turn unsolved into solved, or back)."""
        return STAGES.get(self)


STAGES = {
    ImageStatus.RECEIVED: 0,
    ImageStatus.CONVERTED: 1,
    ImageStatus.RECORDED: 2,
    ImageStatus.BACKGROUND_SUBTRACTED: 3,
    ImageStatus.UNSOLVED: 4,
    ImageStatus.SOLVED: 4,
}


def moves_forward(current: str | None, new: ImageStatus) -> bool:
    """Whether ``new`` may replace the stored status ``current`` (a success replaces rejected/error)."""
    try:
        stage = ImageStatus(current).stage
    except ValueError:  # no status yet (or one this version does not know)
        stage = None
    return stage is None or new.stage is None or new.stage >= stage


class StepState(str, enum.Enum):
    """``images/{image_id}.steps.{step}.state``."""

    DONE = "done"
    CONFLICT = "conflict"  # an output name held different content: both kept, nothing passed on
    REJECTED = "rejected"
    ERROR = "error"


class ObjectStatus(str, enum.Enum):
    """``objects/{bucket/name#generation}.status``: inputs that never became an image."""

    IGNORED = "ignored"  # not for this pipeline (unknown file type, other bucket)
    REJECTED = "rejected"  # could not be processed (e.g. an unparseable name)


class FrameType(str, enum.Enum):
    """``images/{image_id}.frame_type``: what the frame is for (``science.header_metadata.frame_type``).
    Only science frames go into an observation's products."""

    SCIENCE = "science"
    POINTING = "pointing"  # taken to correct the mount before a sequence (``pointingNN``, ``POINTING = T``)
    DARK = "dark"  # shutter closed (``IMAGETYP`` dark or bias, ``DARK = T``)
    FLAT = "flat"  # ``IMAGETYP`` flat
