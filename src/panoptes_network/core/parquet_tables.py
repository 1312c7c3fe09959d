"""The archive's Parquet products as tables: one definition for ``panoptes-network query``'s DuckDB
views over the data dir and ``bin/deploy infra``'s BigQuery external tables over the buckets, so
one SQL statement runs on a laptop's night and on the whole archive.

Each table is every object of one bucket whose name ends as its pattern says, wherever it is
(all units, cameras and sequences). The stamp cube is a FITS file, not a table; each matched
star's stamp pixels are in ``sources`` already.
"""

from __future__ import annotations

import dataclasses


@dataclasses.dataclass(frozen=True)
class ParquetTable:
    name: str
    bucket: str  # the bucket's key in the topology
    suffix: str  # the object name's end: "*{suffix}" in a glob or a BigQuery URI
    description: str


PARQUET_TABLES = (
    ParquetTable(
        "sources",
        "processed",
        "-sources.parquet",
        "plate-solver: one row per matched star and frame (catalog and measured position, flux, FWHM, stamp pixels)",
    ),
    ParquetTable(
        "quality",
        "processed",
        "quality.parquet",
        "process-observation: one row per frame of an observation (sky, FWHM, ellipticity, drift, usable or why not)",
    ),
    ParquetTable(
        "lightcurves",
        "processed",
        "lightcurves.parquet",
        "make-lightcurves: every star's photometry, one row per star, frame and channel (once that step runs)",
    ),
    ParquetTable(
        "comparisons",
        "processed",
        "comparisons.parquet",
        "make-lightcurves: one row per star, channel and comparison star, with its weight (once that step runs)",
    ),
)
