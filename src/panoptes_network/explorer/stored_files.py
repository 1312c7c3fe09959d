"""The explorer's view of stored objects: their public URL paths, which names may be served, and
the content type each is served as.

A URL path is ``/files/{bucket_key}/{object name}``: the bucket's key in the topology (``raw``,
``rgb``, ``backgrounds``, ``processed``), never its name, so the same page works whatever
``PANOPTES_BUCKET_*`` says and no other bucket can be asked for. The content type comes from the
name's suffix, never from what the uploader declared: a unit's upload must not become a web
page on our origin.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from urllib.parse import quote

FILES_PREFIX = "/files"
MAX_NAME = 1024  # Cloud Storage's limit on an object name, in bytes

# suffix -> (content type, shown in the page rather than downloaded)
CONTENT_TYPES: Mapping[str, tuple[str, bool]] = {
    ".fits.fz": ("application/fits", False),
    ".fits": ("application/fits", False),
    ".fz": ("application/fits", False),
    ".parquet": ("application/vnd.apache.parquet", False),
    ".png": ("image/png", True),
    ".jpg": ("image/jpeg", True),
    ".jpeg": ("image/jpeg", True),
    ".mp4": ("video/mp4", True),
    ".json": ("application/json", False),
}
DEFAULT_CONTENT_TYPE = "application/octet-stream"


@dataclasses.dataclass(frozen=True)
class FileLocation:
    """An object the explorer may serve: its bucket key, bucket name and object name."""

    key: str
    bucket: str
    name: str

    @property
    def url(self) -> str:
        return f"{FILES_PREFIX}/{self.key}/{quote(self.name, safe='/')}"

    @property
    def gs_path(self) -> str:
        return f"gs://{self.bucket}/{self.name}"


def content_type(name: str) -> tuple[str, bool]:
    """(content type, inline) for an object name, from its suffix (``application/octet-stream``
    and a download for anything unknown)."""
    lower = name.lower()
    return next(
        (value for suffix, value in CONTENT_TYPES.items() if lower.endswith(suffix)), (DEFAULT_CONTENT_TYPE, False)
    )


def safe_name(name: str) -> bool:
    """Whether an object name can be served: relative, no ``.``/``..``/empty segment, no
    backslash or control character (so no path leaves its bucket folder, on any backend)."""
    if not name or len(name.encode()) > MAX_NAME or name.startswith("/") or "\\" in name:
        return False
    if any(ord(c) < 32 or ord(c) == 127 for c in name):
        return False
    return all(part not in ("", ".", "..") for part in name.split("/"))


class Buckets:
    """The configured buckets by key and by name."""

    def __init__(self, buckets: Mapping[str, str]) -> None:
        self.by_key = dict(buckets)
        self.by_name = {name: key for key, name in buckets.items()}

    def location(self, key: str, name: str) -> FileLocation | None:
        """The object ``name`` of the bucket with ``key``, if both may be served."""
        bucket = self.by_key.get(key)
        if bucket is None or not safe_name(name):
            return None
        return FileLocation(key, bucket, name)

    def from_path(self, path: str) -> FileLocation | None:
        """``bucket/name`` (as records hold them) or ``gs://bucket/name`` -> its location, when
        the bucket is one of ours and the name may be served."""
        bucket, _, name = path.removeprefix("gs://").partition("/")
        key = self.by_name.get(bucket)
        return None if key is None else self.location(key, name)

    def url(self, path: str | None) -> str | None:
        """The URL path of a ``bucket/name`` a record holds, or None."""
        location = self.from_path(path) if path else None
        return location.url if location else None
