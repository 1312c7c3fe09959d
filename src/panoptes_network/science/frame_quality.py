"""Frame quality across an observation: per-frame metrics, drift against a reference frame, outliers.

Per frame, from the background-subtracted frame (sky level and RMS come from its background
model): sources as ``source_detection`` finds them, and the median FWHM and ellipticity of the
isolated, unsaturated, clean ones (a blend or a clipped core would widen the PSF it reports).

Drift is the pixel offset (dx, dy) of each frame's sky against the reference frame's: a star at
(x, y) in the reference frame sits at (x + dx, y + dy) in the frame. With WCSs it is where the
frame's WCS puts the sky the reference WCS puts on a grid of pixels; without, it is measured
from the sources: a histogram of the pairwise separations of the brightest sources finds the
coarse shift, then the median separation of the nearest-neighbour pairs refines it.

Outliers are found metric by metric against the observation's sigma-clipped median and
(MAD-based) standard deviation; a frame is excluded only when it is both ``sigma`` standard
deviations out on the bad side and further from the median than a rule's minimum change (so a
night of very steady frames does not exclude the one 2% blurrier). Each exclusion comes with its
reason as text.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence

import numpy as np
from astropy.stats import sigma_clipped_stats
from astropy.wcs import WCS
from scipy.spatial import cKDTree

from panoptes_network.science.saturation import SATURATION_ABOVE_SKY
from panoptes_network.science.source_detection import DetectionSettings, Sources, away_from_edges, detect_sources


@dataclasses.dataclass(frozen=True)
class OutlierRule:
    """When a metric excludes a frame: too high (``above``) or too low, by how much at least."""

    metric: str  # a FrameMetrics field
    label: str  # as the reason names it
    unit: str
    above: bool
    min_change: float = 0.0  # |value - median| must also reach this (metric units)
    min_fraction: float = 0.0  # ...and this fraction of the median
    digits: int = 1  # decimals in the reason


DEFAULT_RULES = (
    OutlierRule("fwhm", "FWHM", "px", above=True, min_change=0.3, min_fraction=0.1),
    OutlierRule("ellipticity", "ellipticity", "", above=True, min_change=0.1, digits=2),
    OutlierRule("sky_level", "sky level", "ADU", above=True, min_fraction=0.2),
    OutlierRule("sky_rms", "sky RMS", "ADU", above=True, min_fraction=0.2),
    OutlierRule("sources", "source count", "", above=False, min_fraction=0.3, digits=0),
)


@dataclasses.dataclass(frozen=True)
class QualitySettings:
    detection: DetectionSettings = DetectionSettings()
    isolation_px: float = 12.0  # no other source closer than this for the PSF metrics
    edge_margin_px: float = 10.0  # sources this close to the border are not measured
    saturation_px: int = 3  # half-size of the box searched for saturated pixels around a source
    saturation_level: float = SATURATION_ABOVE_SKY
    sigma: float = 4.0  # outlier threshold, in robust standard deviations
    clip_sigma: float = 3.0  # clipping of the metric's statistics across frames
    min_frames: int = 5  # fewer frames: no statistics, no outliers
    rules: tuple[OutlierRule, ...] = DEFAULT_RULES
    max_drift_px: float = 60.0  # search radius when measuring offsets from sources
    match_radius_px: float = 2.0  # nearest-neighbour pairs after the coarse shift
    offset_sources: int = 300  # brightest sources used to measure offsets
    min_matches: int = 5  # pairs needed to trust a measured offset...
    min_match_fraction: float = 0.2  # ...and this fraction of the smaller source list


@dataclasses.dataclass(frozen=True)
class FrameMetrics:
    sky_level: float  # ADU above black, median of the background model
    sky_rms: float  # ADU, median of the background RMS
    sources: int
    measured: int  # isolated unsaturated clean sources behind fwhm and ellipticity
    fwhm: float  # px, median; NaN when none were measured
    ellipticity: float  # 1 - b/a, median; NaN when none


def psf_sources(frame: np.ndarray, sources: Sources, settings: QualitySettings) -> np.ndarray:
    """Mask of the sources fit to measure the PSF: clean, away from edges, isolated, unsaturated."""
    keep = (sources.flags == 0) & away_from_edges(sources, frame.shape, settings.edge_margin_px)
    if len(sources) > 1:
        distance, _ = cKDTree(np.c_[sources.x, sources.y]).query(np.c_[sources.x, sources.y], k=2)
        keep &= distance[:, 1] > settings.isolation_px
    r = settings.saturation_px
    rows = np.clip(np.rint(sources.y).astype(np.int64)[:, None] + np.arange(-r, r + 1), 0, frame.shape[0] - 1)
    cols = np.clip(np.rint(sources.x).astype(np.int64)[:, None] + np.arange(-r, r + 1), 0, frame.shape[1] - 1)
    peaks = frame[rows[:, :, None], cols[:, None, :]].max(axis=(1, 2)) if len(sources) else np.zeros(0)
    return np.asarray(keep & (peaks < settings.saturation_level))


def measure_frame(
    frame: np.ndarray,
    sky_level: float,
    sky_rms: np.ndarray | float,
    settings: QualitySettings = QualitySettings(),
    sources: Sources | None = None,
) -> tuple[FrameMetrics, Sources]:
    """The frame's metrics and its sources (background-subtracted ADU; ``sky_rms`` per pixel or one value).
    Sources already found (the plate-solver's) are used as given: detection is most of the cost."""
    if sources is None:
        sources = detect_sources(frame, sky_rms, settings.detection)
    measured = sources.take(psf_sources(frame, sources, settings))
    metrics = FrameMetrics(
        sky_level=float(sky_level),
        sky_rms=float(np.median(sky_rms)),
        sources=len(sources),
        measured=len(measured),
        fwhm=float(np.median(measured.fwhm)) if len(measured) else math.nan,
        ellipticity=float(np.median(measured.ellipticity)) if len(measured) else math.nan,
    )
    return metrics, sources


def wcs_offsets(reference: WCS, frames: Sequence[WCS], shape: tuple[int, int]) -> np.ndarray:
    """(frames, 2): the mean (dx, dy) over a 3x3 grid of where each WCS puts the reference's sky."""
    rows, cols = shape
    gx, gy = np.meshgrid(np.linspace(0, cols - 1, 3), np.linspace(0, rows - 1, 3))
    ra, dec = reference.all_pix2world(gx.ravel(), gy.ravel(), 0)
    offsets = []
    for wcs in frames:
        x, y = wcs.all_world2pix(ra, dec, 0)
        offsets.append((float(np.mean(x - gx.ravel())), float(np.mean(y - gy.ravel()))))
    return np.array(offsets, dtype=np.float64).reshape(len(frames), 2)


def _brightest(sources: Sources, count: int) -> np.ndarray:
    order = np.argsort(sources.flux)[::-1][:count]
    return np.column_stack([sources.x[order], sources.y[order]])


def measured_offset(reference: Sources, frame: Sources, settings: QualitySettings = QualitySettings()) -> np.ndarray:
    """(dx, dy) of ``frame`` against ``reference`` from their sources; NaN when they share no pattern."""
    ref = _brightest(reference, settings.offset_sources)
    new = _brightest(frame, settings.offset_sources)
    if len(ref) < 3 or len(new) < 3:
        return np.full(2, np.nan)
    reach = settings.max_drift_px
    pairs = cKDTree(ref).query_ball_point(new, r=reach)
    shifts = np.array([new[i] - ref[j] for i, near in enumerate(pairs) for j in near]).reshape(-1, 2)
    if len(shifts) == 0:
        return np.full(2, np.nan)
    edges = np.arange(-reach, reach + 1.0, 1.0)
    counts, _, _ = np.histogram2d(shifts[:, 0], shifts[:, 1], bins=(edges, edges))
    peak = np.unravel_index(np.argmax(counts), counts.shape)
    offset = np.array([edges[peak[0]] + 0.5, edges[peak[1]] + 0.5])
    tree = cKDTree(ref)
    needed = max(settings.min_matches, settings.min_match_fraction * min(len(ref), len(new)))
    for _ in range(3):
        distance, index = tree.query(new - offset, distance_upper_bound=settings.match_radius_px)
        matched = np.isfinite(distance)
        if matched.sum() < needed:
            return np.full(2, np.nan)
        offset = np.median(new[matched] - ref[index[matched]], axis=0)
    return np.asarray(offset, dtype=np.float64)


def source_offsets(
    sources: Sequence[Sources], reference: int = 0, settings: QualitySettings = QualitySettings()
) -> np.ndarray:
    """(frames, 2): each frame's measured (dx, dy) against frame ``reference`` (which gets 0, 0)."""
    return np.array(
        [
            np.zeros(2) if i == reference else measured_offset(sources[reference], s, settings)
            for i, s in enumerate(sources)
        ]
    ).reshape(len(sources), 2)


def _reason(rule: OutlierRule, value: float, median: float, z: float) -> str:
    unit = f" {rule.unit}" if rule.unit else ""
    side = "above" if rule.above else "below"
    d = rule.digits
    return f"{rule.label} {value:.{d}f}{unit} is {abs(z):.1f} sigma {side} the median {median:.{d}f}{unit}"


def rule_outliers(values: np.ndarray, rule: OutlierRule, settings: QualitySettings) -> dict[int, str]:
    """Frames (index -> reason) the rule excludes given the metric's value in every frame."""
    finite = np.isfinite(values)
    reasons = {int(i): f"{rule.label} could not be measured" for i in np.flatnonzero(~finite)}
    if finite.sum() < settings.min_frames:
        return reasons
    _, median, std = sigma_clipped_stats(values[finite], sigma=settings.clip_sigma, maxiters=10, stdfunc="mad_std")
    std = max(float(std), 1e-9 * max(abs(float(median)), 1.0))
    floor = max(rule.min_change, rule.min_fraction * abs(float(median)))
    for i in np.flatnonzero(finite):
        change = (values[i] - median) * (1 if rule.above else -1)
        z = change / std
        if z > settings.sigma and change >= floor:
            reasons[int(i)] = _reason(rule, float(values[i]), float(median), float(z))
    return reasons


def select_outliers(metrics: Sequence[FrameMetrics], settings: QualitySettings = QualitySettings()) -> dict[int, str]:
    """Frames to exclude (index -> every reason, joined by '; '); the others are usable."""
    if len(metrics) < settings.min_frames:
        return {}
    found: dict[int, list[str]] = {}
    for rule in settings.rules:
        values = np.array([getattr(m, rule.metric) for m in metrics], dtype=np.float64)
        for index, reason in rule_outliers(values, rule, settings).items():
            found.setdefault(index, []).append(reason)
    return {index: "; ".join(reasons) for index, reasons in sorted(found.items())}
