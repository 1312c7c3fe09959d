"""Match detected sources to reference stars through a solved WCS.

The catalog is cut to a cone around the field before anything is projected (a SIP polynomial
diverges far outside the frame), sources within ``edge_margin`` px of the edge are dropped
(cut-off stars give biased centroids and partial stamps), and each remaining source takes the
nearest catalog star on the sky within ``radius_arcsec``. A catalog star claimed by more than
one source is kept for each of them with ``duplicate`` set, so that photometry can skip them.
"""

from __future__ import annotations

import dataclasses

import numpy as np
from astropy.wcs import WCS
from scipy.spatial import cKDTree

from panoptes_network.science.catalog_stars import CatalogStars, angular_distance
from panoptes_network.science.source_detection import Sources, away_from_edges


@dataclasses.dataclass(frozen=True)
class MatchSettings:
    radius_arcsec: float = 25.0  # about 2.4 px at 10.3 arcsec/px
    edge_margin: float = 10.0  # px
    mag_range: tuple[float, float] = (6.0, 13.0)  # bright (saturated) .. faint (undetectable) limits
    cone_margin_deg: float = 0.2  # added to the field's half-diagonal for the catalog cone


@dataclasses.dataclass(frozen=True)
class Matches:
    """One row per matched source (indices into the source list and the catalog)."""

    source_index: np.ndarray
    catalog_index: np.ndarray
    separation_arcsec: np.ndarray
    duplicate: np.ndarray  # the catalog star matched more than one source
    ra: np.ndarray  # the source's measured position on the sky
    dec: np.ndarray
    catalog_x: np.ndarray  # the catalog star projected into the frame, 0-based px
    catalog_y: np.ndarray

    def __len__(self) -> int:
        return len(self.source_index)


@dataclasses.dataclass(frozen=True)
class FieldGeometry:
    """Where the frame is on the sky: centre, half-diagonal, scale and rotation."""

    ra: float
    dec: float
    radius_deg: float
    scale_arcsec: float
    rotation_deg: float  # angle of the +y pixel axis east of north
    width_deg: float
    height_deg: float


def field_geometry(wcs: WCS, shape: tuple[int, int]) -> FieldGeometry:
    rows, cols = shape
    centre = wcs.all_pix2world([[(cols - 1) / 2, (rows - 1) / 2]], 0)[0]
    corners = wcs.all_pix2world([[0, 0], [cols - 1, 0], [0, rows - 1], [cols - 1, rows - 1]], 0)
    radius = float(angular_distance(centre[0], centre[1], corners[:, 0], corners[:, 1]).max())
    cd = wcs.pixel_scale_matrix
    scale = float(np.sqrt(abs(np.linalg.det(cd))) * 3600.0)
    rotation = float(np.degrees(np.arctan2(-cd[0, 1], cd[1, 1])) % 360.0)
    mid = wcs.all_pix2world(
        [[0, (rows - 1) / 2], [cols - 1, (rows - 1) / 2], [(cols - 1) / 2, 0], [(cols - 1) / 2, rows - 1]], 0
    )
    width = float(angular_distance(mid[0, 0], mid[0, 1], mid[1:2, 0], mid[1:2, 1])[0])
    height = float(angular_distance(mid[2, 0], mid[2, 1], mid[3:4, 0], mid[3:4, 1])[0])
    return FieldGeometry(float(centre[0]), float(centre[1]), radius, scale, rotation, width, height)


def unit_vectors(ra: np.ndarray, dec: np.ndarray) -> np.ndarray:
    ra, dec = np.radians(ra), np.radians(dec)
    return np.column_stack((np.cos(dec) * np.cos(ra), np.cos(dec) * np.sin(ra), np.sin(dec)))


def match_sources(
    sources: Sources, wcs: WCS, shape: tuple[int, int], stars: CatalogStars, settings: MatchSettings = MatchSettings()
) -> Matches:
    """Nearest catalog star on the sky for every source away from the edges."""
    candidates = np.flatnonzero(away_from_edges(sources, shape, settings.edge_margin))
    if len(candidates) == 0 or len(stars) == 0:
        return _no_matches()
    sky = wcs.all_pix2world(np.column_stack((sources.x[candidates], sources.y[candidates])), 0)
    chord = 2 * np.sin(np.radians(settings.radius_arcsec / 3600.0) / 2)
    distance, nearest = cKDTree(unit_vectors(stars.ra, stars.dec)).query(
        unit_vectors(sky[:, 0], sky[:, 1]), distance_upper_bound=chord
    )
    found = np.isfinite(distance)
    if not found.any():
        return _no_matches()
    source_index, catalog_index, sky = candidates[found], nearest[found], sky[found]
    separation = np.degrees(2 * np.arcsin(distance[found] / 2)) * 3600.0
    counts = np.bincount(catalog_index, minlength=len(stars))
    projected = wcs.all_world2pix(np.column_stack((stars.ra[catalog_index], stars.dec[catalog_index])), 0)
    return Matches(
        source_index=source_index,
        catalog_index=catalog_index,
        separation_arcsec=separation,
        duplicate=counts[catalog_index] > 1,
        ra=sky[:, 0],
        dec=sky[:, 1],
        catalog_x=projected[:, 0],
        catalog_y=projected[:, 1],
    )


def _no_matches() -> Matches:
    empty_float, empty_int = np.zeros(0), np.zeros(0, dtype=np.int64)
    return Matches(
        empty_int, empty_int, empty_float, np.zeros(0, bool), empty_float, empty_float, empty_float, empty_float
    )
