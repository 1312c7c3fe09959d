"""Comparison stars, chosen automatically: a weighted ensemble of similar stars for every star.

Broeg, Fernandez & Neuhaeuser (2005), as prose does it: every usable star (never saturated, at the
edge, blended or missing pixels) starts weighted by its expected precision (1 / error^2); each is
divided by the weighted ensemble of all the others and re-weighted by 1 / (its observed scatter)^2,
a few times over. A star that scatters more than ``variable_factor`` times its expected error is
taken for a variable and loses its weight. Each star's comparison ensemble is then the
``max_stars`` usable stars nearest it in magnitude and instrumental colour (so the colour-dependent
part of the extinction mostly cancels), with their Broeg weights; a star never compares with itself.
Everything is per channel: R, G, B and the sum each get their own weights.
"""

from __future__ import annotations

import dataclasses

import numpy as np
from scipy import sparse
from scipy.spatial import cKDTree

from panoptes_network.science.fluxes import Fluxes
from panoptes_network.science.forced_photometry import CHANNELS


@dataclasses.dataclass(frozen=True)
class ComparisonSettings:
    max_stars: int = 20  # comparison stars per star
    iterations: int = 4  # Broeg re-weightings
    variable_factor: float = 1.5  # observed / expected scatter beyond which a star is no comparison
    colour_scale: float = 1.0  # mag of colour difference that counts like 1 mag of brightness


@dataclasses.dataclass(frozen=True)
class Comparisons:
    """Per channel, a (stars x stars) sparse matrix: row = the star, columns = its comparison stars, weights summing to 1."""

    weights: tuple[sparse.csr_matrix, ...]
    usable: np.ndarray  # (stars,) could serve as a comparison
    variable: np.ndarray  # (stars,) usable but scattering too much: a variable

    def of(self, star: int, channel: int) -> tuple[np.ndarray, np.ndarray]:
        """The comparison stars of ``star`` in ``channel`` and their weights."""
        row = self.weights[channel].getrow(star)
        return row.indices.copy(), row.data.copy()


def _scatter(ratio: np.ndarray, airmass: np.ndarray) -> np.ndarray:
    """Per star, the standard deviation over the frames of ``ratio`` (stars, frames) less its straight
    line in airmass: a star of another colour than the ensemble follows the airmass, and that is no
    variability (the detrending removes it)."""
    x = airmass - airmass.mean() if np.isfinite(airmass).all() else np.zeros_like(airmass)
    design = np.c_[np.ones_like(airmass), x]
    finite = np.isfinite(ratio).all(axis=1)
    scatter = np.full(len(ratio), np.nan)
    if finite.any():
        coefficients, *_ = np.linalg.lstsq(design, ratio[finite].T, rcond=None)
        residual = ratio[finite] - (design @ coefficients).T
        scatter[finite] = residual.std(axis=1) / np.abs(coefficients[0])
    return scatter


def broeg_weights(
    normalised: np.ndarray, error: np.ndarray, usable: np.ndarray, airmass: np.ndarray, settings: ComparisonSettings
) -> tuple[np.ndarray, np.ndarray]:
    """(stars,) weights (0 for a star that is no comparison) and the variable mask, for one channel's
    normalised fluxes and errors (stars, frames) and the frames' airmass."""
    expected = np.sqrt(np.nanmedian(error**2, axis=1))
    good = usable & np.isfinite(expected) & (expected > 0) & np.isfinite(normalised).all(axis=1)
    weight = np.where(good, 1.0 / np.where(good, expected, 1.0) ** 2, 0.0)
    variable = np.zeros(len(weight), bool)
    values = np.where(good[:, None], normalised, 0.0)
    for _ in range(settings.iterations):
        total = (weight[:, None] * values).sum(axis=0)
        others = total[None, :] - weight[:, None] * values  # every star's leave-one-out ensemble
        norm = weight.sum() - weight
        with np.errstate(divide="ignore", invalid="ignore"):
            ratio = values / (others / norm[:, None])
        scatter = _scatter(np.where(good[:, None], ratio, np.nan), airmass)
        variable = good & (scatter > settings.variable_factor * expected)
        keep = good & ~variable & np.isfinite(scatter) & (scatter > 0)
        weight = np.where(keep, 1.0 / np.where(keep, scatter, 1.0) ** 2, 0.0)
    return weight, variable


