"""The explorer's HTML pages: home, search, observation, image and unit, server-rendered.

Each page is one ``Archive`` view put through a Jinja2 template; no JavaScript (the timelapse is
a plain ``<video controls>``), so the strict Content-Security-Policy of ``app.py`` holds and a
page works in any browser. A bad search parameter shows the form again with why (a 400); a
missing record is the app's 404 page. The FITS URL lists are plain text, one absolute URL a
line, for ``wget -i`` or ``curl`` (the original explorer's "Download FITS list").
"""

from __future__ import annotations

import datetime as dt
import functools
from collections.abc import Callable, Mapping
from typing import Any

from flask import Blueprint, Response, current_app, make_response, render_template, request
from flask.blueprints import BlueprintSetupState
from werkzeug.exceptions import NotFound

from panoptes_network.explorer.archive import FileSet
from panoptes_network.explorer.current import current_archive
from panoptes_network.explorer.page_cache import PageCache
from panoptes_network.explorer.search_filters import PARAMETERS, BadQuery, SearchFilters

blueprint = Blueprint("pages", __name__, template_folder="templates", static_folder="static")

RECENT = 12  # observations on the home page
PAGE_SECONDS = 10  # how old a page may be (page_cache.py); browsers may keep it as long
PAGE_ENTRIES = 512  # rendered pages kept, a few MB
CACHE = "panoptes_pages"
# The plain-text URL lists of an observation: what -> (file set, the names it keeps)
URL_LISTS: Mapping[str, tuple[FileSet, tuple[str, ...]]] = {
    "fits": ("processed", (".fits.fz", ".fits")),
    "raw": ("raw", ("",)),
    "sources": ("processed", ("-sources.parquet",)),
}
# Products shown as pictures on the observation page, in this order, with their captions.
PREVIEWS = (
    ("stack_png", "Median stack"),
    ("difference_png", "Difference: per-pixel RMS of each frame minus the stack (what varied)"),
)


RenderedPage = tuple[bytes, int, list[tuple[str, str]]]  # body, status, headers: a new Response each time


@blueprint.record_once
def attach_cache(state: BlueprintSetupState) -> None:
    state.app.extensions[CACHE] = PageCache[RenderedPage](PAGE_SECONDS, PAGE_ENTRIES)


def cached(view: Callable[..., Any]) -> Callable[..., Response]:
    """The view's page for this URL, rendered at most once per ``PAGE_SECONDS`` (a 200 only)."""

    @functools.wraps(view)
    def serve(**arguments: Any) -> Response:
        def render() -> RenderedPage:
            response = make_response(view(**arguments))
            if response.status_code == 200:  # the others: the app's default, no-cache
                response.headers["Cache-Control"] = f"public, max-age={PAGE_SECONDS}"
            return response.get_data(), response.status_code, list(response.headers.items())

        cache: PageCache[RenderedPage] = current_app.extensions[CACHE]
        body, status, headers = cache.get(request.url, render, keep=lambda page: page[1] == 200)
        return Response(body, status=status, headers=headers)

    return serve


def existing(view: dict[str, Any] | None, what: str) -> dict[str, Any]:
    """The archive's view, or the 404 page saying what is missing."""
    if view is None:
        raise NotFound(f"no {what}")
    return view


@blueprint.app_template_filter("size")
def size(value: int | None) -> str:
    """Bytes for people: 1.2 MB."""
    if value is None:
        return "missing"
    amount = float(value)
    for unit in ("B", "kB", "MB", "GB"):
        if amount < 1000 or unit == "GB":
            return f"{amount:.0f} {unit}" if unit == "B" else f"{amount:.1f} {unit}"
        amount /= 1000
    return f"{amount:.1f} GB"


@blueprint.app_template_filter("when")
def when(value: str | None) -> str:
    """An ISO time as ``2018-10-11 13:42:02 UTC``."""
    if not value:
        return "-"
    try:
        moment = dt.datetime.fromisoformat(value)
    except ValueError:
        return value
    return moment.astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M:%S UTC") if moment.tzinfo else str(moment)


@blueprint.app_template_filter("degrees")
def degrees(value: Any) -> str:
    return f"{value:.4f}°" if isinstance(value, int | float) else "-"


@blueprint.get("/")
@cached
def home() -> str:
    archive = current_archive()
    recent = archive.search(SearchFilters(limit=RECENT))
    return render_template("home.html", stats=archive.stats(), recent=recent.items)


@blueprint.get("/search")
@cached
def search() -> tuple[str, int]:
    params = request.args.to_dict()
    try:
        filters = SearchFilters.parse(params)
        page = current_archive().search(filters)  # a cursor it did not give out is refused here
    except BadQuery as exc:
        return render_template("search.html", params=params, help=PARAMETERS, error=exc.message, page=None), 400
    next_params = {**filters.as_params(), "cursor": page.next_cursor} if page.next_cursor else None
    first_params = {key: value for key, value in filters.as_params().items() if key != "cursor"}
    return render_template(
        "search.html",
        params=params,
        help=PARAMETERS,
        error=None,
        page=page,
        next_params=next_params,
        first_params=first_params if filters.cursor else None,
    ), 200


@blueprint.get("/observations/<sequence_id>")
@cached
def observation(sequence_id: str) -> str:
    view = existing(current_archive().observation(sequence_id), f"observation {sequence_id}")
    products = {product["key"]: product for product in view["products"]}
    previews = [(products[key], caption) for key, caption in PREVIEWS if products.get(key, {}).get("url")]
    return render_template(
        "observation.html", obs=view, products=products, previews=previews, url_lists=list(URL_LISTS)
    )


@blueprint.get("/observations/<sequence_id>/urls/<what>.txt")
@cached
def url_list(sequence_id: str, what: str) -> Response:
    """Absolute URLs of one kind of the observation's files, one a line."""
    if what not in URL_LISTS:
        raise NotFound(f"no list {what!r}: one of {', '.join(URL_LISTS)}")
    file_set, suffixes = URL_LISTS[what]
    files = current_archive().files(sequence_id, file_set)
    if files is None:
        raise NotFound(f"no observation {sequence_id}")
    root = request.host_url.rstrip("/")
    lines = [root + f["url"] for f in files if f["name"].endswith(suffixes)]
    return Response(
        "".join(line + "\n" for line in lines),
        mimetype="text/plain",
        headers={"Content-Disposition": f'inline; filename="{sequence_id}-{what}.txt"'},
    )


@blueprint.get("/images/<image_id>")
@cached
def image(image_id: str) -> str:
    archive = current_archive()
    view = existing(archive.image(image_id), f"image {image_id}")
    header, header_error = None, None
    try:
        header = archive.header(view["header_path"]) if view["header_path"] else None
    except BadQuery as exc:  # the raw object is not FITS (a camera raw): the page shows why
        header_error = exc.message
    return render_template("image.html", image=view, header=header, header_error=header_error)


@blueprint.get("/units/<unit_id>")
@cached
def unit(unit_id: str) -> str:
    view = existing(current_archive().unit(unit_id), f"unit {unit_id}")
    return render_template("unit.html", unit=view)
