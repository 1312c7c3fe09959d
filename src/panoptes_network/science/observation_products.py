"""An observation's products from its science frames: quality, timelapse, stack, difference, stamp cube.

``make_products`` is pure: frames come in as values with ``load_pixels``/``load_preview``
callables, products go out as bytes (``PRODUCT_FILES`` names them); the observation step
(``steps/``) reads and writes storage. Pixels are loaded once each (``workers`` frames at a time: a
frame's decompression releases the GIL in zlib): the first pass measures the frame's quality, keeps its timelapse picture and spills its pixels to a scratch file; the stack,
the difference image and the stamp cube then read the spilled frames block by block
(``stacking.FrameRows``) from the page cache, so memory holds one block of rows of every frame,
never every frame (100 full frames are 7 GB of float32).

Frames are taken in time order. The reference frame is the first usable one; every drift is
the WCS offset against it (``frame_quality.wcs_offsets``). Outliers (``select_outliers``) are
excluded with their reason. Fewer usable frames than ``min_frames`` ends NOT_ENOUGH_FRAMES, a
usable frame further than ``max_drift_px`` from the reference ends TOO_MUCH_DRIFT (the stamp
windows would have to follow that far); both still return the quality table and plot.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import io
import math
import tempfile
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import overload

import numpy as np
from astropy.io import fits
from astropy.stats import mad_std
from astropy.wcs import WCS
from PIL import Image

from panoptes_network.core.errors import BadInput
from panoptes_network.core.status import ObservationStatus
from panoptes_network.science import fits_codec, stacking, stamp_cube
from panoptes_network.science import frame_quality as fq
from panoptes_network.science.catalog_stars import CatalogStars
from panoptes_network.science.quality_report import FrameRow, quality_parquet, quality_png
from panoptes_network.science.source_detection import Sources
from panoptes_network.science.stamp_cube_file import CubeFrame, CubeStars, stamps_fits
from panoptes_network.science.timelapse import TimelapseFrame, TimelapseSettings, encode, render_pixels

PRODUCT_FILES: Mapping[str, tuple[str, str]] = {
    "quality_table": ("quality.parquet", "application/vnd.apache.parquet"),
    "quality_plot": ("quality.png", "image/png"),
    "timelapse": ("timelapse.mp4", "video/mp4"),
    "stack": ("stack.fits.fz", "application/fits"),
    "stack_png": ("stack.png", "image/png"),
    "difference": ("difference.fits.fz", "application/fits"),
    "difference_png": ("difference.png", "image/png"),
    "stamp_cube": ("stamps.fits", "application/fits"),
}


@dataclasses.dataclass(frozen=True)
class ObservationFrame:
    image_id: str
    time: dt.datetime  # DATE-OBS (UTC)
    exposure: float  # s
    airmass: float | None
    camera_temp: float | None  # CCD-TEMP / CAMTEMP, deg C
    wcs_header: fits.Header  # the solved frame's WCS
    load_pixels: Callable[[], np.ndarray]  # background-subtracted float32 image, loaded on demand
    load_preview: Callable[[], bytes | None]  # quick-look JPEG/PNG bytes (or None: rendered from the pixels)
    load_sources: Callable[[], Sources | None]  # the plate-solver's stored detections (None: detected here)
    sky_level: float | None = None  # ADU above black (the image's background statistics), if known
    sky_rms: float | None = None  # ADU; None: measured on the pixels


@dataclasses.dataclass(frozen=True)
class ProductsSettings:  # built from core/settings by the step
    min_frames: int = 10
    max_drift_px: float = 18.0
    stamp_size: int = 16
    quality: fq.QualitySettings = fq.QualitySettings()
    timelapse: TimelapseSettings = TimelapseSettings()
    png_width: int = 1400  # px of the stack and difference PNGs, at most
    workers: int = 2  # threads for the stack's median and the difference (this machine kind has 2 cores)


@dataclasses.dataclass(frozen=True)
class ProductFile:
    suffix: str  # file name under the sequence folder, e.g. "quality.parquet"
    content_type: str
    data: bytes


@dataclasses.dataclass(frozen=True)
class ObservationProducts:
    status: ObservationStatus  # PROCESSED | NOT_ENOUGH_FRAMES | TOO_MUCH_DRIFT
    reason: str  # human sentence, e.g. "7 usable frames, at least 10 needed"
    drift_px: float | None
    excluded: Mapping[str, str]  # image_id -> reason
    files: Mapping[str, ProductFile]  # key -> file; the quality table and plot always, the rest if PROCESSED


def product(key: str, data: bytes) -> ProductFile:
    suffix, content_type = PRODUCT_FILES[key]
    return ProductFile(suffix, content_type, data)


@dataclasses.dataclass(frozen=True)
class SpilledFrame:
    """A float32 frame in a scratch file; slicing reads only the rows asked for (``stacking.FrameRows``)."""

    path: Path
    shape: tuple[int, int]

    @classmethod
    def write(cls, path: Path, pixels: np.ndarray) -> SpilledFrame:
        np.ascontiguousarray(pixels, dtype=np.float32).tofile(path)
        return cls(path, (pixels.shape[0], pixels.shape[1]))

    def __getitem__(self, key: tuple[slice, slice], /) -> np.ndarray:
        rows, cols = key
        top, bottom, _ = rows.indices(self.shape[0])
        width = self.shape[1]
        block = np.fromfile(self.path, np.float32, count=(bottom - top) * width, offset=top * width * 4)
        return block.reshape(bottom - top, width)[:, cols]

    def load(self) -> np.ndarray:
        return np.fromfile(self.path, np.float32).reshape(self.shape)


class LoadedFrames(Sequence[np.ndarray]):
    """Spilled frames, each read whole when indexed (the stamp cube cuts every window of a frame at once)."""

    def __init__(self, spilled: Sequence[SpilledFrame]) -> None:
        self._spilled = list(spilled)

    def __len__(self) -> int:
        return len(self._spilled)

    @overload
    def __getitem__(self, index: int) -> np.ndarray: ...

    @overload
    def __getitem__(self, index: slice) -> LoadedFrames: ...

    def __getitem__(self, index: int | slice) -> np.ndarray | LoadedFrames:
        if isinstance(index, slice):
            return LoadedFrames(self._spilled[index])
        return self._spilled[index].load()


@dataclasses.dataclass(frozen=True)
class FirstPass:
    """What the first pass keeps of a frame: its metrics, sources, timelapse picture and spilled pixels."""

    metrics: fq.FrameMetrics
    sources: Sources
    picture: bytes | np.ndarray
    spilled: SpilledFrame


def first_pass(index: int, frame: ObservationFrame, scratch: Path, settings: ProductsSettings) -> FirstPass:
    pixels = np.asarray(frame.load_pixels(), dtype=np.float32)
    if pixels.ndim != 2:
        raise BadInput(f"frame {frame.image_id} has {pixels.ndim} dimensions, not 2")
    rms = frame.sky_rms if frame.sky_rms is not None else float(mad_std(pixels[::4, ::4], ignore_nan=True))
    level = math.nan if frame.sky_level is None else frame.sky_level
    metrics, sources = fq.measure_frame(pixels, level, rms, settings.quality, sources=frame.load_sources())
    preview = frame.load_preview()
    picture = preview if preview else render_pixels(pixels, settings.timelapse.width)
    return FirstPass(metrics, sources, picture, SpilledFrame.write(scratch / f"{index}.f32", pixels))


def quality_settings(frames: Sequence[ObservationFrame], settings: fq.QualitySettings) -> fq.QualitySettings:
    """Without every frame's sky level (the image's background statistics), the sky level rule is off."""
    if all(f.sky_level is not None for f in frames):
        return settings
    return dataclasses.replace(settings, rules=tuple(r for r in settings.rules if r.metric != "sky_level"))


def image_png(image: np.ndarray, width: int) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(render_pixels(image, width)).save(buffer, format="PNG")
    return buffer.getvalue()


def stack_header(reference: WCS, region: stacking.Overlap, sequence_id: str, image_ids: Sequence[str]) -> fits.Header:
    """The reference frame's WCS moved to the overlap's origin, and where the stack came from."""
    header = reference[region.y0 : region.y1, region.x0 : region.x1].to_header(relax=True)
    header["SEQID"] = (sequence_id, "observation (sequence id)")
    header["REFIMAGE"] = (image_ids[0], "reference frame")
    header["NCOMBINE"] = (len(image_ids), "usable frames combined")
    header["STACKX0"] = (region.x0, "reference column of pixel 0 (0-based)")
    header["STACKY0"] = (region.y0, "reference row of pixel 0 (0-based)")
    header["BUNIT"] = ("adu", "background-subtracted ADU")
    return header


def reference_stars(stars: CatalogStars | None, wcs: WCS, sources: Sources) -> CubeStars:
    """The catalog stars through the reference WCS, or else the reference frame's sources."""
    if stars is not None:
        x, y = wcs.all_world2pix(stars.ra, stars.dec, 0)
        return CubeStars(np.asarray(stars.ids), np.asarray(stars.ra), np.asarray(stars.dec), stars.mag, x, y)
    ra, dec = wcs.all_pix2world(sources.x, sources.y, 0)
    with np.errstate(divide="ignore", invalid="ignore"):
        mag = -2.5 * np.log10(sources.flux)
    ids = np.array([f"source-{i}" for i in range(len(sources))])
    return CubeStars(ids, ra, dec, mag, np.asarray(sources.x), np.asarray(sources.y))


