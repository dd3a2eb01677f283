"""The HEC envelope (contracts.md §2) and how HEC's answers map to the error classes."""

from __future__ import annotations

import gzip
import json
from decimal import Decimal
from pathlib import Path

import msgspec
import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from hsmaudit.records.event import HsmEvent, event_to_dict
from hsmaudit.records.parse import parse_message
from hsmaudit.sinks.errors import (
    HecInvalidEventError,
    HecRejectedError,
    HecRetryableError,
    HecTokenError,
    HecTooLargeError,
)
from hsmaudit.sinks.hec.answers import classify_answer
from hsmaudit.sinks.hec.envelope import (
    EVENT_FORMATS,
    INDEXED_FIELDS,
    JSON_SOURCETYPE,
    ORIGIN_FIELDS,
    TEXT_SOURCETYPE,
    EventEncoder,
    EventFormat,
    hec_time,
    to_hec_event,
)
from hsmaudit.sinks.hec.url import event_url

SAMPLES = Path(__file__).resolve().parent.parent / "data" / "samples"

EVENT = HsmEvent(
    usecs=1513717277140812,
    time="2017-12-19T21:01:17.140812Z",
    cluster_id="cluster-abc",
    hsm_id="hsm-xyz",
    log_group="/aws/cloudhsm/cluster-abc",
    log_stream="hsm-xyz",
    opcode="CN_LOGIN",
    event_id="e" * 32,
    raw="Time: 12/19/17 21:01:17.140812, usecs:1513717277140812",
)


def test_time_is_usecs_over_1e6_with_exact_microseconds() -> None:
    line = to_hec_event(EVENT, source="/aws/cloudhsm/cluster-abc", host="hsm-xyz")
    assert line.startswith(b'{"time":1513717277.140812,')
    parsed = json.loads(line, parse_float=Decimal)
    assert parsed["time"] == Decimal("1513717277.140812")


@pytest.mark.parametrize(
    ("usecs", "expected"),
    [(0, b"0.000000"), (1, b"0.000001"), (999_999, b"0.999999"), (1_000_000, b"1.000000"), (2**62, None)],
)
def test_hec_time_is_exact_for_any_usecs(usecs: int, expected: bytes | None) -> None:
    value = hec_time(HsmEvent(usecs=usecs))
    assert value is not None
    seconds, _, micros = value.partition(b".")
    assert int(seconds) * 1_000_000 + int(micros) == usecs and len(micros) == 6
    if expected is not None:
        assert value == expected


def test_time_falls_back_to_cloudwatch_ms_then_to_nothing() -> None:
    assert hec_time(HsmEvent(cwl_timestamp=1_700_000_000_123)) == b"1700000000.123"
    line = to_hec_event(HsmEvent(raw="garbage"), source=None, host=None)
    envelope = json.loads(line)
    assert "time" not in envelope and envelope["event"] == "garbage"


# --------------------------------------------------------------------------- lean (the default)


def test_lean_is_the_default_and_its_event_is_the_record_text_as_written() -> None:
    line = to_hec_event(EVENT, source="/aws/cloudhsm/cluster-abc", host="hsm-xyz", index="cloudhsm")
    envelope = json.loads(line)
    assert list(envelope) == ["time", "host", "source", "sourcetype", "index", "event", "fields"]
    assert envelope["sourcetype"] == "aws:cloudhsm:audit:text" == TEXT_SOURCETYPE
    assert envelope["event"] == EVENT.raw
    assert envelope["fields"] == {"cluster_id": "cluster-abc", "hsm_id": "hsm-xyz", "event_id": "e" * 32}


def test_lean_fields_are_flat_strings_and_only_the_known_ones() -> None:
    # HEC rejects nested `fields` (code 15, reference §1.3): every value is a plain string.
    flagged = msgspec.structs.replace(EVENT, parse_error="truncated record", hsm_id=None)
    fields = json.loads(EventEncoder().line(flagged))["fields"]
    assert fields == {"cluster_id": "cluster-abc", "event_id": "e" * 32, "parse_error": "truncated record"}
    assert set(fields) <= set(INDEXED_FIELDS)
    assert all(isinstance(value, str) for value in fields.values())


