"""Hand-made inputs of the plate-solver: a raw frame with its background file in the local
buckets, and a stamp row as the stamps database stores it."""

from __future__ import annotations

import numpy as np
from astropy.io import fits

from panoptes_network.core.context import Context
from panoptes_network.core.messages import StepMessage
from panoptes_network.science import background_model, fits_codec

CROP_PATH = "PAN001/XXXXXX/20160909T081152/20160909T081314.fits.fz"


def put_inputs(context: Context, raw: np.ndarray, header: fits.Header, name: str = CROP_PATH) -> StepMessage:
    """The raw .fits.fz and its background file in their buckets, and the message subtract-background sends."""
    settings = background_model.BackgroundSettings()
    raw_ref = context.storage.write_new("panoptes-raw-images", name, fits_codec.compressed_file(raw, header))
    background = background_model.to_fits(background_model.estimate(raw, header, settings), settings)
    bg_ref = context.storage.write_new(
        "panoptes-backgrounds", name.replace(".fits.fz", "-background.fits.fz"), background
    )
    parts = name.split("/")
    return StepMessage(
        raw_ref,
        f"{parts[0]}_{parts[1]}_{parts[3].split('.')[0]}",
        f"{parts[0]}_{parts[1]}_{parts[2]}",
        {"background": {"bucket": bg_ref.bucket, "name": bg_ref.name, "generation": bg_ref.generation}},
    )
