"""Buckets as folders: the embedded runner's storage.

``root/{bucket}/{name}`` is a plain file that people can open. A generation is the file's
``st_mtime_ns``, stamped from the nanosecond clock at creation (file timestamps
themselves tick only every few milliseconds, too coarse to tell a quick rewrite apart); every read opens the file and checks the generation on the open
descriptor, so a file replaced between the check and the read is never mistaken for the one
asked for. Writes go to a temporary file that is hard-linked into place, which fails if the
name exists: create-only, atomic, and never a half-written file under the final name.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import BinaryIO

from panoptes_network.adapters.storage import ObjectInfo, require_live_generation
from panoptes_network.core.errors import AlreadyExists, NotFound
from panoptes_network.core.messages import ObjectRef

TEMP_PREFIX = ".tmp-"


class FolderStorage:
    """Implements ``Storage`` on a local folder (one sub-folder per bucket)."""

    def __init__(self, root: Path, on_finalize: Callable[[ObjectInfo], None] | None = None) -> None:
        """``on_finalize`` is called after each successful write, as Cloud Storage notifies."""
        self.root = Path(root)
        self.on_finalize = on_finalize

    def _path(self, bucket: str, name: str) -> Path:
        path = (self.root / bucket / name).resolve()
        if not path.is_relative_to((self.root / bucket).resolve()) or "/" in bucket or bucket in ("", ".", ".."):
            raise NotFound(f"object name {bucket}/{name} leaves its bucket folder")
        return path

    @contextlib.contextmanager
    def _open(self, ref: ObjectRef) -> Iterator[BinaryIO]:
        try:
            handle = open(self._path(ref.bucket, ref.name), "rb")  # noqa: SIM115 (closed by the with below)
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError) as exc:
            raise NotFound(f"{ref.identity} does not exist", exc) from exc
        with handle:
            if os.fstat(handle.fileno()).st_mtime_ns != ref.generation:
                raise NotFound(f"{ref.identity}: that generation no longer exists")
            yield handle

    def read(self, ref: ObjectRef) -> bytes:
        with self._open(ref) as handle:
            return handle.read()

    def read_range(self, ref: ObjectRef, start: int, end: int) -> bytes:
        with self._open(ref) as handle:
            handle.seek(start)
            return handle.read(max(0, end - start))

    def stat(self, bucket: str, name: str) -> ObjectInfo | None:
        try:
            st = self._path(bucket, name).stat()
        except (FileNotFoundError, NotADirectoryError):
            return None
        if not os.path.isfile(self._path(bucket, name)):
            return None
        updated = dt.datetime.fromtimestamp(st.st_mtime_ns / 1e9, dt.UTC)
        return ObjectInfo(ObjectRef(bucket, name, st.st_mtime_ns), st.st_size, None, updated)

    def write_new(self, bucket: str, name: str, data: bytes, content_type: str | None = None) -> ObjectRef:
        return self._write(bucket, name, data, content_type, replace=False)

    def replace(self, ref: ObjectRef, data: bytes, content_type: str | None = None) -> ObjectRef:
        require_live_generation(self, ref)
        return self._write(ref.bucket, ref.name, data, content_type, replace=True)

    def _write(self, bucket: str, name: str, data: bytes, content_type: str | None, replace: bool) -> ObjectRef:
        """The new content, complete and fsync'd, appears under the name in one step."""
        path = self._path(bucket, name)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, temp = tempfile.mkstemp(prefix=TEMP_PREFIX, dir=path.parent)
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
                handle.flush()
                os.fsync(handle.fileno())
            os.utime(temp, ns=(time.time_ns(), time.time_ns()))
            if replace:
                os.replace(temp, path)
            else:
                try:
                    os.link(temp, path)
                except FileExistsError as exc:
                    raise AlreadyExists(f"{bucket}/{name} already exists", exc) from exc
        finally:
            with contextlib.suppress(FileNotFoundError):  # os.replace moved it into place
                os.unlink(temp)
        st = path.stat()
        ref = ObjectRef(bucket, name, st.st_mtime_ns)
        if self.on_finalize is not None:
            self.on_finalize(ObjectInfo(ref, st.st_size, content_type))
        return ref

    def delete(self, ref: ObjectRef) -> None:
        require_live_generation(self, ref)
        self._path(ref.bucket, ref.name).unlink()

    def list(self, bucket: str, prefix: str = "") -> Iterator[ObjectInfo]:
        top = self.root / bucket
        names = sorted(
            path.relative_to(top).as_posix()
            for path in top.rglob("*")
            if path.is_file() and not path.name.startswith(TEMP_PREFIX)
        )
        for name in names:
            if name.startswith(prefix) and (info := self.stat(bucket, name)) is not None:
                yield info
