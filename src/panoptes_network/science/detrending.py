"""Time and trends: mid-exposure BJD_TDB, and the trend in airmass the comparison leaves.

Times: a transit's mid-time is compared across nights and observatories, so it is given in
Barycentric Julian Date (TDB) at mid-exposure: DATE-OBS + EXPTIME / 2, UTC to TDB by astropy, plus
the light travel time from the Earth's centre to the Solar System barycentre towards each star
(astropy's built-in ephemeris: no download). The observatory's own offset from the Earth's centre
(at most 21 ms) is left out, because it needs Earth-orientation tables this machine cannot fetch;
the stars of one field differ by up to minutes, so each star gets its own times.

Trend: a star whose colour differs from its comparison ensemble's dims differently with airmass;
each star's relative flux is divided by a straight line in airmass (in time when the airmass is
unknown) fitted with its errors. Points more than ``clip_sigma`` from the line are left out of the fit,
refitted ``iterations`` times: a transit's points are, so the line does not eat the transit.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Sequence

import astropy.units as u
import numpy as np
from astropy.coordinates import SkyCoord, get_body_barycentric
from astropy.time import Time

SPEED_OF_LIGHT = 299_792_458.0  # m/s


@dataclasses.dataclass(frozen=True)
class DetrendSettings:
    clip_sigma: float = 3.0
    iterations: int = 4


def mid_exposure(starts: Sequence[dt.datetime], exposures: Sequence[float] | np.ndarray) -> Time:
    """UTC times at the middle of each exposure (naive datetimes are UTC)."""
    middle = [
        (t if t.tzinfo else t.replace(tzinfo=dt.UTC)) + dt.timedelta(seconds=float(e) / 2)
        for t, e in zip(starts, exposures)
    ]
    return Time(middle, scale="utc")


def bjd_tdb(times: Time, ra_deg: np.ndarray, dec_deg: np.ndarray) -> np.ndarray:
    """(stars, frames) BJD_TDB of each frame's ``times`` towards each star (geocentric light travel time)."""
    earth = get_body_barycentric("earth", times, ephemeris="builtin").xyz.to_value(u.m)  # (3, frames)
    stars = SkyCoord(np.asarray(ra_deg) * u.deg, np.asarray(dec_deg) * u.deg).cartesian.xyz.value  # (3, stars)
    delay_s = stars.T @ earth / SPEED_OF_LIGHT
    tdb = times.tdb
    return np.asarray(tdb.jd1[None, :] + tdb.jd2[None, :] + delay_s / 86400.0)


def trend_design(airmass: np.ndarray, time: np.ndarray) -> np.ndarray:
    """(stars, frames, 2): 1 and the airmass, centred; the time instead when the airmass is unknown.
    (Both would be nearly collinear over a few hours and would widen a transit depth's error by half.)"""
    stars, frames = time.shape
    if np.isfinite(airmass).all() and np.ptp(airmass) > 0:
        x = np.broadcast_to(airmass - airmass.mean(), (stars, frames))
    else:
        x = time - time.mean(axis=1, keepdims=True)
    return np.stack([np.ones((stars, frames)), x], axis=-1)


def fit_trend(
    design: np.ndarray, values: np.ndarray, errors: np.ndarray, settings: DetrendSettings
) -> tuple[np.ndarray, np.ndarray]:
    """Per star the weighted least-squares line (``design`` (stars, frames, k) against ``values``
    (stars, frames)) with outliers clipped; returns the model (stars, frames) and the kept points."""
    finite = np.isfinite(values) & np.isfinite(errors) & (errors > 0)
    kept = finite.copy()
    y = np.where(finite, values, 0.0)
    weight = np.where(finite, 1.0 / np.where(finite, errors, 1.0) ** 2, 0.0)
    model = np.full(values.shape, np.nan)
    for _ in range(settings.iterations + 1):
        w = weight * kept
        normal = np.einsum("sf,sfi,sfj->sij", w, design, design)
        rhs = np.einsum("sf,sfi,sf->si", w, design, y)
        solvable = np.linalg.matrix_rank(normal) == design.shape[-1]
        coefficients = np.zeros(rhs.shape)
        if solvable.any():
            coefficients[solvable] = np.linalg.solve(normal[solvable], rhs[solvable][..., None])[..., 0]
        model = np.where(solvable[:, None], np.einsum("sfi,si->sf", design, coefficients), np.nan)
        residual = np.where(finite, (values - model) / np.where(finite, errors, 1.0), np.inf)
        clipped = finite & (np.abs(residual) <= settings.clip_sigma)
        if np.array_equal(clipped, kept):
            break
        kept = clipped
    return model, kept


def detrend(
    relative: np.ndarray,
    relative_error: np.ndarray,
    airmass: np.ndarray,
    time: np.ndarray,
    settings: DetrendSettings = DetrendSettings(),
) -> np.ndarray:
    """(stars, frames, channels): the relative flux divided by its fitted airmass-and-time line."""
    design = trend_design(np.asarray(airmass, dtype=np.float64), time)
    detrended = np.full(relative.shape, np.nan)
    for c in range(relative.shape[-1]):
        model, _ = fit_trend(design, relative[..., c], relative_error[..., c], settings)
        with np.errstate(divide="ignore", invalid="ignore"):
            detrended[..., c] = relative[..., c] / model
    return detrended
