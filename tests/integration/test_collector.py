"""The local HEC collector on a real uvicorn server on 127.0.0.1: protocol, errors, storage.

Every HEC answer is checked against the reference table (splunk-hec-and-app.md §1.8-§1.9), and
every error case also checks that nothing stored before it was lost or duplicated.
"""

from __future__ import annotations

import base64
import gzip
import json
import uuid
import zlib
from pathlib import Path
from typing import Any

import msgspec
import pytest

from hsmaudit.detect.engine import detect_events
from hsmaudit.records.event import HsmEvent
from hsmaudit.records.parse import parse_message
from hsmaudit.simulate.emit import parsed_events
from hsmaudit.simulate.scenarios import run_scenarios
from hsmaudit.sinks.hec.envelope import EventEncoder, EventFormat

from ..support.collector import HTTP, TOKEN, Collector, start_collector
from .payloads import envelope, simulated

LOG_GROUP = "/aws/cloudhsm/cluster-coltest01"


def body_of(events: list[HsmEvent], separator: str = "\n") -> str:
    return separator.join(envelope(event) for event in events)


# --- success paths --------------------------------------------------------------------------


def test_batch_of_hsmaudit_events_is_stored_as_sent(collector: Collector) -> None:
    events = simulated()
    status, answer = collector.post("/services/collector/event", body_of(events))
    assert (status, answer) == (200, {"text": "Success", "code": 0})
    stored = {event.event_id: event for _, event in collector.store.iter_events()}
    assert stored == {event.event_id: event for event in events}


@pytest.mark.parametrize("path", ["/services/collector", "/services/collector/event/1.0"])
def test_collector_aliases_accept_envelopes(collector: Collector, path: str) -> None:
    status, answer = collector.post(path, body_of(simulated(3)))
    assert (status, answer["code"]) == (200, 0)
    assert collector.count() == 3


def test_envelopes_back_to_back_without_newlines_are_all_stored(collector: Collector) -> None:
    events = simulated(10)
    status, _ = collector.post("/services/collector/event", body_of(events, separator=""))
    assert status == 200
    assert collector.count() == 10


def test_gzip_body_is_accepted(collector: Collector) -> None:
    status, answer = collector.post("/services/collector/event", body_of(simulated(12)), gzip_body=True)
    assert (status, answer["code"]) == (200, 0)
    assert collector.count() == 12


def test_resending_a_batch_adds_no_duplicates(collector: Collector) -> None:
    body = body_of(simulated(20))
    for _ in range(3):
        assert collector.post("/services/collector/event", body)[0] == 200
    assert collector.count() == 20
    assert collector.store.summary().total_events == 20


def test_string_event_is_parsed_as_record_text_with_source_and_host(collector: Collector) -> None:
    event = simulated(1)[0]
    assert event.raw is not None
    body = json.dumps({"event": event.raw, "source": LOG_GROUP, "host": "hsm-abcdefghijk"})
    assert collector.post("/services/collector/event", body)[0] == 200
    [(_, stored)] = list(collector.store.iter_events())
    assert stored == parse_message(event.raw, log_group=LOG_GROUP, log_stream="hsm-abcdefghijk")
    assert stored.cluster_id == "cluster-coltest01"
    assert stored.parse_error is None


def forwarded(events: list[HsmEvent], event_format: EventFormat) -> str:
    """The HEC lines the forwarder's own encoder builds for `events`."""
    encoder = EventEncoder(event_format=event_format)
    return "\n".join(encoder.line(event).decode("utf-8") for event in events)


def test_lean_and_json_events_from_the_forwarder_store_the_same_events_and_alerts(tmp_path: Path) -> None:
    # GIVEN simulated activity with alerts in it (a failed-login burst), encoded both ways
    events = list(parsed_events(run_scenarios(["seed", "failed-login-burst"], seed=11).records))
    stored: dict[str, dict[str | None, HsmEvent]] = {}
    for event_format in ("lean", "json"):
        running = start_collector(tmp_path / event_format)
        try:
            # WHEN the forwarder's lines for each format reach a collector
            status, _ = running.post("/services/collector/event", forwarded(events, event_format))
            assert status == 200
            stored[event_format] = {e.event_id: e for _, e in running.store.iter_events()}
        finally:
            running.server.stop()
            running.store.close()
    # THEN both store every event, under the forwarder's ids, with the same fields (CloudWatch's
    # own id and timestamp travel in neither format: host and source say where a record came from)
    expected = {e.event_id: msgspec.structs.replace(e, cwl_id=None, cwl_timestamp=None) for e in events}
    assert stored["lean"] == stored["json"] == expected
    # AND the detections see the same alerts in both
    alerts = {
        f: [a.rule for a in detect_events(sorted(s.values(), key=lambda e: e.usecs or 0))]
        for f, s in stored.items()
    }
    assert alerts["lean"] == alerts["json"] and "failed-login" in alerts["lean"]


