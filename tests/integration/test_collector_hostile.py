"""The local collector against hostile bodies, on a real uvicorn server on 127.0.0.1.

Deterministic bad input is answered as Splunk answers bad data (HTTP 400, code 6/12/13/15 with
`invalid-event-number`), never a 500 a sender would retry forever; the events before the bad one
are stored and the ones after are not (docs/reference/splunk.md §1.9). The same answer whether
the body has one envelope per line (fast path) or envelopes back to back (scanner). Gzip bombs and
many-member bodies are bounded, and while one client sends a slow hostile body other clients are
still answered (decoding runs in worker threads, at most `max_concurrent_decodes` at once).
"""

from __future__ import annotations

import gzip
import json
import threading
import time
from pathlib import Path

import pytest
import urllib3

from hsmaudit.server.hec import MAX_JSON_DEPTH

from ..support.collector import TOKEN, Collector, start_collector
from .payloads import envelope, simulated

EVENT_PATH = "/services/collector/event"


def deep(opening: str, closing: str, depth: int, inner: str = "1") -> str:
    return opening * depth + inner + closing * depth


HUGE = "9" * 5000  # more digits than int() and msgspec take
CASES: dict[str, tuple[bytes, int]] = {
    # name: (envelope, HEC code)
    "array nested 5000 deep as event": (b'{"event":' + deep("[", "]", 5000).encode() + b"}", 6),
    "object nested 5000 deep as event": (b'{"event":' + deep('{"a":', "}", 5000).encode() + b"}", 6),
    "event nested just past the limit": (
        b'{"event":' + deep("[", "]", MAX_JSON_DEPTH).encode() + b"}",
        6,
    ),
    "fields nested 5000 deep": (b'{"event":"x","fields":{"a":' + deep("[", "]", 5000).encode() + b"}}", 6),
    "time 1e400": (b'{"event":"x","time":1e400}', 6),
    "time NaN": (b'{"event":"x","time":NaN}', 6),
    "time with 5000 digits": (b'{"event":"x","time":' + HUGE.encode() + b"}", 6),
    "integer with 5000 digits in the event": (b'{"event":{"usecs":' + HUGE.encode() + b',"a":1}}', 6),
    "integer with 5000 digits in fields": (b'{"event":"x","fields":{"n":' + HUGE.encode() + b"}}", 6),
    "invalid UTF-8 in a string event": (b'{"event":"Time: 12/19/17 \xff\xfe"}', 6),
    "invalid UTF-8 in an event object": (b'{"event":{"raw":"\xc3("}}', 6),
    "lone surrogate escape in a string event": (b'{"event":"a\\ud800b"}', 6),
    "top level array": (b'[{"event":"x"}]', 6),
    "top level string": (b'"event"', 6),
    "top level number": (b"5", 6),
    "top level null": (b"null", 6),
    "host that is an object": (b'{"event":"x","host":{}}', 6),
    "unterminated string": (b'{"event":"x', 6),
    "no event field": (b'{"host":"hsm-x","time":1}', 12),
    "blank event": (b'{"event":""}', 13),
    "null event": (b'{"event":null}', 13),
    "nested indexed fields": (b'{"event":"x","fields":{"a":{"b":1}}}', 15),
}


@pytest.mark.parametrize("layout", ["lines", "back to back"])
@pytest.mark.parametrize("name", list(CASES))
def test_hostile_envelope_is_a_400_at_its_number_and_the_events_before_it_are_kept(
    collector: Collector, name: str, layout: str
) -> None:
    # GIVEN two good events, the hostile envelope, and one more good event
    good = simulated(3)
    bad, code = CASES[name]
    parts = [envelope(good[0]).encode(), envelope(good[1]).encode(), bad, envelope(good[2]).encode()]
    body = (b"\n" if layout == "lines" else b"").join(parts)
    # WHEN it is posted
    status, answer = collector.post(EVENT_PATH, body)
    # THEN HEC's answer for bad data, at the hostile envelope's number
    assert status == 400, answer
    assert (answer["code"], answer["invalid-event-number"]) == (code, 2), answer
    # AND the two before it are stored, the one after it is not (the sender resends from N+1)
    stored = {event.event_id for _, event in collector.store.iter_events()}
    assert stored == {good[0].event_id, good[1].event_id}


def test_nesting_at_the_limit_is_accepted_in_both_layouts(collector: Collector) -> None:
    # An envelope is one level; its event may nest MAX_JSON_DEPTH - 1 more (kept as an unparsed event).
    ok = b'{"event":' + deep("[", "]", MAX_JSON_DEPTH - 1).encode() + b"}"
    assert collector.post(EVENT_PATH, ok)[0] == 200
    assert collector.post(EVENT_PATH, ok + b" " + ok)[0] == 200
    (event,) = [event for _, event in collector.store.iter_events()]
    assert event.parse_error is not None