def test_lean_event_without_any_id_has_no_fields_key() -> None:
    envelope = json.loads(to_hec_event(HsmEvent(raw="garbage"), source=None, host=None))
    assert "fields" not in envelope


def test_lean_never_repeats_cloudwatch_metadata_in_the_event() -> None:
    event = msgspec.structs.replace(EVENT, cwl_id="3" * 56, cwl_timestamp=1_513_717_277_141)
    envelope = json.loads(EventEncoder().line(event))
    assert envelope["event"] == EVENT.raw
    assert not {"log_group", "log_stream", "cwl_id", "cwl_timestamp"} & set(envelope["fields"])


def test_lean_certificate_record_is_its_json_text_under_the_same_sourcetype() -> None:
    text = (SAMPLES / "aws-certstore-01-createobject.txt").read_text(encoding="utf-8")
    event = parse_message(text, log_group="/aws/cloudhsm/cluster-abc", log_stream="cluster-abc")
    envelope = json.loads(EventEncoder().line(event))
    assert envelope["event"] == text and envelope["sourcetype"] == TEXT_SOURCETYPE
    assert envelope["host"] == "cluster-abc"  # no hsm_id: the log stream (contracts.md §2)
    assert envelope["fields"] == {"cluster_id": "cluster-abc", "event_id": event.event_id}


@pytest.mark.parametrize("blank", ["", " ", "\n\t "])
def test_a_blank_message_is_sent_as_a_json_event_not_a_blank_one_hec_refuses(blank: str) -> None:
    # HEC answers a blank `event` with code 13 (reference §1.3): the flagged object goes instead
    event = parse_message(blank, log_group="/aws/cloudhsm/cluster-abc", log_stream="hsm-xyz")
    for line in (EventEncoder().line(event), to_hec_event(event, source=event.log_group, host="hsm-xyz")):
        envelope = json.loads(line)
        assert envelope["sourcetype"] == JSON_SOURCETYPE and envelope["event"]["parse_error"]


def test_a_pretty_printed_cloudtrail_record_stays_one_line() -> None:
    from hsmaudit.records.cloudtrail import cloudtrail_event

    data = SAMPLES.parent / "cloudtrail"
    with gzip.open(next(data.glob("*.json.gz"))) as handle:
        record = json.load(handle)["Records"][0]
    event = msgspec.structs.replace(cloudtrail_event(record), raw=json.dumps(record, indent=2))
    line = EventEncoder().line(event)
    assert b"\n" not in line and json.loads(line)["event"] == record


def test_lean_event_without_its_text_is_sent_as_json() -> None:
    made_by_hand = msgspec.structs.replace(EVENT, raw=None)
    envelope = json.loads(EventEncoder().line(made_by_hand))
    assert envelope["sourcetype"] == JSON_SOURCETYPE and envelope["event"]["opcode"] == "CN_LOGIN"


# --------------------------------------------------------------------------- json (the setting)


def test_json_envelope_is_the_event_object_without_what_host_and_source_say() -> None:
    event = msgspec.structs.replace(EVENT, cwl_id="3" * 56, cwl_timestamp=1_513_717_277_141)
    line = to_hec_event(event, source="/aws/cloudhsm/cluster-abc", host="hsm-xyz", event_format="json")
    envelope = json.loads(line)
    assert list(envelope) == ["time", "host", "source", "sourcetype", "event"]
    assert envelope["sourcetype"] == "aws:cloudhsm:audit" == JSON_SOURCETYPE
    expected = event_to_dict(event, compact=True)
    for name in ORIGIN_FIELDS:
        expected.pop(name)
    assert envelope["event"] == expected and expected["raw"] == EVENT.raw


def test_json_index_only_when_configured_and_raw_can_be_left_out() -> None:
    envelope = json.loads(
        to_hec_event(
            EVENT, source="s", host="h", event_format="json", include_raw=False, sourcetype="custom:st"
        )
    )
    assert "index" not in envelope
    assert envelope["sourcetype"] == "custom:st"
    assert "raw" not in envelope["event"]  # absent values are left out (contracts §1, compact)


