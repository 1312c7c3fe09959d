"""The per-image sources table as Parquet (``{base_path}-sources.parquet``), beside the processed image.

The same columns as the SQL ``stamps`` table, one row per matched star; the stamp's pixels
are a list of ``stamp_width * stamp_height`` float32 values, row-major. Written without
timestamps or statistics that vary between runs, so the same rows give the same bytes.
"""

from __future__ import annotations

import io
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

COLUMN_TYPES: dict[str, pa.DataType] = {
    "image_id": pa.string(),
    "source_id": pa.int32(),
    "sequence_id": pa.string(),
    "catalog": pa.string(),
    "catalog_id": pa.string(),
    "catalog_ra": pa.float64(),
    "catalog_dec": pa.float64(),
    "catalog_mag": pa.float64(),
    "catalog_x": pa.float64(),
    "catalog_y": pa.float64(),
    "x": pa.float64(),
    "y": pa.float64(),
    "ra": pa.float64(),
    "dec": pa.float64(),
    "flux": pa.float64(),
    "flux_err": pa.float64(),
    "peak": pa.float64(),
    "fwhm": pa.float64(),
    "ellipticity": pa.float64(),
    "flags": pa.int32(),
    "separation_arcsec": pa.float64(),
    "duplicate": pa.bool_(),
    "saturated": pa.bool_(),
    "stamp_x0": pa.int32(),
    "stamp_y0": pa.int32(),
    "stamp_width": pa.int32(),
    "stamp_height": pa.int32(),
    "pixels": pa.list_(pa.float32()),
}


def sources_parquet(rows: Sequence[Mapping[str, Any]]) -> bytes:
    """Parquet bytes of the stamp rows (pixels as numpy arrays)."""
    columns = {
        name: [np.asarray(row[name], np.float32).ravel() if name == "pixels" else row[name] for row in rows]
        for name in COLUMN_TYPES
    }
    table = pa.table({name: pa.array(values, type=COLUMN_TYPES[name]) for name, values in columns.items()})
    buffer = io.BytesIO()
    pq.write_table(table, buffer, compression="zstd")
    return buffer.getvalue()