def test_lean_event_ids_come_from_its_indexed_fields(collector: Collector) -> None:
    # An unparsed record's id includes CloudWatch's event id, which only the forwarder knew
    event = parse_message("not a record", log_group=LOG_GROUP, log_stream="hsm-abcdefghijk", cwl_id="42")
    assert collector.post("/services/collector/event", forwarded([event], "lean"))[0] == 200
    [(_, stored)] = list(collector.store.iter_events())
    assert (stored.event_id, stored.cluster_id, stored.hsm_id) == (
        event.event_id,
        event.cluster_id,
        event.hsm_id,
    )
    assert stored.parse_error is not None and stored.raw == "not a record"


def test_a_record_with_a_lone_surrogate_arrives_lean_as_a_flagged_event(collector: Collector) -> None:
    # GIVEN record text with a lone surrogate (JSON "\ud800" in a CloudWatch message decodes to one)
    text = (simulated(1)[0].raw or "") + "\nNote : bad\ud800name"
    event = parse_message(text, log_group=LOG_GROUP, log_stream="hsm-abcdefghijk")
    # WHEN the forwarder sends it lean and the collector stores it
    assert collector.post("/services/collector/event", forwarded([event], "lean"))[0] == 200
    # THEN it is one flagged event under the forwarder's id, the surrogate kept as its escape
    [(_, stored)] = list(collector.store.iter_events())
    assert stored.event_id == event.event_id and stored.parse_error == event.parse_error
    assert event.parse_error is not None and "surrogate" in event.parse_error
    assert stored.raw is not None and "\\ud800" in stored.raw


def test_object_that_is_not_an_hsmaudit_event_is_kept_flagged(collector: Collector) -> None:
    body = json.dumps({"event": {"hello": "world"}, "source": "other"})
    assert collector.post("/services/collector/event", body)[0] == 200
    [(_, stored)] = list(collector.store.iter_events())
    assert stored.parse_error is not None
    assert stored.raw is not None
    assert json.loads(stored.raw) == {"hello": "world"}


def test_cloudtrail_api_calls_are_stored_as_control_plane_events(collector: Collector) -> None:
    # One CloudHSM call as a CloudTrail record, one as an EventBridge event (tests/data/cloudtrail).
    data = Path(__file__).resolve().parents[1] / "data" / "cloudtrail"
    bridge = json.loads((data / "eventbridge_copy_backup.json").read_text())
    with gzip.open(next(data.glob("*.json.gz"))) as handle:
        records = json.load(handle)["Records"]
    delete_hsm = next(r for r in records if r["eventName"] == "DeleteHsm")
    kms = next(r for r in records if r["eventSource"] != "cloudhsm.amazonaws.com")
    body = "".join(
        json.dumps({"event": value, "sourcetype": "aws:cloudtrail"}) for value in (delete_hsm, bridge, kms)
    )
    assert collector.post("/services/collector/event", body)[0] == 200
    stored = {event.opcode or "": event for _, event in collector.store.iter_events()}
    assert stored["DeleteHsm"].record_format == "cloudtrail"
    assert stored["DeleteHsm"].hsm_id == delete_hsm["requestParameters"]["hsmId"]
    assert stored["DeleteHsm"].severity == "critical"
    assert stored["CopyBackupToRegion"].record_format == "cloudtrail"
    # Another service's record is not a CloudHSM call: kept, flagged, never silently dropped.
    [other] = [event for key, event in stored.items() if key not in {"DeleteHsm", "CopyBackupToRegion"}]
    assert other.parse_error is not None


def test_raw_endpoint_parses_record_text_with_query_metadata(collector: Collector) -> None:
    events = simulated(5)
    text = "\n\n".join(event.raw or "" for event in events)
    status, answer = collector.post(
        f"/services/collector/raw?source={LOG_GROUP}&host=hsm-rawrawrawra&sourcetype=aws:cloudhsm:audit:text",
        text,
    )
    assert (status, answer) == (200, {"text": "Success", "code": 0})
    stored = [event for _, event in collector.store.iter_events()]
    assert len(stored) == 5
    assert {event.hsm_id for event in stored} == {"hsm-rawrawrawra"}
    assert all(event.parse_error is None for event in stored)


