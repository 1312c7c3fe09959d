"""Push auth: OIDC tokens as Pub/Sub signs them, verified by the services.

Tokens are signed with a test RSA key and the verifier fetches the matching certificate from a
local HTTP server in Google's ``oauth2/v1/certs`` format, so the real google-auth code paths
(fetch, cache, signature, expiry) run; only the key and the URL are ours.
"""

from __future__ import annotations

import datetime as dt
import http.server
import json
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID
from google.auth import crypt, jwt

from fixtures_service import client_for, request_lines, upload
from panoptes_network.core.outcomes import Outcome
from panoptes_network.core.settings import Settings
from panoptes_network.drivers.push_auth import CertificateCache, PushAuthFailure, PushVerifier, fetch_certs
from step_harness import drain

AUDIENCE = "https://image-received-123456789.us-central1.run.app"
EMAIL = "panoptes-invoker@proj.iam.gserviceaccount.com"
KEY_ID = "test-key"


def make_key() -> tuple[str, str]:
    """A private key (PEM) and its self-signed certificate (PEM), as Google publishes them."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "test")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=1))
        .sign(key, hashes.SHA256())
    )
    private = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    return private, cert.public_bytes(serialization.Encoding.PEM).decode()


@pytest.fixture(scope="module")
def keys() -> dict[str, tuple[str, str]]:
    return {"good": make_key(), "other": make_key()}


class CertServer:
    """Serves ``certs`` (key id -> PEM) at ``url`` and counts the fetches."""

    def __init__(self, certs: dict[str, str]) -> None:
        self.certs, self.fetches = certs, 0
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                outer.fetches += 1
                body = json.dumps(outer.certs).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/oauth2/v1/certs"
        threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()


@pytest.fixture
def certs(keys) -> Iterator[CertServer]:
    server = CertServer({KEY_ID: keys["good"][1]})
    yield server
    server.server.shutdown()


def token(private_pem: str, key_id: str = KEY_ID, **overrides: Any) -> str:
    """A token shaped like Pub/Sub's push token, with ``overrides`` applied to its claims."""
    now = int(time.time())
    claims = {
        "iss": "https://accounts.google.com",
        "aud": AUDIENCE,
        "email": EMAIL,
        "email_verified": True,
        "sub": "1234567890",
        "iat": now,
        "exp": now + 3600,
        **overrides,
    }
    return jwt.encode(crypt.RSASigner.from_string(private_pem, key_id=key_id), claims).decode()


def verifier(certs: CertServer) -> PushVerifier:
    return PushVerifier(AUDIENCE, EMAIL, CertificateCache(certs.url))


def failure(check: PushVerifier, authorization: str | None) -> PushAuthFailure:
    with pytest.raises(PushAuthFailure) as raised:
        check.verify(authorization)
    return raised.value


@pytest.mark.parametrize("issuer", ["accounts.google.com", "https://accounts.google.com"])
def test_a_push_token_is_accepted(keys, certs, issuer: str) -> None:
    claims = verifier(certs).verify(f"Bearer {token(keys['good'][0], iss=issuer)}")
    assert claims["email"] == EMAIL and claims["aud"] == AUDIENCE


@pytest.mark.parametrize(
    ("overrides", "outcome", "why"),
    [
        ({"aud": "https://another-123456789.us-central1.run.app"}, Outcome.FORBIDDEN, "audience"),
        ({"email": "someone@proj.iam.gserviceaccount.com"}, Outcome.FORBIDDEN, "email"),
        ({"email_verified": False}, Outcome.FORBIDDEN, "email"),
        ({"iss": "https://evil.example.com"}, Outcome.UNAUTHENTICATED, "issuer"),
        ({"iat": int(time.time()) - 7200, "exp": int(time.time()) - 3600}, Outcome.UNAUTHENTICATED, "expired"),
    ],
)
def test_a_token_for_someone_else_is_refused(keys, certs, overrides, outcome: Outcome, why: str) -> None:
    refused = failure(verifier(certs), f"Bearer {token(keys['good'][0], **overrides)}")
    assert refused.outcome is outcome and refused.outcome.http_status == {Outcome.FORBIDDEN: 403}.get(outcome, 401)
    assert why in refused.message.lower()


def test_a_token_signed_by_another_key_is_refused(keys, certs) -> None:
    refused = failure(verifier(certs), f"Bearer {token(keys['other'][0])}")
    assert refused.outcome is Outcome.UNAUTHENTICATED and "signature" in refused.message


