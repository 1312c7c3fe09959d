"""Read the image header of a FITS or tile-compressed FITS object without downloading it.

Headers come in 2880-byte blocks ending with an ``END`` card; the object is read in ranges of
a few blocks until ``END``. A ``.fits.fz`` has an empty primary HDU and the image's header in
the compressed HDU that follows, stored there with compression keywords (``ZBITPIX``,
``ZNAXISn``, ...) that are mapped back, so callers see the image's own header.

The same walk checks the ``Limits`` (HDUs, cards per header, pixels per image, ZNAXISn of a
compressed image included) before any pixel is decoded: ``check_limits`` is what ``open_fits``
runs first, so a 14 MB file of 30000 x 30000 zeros is rejected from its header alone.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from typing import NamedTuple

from astropy.io import fits

from panoptes_network.core.errors import BadInput
from panoptes_network.core.settings import DEFAULT_LIMITS, Limits

BLOCK = 2880
CARD = 80
FIRST_READ_BLOCKS = 4  # most PANOPTES headers fit in 2-3 blocks: one request
MAX_NAXIS = 999  # the FITS standard's bound on NAXIS and ZNAXIS
BITPIX_VALUES = (8, 16, 32, 64, -32, -64)

# Compressed-HDU keywords that describe the table, not the image.
TABLE_KEYWORD = re.compile(
    r"^(XTENSION|BITPIX|NAXIS\d*|PCOUNT|GCOUNT|TFIELDS|TTYPE\d+|TFORM\d+|TUNIT\d+|TDIM\d+|THEAP|EXTNAME"
    r"|ZIMAGE|ZBITPIX|ZNAXIS\d*|ZCMPTYPE|ZNAME\d+|ZVAL\d+|ZTILE\d+|ZQUANTIZ|ZDITHER0|ZBLANK|ZTENSION|ZSIMPLE|ZEXTEND|ZBLOCKED"
    r"|ZPCOUNT|ZGCOUNT|ZHECKSUM|ZDATASUM|CHECKSUM|DATASUM)$"
)

ReadRange = Callable[[int, int], bytes]


class HeaderReader:
    """Reads the start of an object through ``read_range(start, end)``, a few blocks at a time,
    keeping what it read (the primary header's extra blocks often hold the next header)."""

    def __init__(self, read_range: ReadRange, what: str, limits: Limits) -> None:
        self.read_range = read_range
        self.what = what
        self.limits = limits
        self.prefix = b""  # bytes [0, len(prefix)) of the object
        self.at_end = False

    @property
    def bytes_read(self) -> int:
        return len(self.prefix)

    def read_more(self) -> None:
        want = max(FIRST_READ_BLOCKS * BLOCK, len(self.prefix))  # double each time
        chunk = self.read_range(len(self.prefix), len(self.prefix) + want)
        self.prefix += chunk
        self.at_end = len(chunk) < want

    def header_at(self, offset: int) -> tuple[fits.Header, int]:
        """The header starting at ``offset`` and its length in bytes (whole blocks)."""
        scanned = offset
        while True:
            end = _end_card(self.prefix, scanned)
            if end is not None:
                self.limits.check(self.what, "max_header_cards", (end - offset) // CARD)
                length = -(-(end + CARD - offset) // BLOCK) * BLOCK
                return self._parse(self.prefix[offset : end + CARD]), length
            scanned = max(offset, len(self.prefix) - len(self.prefix) % CARD)
            if self.at_end:
                raise BadInput(f"{self.what}: header has no END card (truncated or not FITS)")
            self.limits.check(self.what, "max_header_cards", (len(self.prefix) - offset) // CARD)
            self.read_more()

    def _parse(self, raw: bytes) -> fits.Header:
        try:
            return fits.Header.fromstring(raw.decode("ascii"))
        except (UnicodeDecodeError, ValueError, TypeError, IndexError, KeyError) as exc:
            raise BadInput(f"{self.what}: header is not valid FITS: {exc}", exc) from exc


def _end_card(text: bytes, start: int) -> int | None:
    for position in range(start, len(text) - CARD + 1, CARD):
        if text[position : position + CARD].rstrip() == b"END":
            return position
    return None


def _whole(header: fits.Header, key: str, what: str, default: int | None = None) -> int:
    """An integer card's value, or ``BadInput`` naming it (a float, a string, a bool, missing)."""
    value = header.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int):
        raise BadInput(f"{what}: {key} = {value!r} is not an integer")
    return value


def bitpix(header: fits.Header, key: str, what: str) -> int:
    value = _whole(header, key, what)
    if value not in BITPIX_VALUES:
        raise BadInput(f"{what}: {key} = {value} is not a FITS BITPIX ({', '.join(map(str, BITPIX_VALUES))})")
    return value


def axes(header: fits.Header, what: str, prefix: str = "NAXIS") -> list[int]:
    """``NAXIS1..n`` (or ``ZNAXIS1..n``): whole, non-negative, at most 999 of them."""
    count = _whole(header, prefix, what, 0 if prefix == "NAXIS" else None)
    if not 0 <= count <= MAX_NAXIS:
        raise BadInput(f"{what}: {prefix} = {count} is outside 0..{MAX_NAXIS}")
    sizes = [_whole(header, f"{prefix}{axis}", what) for axis in range(1, count + 1)]
    negative = [size for size in sizes if size < 0]
    if negative:
        raise BadInput(f"{what}: a negative {prefix}n ({negative[0]})")
    return sizes


def image_pixels(header: fits.Header, what: str) -> int:
    """Pixels of the image an HDU holds (a compressed one's ZNAXISn), 0 for a table."""
    if header.get("ZIMAGE") is True:
        sizes = axes(header, what, "ZNAXIS")
    elif header.get("XTENSION", "IMAGE") in ("IMAGE", "IMAGE   "):
        sizes = axes(header, what)
    else:
        return 0
    return math.prod(sizes) if sizes else 0


def image_header_of_compressed(table_header: fits.Header, what: str = "compressed HDU") -> fits.Header:
    """The image header stored in a compressed HDU's table header."""
    header = fits.Header()
    header["BITPIX"] = bitpix(table_header, "ZBITPIX", what)
    sizes = axes(table_header, what, "ZNAXIS")
    header["NAXIS"] = len(sizes)
    for axis, size in enumerate(sizes, start=1):
        header[f"NAXIS{axis}"] = size
    for card in table_header.cards:
        if not TABLE_KEYWORD.match(card.keyword):
            header.append(card)
    return header


class ImageHeader(NamedTuple):
    header: fits.Header
    bytes_read: int
    size_needed: int  # bytes the object must have to hold the data the headers describe


def data_bytes(header: fits.Header, what: str = "FITS header") -> int:
    """Bytes of the data unit that follows a header, before its padding (FITS standard 4.4.1)."""
    sizes = axes(header, what)
    if not sizes:
        return 0
    groups, parameters = _whole(header, "GCOUNT", what, 1), _whole(header, "PCOUNT", what, 0)
    return abs(bitpix(header, "BITPIX", what)) * groups * (parameters + math.prod(sizes)) // 8


def data_size(header: fits.Header, what: str = "FITS header") -> int:
    """Bytes of the data unit that follows a header, padded to whole blocks."""
    return -(-data_bytes(header, what) // BLOCK) * BLOCK


def _checked(reader: HeaderReader, offset: int) -> tuple[fits.Header, int]:
    """The header at ``offset`` and its length, its image's pixels within the limits."""
    header, length = reader.header_at(offset)
    reader.limits.check(reader.what, "max_image_pixels", image_pixels(header, reader.what))
    return header, length


def read_image_header(read_range: ReadRange, what: str, limits: Limits = DEFAULT_LIMITS) -> ImageHeader:
    """The header of the first image in a FITS object, the bytes read, and the size the object
    needs (a shorter object is truncated); ``OverLimit`` when its headers exceed ``limits``."""
    reader = HeaderReader(read_range, what, limits)
    reader.read_more()
    if not reader.prefix.startswith(b"SIMPLE  ="):
        raise BadInput(f"{what} is not a FITS file (it does not start with SIMPLE)")
    primary, length = _checked(reader, 0)
    if axes(primary, what) or primary.get("EXTEND", False) is not True:
        return ImageHeader(primary, reader.bytes_read, length + data_size(primary, what))
    extension, extension_length = _checked(reader, length)  # an empty primary: the next header follows
    needed = length + extension_length + data_size(extension, what)
    if extension.get("ZIMAGE") is True:
        return ImageHeader(image_header_of_compressed(extension, what), reader.bytes_read, needed)
    return ImageHeader(extension, reader.bytes_read, needed)


def check_limits(data: bytes, what: str, limits: Limits) -> None:
    """Every HDU header of FITS bytes against ``limits`` (HDUs, cards, pixels), before astropy
    decodes anything; ``OverLimit`` (or ``BadInput`` for a header that is not FITS) otherwise."""
    limits.check(what, "max_object_bytes", len(data))
    reader = HeaderReader(lambda start, end: data[start:end], what, limits)
    reader.read_more()
    offset, count = 0, 0
    while offset < len(data) and (count == 0 or data[offset : offset + 8] == b"XTENSION"):
        count += 1
        limits.check(what, "max_hdus", count)
        header, length = _checked(reader, offset)
        needed, held = data_bytes(header, what), len(data) - offset - length
        if needed > held:  # astropy would allocate all of it before finding out
            raise BadInput(
                f"{what} is not a readable FITS file: truncated, HDU {count} has {held:,} of its {needed:,} data bytes"
            )
        offset += length + data_size(header, what)