def test_health_reports_code_17(collector: Collector) -> None:
    response = HTTP.request("GET", collector.url + "/services/collector/health")
    assert (response.status, json.loads(response.data)) == (200, {"text": "HEC is healthy", "code": 17})


def test_ack_ids_count_per_channel_and_are_true_once(collector: Collector) -> None:
    channel = str(uuid.uuid4())
    headers = {"X-Splunk-Request-Channel": channel}
    ids = [
        collector.post("/services/collector/event", body_of(simulated(2)), headers=headers)[1]["ackId"]
        for _ in range(3)
    ]
    assert ids == [0, 1, 2]
    other = collector.post("/services/collector/event?channel=" + str(uuid.uuid4()), body_of(simulated(1)))[1]
    assert other["ackId"] == 0
    status, answer = collector.post(
        "/services/collector/ack", json.dumps({"acks": [0, 2, 7]}), headers=headers
    )
    assert (status, answer) == (200, {"acks": {"0": True, "2": True, "7": False}})
    # Splunk forgets an id once it has reported it true (reference §1.7).
    assert collector.post("/services/collector/ack", json.dumps({"acks": [0, 1]}), headers=headers)[1] == {
        "acks": {"0": False, "1": True}
    }


def test_ack_without_channel_is_code_10(collector: Collector) -> None:
    assert collector.post("/services/collector/ack", '{"acks":[0]}') == (
        400,
        {"text": "Data channel is missing", "code": 10},
    )


def test_ack_disabled_is_code_14(tmp_path: Path) -> None:
    running = start_collector(tmp_path, ack=False)
    try:
        headers = {"X-Splunk-Request-Channel": str(uuid.uuid4())}
        status, answer = running.post("/services/collector/event", body_of(simulated(1)), headers=headers)
        assert (status, answer) == (200, {"text": "Success", "code": 0})
        assert running.post("/services/collector/ack", '{"acks":[0]}', headers=headers) == (
            400,
            {"text": "ACK is disabled", "code": 14},
        )
    finally:
        running.server.stop()
        running.store.close()


# --- errors: each is Splunk's answer, and nothing stored is lost ------------------------------


@pytest.fixture
def preloaded(collector: Collector) -> Collector:
    assert collector.post("/services/collector/event", body_of(simulated(15)))[0] == 200
    assert collector.count() == 15
    return collector


@pytest.mark.parametrize(
    ("headers", "token", "expected"),
    [
        ({}, None, (401, {"text": "Token is required", "code": 2})),
        ({"Authorization": "Bearer " + TOKEN}, None, (401, {"text": "Invalid authorization", "code": 3})),
        ({}, "wrong-token", (403, {"text": "Invalid token", "code": 4})),
        ({"Authorization": "Splunk"}, None, (401, {"text": "Invalid authorization", "code": 3})),
    ],
)
def test_bad_credentials_get_hec_codes_and_store_nothing(
    preloaded: Collector, headers: dict[str, str], token: str | None, expected: tuple[int, dict[str, Any]]
) -> None:
    assert (
        preloaded.post("/services/collector/event", body_of(simulated(30)[15:]), token=token, headers=headers)
        == expected
    )
    assert preloaded.count() == 15


def test_basic_auth_with_token_as_password_is_accepted(collector: Collector) -> None:
    basic = base64.b64encode(f"x:{TOKEN}".encode()).decode()
    status, _ = collector.post(
        "/services/collector/event",
        body_of(simulated(2)),
        token=None,
        headers={"Authorization": "Basic " + basic},
    )
    assert status == 200


def test_query_string_token_is_refused_with_code_16(preloaded: Collector) -> None:
    status, answer = preloaded.post(
        f"/services/collector/event?token={TOKEN}", body_of(simulated(1)), token=None
    )
    assert (status, answer) == (400, {"text": "Query string authorization is not enabled", "code": 16})