@pytest.mark.parametrize("authorization", [None, "", "Bearer ", "Basic dXNlcjpwdw==", "Bearer not.a.jwt"])
def test_a_missing_or_garbled_token_is_unauthenticated(certs, authorization: str | None) -> None:
    assert failure(verifier(certs), authorization).outcome is Outcome.UNAUTHENTICATED


def test_certificates_are_fetched_once_and_again_for_a_new_key(keys, certs) -> None:
    clock = [1000.0]
    check = PushVerifier(AUDIENCE, EMAIL, CertificateCache(certs.url, clock=lambda: clock[0]))
    for _ in range(3):
        check.verify(f"Bearer {token(keys['good'][0])}")
    assert certs.fetches == 1
    certs.certs = {"rotated": keys["other"][1]}  # Google rotated its keys
    rotated = f"Bearer {token(keys['other'][0], key_id='rotated')}"
    assert failure(check, rotated).outcome is Outcome.UNAUTHENTICATED  # unknown key, refetch too soon
    clock[0] += 61
    assert check.verify(rotated)["email"] == EMAIL
    assert certs.fetches == 2


def test_fetch_reads_googles_certificate_format(keys, certs) -> None:
    assert fetch_certs(certs.url) == {KEY_ID: keys["good"][1]}


@pytest.fixture
def auth_env(monkeypatch, certs) -> None:
    monkeypatch.setenv("PUSH_AUTH_AUDIENCE", AUDIENCE)
    monkeypatch.setenv("PUSH_AUTH_EMAIL", EMAIL)
    monkeypatch.setenv("PUSH_AUTH_CERTS_URL", certs.url)


def test_settings_read_push_auth(auth_env, certs) -> None:
    settings = Settings.from_env()
    assert (settings.push_auth_audience, settings.push_auth_email, settings.push_auth_certs_url) == (
        AUDIENCE,
        EMAIL,
        certs.url,
    )


def test_the_service_answers_401_403_or_runs_the_step(auth_env, keys, local, json_logs) -> None:
    context, queue = local
    client = client_for(context)
    body = upload(local, "PAN001/14d3bd/20181011T134202/20181011T134333.fits.fz")
    assert client.post("/", data=body).status_code == 401
    wrong_audience = token(keys["good"][0], aud="https://elsewhere.run.app")
    assert client.post("/", data=body, headers={"Authorization": f"Bearer {wrong_audience}"}).status_code == 403
    assert len(queue) == 0 and context.metadata.list("images") == []
    good = {"Authorization": f"Bearer {token(keys['good'][0])}"}
    assert client.post("/", data=body, headers=good).status_code == 204
    assert drain(queue) == ["record-image"]
    lines = request_lines(json_logs)
    assert [(line["outcome"], line["status"], line["severity"]) for line in lines] == [
        ("unauthenticated", 401, "WARNING"),
        ("forbidden", 403, "WARNING"),
        ("done", 204, "INFO"),
    ]
    assert "Bearer" in lines[0]["reason"] and "audience" in lines[1]["reason"]


def test_push_auth_off_is_said_at_boot(monkeypatch, local, json_logs) -> None:
    monkeypatch.delenv("PUSH_AUTH_AUDIENCE", raising=False)
    context, _ = local
    client_for(context)
    boot = [json.loads(line) for line in json_logs.getvalue().splitlines()]
    [warning] = [line for line in boot if line["logger"] == "panoptes_network.drivers.push_auth"]
    assert warning["severity"] == "WARNING" and warning["push_auth"] is False and "OFF" in warning["message"]


def test_an_audience_without_an_email_fails_at_boot(monkeypatch, local) -> None:
    monkeypatch.setenv("PUSH_AUTH_AUDIENCE", AUDIENCE)
    monkeypatch.delenv("PUSH_AUTH_EMAIL", raising=False)
    with pytest.raises(ValueError, match="PUSH_AUTH_EMAIL"):
        client_for(local[0])


def test_unreachable_certificates_are_transient(keys, certs) -> None:
    """Pub/Sub pushes again later (503) rather than hearing that its token is bad."""
    certs.server.shutdown()
    certs.server.server_close()
    refused = failure(verifier(certs), f"Bearer {token(keys['good'][0])}")
    assert refused.outcome is Outcome.TRANSIENT and refused.outcome.http_status == 503
    assert "certificates" in refused.message
