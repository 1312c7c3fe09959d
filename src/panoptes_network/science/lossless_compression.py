"""fpack, verified: tile-compress every image HDU of a FITS file and prove nothing was lost.

Data is read with astropy's default scaling, so PANOPTES's uint16 (BITPIX 16 + BZERO 32768)
stays uint16 and compresses with Rice exactly as ``fpack`` would; other scaled integers become
their physical float values and are stored unquantized (GZIP_1), so every value survives.
Tables pass through untouched. Verification decompresses the result and compares every data
value (bit for bit, NaNs included) and every header card that is not structural.
"""

from __future__ import annotations

import dataclasses

import numpy as np
from astropy.io import fits

from panoptes_network.core.settings import DEFAULT_LIMITS, Limits
from panoptes_network.science.fits_codec import compressed_image, open_fits, to_bytes

# Cards that describe the storage, not the image: they differ between plain and compressed.
STRUCTURAL = frozenset(
    {"SIMPLE", "XTENSION", "BITPIX", "NAXIS", "NAXIS1", "NAXIS2", "NAXIS3", "EXTEND", "PCOUNT", "GCOUNT",
     "BZERO", "BSCALE", "CHECKSUM", "DATASUM"}
)  # fmt: skip


@dataclasses.dataclass(frozen=True)
class Compressed:
    data: bytes
    original_size: int

    @property
    def ratio(self) -> float:
        return self.original_size / len(self.data)


def _fresh_header(header: fits.Header) -> fits.Header:
    """A copy without the original's CHECKSUM/DATASUM: they describe the uncompressed bytes and
    would be stale; the compressed HDU gets fresh ones over what is actually stored."""
    copy = header.copy()
    for key in ("CHECKSUM", "DATASUM"):
        copy.remove(key, ignore_missing=True, remove_all=True)
    return copy


def _is_image(hdu: fits.hdu.base.ExtensionHDU | fits.PrimaryHDU) -> bool:
    return hdu.is_image and hdu.data is not None and hdu.data.size > 0


def compress_hdus(hdus: fits.HDUList) -> fits.HDUList:
    """The compressed counterpart: an empty primary, then one HDU per input HDU that holds data
    or is an extension (a primary image moves to the first extension, as fpack does)."""
    out = fits.HDUList([fits.PrimaryHDU()])
    for index, hdu in enumerate(hdus):
        if _is_image(hdu):
            out.append(compressed_image(hdu.data, _fresh_header(hdu.header)))
        elif index > 0:
            out.append(hdu.copy())
        else:
            out[0] = fits.PrimaryHDU(header=_fresh_header(hdu.header))
    return out


def _cards(header: fits.Header) -> list[tuple[str, object, str]]:
    """Keyword, value and comment of each non-structural card (astropy rewrites EXTNAME's comment).
    Empty blank cards say nothing: astropy leaves some where it removed BZERO and BSCALE from
    scaled integers (BZERO 1, say), and comparing them failed every such file (found by fuzzing)."""
    return [
        (card.keyword, card.value, "" if card.keyword == "EXTNAME" else card.comment)
        for card in header.cards
        if card.keyword not in STRUCTURAL and not (card.keyword == "" and not str(card.value).strip())
    ]


def _same_values(a: np.ndarray, b: np.ndarray) -> bool:
    if a.shape != b.shape:
        return False
    if a.dtype.kind == "f" or b.dtype.kind == "f":
        return np.array_equal(a, b, equal_nan=True) and np.array_equal(np.signbit(a), np.signbit(b))
    return np.array_equal(a, b) and a.dtype.kind == b.dtype.kind


def differences(original: fits.HDUList, candidate: fits.HDUList) -> list[str]:
    """Why ``candidate`` (a compressed file, opened) does not hold ``original``; empty if it does."""
    found: list[str] = []
    pairs = [(hdu, i + 1 if _is_image(hdu) or i > 0 else 0) for i, hdu in enumerate(original)]
    if len(candidate) != len(original) + (1 if _is_image(original[0]) else 0):
        return [f"{len(candidate)} HDUs where {len(original)} were expected (plus the empty primary)"]
    for index, (hdu, target) in enumerate(pairs):
        other = candidate[target]
        if _is_image(hdu) != _is_image(other) or (
            _is_image(hdu) and not _same_values(np.asarray(hdu.data), np.asarray(other.data))
        ):
            found.append(f"HDU {index}: data differs")
        elif (
            not _is_image(hdu)
            and hdu.data is not None
            and hdu.data.tobytes() != (other.data.tobytes() if other.data is not None else b"")
        ):
            found.append(f"HDU {index}: table differs")
        if _cards(hdu.header) != _cards(other.header):
            missing = {c[0] for c in _cards(hdu.header)} ^ {c[0] for c in _cards(other.header)}
            found.append(f"HDU {index}: header cards differ ({', '.join(sorted(missing)) or 'values or order'})")
    return found


def compress_verified(data: bytes, what: str, limits: Limits = DEFAULT_LIMITS) -> Compressed:
    """Compress FITS bytes and verify the result by decompressing it; ``BadInput`` if not FITS.

    A verification failure is not bad input but a bug (or a broken library): it raises
    ``RuntimeError`` and nothing downstream deletes the original.
    """
    original = open_fits(data, what, limits)
    compressed = to_bytes(compress_hdus(original))
    problems = differences(original, open_fits(compressed, f"compressed {what}"))
    if problems:
        raise RuntimeError(f"compression of {what} did not verify: {'; '.join(problems)}")
    return Compressed(compressed, len(data))
