"""Hostile inputs for tests and the bench: the decompression bomb of issue 18, built small.

The bomb is a real, valid ``.fits.fz``: a Rice-compressed 30000 x 30000 image of zeros whose
1875 tiles all point at the same few bytes of the heap, so the file is a few kB while decoding
it would allocate 1.8 GB (astropy, all at once). Built by hand because compressing 900 Mpx of
zeros with astropy would itself need those 1.8 GB.
"""

from __future__ import annotations

import io
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
from astropy.io import fits

BLOCK = 2880
BOMB_SIDE = 30000
TILE_ROWS = 16
# A canonical raw-bucket name, so that `process` takes the image id from the path.
BOMB_NAME = "PAN001/XXXXXX/20160909T081152/20160909T095959.fits.fz"
BOMB_IMAGE_ID = "PAN001_XXXXXX_20160909T095959"


def _padded(data: bytes, fill: bytes = b"\0") -> bytes:
    return data + fill * (-len(data) % BLOCK)


def bomb_bytes(side: int = BOMB_SIDE) -> bytes:
    """A ``.fits.fz`` of ``side`` x ``side`` int16 zeros, every tile sharing one heap entry."""
    assert side % TILE_ROWS == 0
    one_tile = fits.CompImageHDU(
        np.zeros((TILE_ROWS, side), np.int16), compression_type="RICE_1", tile_shape=(TILE_ROWS, side)
    )
    buffer = io.BytesIO()
    fits.HDUList([fits.PrimaryHDU(), one_tile]).writeto(buffer)
    table = fits.open(io.BytesIO(buffer.getvalue()), disable_image_compression=True)[1]
    heap = bytes(table.data[0][0].astype(np.uint8).tobytes())
    header = table.header.copy()
    rows = side // TILE_ROWS
    header["NAXIS2"] = rows
    header["ZNAXIS2"] = side
    header["PCOUNT"] = len(heap)
    header["TFORM1"] = f"1PB({len(heap)})"
    for key in ("CHECKSUM", "DATASUM", "ZHECKSUM", "ZDATASUM"):
        header.remove(key, ignore_missing=True)
    descriptors = np.tile(np.array([len(heap), 0], ">i4"), rows).tobytes()  # (count, heap offset) per tile
    primary = fits.PrimaryHDU().header.tostring().encode("ascii")
    return primary + _padded(header.tostring().encode("ascii"), b" ") + _padded(descriptors + heap)


def write_bomb(folder: Path, side: int = BOMB_SIDE) -> Path:
    """The bomb under its canonical name below ``folder``."""
    path = folder / BOMB_NAME
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(bomb_bytes(side))
    return path


# Runs the command line, then reports the process's own peak resident memory. VmHWM belongs to
# the address space made at exec, so it is this program's alone; a child's ru_maxrss is not (on
# Linux it starts from the parent's resident size at fork, a whole pytest process).
MEASURED_CLI = (
    "import sys\n"
    "from panoptes_network.drivers.cli import main\n"
    "code = main(sys.argv[1:])\n"
    "hwm = [l for l in open('/proc/self/status') if l.startswith('VmHWM:')][0].split()[1]\n"
    "print(f'peak_kb={hwm}', file=sys.stderr)\n"
    "sys.exit(code)\n"
)


def run_cli_measured(*args: str, timeout: float = 120) -> tuple[int, str, str, float]:
    """``panoptes-network ARGS`` in a fresh interpreter: exit status, stdout, stderr, peak MB."""
    done = subprocess.run([sys.executable, "-c", MEASURED_CLI, *args], capture_output=True, text=True, timeout=timeout)
    match = re.search(r"peak_kb=(\d+)", done.stderr)
    assert match is not None, done.stderr
    return done.returncode, done.stdout, done.stderr, int(match.group(1)) / 1024
