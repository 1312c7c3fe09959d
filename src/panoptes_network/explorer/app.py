"""``create_explorer``: the public data explorer as one Flask app over a ``Context``.

The app is read-only (GET and HEAD only) and safe by construction: every response carries a
strict Content-Security-Policy and the usual security headers; an error is a JSON body under
``/api`` and the ``error.html`` page elsewhere, never a traceback (that goes to the log); each
request writes exactly one JSON log line (``core/logs.py``).
"""

from __future__ import annotations

import logging
import time
from typing import Any

from flask import Flask, Response, g, jsonify, render_template, request
from werkzeug.exceptions import HTTPException

from panoptes_network.core.context import Context
from panoptes_network.core.errors import TransientError
from panoptes_network.core.logs import LEVELS
from panoptes_network.explorer import api, files, pages
from panoptes_network.explorer.archive import Archive
from panoptes_network.explorer.current import attach_archive
from panoptes_network.explorer.search_filters import BadQuery

logger = logging.getLogger("panoptes_network.explorer")

CONTENT_SECURITY_POLICY = "; ".join(
    (
        "default-src 'none'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' data:",
        "media-src 'self'",
        "connect-src 'self'",
        "font-src 'self'",
        "form-action 'self'",
        "base-uri 'none'",
        "frame-ancestors 'none'",
    )
)
SECURITY_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Cross-Origin-Resource-Policy": "same-origin",
    "Permissions-Policy": "camera=(), microphone=(), geolocation=()",
}
RETRY_AFTER_SECONDS = "10"


def create_explorer(context: Context) -> Flask:
    """The explorer app reading ``context``'s records and buckets (embedded or cloud)."""
    app = Flask(__name__)
    attach_archive(app, Archive(context))
    app.register_blueprint(api.blueprint)
    app.register_blueprint(files.blueprint)
    app.register_blueprint(pages.blueprint)

    app.before_request(start_timer)
    app.after_request(finish_response)
    app.register_error_handler(BadQuery, bad_query)
    app.register_error_handler(HTTPException, http_error)
    app.register_error_handler(Exception, unexpected_error)
    return app


def start_timer() -> None:
    g.started = time.monotonic()


def is_api() -> bool:
    return request.path == "/api" or request.path.startswith("/api/")


def error_response(status: int, message: str) -> Response:
    """The error as JSON ``{error, status}`` for the API, as the error page for people."""
    g.reason = message
    if is_api():
        response = jsonify(error=message, status=status)
    else:
        response = Response(render_template("error.html", status=status, message=message), mimetype="text/html")
    response.status_code = status
    return response


def bad_query(exc: BadQuery) -> Response:
    return error_response(400, exc.message)


def http_error(exc: HTTPException) -> Response:
    response = error_response(exc.code or 500, exc.description or exc.name)
    for name, value in exc.get_headers():
        if name.lower() not in ("content-type", "content-length"):
            response.headers[name] = value  # Allow on a 405, Content-Range on a 416
    return response


def unexpected_error(exc: Exception) -> Response:
    """A storage or database outage is a 503 worth retrying; anything else a 500 that says
    nothing of the code (the traceback goes to the log line)."""
    g.error = exc
    if isinstance(exc, TransientError):
        response = error_response(503, "the archive is unavailable for a moment; try again")
        response.headers["Retry-After"] = RETRY_AFTER_SECONDS
        return response
    return error_response(500, "internal error: it is in the log and will be looked at")


def finish_response(response: Response) -> Response:
    """The security headers on every response, a default cache policy, and the request's log line."""
    response.headers.update(SECURITY_HEADERS)
    response.headers.setdefault("Cache-Control", "no-cache")
    if is_api():
        response.headers.setdefault("Access-Control-Allow-Origin", "*")  # public, read-only data
    log_request(response)
    return response


def log_request(response: Response) -> None:
    status = response.status_code
    error: Exception | None = g.get("error")
    severity = "ERROR" if status >= 500 else "WARNING" if status >= 400 and status not in (404, 304) else "INFO"
    fields: dict[str, Any] = {
        "httpRequest": {
            "requestMethod": request.method,
            "requestUrl": request.full_path.rstrip("?"),
            "status": status,
            "responseSize": response.content_length,
            "userAgent": request.user_agent.string,
            "remoteIp": request.remote_addr,
        },
        "status": status,
        "duration_ms": round((time.monotonic() - g.get("started", time.monotonic())) * 1000, 2),
        "reason": g.get("reason"),
        "error_class": type(error).__name__ if error else None,
    }
    logger.log(
        LEVELS[severity],
        f"explorer: {request.method} {request.path} {status}",
        exc_info=error if error and status >= 500 else None,
        extra={"fields": {key: value for key, value in fields.items() if value is not None}},
    )