def test_malformed_json_stops_at_its_event_number_and_keeps_the_ones_before(preloaded: Collector) -> None:
    events = simulated(30)[15:]
    body = body_of(events[:4]) + '\n{"event": {"broken": \n' + body_of(events[4:])
    assert preloaded.post("/services/collector/event", body) == (
        400,
        {"text": "Invalid data format", "code": 6, "invalid-event-number": 4},
    )
    # Events 0..3 were accepted (reference §1.9); nothing after the bad one was.
    assert preloaded.count() == 15 + 4


def test_event_without_event_field_is_code_12_with_its_number(preloaded: Collector) -> None:
    events = simulated(30)[15:]
    body = "\n".join(
        [envelope(events[0]), envelope(events[1]), '{"host": "hsm-x", "time": 1}', envelope(events[2])]
    )
    assert preloaded.post("/services/collector/event", body) == (
        400,
        {"text": "Event field is required", "code": 12, "invalid-event-number": 2},
    )
    assert preloaded.count() == 17


@pytest.mark.parametrize("blank", ['""', "null", "{}"])
def test_blank_event_is_code_13(preloaded: Collector, blank: str) -> None:
    assert preloaded.post("/services/collector/event", '{"event": ' + blank + "}") == (
        400,
        {"text": "Event field cannot be blank", "code": 13, "invalid-event-number": 0},
    )
    assert preloaded.count() == 15


def test_nested_indexed_fields_are_code_15(preloaded: Collector) -> None:
    body = json.dumps({"event": "x", "fields": {"cluster": {"id": 1}}})
    assert preloaded.post("/services/collector/event", body) == (
        400,
        {"text": "Error in handling indexed fields", "code": 15, "invalid-event-number": 0},
    )


def test_array_body_is_invalid_data_format(preloaded: Collector) -> None:
    body = "[" + envelope(simulated(1)[0]) + "]"
    status, answer = preloaded.post("/services/collector/event", body)
    assert (status, answer["code"], answer["invalid-event-number"]) == (400, 6, 0)
    assert preloaded.count() == 15


def test_empty_body_is_no_data(preloaded: Collector) -> None:
    assert preloaded.post("/services/collector/event", "  \n") == (400, {"text": "No data", "code": 5})
    assert preloaded.post("/services/collector/raw", "") == (400, {"text": "No data", "code": 5})


def test_deflate_encoding_is_refused_and_stores_nothing(preloaded: Collector) -> None:
    body = zlib.compress(body_of(simulated(30)[15:]).encode())
    status, answer = preloaded.post(
        "/services/collector/event", body, headers={"Content-Encoding": "deflate"}
    )
    assert (status, answer["code"]) == (400, 6)
    assert preloaded.count() == 15


def test_body_claiming_gzip_that_is_not_gzip_is_invalid_data_format(preloaded: Collector) -> None:
    status, answer = preloaded.post(
        "/services/collector/event", body_of(simulated(2)), headers={"Content-Encoding": "gzip"}
    )
    assert (status, answer["code"]) == (400, 6)
    assert preloaded.count() == 15


def test_oversized_body_is_413_and_stores_nothing(tmp_path: Path) -> None:
    running = start_collector(tmp_path, max_content_length=64 * 1024)
    try:
        assert running.post("/services/collector/event", body_of(simulated(5)))[0] == 200
        big = body_of(simulated(40) * 10)
        assert len(big) > 64 * 1024
        status, answer = running.post("/services/collector/event", big)
        assert status == 413
        assert answer["text"].startswith("Content-Length of ")
        assert running.count() == 5
    finally:
        running.server.stop()
        running.store.close()


def test_gzip_bomb_is_stopped_at_the_decompressed_limit(tmp_path: Path) -> None:
    running = start_collector(tmp_path, max_content_length=256 * 1024)
    try:
        bomb = gzip.compress(b" " * (20 * 1024 * 1024))
        assert len(bomb) < 256 * 1024
        status, _ = running.post("/services/collector/event", bomb, headers={"Content-Encoding": "gzip"})
        assert status == 413
    finally:
        running.server.stop()
        running.store.close()


def test_invalid_channel_is_code_11(preloaded: Collector) -> None:
    status, answer = preloaded.post(
        "/services/collector/event", body_of(simulated(1)), headers={"X-Splunk-Request-Channel": "not-a-guid"}
    )
    assert (status, answer) == (400, {"text": "Invalid data channel", "code": 11})


def test_unknown_collector_path_is_404_json(collector: Collector) -> None:
    response = HTTP.request("POST", collector.url + "/services/collector/nope", body=b"{}")
    assert response.status == 404
    assert json.loads(response.data)["code"] == 404
