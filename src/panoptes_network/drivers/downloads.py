"""Downloading an observation's files: resumable and verified.

Each file goes to ``{to}/{bucket key}/{its name under the sequence folder}`` through
``NAME.{version}.part``: a file already there at the listed size is kept, a ``.part`` is
continued from where it stopped, and only a ``.part`` of exactly the listed size is renamed
into place (so a file of the user's is replaced only by a complete, verified one). The version
(the object's generation) in the part's name means a product reprocessed between two runs is
fetched whole, never the old one's beginning glued to the new one's end; parts of other
versions are removed once the file is complete. A name that would leave ``to`` (``..``, an
absolute path) is refused, whatever the server says.
"""

from __future__ import annotations

import dataclasses
import glob
import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from panoptes_network.core.errors import BadInput, PipelineError
from panoptes_network.drivers.archive_client import ArchiveClient
from panoptes_network.explorer.stored_files import safe_name

PART = ".part"


def part_path(path: Path, listed: Mapping[str, Any]) -> Path:
    """Where a file grows until it is complete: beside it, named with its version."""
    version = str(listed.get("version") or "")
    return path.with_name(f"{path.name}.{version}{PART}" if version.isalnum() else f"{path.name}{PART}")


@dataclasses.dataclass(frozen=True)
class Downloaded:
    """What became of one file: ``state`` is downloaded, resumed, present (already complete),
    replaced (a different file of that name was there) or failed (``error`` says why)."""

    path: Path
    state: str
    size: int
    error: str | None = None


def target_path(to: Path, folder: str, listed: Mapping[str, Any]) -> Path:
    """Where a listed file goes; ``BadInput`` for a name that is not a plain relative path."""
    name, key = str(listed.get("name", "")), str(listed.get("bucket", ""))
    if not safe_name(name) or not safe_name(key) or "/" in key:
        raise BadInput(f"refusing to write {key}/{name}: not a plain relative name")
    return to / key / name.removeprefix(f"{folder}/")


def download_file(
    client: ArchiveClient, listed: Mapping[str, Any], path: Path, progress: Callable[[int], object]
) -> Downloaded:
    """Fetch one file to ``path`` (via ``path.part``), calling ``progress`` with each byte count."""
    expected = int(listed["size"])
    if path.is_file() and path.stat().st_size == expected:
        progress(expected)
        return Downloaded(path, "present", expected)
    part = part_path(path, listed)
    path.parent.mkdir(parents=True, exist_ok=True)
    have = part.stat().st_size if part.is_file() else 0
    if have > expected:  # not a prefix of this file: start again
        have = 0
    progress(have)
    with open(part, "ab" if have else "wb") as out:
        for chunk in client.read(str(listed["url"]), have):
            if out.tell() + len(chunk) > expected:
                out.close()
                part.unlink()
                raise PipelineError(f"{listed['name']}: more bytes than the {expected} listed; it changed, run again")
            out.write(chunk)
            progress(len(chunk))
    size = part.stat().st_size
    if size != expected:
        raise PipelineError(f"{listed['name']}: {size} of {expected} bytes arrived; run again to continue")
    state = "replaced" if path.exists() else "resumed" if have else "downloaded"
    os.replace(part, path)
    for stale in path.parent.glob(f"{glob.escape(path.name)}.*{PART}"):  # parts of older versions
        stale.unlink()
    return Downloaded(path, state, expected)
