"""The per-image sources table as Parquet (``{base_path}-sources.parquet``), beside the processed image.

One row per detection (``source_id`` is its index in the frame's detections), so that whoever
needs the frame's sources later (process-observation's frame quality) reads them instead of
detecting them again:

- every row: ``image_id``, ``sequence_id``, ``source_id``, ``matched``, and the detection's own
  columns (``source_detection.Sources``): ``x``, ``y`` (full-frame pixels, 0-based), ``flux``,
  ``flux_err`` (ADU, four channels summed; sky noise only), ``peak``, ``fwhm`` (px),
  ``ellipticity`` (1 - b/a), ``theta`` (radians), ``flags`` (sep's, 0 = clean), ``npix``
  (superpixels above threshold), ``saturated``, ``windowed``;
- matched rows only (null elsewhere): the SQL ``stamps`` table's other columns, the catalog star
  (``catalog``, ``catalog_id``, ``catalog_ra``, ``catalog_dec``, ``catalog_mag``, ``catalog_x``,
  ``catalog_y``), ``ra``, ``dec``, ``separation_arcsec``, ``duplicate`` and the stamp
  (``stamp_x0``, ``stamp_y0``, ``stamp_width``, ``stamp_height``, ``pixels``: a list of
  ``stamp_width * stamp_height`` float32 values, row-major).

Written without timestamps or statistics that vary between runs, so the same rows give the same
bytes. Floats are byte-stream split before zstd (their exponent bytes compress apart).
"""

from __future__ import annotations

import io
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from panoptes_network.science.source_detection import SOURCE_COLUMNS, Sources

DETECTION_TYPES: dict[str, pa.DataType] = {
    "x": pa.float64(),
    "y": pa.float64(),
    "flux": pa.float64(),
    "flux_err": pa.float64(),
    "peak": pa.float64(),
    "fwhm": pa.float64(),
    "ellipticity": pa.float64(),
    "theta": pa.float64(),
    "flags": pa.int32(),
    "npix": pa.int32(),
    "saturated": pa.bool_(),
    "windowed": pa.bool_(),
}
MATCH_TYPES: dict[str, pa.DataType] = {
    "catalog": pa.string(),
    "catalog_id": pa.string(),
    "catalog_ra": pa.float64(),
    "catalog_dec": pa.float64(),
    "catalog_mag": pa.float64(),
    "catalog_x": pa.float64(),
    "catalog_y": pa.float64(),
    "ra": pa.float64(),
    "dec": pa.float64(),
    "separation_arcsec": pa.float64(),
    "duplicate": pa.bool_(),
    "stamp_x0": pa.int32(),
    "stamp_y0": pa.int32(),
    "stamp_width": pa.int32(),
    "stamp_height": pa.int32(),
    "pixels": pa.list_(pa.float32()),
}


def sources_parquet(image_id: str, sequence_id: str, sources: Sources, matched: Sequence[Mapping[str, Any]]) -> bytes:
    """Parquet bytes of every detection, with the stamp rows (``frame_astrometry.stamp_rows``) of the matched ones."""
    count = len(sources)
    index = np.array([row["source_id"] for row in matched], dtype=np.int64)
    is_matched = np.zeros(count, bool)
    is_matched[index] = True
    columns: dict[str, pa.Array] = {
        "image_id": pa.array([image_id] * count, pa.string()),
        "sequence_id": pa.array([sequence_id] * count, pa.string()),
        "source_id": pa.array(np.arange(count, dtype=np.int32)),
        "matched": pa.array(is_matched),
    }
    columns |= {name: pa.array(getattr(sources, name), kind) for name, kind in DETECTION_TYPES.items()}
    for name, kind in MATCH_TYPES.items():
        values: list[Any] = [None] * count
        for source, row in zip(index.tolist(), matched):
            value = row[name]
            values[source] = np.asarray(value, np.float32).ravel() if name == "pixels" else value
        columns[name] = pa.array(values, kind)
    floats = [name for name, kind in {**DETECTION_TYPES, **MATCH_TYPES}.items() if pa.types.is_floating(kind)]
    buffer = io.BytesIO()
    pq.write_table(pa.table(columns), buffer, compression="zstd", use_byte_stream_split=floats)
    return buffer.getvalue()


def read_sources(data: bytes) -> Sources | None:
    """Every detection of a sources table, in ``source_id`` order; None for a table written before
    it held every detection (only the matched ones: not the frame's sources)."""
    schema = pq.read_schema(io.BytesIO(data))
    if "matched" not in schema.names:
        return None
    table = pq.read_table(io.BytesIO(data), columns=["source_id", *SOURCE_COLUMNS])
    order = np.argsort(table.column("source_id").to_numpy(), kind="stable")
    return Sources(**{name: table.column(name).to_numpy()[order] for name in SOURCE_COLUMNS})
