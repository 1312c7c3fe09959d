"""make-rgb-fits on a full-size synthetic raw (5208x3476 RGGB DNG named .cr2), against
upstream PANOPTES's recipes measured in the same run.

- ``raw-fits-full-frame``: ours (rawpy mosaic + exifread/MakerNotes header -> Rice ``.fits.fz``)
  vs upstream (``dcraw -t 0 -D -4`` + ``exiftool -j`` + astropy writing the plain FITS).
- ``rgb-full-frame``: ours (decode + bilinear R/G/B + three FITS) vs rawpy ``postprocess`` with
  AAHD (upstream's demosaic) at full resolution, 16-bit linear, plus writing three FITS.
  Also prints ``bench rgb-full-frame peak_rss_mb=...``: the peak resident memory (``VmHWM`` of
  /proc/self/status; getrusage's ru_maxrss would inherit the benchmark process's peak through
  fork) of a fresh Python process that runs the whole step once through ``run_step``
  (imports, decoding, all five outputs written to a local bucket folder).
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import rawpy
from astropy.io import fits

from panoptes_network.core.names import parse_raw_name
from panoptes_network.science.bayer_interpolation import COLORS, Method
from panoptes_network.science.rgb_products import color_files, raw_fits, raw_header, read_raw
from panoptes_network.synthetic.camera_raw import raw_path, write_raw
from panoptes_network.synthetic.frames import FrameSpec

# exiftool names -> FITS keywords, as upstream's cr2_to_fits copied them.
UPSTREAM_KEYWORDS = {
    "ISO": "ISO",
    "ExposureTime": "EXPTIME",
    "CameraTemperature": "CAMTEMP",
    "CircleOfConfusion": "CIRCCONF",
    "ColorTempMeasured": "COLORTMP",
    "FileName": "FILENAME",
    "InternalSerialNumber": "INTSN",
    "SerialNumber": "CAMSN",
    "MeasuredEV": "MEASEV",
    "MeasuredEV2": "MEASEV2",
    "MeasuredRGGB": "MEASRGGB",
    "NormalWhiteLevel": "WHTLVLN",
    "SpecularWhiteLevel": "WHTLVLS",
    "RedBalance": "REDBAL",
    "BlueBalance": "BLUEBAL",
    "WB_RGGBLevelsAsShot": "WBRGGB",
}

PEAK_MEMORY_SCRIPT = """
import re, sys
from pathlib import Path
from panoptes_network.adapters.backends import local_context
from panoptes_network.core.settings import Settings
sys.path.insert(0, sys.argv[3])
from step_harness import deliver, message_for
root = Path(sys.argv[1])
context, _ = local_context(Settings(data_dir=root), root)
ref = context.storage.write_new("panoptes-raw-images", sys.argv[2], Path(sys.argv[4]).read_bytes())
handled = deliver(context, "make-rgb-fits", message_for(ref))
assert handled.outcome.value == "done", handled.reason
print(int(re.search(r"VmHWM:\\s+(\\d+) kB", Path("/proc/self/status").read_text()).group(1)) / 1024)
"""


def read_pgm(data: bytes) -> np.ndarray:
    """A binary 16-bit PGM (dcraw -4 output) as uint16 rows x cols."""
    magic, width, height, maxval, pixels = data.split(maxsplit=4)
    assert magic == b"P5" and int(maxval) > 255
    return np.frombuffer(pixels, ">u2", int(width) * int(height)).reshape(int(height), int(width))


def upstream_raw_fits(raw: Path, out: Path) -> None:
    """dcraw + exiftool + a plain FITS, as upstream PANOPTES made its raw FITS."""
    pgm = subprocess.run(["dcraw", "-t", "0", "-D", "-4", "-c", str(raw)], capture_output=True, check=True).stdout
    exif = json.loads(subprocess.run(["exiftool", "-j", str(raw)], capture_output=True, check=True).stdout)[0]
    hdu = fits.PrimaryHDU(read_pgm(pgm))
    hdu.header["FILTER"] = "RGGB"
    for tag, keyword in UPSTREAM_KEYWORDS.items():
        if tag in exif:
            hdu.header[keyword] = exif[tag]
    hdu.writeto(out, overwrite=True)


def write_three(planes: dict[str, np.ndarray], header: fits.Header, stem: Path) -> None:
    for color in COLORS:
        fits.PrimaryHDU(planes[color], header).writeto(f"{stem}_{color.lower()}.fits", overwrite=True)


def upstream_rgb(raw: Path, stem: Path) -> None:
    """rawpy AAHD at full resolution, 16-bit linear, then three FITS."""
    with rawpy.imread(str(raw)) as image:
        rgb = image.postprocess(
            demosaic_algorithm=rawpy.DemosaicAlgorithm.AAHD,
            gamma=(1, 1),
            no_auto_bright=True,
            use_camera_wb=False,
            user_wb=[1, 1, 1, 1],
            output_bps=16,
            output_color=rawpy.ColorSpace.raw,
        )
    write_three({color: rgb[..., index] for index, color in enumerate(COLORS)}, fits.Header(), stem)


@contextmanager
def full_size_raw(work: Path) -> Iterator[tuple[Path, object]]:
    spec = FrameSpec(unit_id="PAN001", camera_id="14d3bd")
    path = write_raw(spec, work / "in")
    yield path, parse_raw_name(raw_path(spec))


@contextmanager
def raw_fits_full_frame(work: Path) -> Iterator[tuple[Callable[[], object], Callable[[], object]]]:
    with full_size_raw(work) as (path, name):
        ours_out, ref_out = work / "ours.fits.fz", work / "ref.fits"
        yield (
            lambda: ours_out.write_bytes(raw_fits(path.read_bytes(), name)[2]),
            lambda: upstream_raw_fits(path, ref_out),
        )
        with fits.open(ours_out) as ours, fits.open(ref_out) as ref:
            same = np.array_equal(ours[1].data, ref[0].data)
        print(f"bench raw-fits-full-frame pixels_equal_to_dcraw={same}", flush=True)


def peak_step_memory_mb(work: Path, path: Path, name: str) -> float:
    tests = Path(__file__).resolve().parents[1] / "tests"
    result = subprocess.run(
        [sys.executable, "-c", PEAK_MEMORY_SCRIPT, str(work / "memory"), name, str(tests), str(path)],
        capture_output=True,
        text=True,
        check=True,
    )
    return float(result.stdout.split()[-1])


@contextmanager
def rgb_full_frame(work: Path) -> Iterator[tuple[Callable[[], object], Callable[[], object]]]:
    with full_size_raw(work) as (path, name):

        def ours() -> None:
            decoded, cards = read_raw(path.read_bytes(), name)
            header = raw_header(cards, decoded, name)
            for color, data in color_files(decoded, header, Method.BILINEAR).items():
                (work / f"ours_{color.lower()}.fits").write_bytes(data)

        yield ours, lambda: upstream_rgb(path, work / "ref")
        print(f"bench rgb-full-frame peak_rss_mb={peak_step_memory_mb(work, path, name.path):.0f}", flush=True)


CASES = {"raw-fits-full-frame": raw_fits_full_frame, "rgb-full-frame": rgb_full_frame}