def test_include_raw_does_not_touch_the_lean_event() -> None:
    envelope = json.loads(EventEncoder(include_raw=False).line(EVENT))
    assert envelope["event"] == EVENT.raw


def test_an_unknown_format_is_refused() -> None:
    with pytest.raises(ValueError, match="lean, json"):
        EventEncoder(event_format="xml")  # type: ignore[arg-type]


@pytest.mark.parametrize("event_format", EVENT_FORMATS)
def test_encoder_host_is_hsm_id_falling_back_to_log_stream(event_format: EventFormat) -> None:
    encoder = EventEncoder(event_format=event_format)
    assert json.loads(encoder.line(EVENT))["host"] == "hsm-xyz"
    certificate_stream = HsmEvent(
        usecs=1, raw="{}", log_group="/aws/cloudhsm/cluster-abc", log_stream="cluster-abc"
    )
    envelope = json.loads(encoder.line(certificate_stream))
    assert (envelope["host"], envelope["source"]) == ("cluster-abc", "/aws/cloudhsm/cluster-abc")


@pytest.mark.parametrize("event_format", EVENT_FORMATS)
def test_encoder_and_to_hec_event_build_the_same_bytes(event_format: EventFormat) -> None:
    encoder = EventEncoder(event_format=event_format, index="idx", include_raw=False)
    other_stream = msgspec.structs.replace(EVENT, hsm_id="hsm-other", log_stream="hsm-other")
    for event in (EVENT, other_stream, EVENT, msgspec.structs.replace(EVENT, raw=None)):
        assert encoder.line(event) == to_hec_event(
            event,
            source=event.log_group,
            host=event.hsm_id,
            event_format=event_format,
            index="idx",
            include_raw=False,
        )


# host and source with a lone surrogate cannot be encoded by either path: they come from AWS names.
_MAYBE_NAME = st.one_of(
    st.none(),
    st.text(st.characters(exclude_categories=("Cs",)), max_size=12),
    st.sampled_from(["hsm-a", "cluster-c"]),
)
_MAYBE_TEXT = st.one_of(st.none(), st.text(max_size=12), st.sampled_from(["hsm-a", "cluster-c", "\ud800"]))


@given(
    raw=st.one_of(st.none(), st.text(), st.sampled_from(["{}", '{"eventName":"X"}', "x\udc00"])),
    hsm_id=_MAYBE_NAME,
    log_stream=_MAYBE_NAME,
    log_group=_MAYBE_NAME,
    cluster_id=_MAYBE_TEXT,
    event_id=_MAYBE_TEXT,
    parse_error=st.one_of(st.none(), st.just("bad")),
    usecs=st.one_of(st.none(), st.integers(min_value=-5, max_value=2**64)),
    cwl_timestamp=st.one_of(st.none(), st.integers(min_value=-5, max_value=2**50)),
    record_format=st.sampled_from(["text", "certificate", "cloudtrail", None]),
    event_format=st.sampled_from(EVENT_FORMATS),
    index=st.one_of(st.none(), st.just("idx")),
)
@example(  # a blank record text goes as the json event (HEC refuses a blank event)
    raw=" ",
    hsm_id=None,
    log_stream=None,
    log_group=None,
    cluster_id=None,
    event_id="",
    parse_error=None,
    usecs=0,
    cwl_timestamp=None,
    record_format="text",
    event_format="lean",
    index=None,
)
def test_encoder_fast_path_builds_the_bytes_of_to_hec_event(
    raw: str | None,
    hsm_id: str | None,
    log_stream: str | None,
    log_group: str | None,
    cluster_id: str | None,
    event_id: str | None,
    parse_error: str | None,
    usecs: int | None,
    cwl_timestamp: int | None,
    record_format: str | None,
    event_format: EventFormat,
    index: str | None,
) -> None:
    """EventEncoder.line's cached fast path (and its fallback) equals the reference envelope."""
    event = HsmEvent(
        raw=raw,
        hsm_id=hsm_id,
        log_stream=log_stream,
        log_group=log_group,
        cluster_id=cluster_id,
        event_id=event_id,
        parse_error=parse_error,
        usecs=usecs,
        cwl_timestamp=cwl_timestamp,
        record_format=record_format,  # type: ignore[arg-type]
    )
    encoder = EventEncoder(event_format=event_format, index=index)
    expected = to_hec_event(
        event, source=log_group, host=hsm_id or log_stream, event_format=event_format, index=index
    )
    assert encoder.line(event) == expected
    assert encoder.line(event) == expected  # again, from the encoder's caches