def nearest_usable(fluxes: Fluxes, usable: np.ndarray, count: int, colour_scale: float) -> np.ndarray:
    """(stars, count) indices of the usable stars nearest each star in (magnitude, colour), itself
    excluded; -1 where there are not enough."""
    stars = fluxes.shape[0]
    colour = np.nan_to_num(fluxes.colour(), nan=0.0)
    mag = np.nan_to_num(fluxes.mag, nan=float(np.nanmedian(fluxes.mag)) if np.isfinite(fluxes.mag).any() else 0.0)
    points = np.c_[mag, colour / colour_scale]
    candidates = np.flatnonzero(usable)
    found = np.full((stars, count), -1, np.int64)
    if len(candidates) == 0 or count == 0:
        return found
    k = min(count + 1, len(candidates))
    _, nearest = cKDTree(points[candidates]).query(points, k=k)
    nearest = candidates[np.asarray(nearest).reshape(stars, k)]
    for s in range(stars):
        others = nearest[s][nearest[s] != s][:count]
        found[s, : len(others)] = others
    return found


def choose(fluxes: Fluxes, settings: ComparisonSettings = ComparisonSettings()) -> Comparisons:
    """Every star's comparison ensemble, per channel (see the module's docstring)."""
    stars, _ = fluxes.shape
    normalised, error = fluxes.normalised()
    usable = ~fluxes.unusable() & ~fluxes.blended()
    channels = normalised.shape[-1]
    airmass = np.asarray(fluxes.airmass, dtype=np.float64)
    per_channel = [broeg_weights(normalised[..., c], error[..., c], usable, airmass, settings) for c in range(channels)]
    variable = np.logical_or.reduce([v for _, v in per_channel])
    comparable = usable & ~variable
    nearest = nearest_usable(fluxes, comparable, settings.max_stars, settings.colour_scale)
    rows = np.repeat(np.arange(stars), nearest.shape[1])
    columns = nearest.ravel()
    present = columns >= 0
    weights = []
    for weight, _ in per_channel:
        values = np.where(present, weight[np.clip(columns, 0, None)], 0.0)
        matrix = sparse.csr_matrix((values[present], (rows[present], columns[present])), shape=(stars, stars))
        matrix.eliminate_zeros()
        total = np.asarray(matrix.sum(axis=1)).ravel()
        scale = sparse.diags(np.where(total > 0, 1.0 / np.where(total > 0, total, 1.0), 0.0))
        weights.append(sparse.csr_matrix(scale @ matrix))
    return Comparisons(tuple(weights), usable, variable & usable)


def relative_fluxes(fluxes: Fluxes, comparisons: Comparisons) -> tuple[np.ndarray, np.ndarray]:
    """Each star's flux over its ensemble's (both normalised), renormalised to a median of 1, and its
    error: the star's and the ensemble's in quadrature. NaN for a star without comparisons."""
    normalised, error = fluxes.normalised()
    relative = np.full(normalised.shape, np.nan)
    relative_error = np.full(normalised.shape, np.nan)
    for c, weights in enumerate(comparisons.weights):
        values = np.nan_to_num(normalised[..., c])
        ensemble = weights @ values
        ensemble_error = np.sqrt(weights.multiply(weights) @ np.nan_to_num(error[..., c]) ** 2)
        has = np.asarray(weights.sum(axis=1)).ravel() > 0
        with np.errstate(divide="ignore", invalid="ignore"):
            ratio = normalised[..., c] / ensemble
            median = np.nanmedian(np.where(has[:, None], ratio, np.nan), axis=1, keepdims=True)
            relative[has, :, c] = (ratio / median)[has]
            fractional = np.hypot(error[..., c] / normalised[..., c], ensemble_error / ensemble)
        relative_error[has, :, c] = (relative[..., c] * fractional)[has]
    return relative, relative_error


def comparison_table(fluxes: Fluxes, comparisons: Comparisons) -> dict[str, np.ndarray]:
    """One row per (star, channel, comparison star): the weights, for the record and the Parquet file."""
    columns: dict[str, list[np.ndarray]] = {"star": [], "channel": [], "comparison": [], "weight": []}
    for c, weights in enumerate(comparisons.weights):
        coo = weights.tocoo()
        columns["star"].append(coo.row.astype(np.int64))
        columns["channel"].append(np.full(len(coo.row), CHANNELS[c]))
        columns["comparison"].append(coo.col.astype(np.int64))
        columns["weight"].append(coo.data)
    table = {name: np.concatenate(parts) for name, parts in columns.items()}
    table["star_id"] = np.asarray(fluxes.ids)[table["star"]]
    table["comparison_id"] = np.asarray(fluxes.ids)[table["comparison"]]
    return table
