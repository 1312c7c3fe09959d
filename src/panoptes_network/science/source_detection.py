"""Find stars on a background-subtracted Bayer frame with sep, on 2x2 superpixels.

Each RGGB cell's four pixels sum to one superpixel: the channels' different sky levels and
gains stop mattering (the background is already gone), the noise becomes one grid's noise, and
sep works on a quarter of the pixels. Positions are returned in full-frame pixel coordinates,
0-based (numpy / astropy ``origin=0``: the centre of the first pixel is 0.0); a superpixel
``j`` covers full pixels ``2j`` and ``2j + 1``, so its centre is ``2j + 0.5``.

Positions are windowed centroids (Source Extractor's XWIN/YWIN: the first moment under a
Gaussian window, iterated), with the pixels of neighbouring detections masked out; where that
does not converge, sep's isophotal centroid stays. The isophotal centroid of a bright star is
pulled by whatever asymmetric wing sits above the threshold; the window looks at the core.
A source with a saturated pixel (given as a raw-frame mask) in its footprint is flagged
``saturated``: its core is clipped flat, so neither its centroid nor its flux can be trusted.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import sep


@dataclasses.dataclass(frozen=True)
class DetectionSettings:
    """Defaults suit PANOPTES frames (stars 2-3 px FWHM, 10.3 arcsec/px)."""

    threshold_sigma: float = 5.0  # detection threshold in units of the superpixel sky RMS
    min_area: int = 3  # superpixels above threshold
    max_sources: int = 20_000  # sep's object limit; a full frame has a few thousand stars
    # Window sigma over the frame's PSF sigma: on superpixels the PSF is undersampled (sigma
    # about 0.8), and a narrower window pulls centroids toward pixel centres. On the real crop
    # 1.0 gives a median 3.1" from Tycho-2, 1.5 gives 2.4", 2.0 gives 2.7".
    window_scale: float = 1.5
    window_iterations: int = 20
    window_max_shift: float = 1.0  # superpixels: a centroid that wanders further is not trusted
    default_fwhm: float = 2.5  # px, the PSF assumed when no clean unsaturated source measures it


SOURCE_COLUMNS = (
    "x", "y", "flux", "flux_err", "peak", "fwhm", "ellipticity", "theta", "flags", "npix", "saturated", "windowed",
)  # fmt: skip


@dataclasses.dataclass(frozen=True)
class Sources:
    """Detected sources as columns (each an array of one length), positions full-frame 0-based."""

    x: np.ndarray
    y: np.ndarray
    flux: np.ndarray  # ADU summed over the source's pixels (all four channels)
    flux_err: np.ndarray  # sky noise only: sqrt(npix) x the superpixel RMS (no source Poisson term)
    peak: np.ndarray  # peak superpixel value (ADU, four channels summed)
    fwhm: np.ndarray  # full-frame pixels
    ellipticity: np.ndarray  # 1 - b/a
    theta: np.ndarray  # radians, position angle of the major axis
    flags: np.ndarray  # sep extraction flags (0 = clean)
    npix: np.ndarray  # superpixels above threshold
    saturated: np.ndarray  # bool: a saturated pixel in the footprint
    windowed: np.ndarray  # bool: x, y are the windowed centroid (else sep's isophotal one)

    def __len__(self) -> int:
        return len(self.x)

    def take(self, index: np.ndarray) -> Sources:
        """A subset, by boolean mask or index array."""
        return Sources(**{name: getattr(self, name)[index] for name in SOURCE_COLUMNS})

    def columns(self) -> dict[str, np.ndarray]:
        return {name: getattr(self, name) for name in SOURCE_COLUMNS}


def superpixels(frame: np.ndarray) -> np.ndarray:
    """Sum each 2x2 RGGB cell (an odd last row or column is dropped); float32, native order."""
    rows, cols = frame.shape[0] // 2 * 2, frame.shape[1] // 2 * 2
    cells = frame[:rows, :cols].astype(np.float32, copy=False).reshape(rows // 2, 2, cols // 2, 2)
    return np.ascontiguousarray(cells.sum(axis=(1, 3), dtype=np.float32))


def superpixel_rms(rms: np.ndarray | float, shape: tuple[int, int]) -> np.ndarray | float:
    """The RMS of a sum of four pixels: the root of the summed variances. A map already on the
    superpixel grid (``shape`` halved, as ``background_model.BackgroundFile.subtract`` builds it
    without the full-frame map) is that RMS."""
    if not isinstance(rms, np.ndarray):
        return 2.0 * float(rms)
    if rms.shape == (shape[0] // 2, shape[1] // 2):
        return np.asarray(rms, dtype=np.float32)
    return np.asarray(np.sqrt(superpixels(np.square(np.asarray(rms, dtype=np.float32)))), dtype=np.float32)


def saturated_superpixels(saturated: np.ndarray) -> np.ndarray:
    """A full-frame saturation mask on the superpixel grid: any of the cell's four pixels."""
    rows, cols = saturated.shape[0] // 2 * 2, saturated.shape[1] // 2 * 2
    cells = saturated[0:rows:2, 0:cols:2] | saturated[0:rows:2, 1:cols:2]  # strided ORs: 4x faster than any()
    cells |= saturated[1:rows:2, 0:cols:2]
    cells |= saturated[1:rows:2, 1:cols:2]
    return np.asarray(cells)


