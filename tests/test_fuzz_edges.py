"""Fuzzing at the edges (issue 18): generated FITS headers with wrong types and absurd values
through record-image and compress-fits, and generated push envelopes through a service. The
property: an answer a person can act on (done, rejected with a reason, ignored, malformed),
never an unexpected error (a 500 that Pub/Sub would redeliver until the dead-letter topic).
Example counts are small and each example has a deadline: this runs in CI on two cores."""

from __future__ import annotations

import base64
import itertools
import json
from pathlib import Path
from typing import Any

import pytest
from astropy.io import fits
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from panoptes_network.adapters.backends import local_context
from panoptes_network.core.outcomes import Outcome
from panoptes_network.core.settings import Settings
from panoptes_network.drivers.service import create_app
from step_harness import RAW, deliver, envelope, message_for

EXAMPLES = 100
FUZZ = settings(
    max_examples=EXAMPLES, deadline=3000, suppress_health_check=[HealthCheck.function_scoped_fixture], derandomize=True
)
ACCEPTABLE = {Outcome.DONE, Outcome.REJECTED, Outcome.IGNORED, Outcome.MALFORMED}
BLOCK = 2880

absurd_ints = st.one_of(
    st.integers(-3, 70), st.sampled_from([-(2**63), -1, 2**31, 2**63 - 1, 10**30, 999, 1000, 30000, 10**9])
)
wrong_types = st.one_of(
    st.floats(allow_nan=False, allow_infinity=False),  # astropy cannot write NaN or inf in a header
    st.booleans(),
    st.text(alphabet=st.characters(min_codepoint=32, max_codepoint=126), max_size=20),
)
values = st.one_of(absurd_ints, wrong_types)
long_strings = st.text(alphabet=st.characters(min_codepoint=32, max_codepoint=126), min_size=60, max_size=3000)


@st.composite
def headers(draw: st.DrawFn, compressed: bool) -> dict[str, Any]:
    """Cards of one HDU: the keywords that size and scale an image, each sane, absurd or of the
    wrong type, sometimes missing; a long string (CONTINUE cards) and a plausible frame size."""
    sane = {"BITPIX": 16, "NAXIS": 2, "NAXIS1": 20, "NAXIS2": 16, "BZERO": 32768, "BSCALE": 1, "EXTEND": True}
    if compressed:
        sane.update({"ZBITPIX": 16, "ZNAXIS": 2, "ZNAXIS1": 20, "ZNAXIS2": 16})
    cards: dict[str, Any] = {}
    for key, value in sane.items():
        choice = draw(st.sampled_from(["sane", "sane", "absurd", "missing"]))
        if choice == "sane":
            cards[key] = value
        elif choice == "absurd":
            cards[key] = draw(values)
    if draw(st.booleans()):
        cards["OBSERVER"] = draw(long_strings)
    return cards


def card_bytes(cards: dict[str, Any]) -> bytes:
    """A header block sequence with exactly these cards (astropy writes odd values as given)."""
    header = fits.Header()
    for key, value in cards.items():
        header[key] = value
    text = header.tostring(sep="", endcard=True, padding=True)
    return text.encode("ascii", "replace")


def fits_file(first: dict[str, Any], second: dict[str, Any] | None, data_blocks: int) -> bytes:
    primary = card_bytes({"SIMPLE": True, **first})
    extension = b"" if second is None else card_bytes({"XTENSION": "BINTABLE", "ZIMAGE": True, **second})
    return primary + extension + b"\0" * (BLOCK * data_blocks)


@pytest.fixture(scope="module")
def stand_ins(tmp_path_factory: pytest.TempPathFactory):  # one store for every example: names differ
    folder = tmp_path_factory.mktemp("fuzz")
    return local_context(Settings(data_dir=folder), folder)


names = (f"PAN001/F{n:05d}/20160909T081152/20160909T081314" for n in itertools.count())


def assert_answered(handled) -> None:
    assert handled.outcome in ACCEPTABLE, f"{handled.outcome}: {handled.error_class}: {handled.reason}"


