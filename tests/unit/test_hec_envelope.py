"""The HEC envelope (contracts.md §2) and how HEC's answers map to the error classes."""

from __future__ import annotations

import json
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hsmaudit.records.event import HsmEvent, event_to_dict
from hsmaudit.sinks.errors import (
    HecInvalidEventError,
    HecRejectedError,
    HecRetryableError,
    HecTokenError,
    HecTooLargeError,
)
from hsmaudit.sinks.hec import EventEncoder, classify_answer, event_url, hec_time, to_hec_event

EVENT = HsmEvent(
    usecs=1513717277140812,
    time="2017-12-19T21:01:17.140812Z",
    cluster_id="cluster-abc",
    hsm_id="hsm-xyz",
    log_group="/aws/cloudhsm/cluster-abc",
    log_stream="hsm-xyz",
    opcode="CN_LOGIN",
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
    assert "time" not in envelope and envelope["event"]["raw"] == "garbage"


def test_envelope_keys_follow_the_contract() -> None:
    line = to_hec_event(EVENT, source="/aws/cloudhsm/cluster-abc", host="hsm-xyz", index="cloudhsm")
    envelope = json.loads(line)
    assert list(envelope) == ["time", "host", "source", "sourcetype", "index", "event"]
    assert envelope["sourcetype"] == "aws:cloudhsm:audit"
    assert envelope["event"] == event_to_dict(EVENT, compact=True)


def test_index_only_when_configured_and_raw_can_be_left_out() -> None:
    envelope = json.loads(
        to_hec_event(EVENT, source="s", host="h", include_raw=False, sourcetype="custom:st")
    )
    assert "index" not in envelope
    assert envelope["sourcetype"] == "custom:st"
    assert "raw" not in envelope["event"]  # absent values are left out (contracts §1, compact)


def test_encoder_host_is_hsm_id_falling_back_to_log_stream() -> None:
    encoder = EventEncoder()
    assert json.loads(encoder.line(EVENT))["host"] == "hsm-xyz"
    certificate_stream = HsmEvent(usecs=1, log_group="/aws/cloudhsm/cluster-abc", log_stream="cluster-abc")
    envelope = json.loads(encoder.line(certificate_stream))
    assert (envelope["host"], envelope["source"]) == ("cluster-abc", "/aws/cloudhsm/cluster-abc")


def test_encoder_and_to_hec_event_build_the_same_bytes() -> None:
    encoder = EventEncoder(index="idx", include_raw=False)
    assert encoder.line(EVENT) == to_hec_event(
        EVENT, source=EVENT.log_group, host=EVENT.hsm_id, index="idx", include_raw=False
    )


def test_lone_surrogates_are_kept_as_json_escapes() -> None:
    event = HsmEvent(usecs=1, raw="bad \ud800 half", user_name="x\udfffy")
    line = to_hec_event(event, source="s", host="h")
    assert b"\n" not in line
    decoded = json.loads(line)["event"]
    assert (decoded["raw"], decoded["user_name"]) == ("bad \ud800 half", "x\udfffy")


@given(
    raw=st.text(),
    user=st.one_of(st.none(), st.text()),
    host=st.one_of(st.none(), st.text()),
    usecs=st.one_of(st.none(), st.integers(min_value=0, max_value=2**63)),
    handle=st.one_of(st.none(), st.integers(min_value=0, max_value=2**64)),
)
def test_any_event_becomes_one_line_of_json_that_round_trips(
    raw: str, user: str | None, host: str | None, usecs: int | None, handle: int | None
) -> None:
    event = HsmEvent(raw=raw, user_name=user, usecs=usecs, object_handle=handle, extra={"k\n": raw})
    line = to_hec_event(event, source="/aws/cloudhsm/c", host=host)
    assert b"\n" not in line
    envelope = json.loads(line)
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
