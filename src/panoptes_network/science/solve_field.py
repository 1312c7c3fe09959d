"""Plate-solve a star list with astrometry.net's ``solve-field``, in tiers of widening search.

The solver sees a list of sources, never the image (about 1 s instead of 3-15 s on a full
frame), spread over the frame (the brightest few per grid cell), with the mount's RA/Dec as a
hint and the PANOPTES scale range. Tiers: the hint with a radius that covers a mount's
pointing error, then a wider radius, then blind; each with a CPU limit, so that the total
stays far below the push ack deadline. Failing every tier is a science outcome (``solved``
false and the reason), never an exception. Each call works in its own temporary directory,
so concurrent requests cannot collide.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import signal
import subprocess
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
from astropy.io import fits
from astropy.wcs import WCS, FITSFixedWarning

from panoptes_network.core.logs import log
from panoptes_network.science.source_detection import Sources, away_from_edges

logger = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class Tier:
    """One attempt: a search radius around the hint (``None``: blind) and a CPU limit."""

    name: str
    radius_deg: float | None
    cpu_limit_s: int


@dataclasses.dataclass(frozen=True)
class SolveSettings:
    """PANOPTES defaults: Canon DSLR + 85 mm lens at about 10.3 arcsec/px.

    The CPU limits sum to 150 s, a quarter of the plate-solver's 600 s ack deadline.
    """

    scale_low: float = 10.0  # arcsec/px
    scale_high: float = 10.6
    tiers: tuple[Tier, ...] = (
        Tier("hinted", 5.0, 30),  # real mounts point within about 2-3 degrees
        Tier("wide", 20.0, 60),
        Tier("blind", None, 60),
    )
    grid: tuple[int, int] = (6, 8)  # rows, columns of cells for spreading sources
    per_cell: int = 10  # brightest sources taken from each cell
    min_sources: int = 10  # fewer clean sources than this cannot give a trustworthy solution
    edge_margin: float = 10.0  # px: sources nearer the edge are not used
    sip_order: int = 2  # astrometry.net's default; 3 over-fits the ~20 verified stars of a crop
    wall_factor: float = 3.0  # wall-clock safety net: kill solve-field after factor x CPU limit


@dataclasses.dataclass(frozen=True)
class Attempt:
    tier: str
    solved: bool
    cpu_seconds: float
    wall_seconds: float


@dataclasses.dataclass(frozen=True)
class Solution:
    """What the tiers found: a WCS (0-based pixel convention of astropy) or the reason for none."""

    wcs: WCS | None  # TAN-SIP
    tier: str | None
    attempts: tuple[Attempt, ...]
    sources_used: int
    matched: int = 0
    residual_px: float | None = None  # median source - catalog distance of the matched stars
    reason: str = ""

    @property
    def solved(self) -> bool:
        return self.wcs is not None

    @property
    def cpu_seconds(self) -> float:
        return sum(a.cpu_seconds for a in self.attempts)

    def summary(self) -> dict[str, object]:
        """The step record's view of the solve."""
        return {
            "solved": self.solved,
            "tier": self.tier,
            "reason": self.reason or None,
            "cpu_seconds": round(self.cpu_seconds, 3),
            "attempts": [
                dataclasses.asdict(a)
                | {"cpu_seconds": round(a.cpu_seconds, 3), "wall_seconds": round(a.wall_seconds, 3)}
                for a in self.attempts
            ],
            "sources_used": self.sources_used,
            "matched": self.matched,
            "residual_px": None if self.residual_px is None else round(self.residual_px, 4),
        }


def spread_selection(sources: Sources, shape: tuple[int, int], settings: SolveSettings) -> np.ndarray:
    """Indices of clean unsaturated sources, the brightest ``per_cell`` of each cell, interleaved by rank.

    Saturated stars are left out: their clipped cores put the centroid wherever the PSF's wing
    is heaviest (on the real crop, a median 1 px in y), and being the brightest of each cell
    they would be all the solver uses, fitting that bias into the WCS. Interleaving (every
    cell's brightest first, then every cell's second...) keeps the list spread over the frame
    at any length the solver chooses to read.
    """
    clean = ((sources.flags & ~1) == 0) & ~sources.saturated
    usable = np.flatnonzero(away_from_edges(sources, shape, settings.edge_margin) & clean)
    rows, cols = settings.grid
    cell = np.minimum((sources.y[usable] / shape[0] * rows).astype(int), rows - 1) * cols + np.minimum(
        (sources.x[usable] / shape[1] * cols).astype(int), cols - 1
    )
    order = np.lexsort((-sources.flux[usable], cell))  # by cell, brightest first within a cell
    ranked, cells = usable[order], cell[order]
    rank = np.arange(len(ranked)) - np.searchsorted(cells, cells)  # position within its cell
    keep = rank < settings.per_cell
    return np.asarray(ranked[keep][np.lexsort((-sources.flux[ranked[keep]], rank[keep]))], dtype=np.intp)