@FUZZ
@given(header=headers(compressed=False), blocks=st.integers(0, 3))
def test_compress_fits_answers_every_header(stand_ins, header: dict[str, Any], blocks: int) -> None:
    context, _ = stand_ins
    ref = context.storage.write_new(RAW, next(names) + ".fits", fits_file(header, None, blocks))
    assert_answered(deliver(context, "compress-fits", message_for(ref)))


@FUZZ
@given(
    primary=st.fixed_dictionaries({}, optional={"EXTEND": values, "NAXIS": values}),
    table=headers(compressed=True),
    blocks=st.integers(0, 2),
)
def test_record_image_answers_every_header(stand_ins, primary: dict, table: dict[str, Any], blocks: int) -> None:
    context, _ = stand_ins
    first = {"BITPIX": 8, "NAXIS": 0, "EXTEND": True, **primary}
    ref = context.storage.write_new(RAW, next(names) + ".fits.fz", fits_file(first, table, blocks))
    assert_answered(deliver(context, "record-image", message_for(ref)))


json_values = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False), st.text(max_size=30)),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4),
    max_leaves=12,
)
step_fields = st.fixed_dictionaries(
    {},
    optional={
        "bucket": st.one_of(st.just(RAW), json_values),
        "name": st.one_of(st.just("PAN001/F00000/20160909T081152/20160909T081314.fits.fz"), json_values),
        "generation": st.one_of(st.integers(), json_values),
        "image_id": json_values,
        "sequence_id": json_values,
        "schema_version": st.one_of(st.just(1), json_values),
        "extra": json_values,
        "rerun": json_values,
    },
)


@st.composite
def push_bodies(draw: st.DrawFn) -> bytes:
    """A push body: raw bytes, JSON of any shape, or an envelope around a generated message."""
    kind = draw(st.sampled_from(["bytes", "json", "envelope", "envelope"]))
    if kind == "bytes":
        return draw(st.binary(max_size=200))
    if kind == "json":
        return json.dumps(draw(json_values)).encode()
    data = json.dumps(draw(step_fields)).encode() if draw(st.booleans()) else draw(st.binary(max_size=50))
    body = json.loads(envelope(data, draw(st.dictionaries(st.text(max_size=8), st.text(max_size=8), max_size=3))))
    if draw(st.booleans()):  # damage the envelope itself
        body["message"][draw(st.sampled_from(["data", "attributes", "messageId"]))] = draw(json_values)
    if draw(st.booleans()):
        body["message"]["data"] = base64.b64encode(data).decode() + draw(st.sampled_from(["", "=", "!!", "\n"]))
    return json.dumps(body).encode()


@pytest.fixture(scope="module")
def clients(stand_ins) -> dict[str, Any]:
    context, _ = stand_ins
    return {name: create_app(name, lambda: context).test_client() for name in ("image-received", "record-image")}


@FUZZ
@given(body=push_bodies(), service=st.sampled_from(["image-received", "record-image"]))
def test_a_service_never_answers_500_to_a_generated_push(clients: dict[str, Any], body: bytes, service: str) -> None:
    response = clients[service].post("/", data=body, content_type="application/json")
    assert response.status_code < 500 or response.status_code == 503, response.status_code


def test_the_fuzzers_headers_reach_the_parsers(tmp_path: Path) -> None:
    """The generated files are FITS enough to get past the first check: a sane one is recorded."""
    context, _ = local_context(Settings(data_dir=tmp_path), tmp_path)
    sane = {"BITPIX": 16, "ZBITPIX": 16, "ZNAXIS": 2, "ZNAXIS1": 20, "ZNAXIS2": 16, "NAXIS": 2, "NAXIS1": 8}
    table = {**sane, "NAXIS2": 0, "PCOUNT": 0, "GCOUNT": 1, "TFIELDS": 1, "TFORM1": "1PB(0)"}
    data = fits_file({"BITPIX": 8, "NAXIS": 0, "EXTEND": True}, table, 0)
    ref = context.storage.write_new(RAW, "PAN001/F99999/20160909T081152/20160909T081314.fits.fz", data)
    handled = deliver(context, "record-image", message_for(ref))
    assert handled.outcome is Outcome.DONE, handled.reason
