"""FITS bytes in and out, and lossless tile compression: shared by every step that touches FITS.

Integers use Rice in 16-row tiles (byte-identical to cfitsio's ``fpack -t NAXIS1,16``); floating
point uses GZIP_1 with quantization off, because fpack's default quantization silently loses data.
"""

from __future__ import annotations

import io
import re
import warnings

import numpy as np
from astropy.io import fits
from astropy.utils.exceptions import AstropyWarning

from panoptes_network.core.errors import BadInput
from panoptes_network.core.settings import DEFAULT_LIMITS, Limits
from panoptes_network.science.fits_header import check_limits


def open_fits(data: bytes, what: str, limits: Limits = DEFAULT_LIMITS) -> fits.HDUList:
    """Parse FITS bytes fully (every HDU's header and data), or ``BadInput`` naming ``what``;
    ``OverLimit`` from the headers alone when they describe more than ``limits`` allow."""
    if not data.startswith(b"SIMPLE  ="):
        raise BadInput(f"{what} is not a FITS file (it does not start with SIMPLE)")
    check_limits(data, what, limits)
    with warnings.catch_warnings(record=True) as caught:  # astropy explains truncation in warnings
        warnings.simplefilter("always", AstropyWarning)
        try:
            hdus = fits.open(io.BytesIO(data), memmap=False, lazy_load_hdus=False)
            for hdu in hdus:
                _ = hdu.data  # force reading: a truncated file fails here, not later
        except (OSError, ValueError, TypeError, IndexError) as exc:
            notes = "; ".join(" ".join(str(w.message).split()) for w in caught)
            raise BadInput(
                f"{what} is not a readable FITS file: {exc}" + (f" ({notes})" if notes else ""), exc
            ) from exc
    return hdus


def image_hdu(hdus: fits.HDUList, what: str) -> fits.ImageHDU | fits.PrimaryHDU | fits.CompImageHDU:
    """The first HDU that holds a 2-D image (the primary one, or the compressed one of a .fits.fz)."""
    for hdu in hdus:
        if hdu.is_image and hdu.data is not None and getattr(hdu.data, "ndim", 0) == 2:
            return hdu
    raise BadInput(f"{what} holds no 2-D image")


# Floating point: GZIP_1, unquantized (lossless). astropy runs gzip at level 9 on every tile;
# on a background-subtracted full frame GZIP_1 takes 3.8 s where GZIP_2 (byte shuffling) takes
# 11.5 s, for files 13% larger: compute, not storage, is what a step costs.
# Rice tiles of 16 rows: 25% faster to compress and to verify than fpack's default of one row
# (fewer tiles for astropy's Python loop), a little smaller, and byte-identical to
# `fpack -t NAXIS1,16`.
RICE_TILE_ROWS = 16


def lossless_compression(data: np.ndarray) -> dict[str, object]:
    """``CompImageHDU`` arguments that round-trip ``data`` bit for bit."""
    if np.issubdtype(data.dtype, np.integer):
        tiles = {"tile_shape": (min(RICE_TILE_ROWS, data.shape[0]), data.shape[1])} if data.ndim == 2 else {}
        return {"compression_type": "RICE_1", **tiles}
    return {"compression_type": "GZIP_1", "quantize_level": 0.0}


def compressed_image(data: np.ndarray, header: fits.Header | None = None, name: str | None = None) -> fits.CompImageHDU:
    """A tile-compressed image HDU that stores ``data`` losslessly."""
    return fits.CompImageHDU(data, header=header, name=name, **lossless_compression(data))


def to_bytes(hdus: fits.HDUList) -> bytes:
    """Serialise with fresh CHECKSUM/DATASUM cards."""
    buffer = io.BytesIO()
    hdus.writeto(buffer, checksum=True, output_verify="silentfix")
    return buffer.getvalue()


# Cards astropy stamps with the time of writing: two writes of the same content differ only there.
CHECKSUM_CARDS = ("CHECKSUM", "DATASUM", "ZHECKSUM", "ZDATASUM")


