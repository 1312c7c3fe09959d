"""What a real night adds to a synthetic observation: sky transparency, airmass, seeing, star colours, blends.

Lightcurves are only as trustworthy as the test data is hard: with a constant sky and grey stars
every comparison star is perfect. ``Conditions`` makes the night behave like one (a transparency
trend with flicker, the airmass of the field through the night with per-channel extinction, a PSF
whose FWHM wanders between 2.5 and 4 px, stars of different colours, close pairs) and
``NightTruth`` keeps what it decided, including each star's noise limit for a given aperture: the
photon noise of the star and of the sky under the aperture, and the read noise, from the same model
that drew the pixels.

Channels follow the RGGB mosaic: site 0 is R, sites 1 and 2 are G, site 3 is B (row-major in a 2x2
block). A star of flux F (ADU, all four sites) puts ``F * weight[site] / 4`` into each site's pixels
(weights average 1 over the block): the sum of its four channels is F times its transparency and
extinction.
"""

from __future__ import annotations

import dataclasses
import datetime as dt

import numpy as np

from panoptes_network.synthetic.frames import CHANNEL_SKY, GAIN, READ_NOISE

SITE_CHANNELS = ("R", "G", "G", "B")  # RGGB, row-major in a 2x2 block
CHANNELS = ("R", "G", "B")
LATITUDE_DEG = 19.54  # the header's LAT-OBS (Mauna Loa)


@dataclasses.dataclass(frozen=True)
class Conditions:
    """The night's behaviour; the defaults are a typical clear but imperfect night."""

    transparency_trend: float = 0.02  # fraction of light lost, linearly, from the first to the last frame
    transparency_flicker: float = 0.003  # rms per frame, independent
    fwhm_range: tuple[float, float] = (2.5, 4.0)  # px: the seeing wanders slowly between these
    start_hour_angle_h: float = -3.0  # the field's hour angle at the first frame
    extinction: tuple[float, float, float] = (0.12, 0.18, 0.28)  # R, G, B: mag per airmass
    magnitudes: tuple[float, float] = (7.0, 12.5)  # V of the random stars, uniform
    colours: tuple[float, float] = (0.0, 1.5)  # B-V of every star, uniform
    blended_pairs: int = 40  # a fainter companion added this close to as many stars
    blend_separation_px: tuple[float, float] = (4.0, 12.0)
    flux_at_mag_10: float = 15_000.0  # ADU, all four sites, at airmass 0 and full transparency


@dataclasses.dataclass(frozen=True)
class NightTruth:
    """Per frame and per star, what ``Conditions`` drew (frames are the science frames, in order)."""

    conditions: Conditions
    transparency: np.ndarray  # (frames,) fraction of light through the clouds
    airmass: np.ndarray  # (frames,)
    fwhm: np.ndarray  # (frames,) px
    mag: np.ndarray  # (stars,) V
    colour: np.ndarray  # (stars,) B-V
    blended: np.ndarray  # (stars,) bool: one of a pair drawn closer than the blend separation
    dec_deg: float

    def site_weights(self, frame: int) -> np.ndarray:
        """(stars, 4): each Bayer site's share x 4 of a star's flux in science frame ``frame``, after
        the colour, the extinction at the frame's airmass and the transparency."""
        return site_weights(self.colour, self.conditions.extinction, float(self.airmass[frame])) * float(
            self.transparency[frame]
        )

    def noise_limit(self, flux: np.ndarray, radius: float, sky_scale: np.ndarray) -> np.ndarray:
        """(stars, channels R, G, B, sum): the relative rms per frame of a star's aperture flux
        (``radius`` px) from photon, sky and read noise alone, averaged over the frames.
        ``sky_scale``: the sky's gradient and vignette at each star (1 = the channel's nominal sky)."""
        pixels = np.pi * radius**2
        channel_pixels = np.array([pixels / 4, pixels / 2, pixels / 4])
        channel_sky = np.array([CHANNEL_SKY["R"], CHANNEL_SKY["G1"], CHANNEL_SKY["B"]])
        signal = np.zeros((len(flux), 4))
        variance = np.zeros((len(flux), 4))
        frames = len(self.airmass)
        for f in range(frames):
            sites = self.site_weights(f) * flux[:, None] / 4  # ADU per site's share
            star = np.c_[sites[:, 0], sites[:, 1] + sites[:, 2], sites[:, 3]]
            var = star / GAIN + channel_pixels * (sky_scale[:, None] * channel_sky / GAIN + READ_NOISE**2)
            signal += np.c_[star, star.sum(axis=1)] / frames
            variance += np.c_[var, var.sum(axis=1)] / frames
        return np.asarray(np.sqrt(variance) / signal)