@pytest.mark.parametrize("event_format", EVENT_FORMATS)
def test_lone_surrogates_are_kept_as_json_escapes(event_format: EventFormat) -> None:
    event = HsmEvent(usecs=1, raw="bad \ud800 half", user_name="x\udfffy", event_id="\udc00")
    line = to_hec_event(event, source="s", host="h", event_format=event_format)
    assert b"\n" not in line
    decoded = json.loads(line)
    if event_format == "lean":
        assert (decoded["event"], decoded["fields"]["event_id"]) == ("bad \ud800 half", "\udc00")
    else:
        assert (decoded["event"]["raw"], decoded["event"]["user_name"]) == ("bad \ud800 half", "x\udfffy")


@given(
    raw=st.text(),
    user=st.one_of(st.none(), st.text()),
    host=st.one_of(st.none(), st.text()),
    usecs=st.one_of(st.none(), st.integers(min_value=0, max_value=2**63)),
    handle=st.one_of(st.none(), st.integers(min_value=0, max_value=2**64)),
    event_format=st.sampled_from(EVENT_FORMATS),
)
def test_any_event_becomes_one_line_of_json_that_round_trips(
    raw: str,
    user: str | None,
    host: str | None,
    usecs: int | None,
    handle: int | None,
    event_format: EventFormat,
) -> None:
    event = HsmEvent(
        raw=raw, user_name=user, usecs=usecs, object_handle=handle, extra={"k\n": raw}, event_id=user
    )
    line = to_hec_event(event, source="/aws/cloudhsm/c", host=host, event_format=event_format)
    assert b"\n" not in line
    envelope = json.loads(line)
    if event_format == "lean" and raw and not raw.isspace():
        assert envelope["event"] == raw
        assert envelope.get("fields", {}).get("event_id") == user
    else:
        assert envelope["event"] == event_to_dict(event, compact=True)
    assert envelope.get("host") == host


# --------------------------------------------------------------------------- answers


def answer(body: dict[str, object]) -> bytes:
    return json.dumps(body).encode()


def test_a_503_raises_the_retryable_class() -> None:
    with pytest.raises(HecRetryableError) as caught:
        classify_answer(503, answer({"text": "Server is busy", "code": 9}), {})
    assert (caught.value.status, caught.value.code) == (503, 9)


@pytest.mark.parametrize(
    ("status", "body", "headers", "error"),
    [
        (500, {"text": "Internal server error", "code": 8}, {}, HecRetryableError),
        (503, {"text": "HEC is unhealthy, queues are full", "code": 18}, {}, HecRetryableError),
        (429, {"text": "Too Many Requests"}, {"Retry-After": "3"}, HecRetryableError),
        (502, None, {}, HecRetryableError),
        (504, None, {}, HecRetryableError),
        (404, None, {}, HecRetryableError),
        (401, {"text": "Token is required", "code": 2}, {}, HecTokenError),
        (403, {"text": "Invalid token", "code": 4}, {}, HecTokenError),
        (403, {"text": "Token disabled", "code": 1}, {}, HecTokenError),
        (400, {"text": "Invalid token", "code": 21}, {}, HecTokenError),
        (413, None, {}, HecTooLargeError),
        (400, {"text": "Data channel is missing", "code": 10}, {}, HecRejectedError),
        (
            400,
            {"text": "Invalid data format", "code": 6, "invalid-event-number": 3},
            {},
            HecInvalidEventError,
        ),
        (400, {"text": "Incorrect index", "code": 7, "invalid-event-number": 0}, {}, HecInvalidEventError),
    ],
)
def test_answers_map_to_error_classes(
    status: int, body: dict[str, object] | None, headers: dict[str, str], error: type[Exception]
) -> None:
    data = answer(body) if body is not None else b"<html>Bad Gateway</html>"
    with pytest.raises(error) as caught:
        classify_answer(status, data, headers)
    assert type(caught.value) is error


