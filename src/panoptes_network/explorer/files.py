"""``/files/{bucket_key}/{object name}``: stored objects as downloads, with Range (the timelapse
plays, a download resumes), an ETag from the object's generation (a replaced product is a new
ETag) and cache headers.

Only the configured buckets, by key, and only names ``stored_files.safe_name`` accepts: no name
leaves its bucket folder. The content type comes from the name's suffix, never the uploader.
"""

from __future__ import annotations

from urllib.parse import quote

from flask import Blueprint, Response, request
from werkzeug.exceptions import NotFound, RequestedRangeNotSatisfiable

from panoptes_network.explorer.current import current_archive
from panoptes_network.explorer.stored_files import FILES_PREFIX, content_type

blueprint = Blueprint("files", __name__, url_prefix=FILES_PREFIX)

# A product may be replaced by a rerun under the same name: cache a while, then revalidate.
CACHE_CONTROL = "public, max-age=300, must-revalidate"


@blueprint.get("/<key>/<path:name>")
def stored_file(key: str, name: str) -> Response:
    archive = current_archive()
    location = archive.buckets.location(key, name)
    info = archive.stored(location) if location else None
    if location is None or info is None:
        raise NotFound(f"no file {key}/{name}")
    etag = f"{info.ref.generation}-{info.size}"
    kind, inline = content_type(name)
    headers = {
        "ETag": f'"{etag}"',
        "Cache-Control": CACHE_CONTROL,
        "Accept-Ranges": "bytes",
        "Content-Type": kind,
        "Content-Disposition": f"{'inline' if inline else 'attachment'}; filename*=UTF-8''{quote(name.rsplit('/', 1)[-1])}",
    }
    if request.if_none_match.contains(etag):
        return Response(status=304, headers=headers)
    start, end, status = 0, info.size, 200
    wanted = request.range
    # One byte range, of this very object (If-Range), is answered as a part; anything else whole.
    if wanted is not None and len(wanted.ranges) == 1 and request.if_range.etag in (None, etag):
        span = wanted.range_for_length(info.size)
        if span is None:
            raise RequestedRangeNotSatisfiable(length=info.size)
        start, end, status = span[0], span[1], 206
        headers["Content-Range"] = f"bytes {start}-{end - 1}/{info.size}"
    headers["Content-Length"] = str(end - start)
    return Response(archive.stream(info, start, end), status=status, headers=headers, direct_passthrough=True)
