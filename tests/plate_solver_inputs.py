"""Hand-made inputs of the plate-solver: a raw frame with its background file in the local
buckets, and a stamp row as the stamps database stores it."""

from __future__ import annotations

import numpy as np
from astropy.io import fits

from panoptes_network.adapters.stamp_database import pixels_to_bytes
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


def stamp_row(image_id: str, source_id: int, pixels: np.ndarray) -> dict:
    return {
        "image_id": image_id, "source_id": source_id, "sequence_id": "PAN001_XXXXXX_20160909T081152",
        "catalog": "tycho2", "catalog_id": f"J{source_id}", "catalog_ra": 303.0, "catalog_dec": 46.0,
        "catalog_mag": 10.0, "catalog_x": 1.0, "catalog_y": 2.0, "x": 1.1, "y": 2.1, "ra": 303.0, "dec": 46.0,
        "flux": 1000.0, "flux_err": 10.0, "peak": 100.0, "fwhm": 2.5, "ellipticity": 0.1, "flags": 0,
        "separation_arcsec": 1.0, "duplicate": False, "stamp_x0": 0, "stamp_y0": 0, "stamp_width": 10,
        "stamp_height": 10, "pixels": pixels_to_bytes(pixels),
    }  # fmt: skip
