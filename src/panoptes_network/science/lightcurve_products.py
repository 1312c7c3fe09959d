"""What the lightcurves step stores and records, made from one ``Lightcurves`` value.

Files (bytes, deterministic: Parquet without run-varying statistics, PNG without a timestamp):
``lightcurves.parquet`` one row per (star, frame, channel) of every star; ``comparisons.parquet``
one row per (star, channel, comparison star) with its weight; ``lightcurve.png`` the target's
relative flux per channel against time, binned, over its comparison ensemble's flux. The record
(JSON-ready): precision per magnitude bin and channel (ppm per frame and per hour, from the stars
that are neither unusable, blended nor variable), the target's, the candidates, and the comparison
summary. The layout is documented in docs/observation-products.md.
"""

from __future__ import annotations

import dataclasses
import io
import math
from collections.abc import Mapping
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from panoptes_network.science.comparison_stars import comparison_table
from panoptes_network.science.fluxes import SUM, Fluxes
from panoptes_network.science.forced_photometry import CHANNELS
from panoptes_network.science.lightcurves import Lightcurves

LIGHTCURVE_FILES: Mapping[str, tuple[str, str]] = {
    "lightcurves": ("lightcurves.parquet", "application/vnd.apache.parquet"),
    "comparisons": ("comparisons.parquet", "application/vnd.apache.parquet"),
    "lightcurve_plot": ("lightcurve.png", "image/png"),
}
MAG_BIN = 0.5  # mag, the precision table's bins
PLOT_BIN_MINUTES = 10.0


@dataclasses.dataclass(frozen=True)
class LightcurveProducts:
    files: Mapping[str, bytes]  # key of LIGHTCURVE_FILES -> bytes
    record: dict[str, Any]  # precision, target, candidates, comparisons: JSON values


def _parquet(columns: Mapping[str, Any]) -> bytes:
    buffer = io.BytesIO()
    pq.write_table(pa.table(dict(columns)), buffer, compression="zstd", write_statistics=False)
    return buffer.getvalue()


def lightcurves_parquet(lightcurves: Lightcurves) -> bytes:
    """Every star's lightcurve, long: one row per (star, frame, channel), star-major."""
    fluxes = lightcurves.fluxes
    stars, frames = fluxes.shape
    channels = len(CHANNELS)
    star = np.repeat(np.arange(stars, dtype=np.int32), frames * channels)

    def per_sample(values: np.ndarray | None, kind: type = np.float32) -> np.ndarray:
        return np.full(stars * frames * channels, np.nan, kind) if values is None else values.astype(kind).ravel()

    counts = np.stack([np.diff(w.indptr) for w in lightcurves.comparisons.weights], axis=-1)  # (stars, channels)
    return _parquet(
        {
            "star": star,
            "star_id": pa.DictionaryArray.from_arrays(star, pa.array(np.asarray(fluxes.ids).astype(str))),
            "mag": np.asarray(fluxes.mag, np.float32)[star],
            "frame": np.tile(np.repeat(np.arange(frames, dtype=np.int16), channels), stars),
            "bjd_tdb": np.repeat(fluxes.time.ravel(), channels),
            "channel": pa.DictionaryArray.from_arrays(
                np.tile(np.arange(channels, dtype=np.int8), stars * frames), pa.array(CHANNELS)
            ),
            "flux": per_sample(fluxes.flux),
            "flux_err": per_sample(fluxes.error),
            "sky": per_sample(fluxes.photometry.sky),
            "sky_rms": per_sample(fluxes.photometry.sky_rms),
            "rel_flux": per_sample(fluxes.relative),
            "rel_err": per_sample(fluxes.relative_error),
            "detrended": per_sample(fluxes.detrended),
            "flags": np.repeat(fluxes.flags.astype(np.int32).ravel(), channels),
            "comparisons": np.repeat(counts.astype(np.int16), frames, axis=0).ravel(),
        }
    )


def comparisons_parquet(lightcurves: Lightcurves) -> bytes:
    return _parquet(comparison_table(lightcurves.fluxes, lightcurves.comparisons))


def quiet_stars(lightcurves: Lightcurves) -> np.ndarray:
    """Stars whose scatter measures the precision: usable, not blended, not variable, detrended."""
    fluxes = lightcurves.fluxes
    detrended = np.isfinite(fluxes.detrended[..., SUM]).all(axis=1) if fluxes.detrended is not None else False
    return np.asarray(~fluxes.unusable() & ~fluxes.blended() & ~lightcurves.comparisons.variable & detrended)


