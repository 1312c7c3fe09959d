"""compress-fits and record-image on a full 5208x3476 uint16 frame."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from panoptes_network.science.fits_codec import compressed_file, open_fits, to_bytes
from panoptes_network.science.fits_header import read_image_header
from panoptes_network.science.lossless_compression import compress_hdus, compress_verified
from panoptes_network.synthetic.frames import FrameSpec, make_frame, write_frame

Pair = tuple[Callable[[], object], Callable[[], object]]


def _fpack() -> str:
    fpack = shutil.which("fpack")
    if fpack is None:
        raise SystemExit("bench: fpack is missing (bin/install bench installs libcfitsio-bin)")
    return fpack


@contextmanager
def compress_full_frame(work: Path) -> Iterator[Pair]:
    """Our verified compression (compress + decompress + compare) vs the fpack CLI (no verify)."""
    frame = write_frame(FrameSpec(), work)
    data = frame.read_bytes()
    fpack = _fpack()
    runs = iter(range(1_000_000))

    def reference() -> None:
        target = work / f"ref-{next(runs)}.fits"
        shutil.copyfile(frame, target)  # fpack writes next to its input and refuses to overwrite
        subprocess.run([fpack, str(target)], check=True)

    yield (lambda: compress_verified(data, "frame")), reference


@contextmanager
def compress_full_frame_unverified(work: Path) -> Iterator[Pair]:
    """The compression alone (read, compress, serialise), vs the same fpack CLI run."""
    with compress_full_frame(work) as (_, reference):
        data = next(work.rglob("*.fits")).read_bytes()
        yield (lambda: to_bytes(compress_hdus(open_fits(data, "frame")))), reference


@contextmanager
def header_bytes(work: Path) -> Iterator[Pair]:
    """Bytes read to record a full-frame .fits.fz, vs reading the whole file (times: same ratio)."""
    frame, header = make_frame(FrameSpec())
    data = compressed_file(frame, header)
    read = read_image_header(lambda a, b: data[a:b], "frame").bytes_read
    print(f"bench header-bytes read={read} size={len(data)} ratio={read / len(data):.5f}")
    path = work / "frame.fits.fz"
    path.write_bytes(data)

    def ours() -> None:
        with open(path, "rb") as handle:
            read_image_header(lambda a, b: (handle.seek(a), handle.read(b - a))[1], "frame")

    yield ours, path.read_bytes


CASES = {
    "compress-full-frame": compress_full_frame,
    "compress-full-frame-unverified": compress_full_frame_unverified,
    "header-bytes": header_bytes,
}
