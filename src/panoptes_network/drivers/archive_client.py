"""The archive as ``search`` and ``download`` see it: a local data dir (through ``Archive``) or a
deployed explorer (its JSON API and ``/files``), behind one small interface, so both commands
have one code path whichever they read.

The remote side uses the standard library's HTTP client: three GET requests, nothing to add.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator, Mapping
from typing import Any, Protocol

from panoptes_network.core.errors import NotFound, PipelineError, TransientError
from panoptes_network.explorer.archive import Archive, FileSet
from panoptes_network.explorer.search_filters import BadQuery, SearchFilters
from panoptes_network.explorer.stored_files import FILES_PREFIX

TIMEOUT_SECONDS = 60
CHUNK = 1 << 20


class ArchiveClient(Protocol):
    def search(self, params: Mapping[str, str]) -> dict[str, Any]:
        """One page: {items, next_cursor} (``BadQuery`` for a bad parameter)."""
        ...

    def files(self, sequence_id: str, what: FileSet) -> list[dict[str, Any]]:
        """The observation's files ({bucket, name, size, url}); ``NotFound`` when there is none."""
        ...

    def read(self, url: str, start: int) -> Iterator[bytes]:
        """The file at ``url`` (a listing's url) from byte ``start`` to its end."""
        ...


class LocalArchive:
    """A data dir's records and buckets, read as the explorer app reads them."""

    def __init__(self, archive: Archive) -> None:
        self.archive = archive

    def search(self, params: Mapping[str, str]) -> dict[str, Any]:
        return self.archive.search(SearchFilters.parse(params)).as_json()

    def files(self, sequence_id: str, what: FileSet) -> list[dict[str, Any]]:
        found = self.archive.files(sequence_id, what)
        if found is None:
            raise NotFound(f"no observation {sequence_id}")
        return found

    def read(self, url: str, start: int) -> Iterator[bytes]:
        key, _, name = urllib.parse.unquote(url.removeprefix(f"{FILES_PREFIX}/")).partition("/")
        location = self.archive.buckets.location(key, name)
        info = self.archive.stored(location) if location else None
        if info is None:
            raise NotFound(f"{url} is gone")
        return self.archive.stream(info, start, info.size, CHUNK)


class RemoteArchive:
    """A deployed explorer at ``base_url`` (``https://...``, no trailing path)."""

    def __init__(self, base_url: str) -> None:
        parsed = urllib.parse.urlsplit(base_url)
        if parsed.scheme not in ("http", "https") or not parsed.netloc:
            raise BadQuery(f"--url {base_url!r} is not an http(s) URL like https://explorer.example.org")
        self.base_url = base_url.rstrip("/")

    def get_json(self, path: str, params: Mapping[str, str] | None = None) -> Any:
        query = f"?{urllib.parse.urlencode(params)}" if params else ""
        with self.open(f"{path}{query}") as response:
            return json.load(response)

    def open(self, path: str, headers: Mapping[str, str] | None = None) -> Any:
        """The response to a GET of ``path``; an error answer as the error it means."""
        url = f"{self.base_url}{path}"
        try:
            return urllib.request.urlopen(
                urllib.request.Request(url, headers=dict(headers or {})), timeout=TIMEOUT_SECONDS
            )
        except urllib.error.HTTPError as exc:
            message = error_message(exc)
            if exc.code == 400:
                raise BadQuery(message) from exc
            if exc.code == 404:
                raise NotFound(message) from exc
            if exc.code in (429, 502, 503, 504):
                raise TransientError(f"{url}: {exc.code} {message}", exc) from exc
            raise PipelineError(f"{url}: {exc.code} {message}", exc) from exc
        except (urllib.error.URLError, TimeoutError, ConnectionError) as exc:
            raise TransientError(f"{url} did not answer: {exc}", exc) from exc

    def search(self, params: Mapping[str, str]) -> dict[str, Any]:
        found: dict[str, Any] = self.get_json("/api/observations", params)
        return found

    def files(self, sequence_id: str, what: FileSet) -> list[dict[str, Any]]:
        quoted = urllib.parse.quote(sequence_id, safe="")
        found: list[dict[str, Any]] = self.get_json(f"/api/observations/{quoted}/files", {"what": what})["files"]
        return found

    def read(self, url: str, start: int) -> Iterator[bytes]:
        """The bytes from ``start``; a server that ignores the Range gives the whole file, whose
        first ``start`` bytes are skipped, so the result is the same."""
        with self.open(url, {"Range": f"bytes={start}-"} if start else None) as response:
            skip = start if start and response.status == 200 else 0
            while chunk := response.read(CHUNK):
                if skip:
                    dropped = min(skip, len(chunk))
                    chunk, skip = chunk[dropped:], skip - dropped
                if chunk:
                    yield chunk


def error_message(error: urllib.error.HTTPError) -> str:
    """The explorer's ``{error}`` from an error answer, else its status text."""
    try:
        return str(json.loads(error.read())["error"])
    except (ValueError, KeyError, TypeError):
        return str(error.reason)