def ppm(lightcurves: Lightcurves, star: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(len(star), channels): ppm per frame (the detrended flux's standard deviation) and per hour
    (that over the square root of the frames an hour holds)."""
    fluxes = lightcurves.fluxes
    if fluxes.detrended is None or len(star) == 0:
        empty = np.full((len(star), len(CHANNELS)), np.nan)
        return empty, empty
    per_frame = np.nanstd(fluxes.detrended[star], axis=1) * 1e6
    return per_frame, per_frame * math.sqrt(fluxes.cadence_s() / 3600.0)


def _number(value: float) -> float | None:
    return None if not math.isfinite(value) else round(float(value), 6)


def precision_table(lightcurves: Lightcurves) -> list[dict[str, Any]]:
    """Per magnitude bin: the quiet stars' median ppm per frame and per hour, per channel."""
    quiet = np.flatnonzero(quiet_stars(lightcurves))
    mag = lightcurves.fluxes.mag[quiet]
    finite = np.isfinite(mag)
    if not finite.any():
        return []
    per_frame, per_hour = ppm(lightcurves, quiet)
    edges = np.arange(math.floor(mag[finite].min() / MAG_BIN) * MAG_BIN, mag[finite].max() + MAG_BIN, MAG_BIN)
    rows = []
    for low in edges:
        inside = finite & (mag >= low) & (mag < low + MAG_BIN)
        if inside.any():
            rows.append(
                {
                    "mag_min": round(float(low), 2),
                    "mag_max": round(float(low + MAG_BIN), 2),
                    "stars": int(inside.sum()),
                    "ppm_frame": {c: _number(float(np.median(per_frame[inside, i]))) for i, c in enumerate(CHANNELS)},
                    "ppm_hour": {c: _number(float(np.median(per_hour[inside, i]))) for i, c in enumerate(CHANNELS)},
                }
            )
    return rows


def target_star(fluxes: Fluxes, ra: float | None, dec: float | None) -> int | None:
    """The star nearest (ra, dec), else nearest the stars' middle; None without stars. Stars
    measured in every frame come first: the pointing or FIELD position often falls near the edge
    of a frame or off it (a crop, the mount's offset), and an unmeasured target is an empty plot."""
    if fluxes.shape[0] == 0:
        return None
    if ra is None or dec is None:
        ra, dec = float(np.nanmedian(fluxes.ra)), float(np.nanmedian(fluxes.dec))
    cos_dec = math.cos(math.radians(dec))
    distance = np.hypot((np.asarray(fluxes.ra) - ra + 180.0) % 360.0 - 180.0, (np.asarray(fluxes.dec) - dec) / cos_dec)
    measured = ~fluxes.unusable()
    if measured.any():
        distance = np.where(measured, distance, np.inf)
    return int(np.nanargmin(distance))


def target_record(lightcurves: Lightcurves, star: int) -> dict[str, Any]:
    fluxes = lightcurves.fluxes
    per_frame, per_hour = ppm(lightcurves, np.array([star]))
    comparisons, weights = lightcurves.comparisons.of(star, SUM)
    return {
        "star": star,
        "star_id": str(fluxes.ids[star]),
        "mag": _number(float(fluxes.mag[star])),
        "ra": _number(float(fluxes.ra[star])),
        "dec": _number(float(fluxes.dec[star])),
        "ppm_frame": {c: _number(float(per_frame[0, i])) for i, c in enumerate(CHANNELS)},
        "ppm_hour": {c: _number(float(per_hour[0, i])) for i, c in enumerate(CHANNELS)},
        "blended": bool(fluxes.blended()[star]),
        "unusable": bool(fluxes.unusable()[star]),
        "comparison_stars": [str(fluxes.ids[c]) for c in comparisons],
        "comparison_weights": [round(float(w), 6) for w in weights],
    }


def candidates_record(lightcurves: Lightcurves) -> list[dict[str, Any]]:
    """The candidates, best first."""
    fluxes, found = lightcurves.fluxes, lightcurves.search
    return [
        {
            "star": int(s),
            "star_id": str(fluxes.ids[s]),
            "mag": _number(float(fluxes.mag[s])),
            "ra": _number(float(fluxes.ra[s])),
            "dec": _number(float(fluxes.dec[s])),
            "depth": _number(float(found.depth[s])),
            "depth_error": _number(float(found.depth_error[s])),
            "duration_hours": _number(float(found.duration[s]) * 24.0),
            "mid_time_bjd_tdb": _number(float(found.mid_time[s])),
            "snr": _number(float(found.snr[s])),
        }
        for s in found.ranked()
        if found.candidate[s]
    ]


def _binned(hours: np.ndarray, values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    width = PLOT_BIN_MINUTES / 60.0
    index = np.floor((hours - hours.min()) / width).astype(int) if len(hours) else np.zeros(0, int)
    centres, means = [], []
    for i in np.unique(index):
        inside = (index == i) & np.isfinite(values)
        if inside.any():
            centres.append(hours[inside].mean())
            means.append(values[inside].mean())
    return np.array(centres), np.array(means)


def target_png(sequence_id: str, lightcurves: Lightcurves, star: int) -> bytes:
    """The target's normalised flux and its ensemble's (top), and its detrended relative flux per
    channel, offset, with 10-minute bins (bottom)."""
    fluxes = lightcurves.fluxes
    hours = (fluxes.time[star] - fluxes.time[star].min()) * 24.0
    normalised, _ = fluxes.normalised()
    comparisons, weights = lightcurves.comparisons.of(star, SUM)
    figure = Figure(figsize=(9, 7), dpi=90, layout="constrained")
    FigureCanvasAgg(figure)
    top, bottom = figure.subplots(2, 1, sharex=True, height_ratios=(1, 2))
    top.plot(hours, normalised[star, :, SUM], ".", color="black", label=f"{fluxes.ids[star]} (sum)")
    if len(comparisons):
        ensemble = weights @ normalised[comparisons, :, SUM]
        top.plot(hours, ensemble, ".", color="tab:gray", label=f"ensemble of {len(comparisons)} stars")
    top.set_ylabel("flux / median", fontsize=8)
    top.legend(fontsize=7)
    colours = {"R": "tab:red", "G": "tab:green", "B": "tab:blue", "sum": "black"}
    detrended = fluxes.detrended if fluxes.detrended is not None else np.full(normalised.shape, np.nan)
    for i, channel in enumerate(CHANNELS):
        offset = 0.03 * (len(CHANNELS) - 1 - i)
        values = detrended[star, :, i] + offset
        bottom.plot(hours, values, ".", color=colours[channel], alpha=0.35, markersize=4)
        centres, means = _binned(hours, values)
        bottom.plot(centres, means, "o-", color=colours[channel], label=channel, markersize=4)
    bottom.set_ylabel("relative flux, detrended (+ offset)", fontsize=8)
    bottom.set_xlabel("hours since the first frame (BJD_TDB)", fontsize=8)
    bottom.legend(fontsize=7, loc="upper right")
    for ax in (top, bottom):
        ax.tick_params(labelsize=7)
        ax.grid(alpha=0.3)
    top.set_title(f"{sequence_id}: {fluxes.ids[star]} (mag {fluxes.mag[star]:.2f})", fontsize=10)
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", metadata={"Software": None})
    return buffer.getvalue()


def make_lightcurve_products(
    sequence_id: str, lightcurves: Lightcurves, field: tuple[float, float] | None = None
) -> LightcurveProducts:
    """Every file and the record; ``field``: (RA, Dec) of the observation's target, deg."""
    fluxes = lightcurves.fluxes
    target = target_star(fluxes, *(field or (None, None)))
    files = {
        "lightcurves": lightcurves_parquet(lightcurves),
        "comparisons": comparisons_parquet(lightcurves),
    }
    if target is not None:
        files["lightcurve_plot"] = target_png(sequence_id, lightcurves, target)
    record = {
        "stars": fluxes.shape[0],
        "frames": fluxes.shape[1],
        "precision": precision_table(lightcurves),
        "target": target_record(lightcurves, target) if target is not None else None,
        "candidates": candidates_record(lightcurves),
        "comparison": {
            "usable": int(lightcurves.comparisons.usable.sum()),
            "variable": int(lightcurves.comparisons.variable.sum()),
            "blended": int(fluxes.blended().sum()),
            "unusable": int(fluxes.unusable().sum()),
        },
    }
    return LightcurveProducts(files, record)
