"""The observation's frame-quality table (Parquet) and plot (PNG): every frame, usable or not.

The table has one row per science frame in time order (columns in ``COLUMN_TYPES``; NaN where
a value is unknown, ``excluded`` empty for a usable frame) and is written without statistics
that vary between runs, so the same frames give the same bytes. The plot draws each metric
against time, one panel each, usable frames as dots and excluded ones as red crosses; it uses
matplotlib's object API on the Agg canvas (no pyplot, no global state, no display).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import io
from collections.abc import Mapping, Sequence

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from panoptes_network.science.frame_quality import FrameMetrics

COLUMN_TYPES: dict[str, pa.DataType] = {
    "image_id": pa.string(),
    "time": pa.timestamp("s", tz="UTC"),
    "exposure": pa.float64(),  # s
    "airmass": pa.float64(),
    "camera_temp": pa.float64(),  # deg C
    "sky_level": pa.float64(),  # ADU above black
    "sky_rms": pa.float64(),  # ADU
    "sources": pa.int32(),
    "measured": pa.int32(),  # isolated unsaturated clean sources behind fwhm and ellipticity
    "fwhm": pa.float64(),  # px
    "ellipticity": pa.float64(),
    "drift_x": pa.float64(),  # px, WCS offset against the reference frame
    "drift_y": pa.float64(),
    "drift_px": pa.float64(),  # hypot(drift_x, drift_y)
    "usable": pa.bool_(),
    "excluded": pa.string(),  # the reason, "" for a usable frame
}

PANELS = (  # (column, axis label)
    ("fwhm", "FWHM (px)"),
    ("ellipticity", "ellipticity"),
    ("sky_level", "sky (ADU)"),
    ("sky_rms", "sky RMS (ADU)"),
    ("sources", "sources"),
    ("drift_px", "drift (px)"),
    ("camera_temp", "camera (°C)"),
)


@dataclasses.dataclass(frozen=True)
class FrameRow:
    image_id: str
    time: dt.datetime  # UTC
    exposure: float
    airmass: float | None
    camera_temp: float | None
    metrics: FrameMetrics
    drift: tuple[float, float]


def _optional(value: float | None) -> float:
    return float("nan") if value is None else float(value)


def columns(rows: Sequence[FrameRow], excluded: Mapping[str, str]) -> dict[str, list[object]]:
    """The table's columns, in ``COLUMN_TYPES`` order."""
    return {
        "image_id": [r.image_id for r in rows],
        "time": [r.time for r in rows],
        "exposure": [float(r.exposure) for r in rows],
        "airmass": [_optional(r.airmass) for r in rows],
        "camera_temp": [_optional(r.camera_temp) for r in rows],
        **{
            name: [getattr(r.metrics, name) for r in rows]
            for name in ("sky_level", "sky_rms", "sources", "measured", "fwhm", "ellipticity")
        },
        "drift_x": [r.drift[0] for r in rows],
        "drift_y": [r.drift[1] for r in rows],
        "drift_px": [float(np.hypot(*r.drift)) for r in rows],
        "usable": [r.image_id not in excluded for r in rows],
        "excluded": [excluded.get(r.image_id, "") for r in rows],
    }


def quality_parquet(rows: Sequence[FrameRow], excluded: Mapping[str, str]) -> bytes:
    data = columns(rows, excluded)
    table = pa.table({name: pa.array(data[name], type=kind) for name, kind in COLUMN_TYPES.items()})
    buffer = io.BytesIO()
    pq.write_table(table, buffer, compression="zstd", write_statistics=False)
    return buffer.getvalue()


def quality_png(sequence_id: str, rows: Sequence[FrameRow], excluded: Mapping[str, str]) -> bytes:
    """The metrics against time, one panel each; excluded frames as red crosses."""
    data = columns(rows, excluded)
    times = np.array([r.time.replace(tzinfo=None) for r in rows], dtype="datetime64[s]")
    usable = np.array(data["usable"], dtype=bool)
    figure = Figure(figsize=(9, 1.5 * len(PANELS) + 0.8), dpi=90, layout="constrained")
    FigureCanvasAgg(figure)
    axes = figure.subplots(len(PANELS), 1, sharex=True)
    for ax, (name, label) in zip(axes, PANELS):
        values = np.array(data[name], dtype=np.float64)
        ax.plot(times[usable], values[usable], ".", color="tab:blue", label="usable")
        if (~usable).any():
            ax.plot(times[~usable], values[~usable], "x", color="tab:red", markersize=8, label="excluded")
        ax.set_ylabel(label, fontsize=8)
        ax.tick_params(labelsize=7)
        ax.grid(alpha=0.3)
    axes[0].set_title(f"{sequence_id}: {usable.sum()} usable, {(~usable).sum()} excluded", fontsize=10)
    if (~usable).any():
        axes[0].legend(fontsize=7, loc="upper right")
    axes[-1].set_xlabel("time (UTC)", fontsize=8)
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", metadata={"Software": None})
    return buffer.getvalue()
