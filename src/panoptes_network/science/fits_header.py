"""Read the image header of a FITS or tile-compressed FITS object without downloading it.

Headers come in 2880-byte blocks ending with an ``END`` card; the object is read in ranges of
a few blocks until ``END``. A ``.fits.fz`` has an empty primary HDU and the image's header in
the compressed HDU that follows, stored there with compression keywords (``ZBITPIX``,
``ZNAXISn``, ...) that are mapped back, so callers see the image's own header.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import NamedTuple

from astropy.io import fits

from panoptes_network.core.errors import BadInput

BLOCK = 2880
CARD = 80
FIRST_READ_BLOCKS = 4  # most PANOPTES headers fit in 2-3 blocks: one request
MAX_HEADER_BYTES = 1 << 20  # 13,000 cards; more is not a header we want to parse

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

    def __init__(self, read_range: ReadRange, what: str) -> None:
        self.read_range = read_range
        self.what = what
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
                length = -(-(end + CARD - offset) // BLOCK) * BLOCK
                return self._parse(self.prefix[offset : end + CARD]), length
            scanned = max(offset, len(self.prefix) - len(self.prefix) % CARD)
            if self.at_end:
                raise BadInput(f"{self.what}: header has no END card (truncated or not FITS)")
            if len(self.prefix) - offset >= MAX_HEADER_BYTES:
                raise BadInput(f"{self.what}: header is larger than {MAX_HEADER_BYTES} bytes")
            self.read_more()

    def _parse(self, raw: bytes) -> fits.Header:
        try:
            return fits.Header.fromstring(raw.decode("ascii"))
        except (UnicodeDecodeError, ValueError) as exc:
            raise BadInput(f"{self.what}: header is not valid FITS: {exc}", exc) from exc


def _end_card(text: bytes, start: int) -> int | None:
    for position in range(start, len(text) - CARD + 1, CARD):
        if text[position : position + CARD].rstrip() == b"END":
            return position
    return None


def image_header_of_compressed(table_header: fits.Header) -> fits.Header:
    """The image header stored in a compressed HDU's table header."""
    header = fits.Header()
    header["BITPIX"] = table_header["ZBITPIX"]
    header["NAXIS"] = table_header["ZNAXIS"]
    for axis in range(1, int(table_header["ZNAXIS"]) + 1):
        header[f"NAXIS{axis}"] = table_header[f"ZNAXIS{axis}"]
    for card in table_header.cards:
        if not TABLE_KEYWORD.match(card.keyword):
            header.append(card)
    return header


class ImageHeader(NamedTuple):
    header: fits.Header
    bytes_read: int
    size_needed: int  # bytes the object must have to hold the data the headers describe


def data_size(header: fits.Header) -> int:
    """Bytes of the data unit that follows a header, padded to whole blocks (FITS standard 4.4.1)."""
    naxis = int(header.get("NAXIS", 0))
    if naxis == 0:
        return 0
    elements = 1
    for axis in range(1, naxis + 1):
        elements *= int(header.get(f"NAXIS{axis}", 0))
    bits = abs(int(header.get("BITPIX", 8))) * int(header.get("GCOUNT", 1)) * (int(header.get("PCOUNT", 0)) + elements)
    return -(-(bits // 8) // BLOCK) * BLOCK


def read_image_header(read_range: ReadRange, what: str) -> ImageHeader:
    """The header of the first image in a FITS object, the bytes read, and the size the object
    needs (a shorter object is truncated)."""
    reader = HeaderReader(read_range, what)
    reader.read_more()
    if not reader.prefix.startswith(b"SIMPLE  ="):
        raise BadInput(f"{what} is not a FITS file (it does not start with SIMPLE)")
    primary, length = reader.header_at(0)
    if int(primary.get("NAXIS", 0)) > 0 or not primary.get("EXTEND", False):
        return ImageHeader(primary, reader.bytes_read, length + data_size(primary))
    extension, extension_length = reader.header_at(length)  # an empty primary: the next header follows
    needed = length + extension_length + data_size(extension)
    if extension.get("ZIMAGE") is True:
        return ImageHeader(image_header_of_compressed(extension), reader.bytes_read, needed)
    return ImageHeader(extension, reader.bytes_read, needed)