def inside_every_frame(stars: CubeStars, offsets: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Mask of the stars whose position falls on the detector in every frame."""
    x = stars.x[:, None] + offsets[None, :, 0]
    y = stars.y[:, None] + offsets[None, :, 1]
    rows, cols = shape
    return np.asarray(((x >= 0) & (x <= cols - 1) & (y >= 0) & (y <= rows - 1)).all(axis=1))


def science_products(
    sequence_id: str,
    frames: Sequence[ObservationFrame],
    passes: Sequence[FirstPass],
    reference: WCS,
    offsets: np.ndarray,
    stars: CatalogStars | None,
    settings: ProductsSettings,
) -> dict[str, ProductFile]:
    """Timelapse, stack, difference and stamp cube of the usable ``frames`` (the first is the reference)."""
    film = [TimelapseFrame(f.time, f.image_id, p.picture) for f, p in zip(frames, passes)]
    with ThreadPoolExecutor(1) as encoder:  # x264 encodes on one thread without the GIL: beside the rest
        timelapse = encoder.submit(encode, film, settings.timelapse)
        ids = [f.image_id for f in frames]
        spilled = [p.spilled for p in passes]
        stack, difference = stacking.stack_and_difference(
            spilled, offsets, settings.quality.saturation_level, settings.workers
        )
        header = stack_header(reference, stack.region, sequence_id, ids)
        shape = spilled[0].shape
        found = reference_stars(stars, reference, passes[0].sources)
        keep = inside_every_frame(found, offsets, shape)
        found = CubeStars(*(np.asarray(column)[keep] for column in dataclasses.astuple(found)))
        cube = stamp_cube.cut_cube(
            LoadedFrames(spilled),
            found.x,
            found.y,
            offsets,
            stamp_cube.StampSettings(size=settings.stamp_size, saturation_level=settings.quality.saturation_level),
        )
        cube_frames = [
            CubeFrame(
                f.image_id,
                f.time,
                f.exposure,
                math.nan if f.airmass is None else f.airmass,
                math.nan if f.camera_temp is None else f.camera_temp,
                (float(dx), float(dy)),
            )
            for f, (dx, dy) in zip(frames, offsets)
        ]
        files = {
            "stack": product("stack", fits_codec.quantized_file(stack.image, header)),
            "stack_png": product("stack_png", image_png(stack.image, settings.png_width)),
            "difference": product("difference", fits_codec.quantized_file(difference, header)),
            "difference_png": product("difference_png", image_png(difference, settings.png_width)),
            "stamp_cube": product("stamp_cube", stamps_fits(sequence_id, cube, found, cube_frames)),
        }
        return {"timelapse": product("timelapse", timelapse.result()), **files}


def make_products(
    sequence_id: str,
    frames: Sequence[ObservationFrame],
    settings: ProductsSettings = ProductsSettings(),
    stars: CatalogStars | None = None,
) -> ObservationProducts:
    """Every product of the observation, or the science outcome that stops it (with the quality products).
    ``stars``: the catalog stars of the field for the stamp cube (else the reference frame's sources)."""
    if not frames:  # every frame unsolved, rejected or not science: nothing to measure
        reason = f"0 usable frames, at least {settings.min_frames} needed"
        return ObservationProducts(ObservationStatus.NOT_ENOUGH_FRAMES, reason, None, {}, {})
    frames = sorted(frames, key=lambda f: f.time)
    with tempfile.TemporaryDirectory(prefix="panoptes-observation-") as scratch:
        with ThreadPoolExecutor(max(1, settings.workers)) as pool:  # one frame decompresses while another is measured
            passes = list(pool.map(lambda i: first_pass(i, frames[i], Path(scratch), settings), range(len(frames))))
        shape = passes[0].spilled.shape
        for frame, done in zip(frames, passes):
            if done.spilled.shape != shape:
                raise BadInput(f"frame {frame.image_id} is {done.spilled.shape}, the first frame {shape}")
        outliers = fq.select_outliers([p.metrics for p in passes], quality_settings(frames, settings.quality))
        excluded = {frames[i].image_id: reason for i, reason in outliers.items()}
        usable = [i for i in range(len(frames)) if i not in outliers]
        wcs = [WCS(f.wcs_header) for f in frames]
        reference = usable[0] if usable else 0
        offsets = fq.wcs_offsets(wcs[reference], wcs, shape)
        rows = [
            FrameRow(f.image_id, f.time, f.exposure, f.airmass, f.camera_temp, p.metrics, (float(dx), float(dy)))
            for f, p, (dx, dy) in zip(frames, passes, offsets)
        ]
        files = {
            "quality_table": product("quality_table", quality_parquet(rows, excluded)),
            "quality_plot": product("quality_plot", quality_png(sequence_id, rows, excluded)),
        }
        drift = float(np.hypot(*offsets[usable].T).max()) if usable else None

        def outcome(status: ObservationStatus, reason: str) -> ObservationProducts:
            return ObservationProducts(status, reason, drift, excluded, files)

        if len(usable) < settings.min_frames:
            return outcome(
                ObservationStatus.NOT_ENOUGH_FRAMES,
                f"{len(usable)} usable frames ({len(excluded)} excluded), at least {settings.min_frames} needed",
            )
        if drift is not None and drift > settings.max_drift_px:
            return outcome(
                ObservationStatus.TOO_MUCH_DRIFT,
                f"a frame drifted {drift:.1f} px from the reference frame, at most {settings.max_drift_px:g} px allowed",
            )
        files.update(
            science_products(
                sequence_id,
                [frames[i] for i in usable],
                [passes[i] for i in usable],
                wcs[reference],
                offsets[usable],
                stars,
                settings,
            )
        )
        return outcome(
            ObservationStatus.PROCESSED, f"{len(usable)} usable frames of {len(frames)}, {len(excluded)} excluded"
        )
