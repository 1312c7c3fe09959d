"""Verifying Pub/Sub push requests: the OIDC token Pub/Sub signs as the invoker account.

Cloud Run already refuses calls without ``run.invoker``; checking the token here as well keeps
a service that is made public by mistake closed, and pins the caller to the one push identity
(its email) and to this service (the audience). Google's signing certificates are fetched
lazily, cached, and fetched again when a token names a key that is not cached (rotation).
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

import google.auth.exceptions
import google.auth.jwt
from google.auth.transport.requests import Request

from panoptes_network.core.errors import PipelineError
from panoptes_network.core.logs import log
from panoptes_network.core.outcomes import Outcome
from panoptes_network.core.settings import Settings

logger = logging.getLogger(__name__)

GOOGLE_CERTS_URL = "https://www.googleapis.com/oauth2/v1/certs"  # PEM certificates by key id
GOOGLE_ISSUERS = ("accounts.google.com", "https://accounts.google.com")
CERTS_MAX_AGE_S = 3600.0  # Google publishes keys well before using them and keeps old ones for days
REFRESH_INTERVAL_S = 60.0  # at most one extra fetch a minute for tokens naming an unknown key
CLOCK_SKEW_S = 10


class PushAuthFailure(PipelineError):
    """The request is not from our push subscription: 401 (no or invalid token) or 403; or its
    token cannot be checked now (certificates unavailable: 503)."""

    def __init__(self, outcome: Outcome, message: str) -> None:
        super().__init__(message)
        self.outcome = outcome


def fetch_certs(url: str) -> dict[str, str]:
    """Key id -> PEM certificate, from a URL in Google's ``oauth2/v1/certs`` format.

    Failing to fetch them is our problem, not the caller's: transient (503, pushed again).
    """
    try:
        response = Request()(url, method="GET")
    except google.auth.exceptions.TransportError as exc:
        raise PushAuthFailure(Outcome.TRANSIENT, f"could not fetch token certificates: {exc}") from exc
    if response.status != 200:
        raise PushAuthFailure(Outcome.TRANSIENT, f"could not fetch token certificates (HTTP {response.status})")
    return dict(json.loads(response.data))


class CertificateCache:
    """The signing certificates, fetched on first use and kept for ``max_age`` seconds."""

    def __init__(
        self,
        url: str = GOOGLE_CERTS_URL,
        fetch: Callable[[str], dict[str, str]] = fetch_certs,
        max_age: float = CERTS_MAX_AGE_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.url, self.fetch, self.max_age, self.clock = url, fetch, max_age, clock
        self._certs: dict[str, str] = {}
        self._fetched_at = float("-inf")
        self._lock = threading.Lock()

    def certs_for(self, key_id: str | None) -> Mapping[str, str]:
        """The certificates, refreshed when stale or (rate-limited) when ``key_id`` is unknown."""
        with self._lock:
            age = self.clock() - self._fetched_at
            if age > self.max_age or (key_id not in self._certs and age > REFRESH_INTERVAL_S):
                self._certs = self.fetch(self.url)
                self._fetched_at = self.clock()
            return self._certs


class PushVerifier:
    """Checks the ``Authorization: Bearer`` token of a push request."""

    def __init__(self, audience: str, email: str, certificates: CertificateCache) -> None:
        self.audience, self.email, self.certificates = audience, email, certificates

    def verify(self, authorization: str | None) -> Mapping[str, Any]:
        """The token's claims; raises ``PushAuthFailure`` with the outcome to answer."""
        scheme, _, token = (authorization or "").partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise PushAuthFailure(Outcome.UNAUTHENTICATED, "no Authorization: Bearer token")
        claims = self._decode(token.strip())
        if claims.get("iss") not in GOOGLE_ISSUERS:
            raise PushAuthFailure(Outcome.UNAUTHENTICATED, f"token issuer {claims.get('iss')!r} is not Google")
        if claims.get("aud") != self.audience:
            raise PushAuthFailure(Outcome.FORBIDDEN, f"token audience {claims.get('aud')!r} is not {self.audience!r}")
        if claims.get("email") != self.email or claims.get("email_verified") is not True:
            raise PushAuthFailure(Outcome.FORBIDDEN, f"token email {claims.get('email')!r} is not {self.email!r}")
        return claims

    def _decode(self, token: str) -> Mapping[str, Any]:
        """Signature and expiry (google-auth); the audience is checked by the caller (403, not 401)."""
        try:
            key_id = google.auth.jwt.decode_header(token).get("kid")
            certs = self.certificates.certs_for(key_id)
            claims: Mapping[str, Any] = google.auth.jwt.decode(
                token, certs=certs, audience=None, clock_skew_in_seconds=CLOCK_SKEW_S
            )
            return claims
        except (ValueError, google.auth.exceptions.GoogleAuthError) as exc:
            raise PushAuthFailure(Outcome.UNAUTHENTICATED, f"invalid token: {exc}") from exc


def push_verifier(settings: Settings, service: str) -> PushVerifier | None:
    """The verifier the settings ask for, or None (logged as a WARNING) when push auth is off."""
    if not settings.push_auth_audience:
        message = f"{service}: push auth is OFF (PUSH_AUTH_AUDIENCE unset): requests are not authenticated"
        log(logger, "WARNING", message, service=service, push_auth=False)
        return None
    if not settings.push_auth_email:
        raise ValueError("PUSH_AUTH_AUDIENCE is set without PUSH_AUTH_EMAIL (the push subscription's service account)")
    certificates = CertificateCache(settings.push_auth_certs_url or GOOGLE_CERTS_URL)
    audience, email = settings.push_auth_audience, settings.push_auth_email
    log(logger, "INFO", f"{service}: push auth on", service=service, push_auth=True, audience=audience, email=email)
    return PushVerifier(audience, email, certificates)
