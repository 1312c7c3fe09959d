"""Bring a local file into the raw bucket under its canonical name (embedded runs).

A unit uploads to ``{unit}/{camera}/{sequence}/{image}.{ext}``; a file on a laptop is often
called ``unsolved.fits``. The name is taken from the path when its tail is canonical, else
from the FITS header, else from what the person says (``process --unit --camera``). The user's file is only read, never moved or changed.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from pathlib import Path

from astropy.io import fits

from panoptes_network.adapters.storage import Storage
from panoptes_network.core.errors import AlreadyExists, BadInput
from panoptes_network.core.messages import ObjectRef
from panoptes_network.core.names import (
    EXPECTED_FORM,
    NO_HINTS,
    TIME_RE,
    FileKind,
    NameHints,
    RawName,
    file_kind,
    header_ids,
    parse_raw_name,
    raw_name_from_header,
    split_extension,
)


def name_from_path(path: Path) -> RawName | None:
    """The raw name when the path ends in a canonical (or legacy) object name."""
    parts = path.resolve().parts
    for count in (4, 5):
        if len(parts) > count:
            try:
                return parse_raw_name("/".join(parts[-count:]))
            except BadInput:
                continue
    return None


def read_fits_header(path: Path) -> fits.Header:
    """The primary header, or for a tile-compressed file the compressed image's header."""
    try:
        with fits.open(path, memmap=False, lazy_load_hdus=True) as hdus:
            header = hdus[0].header
            if isinstance(header, fits.Header) and header.get("NAXIS", 0) == 0 and len(hdus) > 1:
                header = hdus[1].header
            return header.copy()
    except (OSError, ValueError, IndexError) as exc:
        raise BadInput(f"{path} is not a readable FITS file: {exc}", exc) from exc


HINT_OPTIONS = "--unit PAN001 --camera 14d3bd"


def is_fits(path: Path) -> bool:
    return file_kind(split_extension(path.name)[1]) in (FileKind.FITS, FileKind.FITS_FZ)


def canonical_name(path: Path, hints: NameHints = NO_HINTS) -> RawName:
    """Work out the raw object name of a local file, or say how to name it (for a header
    without ids: the ``process`` options that supply them)."""
    name = name_from_path(path)
    if name is not None:
        return name
    if not is_fits(path):
        raise BadInput(f"cannot tell which image {path.name} is: put it at {EXPECTED_FORM}")
    header = read_fits_header(path)  # an unreadable file says so, without the options
    try:
        return raw_name_from_header(header, split_extension(path.name)[1], hints)
    except BadInput as exc:
        if hints.unit_id and hints.camera_id:
            raise
        raise BadInput(f"{path.name}: {exc.message}; or give its ids: process {HINT_OPTIONS}", exc) from exc


def run_hints(files: Iterable[Path], hints: NameHints) -> NameHints:
    """The hints for one ``process`` run: the files whose headers have no sequence id form one
    sequence, starting at the earliest of their image times (unless the hints name one)."""
    if hints.sequence_time or not (hints.unit_id or hints.camera_id):
        return hints
    times = []
    for path in files:
        if name_from_path(path) is not None or not is_fits(path):
            continue
        try:
            ids = header_ids(read_fits_header(path))
        except BadInput:
            continue  # an unreadable file is rejected, with its reason, when it is processed
        if ids.sequence_time is None and ids.image_name is not None and TIME_RE.fullmatch(ids.image_name):
            times.append(ids.image_name)
    return dataclasses.replace(hints, sequence_time=min(times)) if times else hints


def ingest(storage: Storage, raw_bucket: str, path: Path, hints: NameHints = NO_HINTS) -> tuple[ObjectRef, bool]:
    """Copy the file into the raw bucket (create-only): the stored generation, and whether this
    call wrote it.

    The same bytes already stored under the name are reused; different bytes are refused
    rather than overwritten.
    """
    if not path.is_file():
        raise BadInput(f"{path} is not a file")
    name = canonical_name(path, hints)
    data = path.read_bytes()
    try:
        return storage.write_new(raw_bucket, name.path, data), True
    except AlreadyExists:
        existing = storage.stat(raw_bucket, name.path)
        if existing is not None and storage.read(existing.ref) == data:
            return existing.ref, False
        raise BadInput(f"{raw_bucket}/{name.path} already holds a different file; {path} was not stored") from None