def detect_sources(
    frame: np.ndarray,
    rms: np.ndarray | float,
    settings: DetectionSettings = DetectionSettings(),
    saturated: np.ndarray | None = None,
) -> Sources:
    """Sources on a background-subtracted frame, given the sky RMS (one value, per pixel, or per
    superpixel: ``superpixel_rms``) and, when known, the raw frame's saturated pixels (a boolean mask of the frame's shape)."""
    data = superpixels(frame)
    err = superpixel_rms(rms, frame.shape)
    sep.set_extract_pixstack(max(300_000, data.size // 4))
    sep.set_sub_object_limit(4096)
    objects, segments = sep.extract(
        data, settings.threshold_sigma, err=err, minarea=settings.min_area, segmentation_map=True
    )
    segment_ids = np.arange(1, len(objects) + 1)
    if len(objects) > settings.max_sources:
        keep = np.argsort(objects["flux"], kind="stable")[::-1][: settings.max_sources]  # brightest first
        objects, segment_ids = objects[keep], segment_ids[keep]
    if len(objects) == 0:
        return _empty()
    radius, _ = sep.flux_radius(
        data, objects["x"], objects["y"], 6.0 * objects["a"], 0.5, normflux=objects["flux"], subpix=5
    )
    fwhm = 4.0 * radius  # FWHM = 2 x half-light radius for a Gaussian; x2 for superpixels
    clipped = np.zeros(len(objects), bool)
    if saturated is not None:
        hit = np.bincount(segments[saturated_superpixels(saturated)], minlength=segments.max() + 1)
        clipped = hit[segment_ids] > 0
    clean = (objects["flag"] == 0) & ~clipped & np.isfinite(fwhm) & (fwhm > 0)
    psf_fwhm = float(np.median(fwhm[clean])) if clean.any() else settings.default_fwhm
    window = settings.window_scale * psf_fwhm / 2.0 / 2.3548  # superpixel sigma
    x, y, windowed = windowed_centroids(data, segments, segment_ids, objects["x"], objects["y"], window, settings)
    flux_err = np.sqrt(objects["npix"]) * (err if np.isscalar(err) else np.median(err))
    return Sources(
        x=2.0 * x + 0.5,
        y=2.0 * y + 0.5,
        flux=objects["flux"].astype(np.float64),
        flux_err=np.asarray(flux_err, dtype=np.float64),
        peak=objects["peak"].astype(np.float64),
        fwhm=fwhm,
        ellipticity=1.0 - objects["b"] / np.maximum(objects["a"], 1e-6),
        theta=objects["theta"].astype(np.float64),
        flags=objects["flag"].astype(np.int32),
        npix=objects["npix"].astype(np.int32),
        saturated=clipped,
        windowed=windowed,
    )


def windowed_centroids(
    data: np.ndarray,
    segments: np.ndarray,
    segment_ids: np.ndarray,
    x: np.ndarray,
    y: np.ndarray,
    sigma: float,
    settings: DetectionSettings,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Gaussian-windowed centroids (superpixel coordinates) and whether each converged.

    Iterates Source Extractor's step ``x += g sum(w I (x_i - x)) / sum(w I)`` inside a circle
    of 3 sigma, with ``g = 1 + (PSF sigma / window sigma)^2`` (Source Extractor's 2 suits a
    window as wide as the PSF and converges slowly on a wider one), on a fixed cut-out around
    the start, ignoring the pixels of other detections: sep's own ``winpos`` cannot, and loses
    about a tenth of the real crop's stars to their neighbours. Vectorised over the sources."""
    half = max(1, int(np.ceil(3.0 * sigma)))
    padded = np.pad(data, half)
    owners = np.pad(segments, half, constant_values=-1)
    ix, iy = np.rint(x).astype(np.int64), np.rint(y).astype(np.int64)
    offsets = np.arange(-half, half + 1)
    rows = (iy + half)[:, None, None] + offsets[None, :, None]
    cols = (ix + half)[:, None, None] + offsets[None, None, :]
    owner = owners[rows, cols]
    pixels = np.where((owner == 0) | (owner == segment_ids[:, None, None]), padded[rows, cols], 0.0)
    px = (ix[:, None, None] + offsets[None, None, :]).astype(np.float64)
    py = (iy[:, None, None] + offsets[None, :, None]).astype(np.float64)
    cx, cy = x.astype(np.float64), y.astype(np.float64)
    total = np.ones(len(x))
    active = np.arange(len(x))  # sources still moving
    gain = 1.0 + 1.0 / settings.window_scale**2  # reaches a Gaussian star's centre in one step
    for _ in range(settings.window_iterations):
        if len(active) == 0:
            break
        ddx, ddy = px[active] - cx[active, None, None], py[active] - cy[active, None, None]
        distance2 = ddx**2 + ddy**2
        weighted = pixels[active] * np.exp(-0.5 * distance2 / sigma**2) * (distance2 <= (half + 0.5) ** 2)
        total[active] = weighted.sum(axis=(1, 2))
        with np.errstate(invalid="ignore", divide="ignore"):
            step_x = np.clip(np.nan_to_num(gain * (weighted * ddx).sum(axis=(1, 2)) / total[active]), -0.5, 0.5)
            step_y = np.clip(np.nan_to_num(gain * (weighted * ddy).sum(axis=(1, 2)) / total[active]), -0.5, 0.5)
        cx[active] += step_x
        cy[active] += step_y
        active = active[np.hypot(step_x, step_y) > 1e-3]  # superpixels: 0.002 px
    ok = (total > 0) & np.isfinite(cx) & np.isfinite(cy) & (np.hypot(cx - x, cy - y) < settings.window_max_shift)
    ok[active] = False  # still moving after the last iteration: not converged
    return np.where(ok, cx, x), np.where(ok, cy, y), ok


def _empty() -> Sources:
    kinds = {"flags": np.int32, "npix": np.int32, "saturated": bool, "windowed": bool}
    return Sources(**{name: np.zeros(0, kinds.get(name, np.float64)) for name in SOURCE_COLUMNS})


def away_from_edges(sources: Sources, shape: tuple[int, int], margin: float) -> np.ndarray:
    """Mask of sources at least ``margin`` pixels inside the frame (0-based pixel centres)."""
    rows, cols = shape
    return (
        (sources.x >= margin)
        & (sources.y >= margin)
        & (sources.x <= cols - 1 - margin)
        & (sources.y <= rows - 1 - margin)
    )
