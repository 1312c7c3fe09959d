"""Embedded ingest of a local file into the raw-bucket folder."""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from panoptes_network.adapters.folder_storage import FolderStorage
from panoptes_network.drivers.ingest import ingest
from panoptes_network.synthetic.frames import FrameSpec, write_frame


@contextmanager
def ingest_full_frame(work: Path) -> Iterator[tuple[Callable[[], object], Callable[[], object]]]:
    """Our ingest (name from the header, create-only fsynced copy) vs a plain file copy."""
    frame = write_frame(FrameSpec(), work / "in")
    # A non-canonical name makes ingest read the header, as for a file on a laptop.
    loose = frame.rename(work / "frame.fits")
    runs = iter(range(1_000_000))

    def ours() -> None:
        ingest(FolderStorage(work / f"ours-{next(runs)}"), "raw", loose)

    def reference() -> None:
        shutil.copyfile(loose, work / f"copy-{next(runs)}.fits")

    yield ours, reference


CASES = {"ingest-full-frame": ingest_full_frame}