def site_weights(colour: np.ndarray, extinction: tuple[float, float, float], airmass: float) -> np.ndarray:
    """(stars, 4): a star's share x 4 per RGGB site: redder stars give R more and B less, each
    channel dimmed by its extinction at ``airmass``; the grey star at zenith averages 1."""
    tilt = 0.4 * (np.asarray(colour, dtype=np.float64) - 0.65)
    channel = np.c_[1.0 + tilt, np.ones_like(tilt), 1.0 - tilt]  # R, G, B
    channel *= 10 ** (-0.4 * np.asarray(extinction) * airmass)
    return np.asarray(channel[:, [0, 1, 1, 2]], dtype=np.float64)


def airmass_at(hour_angle_h: np.ndarray, dec_deg: float, latitude_deg: float = LATITUDE_DEG) -> np.ndarray:
    """Plane-parallel airmass sec(z) of a field at ``dec_deg`` at these hour angles."""
    lat, dec, ha = np.radians(latitude_deg), np.radians(dec_deg), np.radians(np.asarray(hour_angle_h) * 15.0)
    altitude_sin = np.sin(lat) * np.sin(dec) + np.cos(lat) * np.cos(dec) * np.cos(ha)
    return np.asarray(1.0 / altitude_sin)


def hour_angle(conditions: Conditions, times: list[dt.datetime]) -> np.ndarray:
    """The field's hour angle at each time: sidereal hours since the first frame."""
    hours = np.array([(t - times[0]).total_seconds() / 3600.0 for t in times]) * 1.0027379
    return np.asarray(conditions.start_hour_angle_h + hours)


def draw_night(
    conditions: Conditions, times: list[dt.datetime], dec_deg: float, stars: int, rng: np.random.Generator
) -> NightTruth:
    """Transparency, airmass and FWHM per frame, magnitude and colour per star (blends decided by the caller)."""
    frames = len(times)
    progress = np.linspace(0.0, 1.0, frames)
    transparency = (
        1.0 - conditions.transparency_trend * progress + rng.normal(0, conditions.transparency_flicker, frames)
    )
    low, high = conditions.fwhm_range
    phase = rng.uniform(0, 2 * np.pi)
    wander = 0.5 + 0.5 * np.sin(phase + 2 * np.pi * progress * 0.8)  # under one slow cycle through the night
    fwhm = np.clip(low + (high - low) * wander + rng.normal(0, 0.03, frames), low, high)
    return NightTruth(
        conditions=conditions,
        transparency=transparency,
        airmass=airmass_at(hour_angle(conditions, times), dec_deg),
        fwhm=fwhm,
        mag=rng.uniform(*conditions.magnitudes, stars),
        colour=rng.uniform(*conditions.colours, stars),
        blended=np.zeros(stars, bool),
        dec_deg=dec_deg,
    )


def add_blends(
    conditions: Conditions, x: np.ndarray, y: np.ndarray, mag: np.ndarray, colour: np.ndarray, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """A fainter companion (0.3-2 mag) at the blend separation next to ``blended_pairs`` of the stars;
    returns the stars with the companions appended and the mask of both members of each pair."""
    pairs = min(conditions.blended_pairs, len(x))
    primary = rng.choice(len(x), pairs, replace=False)
    separation = rng.uniform(*conditions.blend_separation_px, pairs)
    angle = rng.uniform(0, 2 * np.pi, pairs)
    blended = np.zeros(len(x) + pairs, bool)
    blended[primary] = True
    blended[len(x) :] = True
    return (
        np.append(x, x[primary] + separation * np.cos(angle)),
        np.append(y, y[primary] + separation * np.sin(angle)),
        np.append(mag, mag[primary] + rng.uniform(0.3, 2.0, pairs)),
        np.append(colour, rng.uniform(*conditions.colours, pairs)),
        blended,
    )
