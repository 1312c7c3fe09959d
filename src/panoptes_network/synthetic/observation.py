"""Synthetic observations: one unit's sequence of frames of one field, with the truth to check against.

A PANOPTES unit follows one field for hours. Its frames share the sky (fixed to the detector:
gradient, vignette, channel offsets) while the stars move: the mount drifts slowly (a pixel
offset growing linearly through the night) and jitters from frame to frame. Every frame gets
its own noise; frames follow the exposure cadence. Optionally one star varies (e.g. a transit
box), some frames are blurred (a per-frame FWHM), pointing images (``pointingNN``, header
``POINTING = T``, taken before the sequence at the uncorrected mount position) and darks
(``IMAGETYP = 'Dark Frame'``, ``DARK = T``, after it) are added. Frames are written as
``.fits.fz`` under the canonical raw path ``{unit}/{camera}/{sequence_time}/{image}.fits.fz``.

Offsets are in pixels, 0-based, of the sky against the first science frame (the reference):
a star at ``(x, y)`` in the reference frame sits at ``(x + dx, y + dy)`` in a frame with offset
``(dx, dy)``, and that frame's true WCS has ``CRPIX`` moved by the same amount. Stars are drawn
at random over the field (``stars``), or, with ``stars=None``, are the real Tycho-2 stars of the
field through its TAN WCS (``synthetic.star_field``; needs the installed index files).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import enum
import functools
from collections.abc import Iterator, Mapping
from pathlib import Path

import numpy as np
from astropy.io import fits
from astropy.wcs import WCS

from panoptes_network.adapters.reference_catalog import ReferenceCatalog
from panoptes_network.adapters.tycho2_index_catalog import Tycho2IndexCatalog
from panoptes_network.core.names import TIME_FORMAT
from panoptes_network.science.fits_codec import compressed_file
from panoptes_network.synthetic.frames import (
    BLACK_LEVEL,
    GAIN,
    READ_NOISE,
    SATURATION,
    FrameSpec,
    bayer_sky,
    header_for,
    sky_shape,
)
from panoptes_network.synthetic.night_conditions import Conditions, NightTruth, add_blends, draw_night
from panoptes_network.synthetic.star_field import StarFieldSpec, draw_stars, pointing_hint, true_wcs

SMALL_SHAPE = (300, 400)  # rows, columns: unit tests


class FrameKind(str, enum.Enum):
    SCIENCE = "science"
    POINTING = "pointing"
    DARK = "dark"


@dataclasses.dataclass(frozen=True)
class Variability:
    """A star added at ``(x, y)`` of the reference frame whose flux is ``flux`` x ``curve[i]`` in science frame i."""

    x: float
    y: float
    flux: float  # ADU, all four channels
    curve: tuple[float, ...]


def transit_box(frames: int, start: int, stop: int, depth: float) -> tuple[float, ...]:
    """A relative flux of 1, dimmed by ``depth`` in science frames ``start`` to ``stop - 1``."""
    return tuple(1.0 - depth if start <= i < stop else 1.0 for i in range(frames))


@dataclasses.dataclass(frozen=True)
class ObservationSpec:
    """One observation; the field's geometry, PSF and frame size come from ``field``."""

    field: StarFieldSpec = StarFieldSpec(shape=SMALL_SHAPE)
    frames: int = 20
    stars: int | None = 150  # random stars; None: the real sky (Tycho-2 through the field's WCS)
    unit_id: str = "PAN000"
    camera_id: str = "SC5348"
    field_name: str = "KIC 8462852"
    exptime: float = 120.0  # s
    cadence_s: int = 150  # s between the starts of consecutive exposures
    first_exposure_s: int = 90  # s after the sequence time: the pointing images come first
    drift_px_per_hour: tuple[float, float] = (6.0, -3.0)  # (x, y), the mount's slow drift
    jitter_px: float = 0.3  # Gaussian, per axis and frame
    fwhm_by_frame: Mapping[int, float] = dataclasses.field(default_factory=dict)  # science frame -> FWHM px
    variable: Variability | None = None
    pointing_images: int = 0
    pointing_offset_px: tuple[float, float] = (37.0, -21.0)  # before the mount's correction
    pointing_exptime: float = 30.0
    darks: int = 0
    seed: int = 1
    conditions: Conditions | None = None  # a real night's transparency, airmass, seeing, colours, blends


