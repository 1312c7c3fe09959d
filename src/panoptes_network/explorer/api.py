"""The JSON API under ``/api``: the archive's views as JSON (documented at ``/api/openapi.json``).

Handlers only translate: parameters go through ``SearchFilters`` (a ``BadQuery`` is a 400 that
says why, answered by the app's error handler), a missing record is a 404, everything else is
the ``Archive``'s dict as it is.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, jsonify, request
from werkzeug.exceptions import NotFound

from panoptes_network.explorer.archive import file_set
from panoptes_network.explorer.current import current_archive
from panoptes_network.explorer.openapi import openapi_document
from panoptes_network.explorer.search_filters import BadQuery, SearchFilters

blueprint = Blueprint("api", __name__, url_prefix="/api")


def found(value: dict[str, Any] | None, what: str) -> Response:
    if value is None:
        raise NotFound(f"no {what}")
    return jsonify(value)


@blueprint.get("/stats")
def stats() -> Response:
    return jsonify(current_archive().stats())


@blueprint.get("/observations")
def observations() -> Response:
    filters = SearchFilters.parse(request.args.to_dict())
    return jsonify(current_archive().search(filters).as_json())


@blueprint.get("/observations/<sequence_id>")
def observation(sequence_id: str) -> Response:
    return found(current_archive().observation(sequence_id), f"observation {sequence_id}")


@blueprint.get("/observations/<sequence_id>/files")
def files(sequence_id: str) -> Response:
    """``what``: raw, processed or products (the default)."""
    what = file_set(request.args.get("what", "products"))
    listed = current_archive().files(sequence_id, what)
    if listed is None:
        raise NotFound(f"no observation {sequence_id}")
    return jsonify({"sequence_id": sequence_id, "what": what, "files": listed})


@blueprint.get("/images/<image_id>")
def image(image_id: str) -> Response:
    return found(current_archive().image(image_id), f"image {image_id}")


@blueprint.get("/units/<unit_id>")
def unit(unit_id: str) -> Response:
    return found(current_archive().unit(unit_id), f"unit {unit_id}")


@blueprint.get("/header")
def header() -> Response:
    path = request.args.get("path", "").strip()
    if not path:
        raise BadQuery("path is required: gs://BUCKET/NAME of a stored FITS file")
    return found(current_archive().header(path), f"object {path}")


@blueprint.get("/openapi.json")
def openapi() -> Response:
    return jsonify(openapi_document())