def write_star_list(path: Path, sources: Sources, index: np.ndarray) -> None:
    """The FITS table solve-field reads: X, Y 1-based (FITS convention), FLUX."""
    columns = [
        fits.Column("X", "D", array=sources.x[index] + 1.0),
        fits.Column("Y", "D", array=sources.y[index] + 1.0),
        fits.Column("FLUX", "D", array=sources.flux[index]),
    ]
    fits.BinTableHDU.from_columns(columns).writeto(path)


def solve_field_command(
    star_list: Path, shape: tuple[int, int], hint: tuple[float, float] | None, tier: Tier, settings: SolveSettings
) -> list[str]:
    command = [
        "solve-field", str(star_list),
        "--width", str(shape[1]), "--height", str(shape[0]),
        "--x-column", "X", "--y-column", "Y",
        "--scale-units", "arcsecperpix",
        "--scale-low", str(settings.scale_low), "--scale-high", str(settings.scale_high),
        "--cpulimit", str(tier.cpu_limit_s),
        "--tweak-order", str(settings.sip_order),
        "--crpix-center", "--no-plots", "--overwrite", "--no-remove-lines", "--uniformize", "0",
        "--new-fits", "none", "--index-xyls", "none", "--rdls", "none", "--match", "none",
        "--temp-axy", "--dir", str(star_list.parent),
    ]  # fmt: skip
    if tier.radius_deg is not None and hint is not None:
        command += ["--ra", f"{hint[0]:.6f}", "--dec", f"{hint[1]:.6f}", "--radius", str(tier.radius_deg)]
    return command


def run_measured(command: list[str], cwd: Path, wall_limit_s: float) -> tuple[int, float]:
    """Run a command in its own process group; return (exit status, CPU seconds of it and its children).

    ``os.wait4`` gives this process tree's own resource usage, unaffected by other requests
    running in the same worker.
    """
    with open(cwd / "solve-field.log", "wb") as output:
        process = subprocess.Popen(command, cwd=cwd, stdout=output, stderr=subprocess.STDOUT, start_new_session=True)
    deadline = time.monotonic() + wall_limit_s
    while True:
        pid, status, usage = os.wait4(process.pid, os.WNOHANG)
        if pid:
            process.returncode = os.waitstatus_to_exitcode(status)
            return process.returncode, usage.ru_utime + usage.ru_stime
        if time.monotonic() > deadline:
            os.killpg(process.pid, signal.SIGKILL)
            _, status, usage = os.wait4(process.pid, 0)
            process.returncode = os.waitstatus_to_exitcode(status)
            return process.returncode, usage.ru_utime + usage.ru_stime
        time.sleep(0.01)


def _wcs(path: Path) -> WCS:
    """The solution as an astropy WCS (solve-field's header says NAXIS = 0, which astropy warns about)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FITSFixedWarning)
        return WCS(fits.getheader(path))


def _matches(corr: Path) -> tuple[int, float | None]:
    """Matched stars and their median residual (px) from solve-field's correspondence file."""
    if not corr.exists():
        return 0, None
    table = fits.getdata(corr, 1)
    if table is None or len(table) == 0:
        return 0, None
    distance = np.hypot(table["field_x"] - table["index_x"], table["field_y"] - table["index_y"])
    return len(table), float(np.median(distance))


def solve(
    sources: Sources,
    shape: tuple[int, int],
    hint: tuple[float, float] | None,
    settings: SolveSettings = SolveSettings(),
) -> Solution:
    """Try each tier in turn (hinted tiers only with a hint) until one solves."""
    index = spread_selection(sources, shape, settings)
    if len(index) < settings.min_sources:
        reason = f"only {len(index)} usable sources (at least {settings.min_sources} needed)"
        return Solution(None, None, (), len(index), reason=reason)
    attempts: list[Attempt] = []
    with tempfile.TemporaryDirectory(prefix="plate-solve-") as scratch:
        work = Path(scratch)
        star_list = work / "stars.xyls"
        write_star_list(star_list, sources, index)
        for tier in settings.tiers:
            if tier.radius_deg is not None and hint is None:
                continue
            command = solve_field_command(star_list, shape, hint, tier, settings)
            started = time.monotonic()
            status, cpu = run_measured(command, work, settings.wall_factor * tier.cpu_limit_s + 10)
            solved = status == 0 and (work / "stars.solved").exists() and (work / "stars.wcs").exists()
            attempts.append(Attempt(tier.name, solved, cpu, time.monotonic() - started))
            log(
                logger,
                "INFO",
                "solve-field attempt",
                tier=tier.name,
                solved=solved,
                cpu_seconds=round(cpu, 3),
                exit_status=status,
            )
            if solved:
                matched, residual = _matches(work / "stars.corr")
                return Solution(_wcs(work / "stars.wcs"), tier.name, tuple(attempts), len(index), matched, residual)
    tried = ", ".join(a.tier for a in attempts) or "none"
    reason = f"no solution in tiers {tried}" + ("" if hint is not None else " (no RA-MNT/DEC-MNT hint)")
    return Solution(None, None, tuple(attempts), len(index), reason=reason)