@pytest.mark.parametrize("event", ["5", "true", "[1, 2]"])
def test_an_event_that_is_a_number_or_list_is_kept_flagged(collector: Collector, event: str) -> None:
    # Splunk indexes such an event as its text; nothing sent to us vanishes.
    assert collector.post(EVENT_PATH, '{"event": ' + event + "}")[0] == 200
    (stored,) = [e for _, e in collector.store.iter_events()]
    assert stored.raw == event and stored.parse_error is not None


def test_a_5_mb_whitespace_run_in_a_record_is_parsed_and_flagged_not_a_stall(collector: Collector) -> None:
    text = "Time: 12/19/17 21:01:17.140812, usecs:1513717277140812\nSequence No : 0x3" + " " * 4_000_000
    body = json.dumps({"event": text, "source": "/aws/cloudhsm/cluster-ws", "host": "hsm-ws"})
    started = time.monotonic()
    assert collector.post(EVENT_PATH, body)[0] == 200
    elapsed = time.monotonic() - started
    (stored,) = [e for _, e in collector.store.iter_events()]
    assert stored.raw == text
    assert elapsed < 30  # a guard against the old quadratic path (minutes), not a benchmark


def test_raw_endpoint_keeps_invalid_utf8_reversibly_and_flags_it(collector: Collector) -> None:
    record = b"Time: 12/19/17 21:01:17.140812, usecs:1513717277140812\nUser Name : ad\xffmin\n"
    status, _ = collector.post("/services/collector/raw?source=/aws/cloudhsm/cluster-raw&host=hsm-r", record)
    assert status == 200
    (stored,) = [e for _, e in collector.store.iter_events()]
    assert stored.parse_error is not None
    assert "\\udcff" in (stored.raw or "")


def test_many_gzip_members_are_accepted_in_linear_time(collector: Collector) -> None:
    # GIVEN 50,000 empty gzip members (1 MB) followed by a member holding the events
    events = simulated(5)
    empty = gzip.compress(b"", mtime=0)
    body = empty * 50_000 + gzip.compress("\n".join(envelope(e) for e in events).encode(), mtime=0)
    status, answer = collector.post(EVENT_PATH, body, headers={"Content-Encoding": "gzip"})
    assert (status, answer["code"]) == (200, 0)
    assert collector.count() == 5


def test_gzip_member_then_garbage_is_invalid_data_format_and_stores_nothing(collector: Collector) -> None:
    body = gzip.compress(envelope(simulated(1)[0]).encode()) + b"not gzip at all"
    status, answer = collector.post(EVENT_PATH, body, headers={"Content-Encoding": "gzip"})
    assert (status, answer["code"]) == (400, 6)
    assert collector.count() == 0


def test_a_bomb_is_refused_with_413_at_the_default_limit(collector: Collector) -> None:
    bomb = gzip.compress(b"\0" * (200 * 1024 * 1024), compresslevel=9, mtime=0)  # ~200 KB
    status, answer = collector.post(EVENT_PATH, bomb, headers={"Content-Encoding": "gzip"})
    assert status == 413
    assert "too large" in answer["text"]
    assert collector.post(EVENT_PATH, envelope(simulated(1)[0]))[0] == 200  # and it still serves


def test_other_clients_are_answered_while_hostile_clients_fill_the_big_decode_lane(tmp_path: Path) -> None:
    # GIVEN a collector, and a client whose body takes the decoder a long while: 30 MiB of empty
    # gzip members (1.5 million members) ending in one bad envelope
    running = start_collector(tmp_path)
    empty = gzip.compress(b"", mtime=0)
    hostile = empty * (30 * 1024 * 1024 // len(empty)) + gzip.compress(b'{"event":"x","time":1e400}')
    outcome: dict[str, object] = {}

    def send_hostile() -> None:
        pool = urllib3.PoolManager(retries=False, timeout=120)
        response = pool.request(
            "POST",
            running.url + EVENT_PATH,
            body=hostile,
            headers={"Authorization": f"Splunk {TOKEN}", "Content-Encoding": "gzip"},
        )
        outcome["status"] = response.status
        outcome["done"] = time.monotonic()

    try:
        # as many hostile senders as the big decode lane has slots (2): small batches have their own
        others = [threading.Thread(target=send_hostile) for _ in range(2)]
        for other in others:
            other.start()
        sender = others[0]
        # WHEN another client posts small batches and checks health meanwhile
        pool = urllib3.PoolManager(retries=False, timeout=60)
        answered_during = 0
        events = simulated(40)
        index = 0
        while sender.is_alive() and index < len(events):
            response = pool.request(
                "POST",
                running.url + EVENT_PATH,
                body=envelope(events[index]).encode(),
                headers={"Authorization": f"Splunk {TOKEN}"},
            )
            health = pool.request("GET", running.url + "/services/collector/health")
            if sender.is_alive():
                answered_during += 1
            assert (response.status, health.status) == (200, 200)
            index += 1
        for other in others:
            other.join(timeout=120)
        # THEN the other client was answered while the hostile body was still being decoded
        assert answered_during >= 1, "no other request was answered while the hostile one ran"
        # AND the hostile body got HEC's bad-data answer, not a 500
        assert outcome["status"] == 400
        assert running.count() == index
    finally:
        running.server.stop()
        running.store.close()