@dataclasses.dataclass(frozen=True)
class PlannedFrame:
    """One frame's truth: what it is, where it goes, when, and how its sky is placed."""

    kind: FrameKind
    index: int  # within its kind
    name: str  # canonical raw path, ``.fits.fz``
    time: dt.datetime  # start of the exposure (DATE-OBS)
    exptime: float
    offset: tuple[float, float]  # (dx, dy) px against the reference frame; (0, 0) for darks
    fwhm: float  # px

    @property
    def is_science(self) -> bool:
        return self.kind is FrameKind.SCIENCE


@dataclasses.dataclass(frozen=True)
class ObservationTruth:
    """Everything the generator decided: per-frame placement and the stars of the reference frame."""

    spec: ObservationSpec
    frames: tuple[PlannedFrame, ...]  # pointing images, science frames, darks, in time order
    star_x: np.ndarray  # reference frame, 0-based
    star_y: np.ndarray
    star_flux: np.ndarray  # ADU, all four channels, in a science exposure
    curves: Mapping[int, np.ndarray]  # star index -> relative flux per science frame
    hint: tuple[float, float]  # RA-MNT, DEC-MNT written into the headers
    night: NightTruth | None = None  # with ``spec.conditions``: per frame and per star, what the night did

    @property
    def science(self) -> tuple[PlannedFrame, ...]:
        return tuple(f for f in self.frames if f.is_science)

    @property
    def offsets(self) -> np.ndarray:
        """(science frames, 2): dx, dy of each science frame against the first."""
        return np.array([f.offset for f in self.science])

    @property
    def fwhm(self) -> np.ndarray:
        return np.array([f.fwhm for f in self.science])

    @property
    def times(self) -> list[dt.datetime]:
        return [f.time for f in self.science]

    @property
    def sequence_id(self) -> str:
        s = self.spec
        return f"{s.unit_id}_{s.camera_id}_{s.field.sequence_time.strftime(TIME_FORMAT)}"

    def positions(self, frame: PlannedFrame) -> tuple[np.ndarray, np.ndarray]:
        """Where every star sits in ``frame`` (0-based px)."""
        return self.star_x + frame.offset[0], self.star_y + frame.offset[1]

    def noise_limit(self, radius: float) -> np.ndarray:
        """(stars, channels R, G, B, sum): each star's relative rms per science frame in an aperture of
        ``radius`` px from photon, sky and read noise alone (needs ``spec.conditions``; the variable's
        curve is ignored)."""
        if self.night is None:
            raise ValueError("the noise limit needs an observation made with conditions")
        shape = self.spec.field.shape
        return self.night.noise_limit(self.star_flux, radius, sky_shape(shape, self.star_x, self.star_y))

    def wcs(self, frame: PlannedFrame) -> WCS:
        """The frame's true WCS: the field's, moved with the frame's offset."""
        wcs = true_wcs(self.spec.field)
        wcs.wcs.crpix = wcs.wcs.crpix + np.array(frame.offset)
        return wcs


def _frame_name(spec: ObservationSpec, image: str) -> str:
    sequence = spec.field.sequence_time.strftime(TIME_FORMAT)
    return f"{spec.unit_id}/{spec.camera_id}/{sequence}/{image}.fits.fz"


