"""A made-up stamp row with every column of the ``stamps`` table, for the stamp-store tests."""

from __future__ import annotations

from typing import Any

import numpy as np


def stamp_row(image_id: str, source_id: int, pixels: np.ndarray) -> dict[str, Any]:
    return {
        "image_id": image_id, "source_id": source_id, "sequence_id": "PAN001_XXXXXX_20160909T081152",
        "catalog": "tycho2", "catalog_id": f"J{source_id}", "catalog_ra": 303.0, "catalog_dec": 46.0,
        "catalog_mag": 10.0, "catalog_x": 1.0, "catalog_y": 2.0, "x": 1.1, "y": 2.1, "ra": 303.0, "dec": 46.0,
        "flux": 1000.0, "flux_err": 10.0, "peak": 100.0, "fwhm": 2.5, "ellipticity": 0.1, "flags": 0,
        "separation_arcsec": 1.0, "duplicate": False, "saturated": False, "stamp_x0": 0, "stamp_y0": 0,
        "stamp_width": pixels.shape[1], "stamp_height": pixels.shape[0], "pixels": pixels,
    }  # fmt: skip