def test_retry_after_and_invalid_event_number_are_read() -> None:
    with pytest.raises(HecRetryableError) as busy:
        classify_answer(429, b"", {"Retry-After": "3"})
    assert busy.value.retry_after == 3.0
    with pytest.raises(HecInvalidEventError) as bad:
        classify_answer(
            400, answer({"text": "Invalid data format", "code": 6, "invalid-event-number": 41}), {}
        )
    assert bad.value.index == 41


def test_success_returns_the_ack_id_or_none() -> None:
    assert classify_answer(200, answer({"text": "Success", "code": 0, "ackId": 7}), {}) == 7
    assert classify_answer(200, answer({"text": "Success", "code": 0}), {}) is None


@pytest.mark.parametrize("body", [b"", b"<html>Welcome to the proxy</html>", b'{"ok": true}', b"[]"])
def test_a_2xx_that_is_not_an_hec_success_is_refused_not_counted(body: bytes) -> None:
    with pytest.raises(HecRejectedError, match="is the URL an HEC endpoint"):
        classify_answer(200, body, {})


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("https://hec.example.com:8088", ("https://hec.example.com:8088", "/services/collector/event")),
        ("https://hec.example.com/", ("https://hec.example.com", "/services/collector/event")),
        ("https://h:8088/services/collector", ("https://h:8088", "/services/collector/event")),
        ("https://h:8088/services/collector/event", ("https://h:8088", "/services/collector/event")),
        (
            "https://h/proxy/services/collector/event/1.0",
            ("https://h", "/proxy/services/collector/event/1.0"),
        ),
    ],
)
def test_event_url_accepts_origin_or_endpoint(url: str, expected: tuple[str, str]) -> None:
    origin, event_path, ack_path = event_url(url)
    assert (origin, event_path) == expected
    assert ack_path.endswith("/services/collector/ack")


@pytest.mark.parametrize("url", ["hec.example.com:8088", "ftp://h", "https://"])
def test_event_url_rejects_what_is_not_http(url: str) -> None:
    with pytest.raises(ValueError, match="https://"):
        event_url(url)


@pytest.mark.parametrize("event_format", ["lean", "json"])
def test_a_cloudtrail_call_goes_as_the_cloudtrail_record_under_aws_cloudtrail(event_format: str) -> None:
    from hsmaudit.records.cloudtrail import cloudtrail_event
    from hsmaudit.server.hec import decode_envelopes, envelope_event
    from hsmaudit.sinks.hec.envelope import EventEncoder

    data = Path(__file__).resolve().parents[1] / "data" / "cloudtrail"
    with gzip.open(next(data.glob("*.json.gz"))) as handle:
        record = json.load(handle)["Records"][0]
    event = cloudtrail_event(record)
    line = EventEncoder(event_format=event_format).line(event)  # type: ignore[arg-type]
    envelope = json.loads(line)
    # The shape the Splunk Add-on for AWS indexes: the record itself, so the app's
    # hsmaudit_cloudtrail macro and the CloudTrail rules see it; the id rides as an indexed field.
    assert envelope["sourcetype"] == "aws:cloudtrail"
    assert envelope["event"] == record
    assert envelope["fields"] == {"event_id": event.event_id}
    assert envelope["host"] == event.hsm_id
    assert float(envelope["time"]) * 1_000_000 == pytest.approx(event.usecs)
    # The local collector reads it back into the same control-plane event.
    [decoded], error = decode_envelopes(line, max_event_size=1 << 20)
    assert error is None
    back = envelope_event(decoded)
    assert (back.record_format, back.opcode, back.event_id) == ("cloudtrail", "DeleteHsm", event.event_id)