# A checksum card (CHECKSUM_CARDS), whole: 8 bytes of keyword, "= ", value and the comment astropy
# writes the time into.
CHECKSUM_CARD = re.compile(rb"(?:CHECKSUM|DATASUM |ZHECKSUM|ZDATASUM)= .{70}", re.DOTALL)


def without_checksum_cards(data: bytes) -> bytes:
    """The bytes with every checksum card (at a card boundary) blanked: two writes of the same
    content compare equal without decoding either (a full frame decoded twice is 150 MB)."""
    return CHECKSUM_CARD.sub(lambda m: b" " * 80 if m.start() % 80 == 0 else m.group(), data)


def same_content(a: bytes, b: bytes) -> bool:
    """Whether two objects hold the same content: equal bytes (checksum cards aside), or FITS
    files whose headers (checksum cards aside) and data are equal."""
    if a == b:
        return True
    if not (a.startswith(b"SIMPLE  =") and b.startswith(b"SIMPLE  =")):
        return False
    if len(a) == len(b) and without_checksum_cards(a) == without_checksum_cards(b):
        return True
    try:
        first, second = open_fits(a, "first"), open_fits(b, "second")
    except BadInput:
        return False

    def cards(hdu: fits.hdu.base._BaseHDU) -> list[tuple[str, object]]:
        return [(card.keyword, card.value) for card in hdu.header.cards if card.keyword not in CHECKSUM_CARDS]

    return len(first) == len(second) and all(
        cards(x) == cards(y)
        and (x.data is None) == (y.data is None)
        and (x.data is None or np.array_equal(x.data, y.data))
        for x, y in zip(first, second)
    )


def compressed_file(data: np.ndarray, header: fits.Header | None = None) -> bytes:
    """A ``.fits.fz`` holding one image: an empty primary HDU and the compressed image."""
    return to_bytes(fits.HDUList([fits.PrimaryHDU(), compressed_image(data, header)]))


# Derived floating-point images (an observation's stack and difference image), which no step
# reads back as data: Rice on values quantized to 1/16 of the image's noise (the MAD of every
# 4th pixel of every 4th row), subtractively dithered (a fixed seed: the same image gives the
# same bytes). The rounding adds 0.018 sigma of noise. One step for the image rather than
# cfitsio's estimate per tile (fpack's way): on a full frame 0.25 s to write instead of 0.9 s.
QUANTIZE_LEVEL = 16.0


def image_noise(data: np.ndarray) -> float:
    """A robust standard deviation of the image (1.4826 MAD of a 1/16 sample, NaNs ignored)."""
    sample = np.asarray(data[::4, ::4], dtype=np.float64)
    sample = sample[np.isfinite(sample)]
    if sample.size == 0:
        return 0.0
    return float(1.4826 * np.median(np.abs(sample - np.median(sample))))


def quantized_file(data: np.ndarray, header: fits.Header | None = None, step: float | None = None) -> bytes:
    """A ``.fits.fz`` of a float image quantized below its noise, Rice-compressed in 16-row tiles,
    to an absolute ``step`` (ADU): every pixel within ``step / 2`` (subtractive dithering: the error
    is uniform, its RMS ``step / sqrt(12)``). Without ``step``: 1/``QUANTIZE_LEVEL`` of the image's
    noise (``image_noise``), or cfitsio's per-tile estimate for an image without noise."""
    if step is not None and not (np.isfinite(step) and step > 0):
        raise ValueError(f"a quantization step must be a positive number of ADU, not {step!r}")
    image = np.asarray(data, dtype=np.float32)
    if step is None and (noise := image_noise(image)) > 0:
        step = noise / QUANTIZE_LEVEL
    hdu = fits.CompImageHDU(
        image,
        header=header,
        compression_type="RICE_1",
        quantize_level=QUANTIZE_LEVEL if step is None else -float(step),  # negative: an absolute step
        quantize_method=1,  # SUBTRACTIVE_DITHER_1
        dither_seed=1,
        tile_shape=(min(RICE_TILE_ROWS, image.shape[0]), image.shape[1]),
    )
    return to_bytes(fits.HDUList([fits.PrimaryHDU(), hdu]))
