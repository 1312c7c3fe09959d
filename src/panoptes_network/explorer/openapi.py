"""The OpenAPI 3.1 document of the JSON API, served at ``/api/openapi.json``.

The search parameters come from ``search_filters.PARAMETERS`` (the one list the validation
checks), so the document cannot name a parameter the API does not take, or miss one.
"""

from __future__ import annotations

from typing import Any

from panoptes_network import __version__
from panoptes_network.explorer.search_filters import PARAMETERS

NUMBERS = ("ra", "dec", "radius")
WHOLE_NUMBERS = ("min_frames", "limit")
OBJECT = {"type": "object"}


def query(name: str, description: str, required: bool = False) -> dict[str, Any]:
    kind = "number" if name in NUMBERS else "integer" if name in WHOLE_NUMBERS else "string"
    return {"name": name, "in": "query", "required": required, "description": description, "schema": {"type": kind}}


def path(name: str, description: str) -> dict[str, Any]:
    return {"name": name, "in": "path", "required": True, "description": description, "schema": {"type": "string"}}


def operation(summary: str, parameters: list[dict[str, Any]], schema: dict[str, Any] = OBJECT) -> dict[str, Any]:
    """A GET answering JSON, 400 on a bad parameter and 404 when nothing is there."""
    error = {
        "description": "{error, status}",
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
    }
    return {
        "get": {
            "summary": summary,
            "parameters": parameters,
            "responses": {
                "200": {"description": "OK", "content": {"application/json": {"schema": schema}}},
                "400": error,
                "404": error,
            },
        }
    }


def openapi_document() -> dict[str, Any]:
    sequence = path("sequence_id", "{unit}_{camera}_{sequence_time}, e.g. PAN001_14d3bd_20181011T134202")
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "PANOPTES data explorer",
            "version": __version__,
            "description": "Read-only: network totals, observations (search, one), images, units, files, "
            "FITS headers. Lists are paginated: pass next_cursor back as cursor.",
        },
        "paths": {
            "/api/stats": operation("network totals: units, observations, frames, exposure_hours", []),
            "/api/observations": operation(
                "observations matching the filters, newest first",
                [query(name, text) for name, text in PARAMETERS.items()],
                {"$ref": "#/components/schemas/Page"},
            ),
            "/api/observations/{sequence_id}": operation(
                "one observation: summary, record, products, frames", [sequence]
            ),
            "/api/observations/{sequence_id}/files": operation(
                "an observation's files: {sequence_id, what, files: [{bucket, name, size, version, url}]}",
                [sequence, query("what", "raw, processed or products (default)")],
            ),
            "/api/images/{image_id}": operation(
                "one frame: record, step records, WCS, sources and file URLs",
                [path("image_id", "{unit}_{camera}_{image_time}")],
            ),
            "/api/units/{unit_id}": operation(
                "one unit: record, totals, first page of observations", [path("unit_id", "e.g. PAN001")]
            ),
            "/api/header": operation(
                "the image header of a stored FITS file (ranged reads)",
                [query("path", "gs://BUCKET/NAME in one of the archive's buckets", required=True)],
            ),
        },
        "components": {
            "schemas": {
                "Page": {
                    "type": "object",
                    "properties": {
                        "items": {"type": "array", "items": OBJECT},
                        "next_cursor": {"type": ["string", "null"]},
                    },
                    "required": ["items", "next_cursor"],
                },
                "Error": {
                    "type": "object",
                    "properties": {"error": {"type": "string"}, "status": {"type": "integer"}},
                    "required": ["error", "status"],
                },
            }
        },
    }