def _random_stars(
    spec: ObservationSpec, count: int, rng: np.random.Generator, margin: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Stars over the frame and the margin the drift uncovers, fluxes a power law as ``frames.add_stars``."""
    rows, cols = spec.field.shape
    x = rng.uniform(-margin, cols + margin, count)
    y = rng.uniform(-margin, rows + margin, count)
    return x, y, 2e3 * rng.pareto(1.3, count) + 500.0


def _real_stars(
    spec: ObservationSpec, catalog: ReferenceCatalog | None, margin: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The field's Tycho-2 stars through its true WCS, fluxes from their magnitudes."""
    field = spec.field
    rows, cols = field.shape
    radius = (np.hypot(rows, cols) / 2 + margin) * field.scale_arcsec / 3600.0 + 0.1
    stars = (catalog or Tycho2IndexCatalog()).cone(field.ra, field.dec, radius, (-2.0, field.mag_limit))
    x, y = true_wcs(field).all_world2pix(stars.ra, stars.dec, 0)
    return x, y, field.flux_at_mag_10 * 10 ** (-0.4 * (np.asarray(stars.mag) - 10.0))


def plan_observation(spec: ObservationSpec, catalog: ReferenceCatalog | None = None) -> ObservationTruth:
    """Decide every frame's time, offset and FWHM and the stars (no pixels yet)."""
    rng = np.random.default_rng([spec.seed, 0])
    start = spec.field.sequence_time
    hours = (spec.first_exposure_s + spec.cadence_s * np.arange(spec.frames)) / 3600.0
    drift = np.outer(hours - hours[0], spec.drift_px_per_hour)
    jitter = rng.normal(0.0, spec.jitter_px, (spec.frames, 2))
    offsets = drift + jitter - jitter[0]
    frames: list[PlannedFrame] = []
    for i in range(spec.pointing_images):
        time = start + dt.timedelta(seconds=5 + i * (spec.pointing_exptime + 10))
        pointing = (spec.pointing_offset_px[0] / (i + 1), spec.pointing_offset_px[1] / (i + 1))  # each corrects
        name = _frame_name(spec, f"pointing{i + 1:02d}")
        frames.append(PlannedFrame(FrameKind.POINTING, i, name, time, spec.pointing_exptime, pointing, spec.field.fwhm))
    for i in range(spec.frames):
        time = start + dt.timedelta(seconds=spec.first_exposure_s + i * spec.cadence_s)
        name = _frame_name(spec, time.strftime(TIME_FORMAT))
        fwhm = spec.fwhm_by_frame.get(i, spec.field.fwhm)
        frames.append(
            PlannedFrame(
                FrameKind.SCIENCE, i, name, time, spec.exptime, (float(offsets[i, 0]), float(offsets[i, 1])), fwhm
            )
        )
    end = frames[-1].time + dt.timedelta(seconds=spec.cadence_s)
    for i in range(spec.darks):
        time = end + dt.timedelta(seconds=i * spec.cadence_s)
        name = _frame_name(spec, time.strftime(TIME_FORMAT))
        frames.append(PlannedFrame(FrameKind.DARK, i, name, time, spec.exptime, (0.0, 0.0), spec.field.fwhm))
    margin = float(np.abs(offsets).max() + np.abs(spec.pointing_offset_px).max() * (spec.pointing_images > 0)) + 10
    if spec.stars is None:
        x, y, flux = _real_stars(spec, catalog, margin)
    else:
        x, y, flux = _random_stars(spec, spec.stars, rng, margin)
    night = None
    if spec.conditions is not None:
        times = [f.time for f in frames if f.is_science]
        x, y, flux, night = _night(spec, spec.conditions, times, x, y, flux)
        frames = [dataclasses.replace(f, fwhm=_night_fwhm(spec, night, f)) for f in frames]
    curves: dict[int, np.ndarray] = {}
    if spec.variable is not None:
        if len(spec.variable.curve) != spec.frames:
            raise ValueError(f"the variable's curve has {len(spec.variable.curve)} values for {spec.frames} frames")
        curves[len(x)] = np.asarray(spec.variable.curve, dtype=np.float64)
        x, y, flux = np.append(x, spec.variable.x), np.append(y, spec.variable.y), np.append(flux, spec.variable.flux)
        if night is not None:
            mag = 10.0 - 2.5 * np.log10(spec.variable.flux / night.conditions.flux_at_mag_10)
            night = dataclasses.replace(
                night,
                mag=np.append(night.mag, mag),
                colour=np.append(night.colour, 0.65),
                blended=np.append(night.blended, False),
            )
    return ObservationTruth(spec, tuple(frames), x, y, flux, curves, pointing_hint(spec.field, rng), night)


def _night(
    spec: ObservationSpec,
    conditions: Conditions,
    times: list[dt.datetime],
    x: np.ndarray,
    y: np.ndarray,
    flux: np.ndarray,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, NightTruth]:
    """The night's conditions; random stars get magnitudes from ``conditions``; every star colours and companions."""
    night = draw_night(conditions, times, spec.field.dec, len(x), np.random.default_rng([spec.seed, 7]))
    mag = night.mag if spec.stars is not None else 10.0 - 2.5 * np.log10(flux / conditions.flux_at_mag_10)
    x, y, mag, colour, blended = add_blends(conditions, x, y, mag, night.colour, np.random.default_rng([spec.seed, 8]))
    flux = conditions.flux_at_mag_10 * 10 ** (-0.4 * (mag - 10.0))
    return x, y, flux, dataclasses.replace(night, mag=mag, colour=colour, blended=blended)


def _night_fwhm(spec: ObservationSpec, night: NightTruth, frame: PlannedFrame) -> float:
    """The night's seeing in a science frame (``fwhm_by_frame`` still wins), the first frame's elsewhere."""
    if not frame.is_science:
        return float(night.fwhm[0])
    return spec.fwhm_by_frame.get(frame.index, float(night.fwhm[frame.index]))


def _header(truth: ObservationTruth, frame: PlannedFrame) -> fits.Header:
    """POCS keywords for the frame (``frames.header_for``), plus what marks pointing images and darks."""
    spec = truth.spec
    frame_spec = FrameSpec(
        unit_id=spec.unit_id,
        camera_id=spec.camera_id,
        sequence_time=spec.field.sequence_time,
        exposure_offset_s=int((frame.time - spec.field.sequence_time).total_seconds()),
        exptime=frame.exptime,
        ra=truth.hint[0],
        dec=truth.hint[1],
        field_name=spec.field_name,
        shape=spec.field.shape,
    )
    header = header_for(frame_spec)
    if truth.night is not None and frame.is_science:
        header["AIRMASS"] = (round(float(truth.night.airmass[frame.index]), 4), "Sec(z)")
    if frame.kind is FrameKind.POINTING:
        header["POINTING"] = (True, "Pointing image")
    elif frame.kind is FrameKind.DARK:
        header["IMAGETYP"] = "Dark Frame"
        header["DARK"] = (True, "Dark frame")
    return header


@functools.lru_cache(maxsize=2)
def _sky(shape: tuple[int, int]) -> np.ndarray:
    """The sky every frame of an observation shares (computed once: 0.3 s for a full frame); read-only."""
    sky = bayer_sky(shape)
    sky.flags.writeable = False
    return sky


def _frame_rng(truth: ObservationTruth, frame: PlannedFrame, stream: int = 0) -> np.random.Generator:
    """Each frame's own noise; ``stream`` 1 is the thinning of ``render_science_pair``, apart from the rest."""
    kinds = list(FrameKind)
    key = [truth.spec.seed, 1 + kinds.index(frame.kind), frame.index] + ([stream] if stream else [])
    return np.random.default_rng(key)


def _signal(truth: ObservationTruth, frame: PlannedFrame, vary: bool = True) -> np.ndarray:
    """The frame's expected ADU above black: the sky and every star (variables on their curve if ``vary``)."""
    spec = truth.spec
    shape = spec.field.shape
    if frame.kind is FrameKind.DARK:
        return np.zeros(shape, np.float32)
    scale = frame.exptime / spec.exptime
    signal = _sky(shape) * np.float32(scale)
    flux = truth.star_flux * scale
    if frame.is_science and vary:
        flux = flux.copy()
        for star, curve in truth.curves.items():
            flux[star] *= curve[frame.index]
    x, y = truth.positions(frame)
    night = truth.night
    sites = None if night is None else night.site_weights(frame.index if frame.is_science else 0)
    draw_stars(signal, x, y, flux, frame.fwhm, sites)
    return signal


def _variation(truth: ObservationTruth, frame: PlannedFrame) -> np.ndarray:
    """What the variables add to a science frame's expected ADU: their PSFs x flux x (curve - 1)."""
    variation = np.zeros(truth.spec.field.shape, np.float32)
    stars = np.array(sorted(truth.curves), dtype=np.int64)
    change = np.array([truth.curves[s][frame.index] - 1.0 for s in stars])
    x, y = truth.positions(frame)
    night = truth.night
    sites = None if night is None else night.site_weights(frame.index)[stars]
    scale = frame.exptime / truth.spec.exptime
    draw_stars(variation, x[stars], y[stars], truth.star_flux[stars] * scale * change, frame.fwhm, sites)
    return variation


def _readout(rng: np.random.Generator, *electrons: np.ndarray) -> list[np.ndarray]:
    """Raw uint16 pixels of each electron image (float64, converted in place: a full frame), one read noise
    for all of them."""
    noise = rng.normal(0, READ_NOISE, electrons[0].shape)
    pixels = []
    for adu in electrons:
        adu /= GAIN
        adu += BLACK_LEVEL
        adu += noise
        np.rint(adu, out=adu)
        pixels.append(np.clip(adu, 0, BLACK_LEVEL + SATURATION, out=adu).astype(np.uint16))
    return pixels


def render_frame(truth: ObservationTruth, frame: PlannedFrame) -> tuple[np.ndarray, fits.Header]:
    """The frame's raw pixels (uint16, black level included) and header; noise of its own."""
    rng = _frame_rng(truth, frame)
    electrons = rng.poisson(np.clip(_signal(truth, frame), 0, None) * GAIN).astype(np.float64)
    return _readout(rng, electrons)[0], _header(truth, frame)


def render_science_pair(truth: ObservationTruth, frame: PlannedFrame) -> tuple[np.ndarray, np.ndarray]:
    """A science frame as planned and the same exposure with every variable star held at its mean flux.

    Comparing a night with a signal to the same night without one needs both, and rendering a full
    frame twice is the cost of such a test. One Poisson draw serves both: the constant frame is bit for
    bit ``render_frame`` of the truth without curves; for the planned one the variables' missing
    electrons are thinned out of it (a Poisson count whose electrons are each kept with probability p
    is exactly Poisson with p x its mean) and any extra ones drawn on top; the read noise is shared.
    The two differ only under the variables' PSFs.
    """
    if not frame.is_science:
        raise ValueError(f"{frame.name} is not a science frame")
    rng = _frame_rng(truth, frame)
    constant = np.clip(_signal(truth, frame, vary=False), 0, None)
    electrons = rng.poisson(constant * GAIN).astype(np.float64)
    change = _variation(truth, frame)
    planned = electrons.copy()
    lost, gained = change < 0, change > 0
    thinning = _frame_rng(truth, frame, stream=1)
    planned[lost] -= thinning.binomial(electrons[lost].astype(np.int64), -change[lost] / constant[lost])
    planned[gained] += thinning.poisson(change[gained] * GAIN)
    as_planned, held = _readout(rng, planned, electrons)
    return as_planned, held


def render_observation(truth: ObservationTruth) -> Iterator[tuple[PlannedFrame, np.ndarray, fits.Header]]:
    """Every frame in time order, rendered one at a time (a full frame is 36 MB)."""
    for frame in truth.frames:
        data, header = render_frame(truth, frame)
        yield frame, data, header


def write_observation(spec: ObservationSpec, root: Path, catalog: ReferenceCatalog | None = None) -> ObservationTruth:
    """Write every frame as ``root/{canonical raw path}`` (``.fits.fz``, Rice, as a unit uploads it)."""
    truth = plan_observation(spec, catalog)
    for frame, data, header in render_observation(truth):
        path = Path(root) / frame.name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(compressed_file(data, header))
    return truth
