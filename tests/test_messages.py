"""Push envelopes, storage notifications and step messages are validated at the boundary."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from panoptes_network.core.errors import Ignored, MalformedRequest
from panoptes_network.core.messages import (
    SCHEMA_VERSION,
    ObjectRef,
    PushMessage,
    StepMessage,
    parse_push_envelope,
    parse_step_message,
    parse_storage_notification,
    storage_notification,
)
from step_harness import envelope


def test_a_push_envelope_round_trips() -> None:
    message = parse_push_envelope(envelope(b'{"a": 1}', {"k": "v"}, "42"))
    assert message.message_id == "42"
    assert message.json() == {"a": 1}
    assert message.attributes == {"k": "v"}
    assert message.subscription == "projects/p/subscriptions/s"


@pytest.mark.parametrize(
    ("body", "why"),
    [
        (b"not json", "not JSON"),
        (b"[]", "no 'message'"),
        (b'{"message": {"data": "e30="}}', "messageId"),
        (b'{"message": {"messageId": "1", "data": "%%%"}}', "base64"),
        (b'{"message": {"messageId": "1", "data": 5}}', "base64 string"),
        (b'{"message": {"messageId": "1", "attributes": {"a": 1}}}', "map of strings"),
    ],
)
def test_bad_envelopes_say_why(body: bytes, why: str) -> None:
    with pytest.raises(MalformedRequest, match=why):
        parse_push_envelope(body)


def test_data_that_is_not_json_is_malformed() -> None:
    with pytest.raises(MalformedRequest, match="not JSON"):
        parse_push_envelope(envelope(b"\xff\xfe binary")).json()
    with pytest.raises(MalformedRequest, match="expected an object"):
        parse_push_envelope(envelope(b"[1, 2]")).json()


def test_storage_notification_round_trip() -> None:
    ref = ObjectRef("panoptes-raw-images", "PAN001/14d3bd/20181011T134202/20181011T134333.fits", 1234)
    data, attributes = storage_notification(ref, 99, "image/fits")
    event = parse_storage_notification(PushMessage("1", data, attributes))
    assert event.ref == ref
    assert event.size == 99
    assert event.content_type == "image/fits"


def test_other_event_types_are_ignored_not_processed() -> None:
    ref = ObjectRef("b", "n", 1)
    data, attributes = storage_notification(ref, 1)
    with pytest.raises(Ignored, match="OBJECT_DELETE"):
        parse_storage_notification(PushMessage("1", data, {**attributes, "eventType": "OBJECT_DELETE"}))


def test_notifications_missing_attributes_or_disagreeing_are_malformed() -> None:
    data, attributes = storage_notification(ObjectRef("b", "n", 1), 1)
    with pytest.raises(MalformedRequest, match="objectGeneration"):
        parse_storage_notification(
            PushMessage("1", data, {k: v for k, v in attributes.items() if k != "objectGeneration"})
        )
    with pytest.raises(MalformedRequest, match="disagrees"):
        parse_storage_notification(PushMessage("1", data, {**attributes, "objectId": "other"}))
    with pytest.raises(MalformedRequest, match="positive integer"):
        parse_storage_notification(PushMessage("1", data, {**attributes, "objectGeneration": "-3"}))


def test_step_message_round_trip() -> None:
    message = StepMessage(ObjectRef("b", "PAN001/x", 7), "PAN001_a_b", "PAN001_a_c", {"file_kind": "fits"})
    data, attributes = message.encode()
    assert attributes == {"schema_version": SCHEMA_VERSION}
    assert parse_step_message(PushMessage("1", data, attributes)) == message


@given(
    bucket=st.from_regex(r"[a-z0-9][a-z0-9._-]{1,20}", fullmatch=True),
    name=st.text(min_size=1, max_size=40).filter(lambda n: "\x00" not in n),
    generation=st.integers(min_value=1, max_value=2**63),
)
def test_an_identity_parses_back_to_its_ref(bucket: str, name: str, generation: int) -> None:
    ref = ObjectRef(bucket, name, generation)
    assert ObjectRef.from_identity(ref.identity) == ref


@pytest.mark.parametrize("identity", ["bucket-only#3", "b/n#", "b/n#x", "/n#1", "b/n"])
def test_a_malformed_identity_says_so(identity: str) -> None:
    with pytest.raises(ValueError, match="identity"):
        ObjectRef.from_identity(identity)


def test_a_rerun_token_round_trips_and_is_passed_on() -> None:
    message = StepMessage(
        ObjectRef("b", "PAN001/x", 7), "PAN001_a_b", "PAN001_a_c", {"file_kind": "fits"}, "reprocess-1"
    )
    data, attributes = message.encode()
    parsed = parse_step_message(PushMessage("1", data, attributes))
    assert parsed == message and parsed.extra == {"file_kind": "fits"}
    following = parsed.then(ObjectRef("c", "PAN001/y", 8), {"background": 1})
    assert (following.rerun, following.image_id, following.extra) == ("reprocess-1", "PAN001_a_b", {"background": 1})
    assert "rerun" not in StepMessage(message.ref, "i", "s").to_json()

    notification, notification_attributes = storage_notification(message.ref, 10)
    event = parse_storage_notification(
        PushMessage("2", notification, {**notification_attributes, "rerun": "reprocess-2"})
    )
    assert event.rerun == "reprocess-2"
    assert parse_storage_notification(PushMessage("3", notification, notification_attributes)).rerun is None


@pytest.mark.parametrize(
    ("fields", "attributes", "why"),
    [
        ({"bucket": "b", "name": "n", "generation": 1, "image_id": "i"}, {"schema_version": "1"}, "sequence_id"),
        (
            {"bucket": "b", "name": "n", "generation": "x", "image_id": "i", "sequence_id": "s"},
            {"schema_version": "1"},
            "generation",
        ),
        (
            {"bucket": "", "name": "n", "generation": 1, "image_id": "i", "sequence_id": "s"},
            {"schema_version": "1"},
            "bucket",
        ),
        ({"bucket": "b", "name": "n", "generation": 1, "image_id": "i", "sequence_id": "s"}, {}, "schema_version"),
        (
            {"bucket": "b", "name": "n", "generation": 1, "image_id": "i", "sequence_id": "s"},
            {"schema_version": "9"},
            "schema_version",
        ),
        (
            {"bucket": "b", "name": "n", "generation": 1, "image_id": "i", "sequence_id": "s", "rerun": 5},
            {"schema_version": "1"},
            "rerun",
        ),
        (
            {"bucket": "b", "name": "n", "generation": 1, "image_id": "i", "sequence_id": "s", "rerun": ""},
            {"schema_version": "1"},
            "rerun",
        ),
    ],
)
def test_bad_step_messages_say_why(fields: dict, attributes: dict, why: str) -> None:
    with pytest.raises(MalformedRequest, match=why):
        parse_step_message(PushMessage("1", json.dumps(fields).encode(), attributes))


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=10),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=10), children, max_size=4),
    max_leaves=10,
)


@given(body=st.binary(max_size=200) | json_values.map(lambda v: json.dumps(v).encode()))
def test_any_body_is_parsed_or_refused_as_malformed(body: bytes) -> None:
    try:
        message = parse_push_envelope(body)
    except MalformedRequest as exc:
        assert exc.message
    else:
        assert message.message_id


@given(fields=st.dictionaries(st.sampled_from(StepMessage.REQUIRED + ("x",)), json_values, max_size=6))
def test_any_step_message_is_parsed_or_refused_as_malformed(fields: dict) -> None:
    try:
        message = parse_step_message(PushMessage("1", json.dumps(fields).encode(), {"schema_version": "1"}))
    except MalformedRequest as exc:
        assert exc.message
    else:
        assert message.ref.generation > 0 and message.image_id
