"""TEMPORARY stand-in for the obsproducts helper's module (same interface, agreed in the issue-13
brief): just enough science to test the observation flow. The lead replaces this file with the
real one at merge; nothing here is meant to last.
"""

from __future__ import annotations

import dataclasses
import datetime
import io
from collections.abc import Callable, Mapping, Sequence

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from astropy.io import fits
from astropy.wcs import WCS

from panoptes_network.core.status import ObservationStatus
from panoptes_network.science import fits_codec
from panoptes_network.science.frame_quality import QualitySettings
from panoptes_network.science.source_detection import Sources

PRODUCT_FILES: Mapping[str, tuple[str, str]] = {
    "quality_table": ("quality.parquet", "application/vnd.apache.parquet"),
    "quality_plot": ("quality.png", "image/png"),
    "timelapse": ("timelapse.mp4", "video/mp4"),
    "stack": ("stack.fits.fz", "application/fits"),
    "stack_png": ("stack.png", "image/png"),
    "difference": ("difference.fits.fz", "application/fits"),
    "difference_png": ("difference.png", "image/png"),
    "stamp_cube": ("stamps.parquet", "application/vnd.apache.parquet"),
}


@dataclasses.dataclass(frozen=True)
class ObservationFrame:
    image_id: str
    time: datetime.datetime
    exposure: float
    airmass: float | None
    camera_temp: float | None
    wcs_header: fits.Header
    load_pixels: Callable[[], np.ndarray]
    load_preview: Callable[[], bytes | None]
    sources: Sources | None


@dataclasses.dataclass(frozen=True)
class ProductsSettings:
    min_frames: int = 10
    max_drift_px: float = 18.0
    stamp_size: int = 16
    quality: QualitySettings = QualitySettings()


@dataclasses.dataclass(frozen=True)
class ProductFile:
    suffix: str
    content_type: str
    data: bytes


@dataclasses.dataclass(frozen=True)
class ObservationProducts:
    status: ObservationStatus
    reason: str
    drift_px: float | None
    excluded: Mapping[str, str]
    files: Mapping[str, ProductFile]


def _file(key: str, data: bytes) -> ProductFile:
    suffix, content_type = PRODUCT_FILES[key]
    return ProductFile(suffix, content_type, data)


def _drift(frames: Sequence[ObservationFrame]) -> float:
    """Largest pixel offset of the reference frame's centre in any frame (WCS against WCS)."""
    reference = WCS(frames[0].wcs_header)
    ny, nx = int(frames[0].wcs_header.get("NAXIS2", 0)), int(frames[0].wcs_header.get("NAXIS1", 0))
    sky = reference.pixel_to_world(nx / 2, ny / 2)
    offsets = [np.hypot(*np.subtract(WCS(f.wcs_header).world_to_pixel(sky), (nx / 2, ny / 2))) for f in frames]
    return float(max(offsets))


def make_products(
    sequence_id: str, frames: Sequence[ObservationFrame], settings: ProductsSettings
) -> ObservationProducts:
    if len(frames) < settings.min_frames:
        reason = f"{len(frames)} usable frames, at least {settings.min_frames} needed"
        return ObservationProducts(ObservationStatus.NOT_ENOUGH_FRAMES, reason, None, {}, {})
    drift = round(_drift(frames), 2)
    if drift > settings.max_drift_px:
        reason = f"drift {drift} px, at most {settings.max_drift_px} px"
        return ObservationProducts(ObservationStatus.TOO_MUCH_DRIFT, reason, drift, {}, {})
    table = pa.table({"image_id": [f.image_id for f in frames], "time": [f.time for f in frames]})
    buffer = io.BytesIO()
    pq.write_table(table, buffer)
    stack = np.median(np.stack([f.load_pixels() for f in frames]), axis=0).astype(np.float32)
    files = {
        "quality_table": _file("quality_table", buffer.getvalue()),
        "stack": _file("stack", fits_codec.compressed_file(stack, fits.Header({"SEQID": sequence_id}))),
    }
    return ObservationProducts(ObservationStatus.PROCESSED, f"{len(frames)} frames", drift, {}, files)
