"""``Fluxes``: every star's fluxes across one night, the one value every lightcurve product is made from.

In the spirit of prose's ``Fluxes``: the raw aperture fluxes with their errors and flags, the
frames' times and airmass, and, once the comparison stars and the detrending have run, each star's
relative flux (its flux over its comparison ensemble's, normalised to a median of 1) and that flux
with the night's remaining trend removed. Arrays are (stars, frames, channels) with the channels
R, G, B and their sum (``CHANNELS``); stars keep the stamp cube's order.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from panoptes_network.science.forced_photometry import CHANNELS, Photometry, PhotometryFlag

UNUSABLE = PhotometryFlag.OUTSIDE | PhotometryFlag.NEAR_EDGE | PhotometryFlag.SATURATED | PhotometryFlag.BAD_PIXEL
SUM = CHANNELS.index("sum")


@dataclasses.dataclass(frozen=True)
class Fluxes:
    ids: np.ndarray  # (stars,) catalog ids
    mag: np.ndarray  # (stars,) catalog magnitude
    ra: np.ndarray  # (stars,) deg
    dec: np.ndarray
    time: np.ndarray  # (stars, frames) BJD_TDB at mid-exposure (the barycentric delay differs across the field)
    airmass: np.ndarray  # (frames,)
    exposure: np.ndarray  # (frames,) s
    photometry: Photometry
    relative: np.ndarray | None = None  # (stars, frames, 4) flux / comparison ensemble, median 1
    relative_error: np.ndarray | None = None
    detrended: np.ndarray | None = None  # relative with the airmass and time trend divided out

    @property
    def flux(self) -> np.ndarray:
        return self.photometry.flux

    @property
    def error(self) -> np.ndarray:
        return self.photometry.error

    @property
    def flags(self) -> np.ndarray:
        return self.photometry.flags

    @property
    def shape(self) -> tuple[int, int]:
        stars, frames = self.flags.shape
        return stars, frames

    def blended(self) -> np.ndarray:
        """(stars,): another catalog star fell inside the window in some frame."""
        return np.asarray((self.flags & PhotometryFlag.NEIGHBOUR).any(axis=1))

    def unusable(self) -> np.ndarray:
        """(stars,): saturated, at or off the edge, or missing pixels in some frame."""
        return np.asarray((self.flags & UNUSABLE).any(axis=1))

    def colour(self) -> np.ndarray:
        """(stars,): instrumental B - R colour, mag (NaN without flux in both)."""
        with np.errstate(divide="ignore", invalid="ignore"):
            ratio = np.nanmedian(self.flux[..., 2], axis=1) / np.nanmedian(self.flux[..., 0], axis=1)
            return np.asarray(-2.5 * np.log10(ratio))

    def normalised(self) -> tuple[np.ndarray, np.ndarray]:
        """Flux and error over each star's median flux per channel: 1 on an average frame."""
        with np.errstate(divide="ignore", invalid="ignore"):
            median = np.nanmedian(self.flux, axis=1, keepdims=True)
            median = np.where(median > 0, median, np.nan)
            return self.flux / median, self.error / median

    def cadence_s(self) -> float:
        """The median time between frames, seconds (from the reference star's times)."""
        if self.time.shape[1] < 2:
            return float(np.nan)
        return float(np.median(np.diff(self.time[0])) * 86400.0)
