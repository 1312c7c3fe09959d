"""The stamp cube file of a synthetic observation, cut as the observation step cuts it, without the chain.

Plate-solving and background-modelling sixty full frames takes many minutes; the lightcurves only
need the cube. Here each science frame is rendered when the cube reaches it (a full frame is 36 MB
of pixels, 72 MB as float32), the generator's own sky is subtracted (what a perfect background model
leaves), and ``stamp_cube.cut_cubes`` cuts it at the truth's offsets, the drift the step measures
from the WCS to a tenth of a pixel; ``stamp_cube_file.stamps_fits`` writes the file the step stores.
Stars are the truth's, with their V magnitude, that fall on the detector in every frame
(``observation_products.inside_every_frame``, as the step keeps them).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Iterator

import numpy as np

from panoptes_network.science.observation_products import inside_every_frame
from panoptes_network.science.stamp_cube import StampSettings, cut_cubes
from panoptes_network.science.stamp_cube_file import CubeFrame, CubeStars, stamps_fits
from panoptes_network.synthetic.frames import BLACK_LEVEL, bayer_sky
from panoptes_network.synthetic.observation import ObservationTruth, render_frame, render_science_pair


def _less_sky(truth: ObservationTruth, frames: Iterable[tuple[np.ndarray, ...]]) -> Iterator[list[np.ndarray]]:
    """Each raw frame version less the generator's sky and black level (float32), frame by frame."""
    sky = bayer_sky(truth.spec.field.shape) + np.float32(BLACK_LEVEL)
    for versions in frames:
        yield [data.astype(np.float32) - sky for data in versions]


@dataclasses.dataclass(frozen=True)
class NightCube:
    data: bytes  # stamps.fits
    stars: np.ndarray  # the truth's star index of each cube star, in cube order


def night_cube(truth: ObservationTruth, size: int = 16) -> NightCube:
    """The stamp cube file of every science frame of ``truth`` (which needs ``conditions``: magnitudes)."""
    rendered = ((render_frame(truth, frame)[0],) for frame in truth.science)
    return _night_cubes(truth, rendered, 1, size)[0]


def night_cubes(truth: ObservationTruth, size: int = 16) -> tuple[NightCube, NightCube]:
    """``night_cube`` of ``truth`` and of the same exposures with its variable stars held at their mean
    flux (``observation.render_science_pair``: each frame rendered once, the two differ only under the
    variables)."""
    planned, held = _night_cubes(truth, (render_science_pair(truth, frame) for frame in truth.science), 2, size)
    return planned, held


def _night_cubes(
    truth: ObservationTruth, rendered: Iterable[tuple[np.ndarray, ...]], versions: int, size: int
) -> list[NightCube]:
    """The stamp cube file of each version of the ``rendered`` science frames."""
    if truth.night is None:
        raise ValueError("the night cube needs an observation made with conditions")
    science = truth.science
    offsets = truth.offsets
    ra, dec = truth.wcs(science[0]).all_pix2world(truth.star_x, truth.star_y, 0)
    every = CubeStars(
        np.array([f"star-{i}" for i in range(len(ra))]), ra, dec, truth.night.mag, truth.star_x, truth.star_y
    )
    keep = np.flatnonzero(inside_every_frame(every, offsets, truth.spec.field.shape))
    stars = CubeStars(*(np.asarray(column)[keep] for column in dataclasses.astuple(every)))
    frames = _less_sky(truth, rendered)
    cubes = cut_cubes(frames, (len(science), versions), stars.x, stars.y, offsets, StampSettings(size=size))
    records = [
        CubeFrame(
            f"{truth.sequence_id}_{f.index:03d}",
            f.time,
            f.exptime,
            float(truth.night.airmass[f.index]),
            12.0,
            (float(dx), float(dy)),
        )  # fmt: skip
        for f, (dx, dy) in zip(science, offsets)
    ]
    return [NightCube(stamps_fits(truth.sequence_id, cube, stars, records), keep) for cube in cubes]
