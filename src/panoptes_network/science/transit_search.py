"""Transit search: Box Least Squares on every star's detrended lightcurve (sum of channels).

One observation is a few hours, so a transit shows at most once: the search tries one period
longer than twice the observation (every box then falls once in the data) and box durations from
``min_frames`` frames to half the observation, with astropy's ``BoxLeastSquares`` and its SNR
objective (the box's depth over its error). The best box per star is reported; its depth is then
measured again on the relative flux (before detrending) by fitting the same straight line in
airmass and time together with the box, so that neither the detrending nor the clipping biases it.
A star is a candidate when that SNR reaches ``snr_threshold`` with a dimming, and it is neither
blended nor unusable (saturated, at the edge, missing pixels): a dip in a blend cannot be told
from its neighbour's. The threshold (a setting) is chosen so that observations without a signal
give no candidate (``tests/test_lightcurves_night.py``).
"""

from __future__ import annotations

import dataclasses
import warnings

import numpy as np
from astropy.timeseries import BoxLeastSquares

from panoptes_network.science.detrending import trend_design
from panoptes_network.science.fluxes import SUM, Fluxes


@dataclasses.dataclass(frozen=True)
class SearchSettings:
    snr_threshold: float = 7.0
    min_frames: int = 3  # the shortest box, in frames


@dataclasses.dataclass(frozen=True)
class TransitSearch:
    """Per star the best box: depth (fraction, positive = dimming), its error, duration (days),
    mid-time (BJD_TDB), SNR; ``candidate`` marks the stars listed on the record."""

    depth: np.ndarray
    depth_error: np.ndarray
    duration: np.ndarray
    mid_time: np.ndarray
    snr: np.ndarray
    candidate: np.ndarray

    eligible: np.ndarray  # neither blended nor unusable: could be a candidate

    def ranked(self) -> np.ndarray:
        """The eligible stars' indices by decreasing SNR (NaN last)."""
        order = np.argsort(-np.nan_to_num(self.snr, nan=-np.inf), kind="stable")
        return np.asarray(order[self.eligible[order]])


def box_depth(
    time: np.ndarray, relative: np.ndarray, error: np.ndarray, design: np.ndarray, mid: float, duration: float
) -> tuple[float, float]:
    """Depth and its error of a box at ``mid`` lasting ``duration``, fitted with the trend ``design``
    (frames, k) on one star's relative flux."""
    box = (np.abs(time - mid) <= duration / 2).astype(np.float64)
    finite = np.isfinite(relative) & np.isfinite(error) & (error > 0)
    if box[finite].sum() == 0:
        return float("nan"), float("nan")
    columns = np.c_[design[finite], -box[finite]] / error[finite, None]
    coefficients, *_ = np.linalg.lstsq(columns, relative[finite] / error[finite], rcond=None)
    covariance = np.linalg.pinv(columns.T @ columns)
    level = coefficients[0]
    return float(coefficients[-1] / level), float(np.sqrt(covariance[-1, -1]) / abs(level))


def best_box(
    time: np.ndarray,
    detrended: np.ndarray,
    relative: np.ndarray,
    error: np.ndarray,
    design: np.ndarray,
    min_frames: int,
) -> tuple[float, float, float, float, float]:
    """One star's best box: depth, its error, duration, mid-time, SNR (NaN with too few points)."""
    finite = np.isfinite(detrended) & np.isfinite(error) & (error > 0)
    if finite.sum() < 2 * min_frames + 2:
        return (np.nan,) * 5
    t, y, dy = time[finite], detrended[finite], error[finite]
    span = float(t.max() - t.min())
    period = 2.5 * span  # longer than twice the data: one box at most falls in it
    durations = np.arange(min_frames, len(t) // 2 + 1) * span / (len(t) - 1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        best = BoxLeastSquares(t, y, dy).power([period], durations, objective="snr", oversample=4)
    mid = float(t.min() + (best.transit_time[0] - t.min()) % period)  # the box inside the data
    duration = float(best.duration[0])
    depth, depth_error = box_depth(time, relative, error, design, mid, duration)
    return depth, depth_error, duration, mid, depth / depth_error if depth_error > 0 else np.nan


def search(fluxes: Fluxes, settings: SearchSettings = SearchSettings()) -> TransitSearch:
    """The best box of every usable star (blends included, to report them); NaN for the others."""
    if fluxes.detrended is None or fluxes.relative is None or fluxes.relative_error is None:
        raise ValueError("the transit search needs detrended fluxes")
    stars, _ = fluxes.shape
    results = np.full((5, stars), np.nan)
    design = trend_design(np.asarray(fluxes.airmass, dtype=np.float64), fluxes.time)
    usable = ~fluxes.unusable()
    for s in np.flatnonzero(usable):
        results[:, s] = best_box(
            fluxes.time[s],
            fluxes.detrended[s, :, SUM],
            fluxes.relative[s, :, SUM],
            fluxes.relative_error[s, :, SUM],
            design[s],
            settings.min_frames,
        )
    depth, depth_error, duration, mid_time, snr = results
    eligible = ~fluxes.blended() & usable
    candidate = eligible & (snr >= settings.snr_threshold) & (depth > 0)
    return TransitSearch(depth, depth_error, duration, mid_time, snr, candidate, eligible)
