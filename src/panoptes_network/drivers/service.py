"""The one Flask app factory that every Cloud Run service uses.

A push service is a step of the topology behind ``POST /`` (Pub/Sub push) and ``GET /healthz``.
This module is the HTTP driver only: it reads the envelope, calls ``run_step``, maps the
outcome to its HTTP status (``core/outcomes.py``) and writes one structured log line per request.
A web service (the data explorer) is its topology ``app`` factory on the same cloud ``Context``.
"""

from __future__ import annotations

import importlib
import logging
import time
from collections.abc import Callable

from flask import Flask, Response, jsonify, request

from panoptes_network import __version__
from panoptes_network.adapters.backends import cloud_context
from panoptes_network.core.context import Context
from panoptes_network.core.errors import MalformedRequest
from panoptes_network.core.logs import configure_logging, log
from panoptes_network.core.messages import parse_push_envelope
from panoptes_network.core.outcomes import Outcome
from panoptes_network.core.settings import Settings
from panoptes_network.core.step import Step
from panoptes_network.core.step_shell import Handled, run_step
from panoptes_network.core.topology import WebService, load_topology
from panoptes_network.drivers.push_auth import PushAuthFailure, push_verifier

logger = logging.getLogger("panoptes_network.request")

# Our messages are a few kB; Pub/Sub allows 10 MB. Anything near that is not ours.
MAX_ENVELOPE_BYTES = 256 * 1024
RETRY_AFTER_SECONDS = "10"


def create_app(service_name: str, context_factory: Callable[[], Context] | None = None) -> Flask:
    """The app serving ``service_name``; adapters default to the real Google clients.

    The step and the settings are checked here, at boot, so that a misconfigured service fails
    when gunicorn starts it rather than on its first message.
    """
    service = load_topology().service(service_name)
    step: Step = service.step_module().STEP
    context = (context_factory or (lambda: cloud_context(Settings.from_env())))()
    verifier = push_verifier(Settings.from_env(), service_name)
    app = Flask(service_name)

    @app.post("/")
    def push() -> Response:
        started = time.monotonic()
        try:
            if verifier is not None:
                verifier.verify(request.headers.get("Authorization"))
            body = request.stream.read(MAX_ENVELOPE_BYTES + 1)
            if len(body) > MAX_ENVELOPE_BYTES:
                raise MalformedRequest(f"request body exceeds {MAX_ENVELOPE_BYTES} bytes: not a push envelope of ours")
            message = parse_push_envelope(body)
        except (MalformedRequest, PushAuthFailure) as exc:
            handled = Handled(
                step=service.name,
                outcome=exc.outcome if isinstance(exc, PushAuthFailure) else Outcome.MALFORMED,
                reason=exc.message,
                error_class=exc.error_class,
                duration_ms=(time.monotonic() - started) * 1000,
            )
        else:
            handled = run_step(service, step, context, message)
        log(logger, handled.outcome.severity, f"{service.name}: {handled.outcome.value}", **handled.log_fields())
        response = Response(status=handled.outcome.http_status)
        if handled.outcome is Outcome.TRANSIENT:
            response.headers["Retry-After"] = RETRY_AFTER_SECONDS
        return response

    @app.get("/healthz")
    def healthz() -> Response:
        return jsonify(service=service.name, topic=service.topic, version=__version__)

    return app


def create_web_app(web: WebService, context_factory: Callable[[], Context] | None = None) -> Flask:
    """The web service's app from its topology factory (``module:function`` taking the Context),
    on the real Google clients unless ``context_factory`` gives another ``Context``."""
    factory: Callable[[Context], Flask] = getattr(importlib.import_module(web.module), web.function)
    app = factory((context_factory or (lambda: cloud_context(Settings.from_env())))())

    @app.get("/healthz")
    def healthz() -> Response:  # what the stack, the containers and Cloud Run's probes ask
        return jsonify(service=web.name, version=__version__)

    return app


def create_service(service_name: str) -> Flask:
    """Entry point for gunicorn (``panoptes_network.drivers.service:create_service('image-received')``)."""
    configure_logging()
    web = load_topology().web_service(service_name)
    return create_app(service_name) if web is None else create_web_app(web)
