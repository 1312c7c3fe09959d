"""From a background-subtracted frame to sources, a plate solution, catalog matches and stamps.

The plate-solver step's science in one pure function (``analyse_frame``): arrays, a header
and settings in, a ``FrameAnalysis`` out; no storage, no database. The step module does the
reading and writing around it.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

import numpy as np
from astropy.wcs import WCS

from panoptes_network.science.catalog_match import FieldGeometry, Matches, MatchSettings, field_geometry, match_sources
from panoptes_network.science.catalog_stars import CatalogStars, ConeSearch
from panoptes_network.science.postage_stamps import cut_stamps, stamp_origins
from panoptes_network.science.solve_field import Solution, SolveSettings, solve
from panoptes_network.science.source_detection import DetectionSettings, Sources, detect_sources


@dataclasses.dataclass(frozen=True)
class AnalysisSettings:
    detection: DetectionSettings = DetectionSettings()
    solve: SolveSettings = SolveSettings()
    match: MatchSettings = MatchSettings()
    stamp_size: int = 10  # px, even: every stamp starts on the same RGGB phase


@dataclasses.dataclass(frozen=True)
class FrameAnalysis:
    sources: Sources
    solution: Solution
    geometry: FieldGeometry | None = None
    stars: CatalogStars | None = None
    matches: Matches | None = None
    stamp_x0: np.ndarray | None = None
    stamp_y0: np.ndarray | None = None
    stamps: np.ndarray | None = None  # (matches, size, size) float32

    def solved(self) -> Solved | None:
        """What exists only for a solved frame, typed as present; None when it did not solve."""
        if self.solution.wcs is None or self.geometry is None or self.matches is None:
            return None
        return Solved(self.solution.wcs, self.geometry, self.matches)


@dataclasses.dataclass(frozen=True)
class Solved:
    wcs: WCS
    geometry: FieldGeometry
    matches: Matches


def mount_hint(header: Mapping[str, Any]) -> tuple[float, float] | None:
    """RA-MNT/DEC-MNT (degrees) when both are present and sane, else None (blind solving only)."""
    try:
        ra, dec = float(header["RA-MNT"]), float(header["DEC-MNT"])
    except (KeyError, TypeError, ValueError):
        return None
    if not (np.isfinite(ra) and np.isfinite(dec) and -90.0 <= dec <= 90.0):
        return None
    return ra % 360.0, dec


def analyse_frame(
    frame: np.ndarray,
    rms: np.ndarray | float,
    header: Mapping[str, Any],
    cone: ConeSearch,
    settings: AnalysisSettings = AnalysisSettings(),
    saturated: np.ndarray | None = None,
) -> FrameAnalysis:
    """Detect, solve, then (when solved) match to the stars ``cone`` finds and cut stamps of the matches.

    ``saturated``: the raw frame's saturated pixels; those stars stay out of the solve and are flagged."""
    sources = detect_sources(frame, rms, settings.detection, saturated)
    solution = solve(sources, frame.shape, mount_hint(header), settings.solve)
    if solution.wcs is None:
        return FrameAnalysis(sources, solution)
    geometry = field_geometry(solution.wcs, frame.shape)
    stars = cone(
        geometry.ra, geometry.dec, geometry.radius_deg + settings.match.cone_margin_deg, settings.match.mag_range
    )
    matches = match_sources(sources, solution.wcs, frame.shape, stars, settings.match)
    xs, ys = sources.x[matches.source_index], sources.y[matches.source_index]
    x0, y0 = stamp_origins(xs, ys, settings.stamp_size, frame.shape)
    stamps = cut_stamps(frame, x0, y0, settings.stamp_size)
    return FrameAnalysis(sources, solution, geometry, stars, matches, x0, y0, stamps)


def stamp_rows(analysis: FrameAnalysis, image_id: str, sequence_id: str) -> list[dict[str, Any]]:
    """One row per matched source, in the columns of the ``stamps`` table (pixels as float32 arrays)."""
    matches, sources, stars = analysis.matches, analysis.sources, analysis.stars
    stamps, stamp_x0, stamp_y0 = analysis.stamps, analysis.stamp_x0, analysis.stamp_y0
    if matches is None or stars is None or stamps is None or stamp_x0 is None or stamp_y0 is None:
        return []
    size = stamps.shape[1] if len(stamps) else 0
    rows = []
    for k, (s, c) in enumerate(zip(matches.source_index.tolist(), matches.catalog_index.tolist())):
        rows.append(
            {
                "image_id": image_id,
                "source_id": s,
                "sequence_id": sequence_id,
                "catalog": stars.catalog,
                "catalog_id": str(stars.ids[c]),
                "catalog_ra": float(stars.ra[c]),
                "catalog_dec": float(stars.dec[c]),
                "catalog_mag": _number(stars.mag[c]),
                "catalog_x": float(matches.catalog_x[k]),
                "catalog_y": float(matches.catalog_y[k]),
                "x": float(sources.x[s]),
                "y": float(sources.y[s]),
                "ra": float(matches.ra[k]),
                "dec": float(matches.dec[k]),
                "flux": float(sources.flux[s]),
                "flux_err": _number(sources.flux_err[s]),
                "peak": _number(sources.peak[s]),
                "fwhm": _number(sources.fwhm[s]),
                "ellipticity": _number(sources.ellipticity[s]),
                "flags": int(sources.flags[s]),
                "saturated": bool(sources.saturated[s]),
                "separation_arcsec": float(matches.separation_arcsec[k]),
                "duplicate": bool(matches.duplicate[k]),
                "stamp_x0": int(stamp_x0[k]),
                "stamp_y0": int(stamp_y0[k]),
                "stamp_width": size,
                "stamp_height": size,
                "pixels": stamps[k],
            }
        )
    return rows


def _number(value: Any) -> float | None:
    value = float(value)
    return value if np.isfinite(value) else None


def source_summary(analysis: FrameAnalysis) -> dict[str, Any]:
    """Counts and median shape of the detections (and matches, when solved), for the image record."""
    sources, matches = analysis.sources, analysis.matches
    clean = sources.flags == 0
    summary: dict[str, Any] = {
        "detected": len(sources),
        "clean": int(clean.sum()),
        "saturated": int(sources.saturated.sum()),
        "windowed": int(sources.windowed.sum()),
        "used_for_solve": analysis.solution.sources_used,
        "median_fwhm_px": _median(sources.fwhm[clean & ~sources.saturated]),
        "median_ellipticity": _median(sources.ellipticity[clean & ~sources.saturated]),
    }
    if matches is not None and analysis.stars is not None:
        summary |= {
            "catalog": analysis.stars.catalog,
            "catalog_stars": len(analysis.stars),
            "matched": len(matches),
            "duplicates": int(matches.duplicate.sum()),
            "matched_saturated": int(sources.saturated[matches.source_index].sum()),
            "median_separation_arcsec": _median(matches.separation_arcsec),
        }
    return summary


def _median(values: np.ndarray) -> float | None:
    values = values[np.isfinite(values)]
    return round(float(np.median(values)), 4) if len(values) else None
