"""The fault matrix: the real subscription handler against real HEC servers on loopback.

For every fault, every input event ends up accepted by HEC or in the spool (counted, never
guessed), and after `replay` every event is in the sink exactly as it was built, byte for byte.
The tests through `start_hec` run against our HEC and once more against the independent sink
(a cross-check that skips when it is absent).
Timeouts and backoffs are shortened (aws_env.FAST_SETTINGS) so the matrix runs in seconds.
"""

from __future__ import annotations

import json
import logging
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from hsmaudit.aws.errors import DeliveryIncompleteError
from hsmaudit.aws.subscription import handler
from hsmaudit.ops.replay import replay_spool
from hsmaudit.sinks.errors import SpoolError
from hsmaudit.sinks.hec.client import HecClient
from hsmaudit.sinks.hec.envelope import EventEncoder
from hsmaudit.sinks.hec.policy import ConnectionPolicy, RetryPolicy
from hsmaudit.sinks.hec.token import StaticToken
from hsmaudit.sinks.spool import LocalSpool
from hsmaudit.sources.cloudwatch import document_from_object, log_messages
from hsmaudit.sources.message import parse_log_message

from .fault_hec import OTHER_TOKEN, TOKEN, FaultHec, closed_port_url
from .payloads import (
    FakeContext,
    control_document,
    received_event,
    record_text,
    subscription_document,
    subscription_event,
)
from .shared_sink import HecServer


@pytest.fixture(autouse=True)
def _no_token_leak(no_token_leak: None) -> Iterator[None]:
    yield


def expected_lines(*documents: dict[str, Any]) -> list[bytes]:
    """The HEC lines the forwarder must produce for these documents (default settings)."""
    encoder = EventEncoder()
    return [
        encoder.line(parse_log_message(message))
        for document in documents
        for message in log_messages(document_from_object(document))
    ]


def spooled(spool_dir: Path) -> list[bytes]:
    spool = LocalSpool(spool_dir)
    return [line for batch_id in spool.list() for line in spool.get(batch_id).lines]


def replay_to(url: str, spool_dir: Path, token: str = TOKEN) -> None:
    client = HecClient(
        url,
        StaticToken(token),
        connection=ConnectionPolicy(timeout=2.0),
        retry=RetryPolicy(backoff_base=0.01),
    )
    try:
        outcomes = replay_spool(LocalSpool(spool_dir), client, budget=10.0)
    finally:
        client.close()
    assert all(o.status == "replayed" for o in outcomes), outcomes
    assert list(LocalSpool(spool_dir).list()) == []


def sink_counter(sink: HecServer) -> Counter[str]:
    """Each accepted envelope, canonicalised, with how often the sink got it."""
    return Counter(json.dumps(e, sort_keys=True, ensure_ascii=False) for e in sink.events())


def canonical(lines: list[bytes]) -> Counter[str]:
    return Counter(json.dumps(json.loads(line), sort_keys=True, ensure_ascii=False) for line in lines)


def documents(count: int, *, per_stream: int = 400) -> list[dict[str, Any]]:
    docs = []
    for start in range(0, count, per_stream):
        messages = [record_text(n) for n in range(start, min(count, start + per_stream))]
        docs.append(subscription_document(messages, stream=f"hsm-{start:08d}", first_id=start))
    return docs


# --------------------------------------------------------------------------- HEC answers errors


@pytest.mark.parametrize(
    ("options", "retries_at_least"),
    [
        pytest.param({"fail_every": 3, "fail_status": 503}, 3, id="503-every-3rd-request"),
        pytest.param({"fail_first": 2, "fail_status": 500}, 2, id="500-first-two-requests"),
    ],
)
def test_server_errors_are_retried_until_every_event_is_accepted_once(
    start_hec: Callable[..., HecServer],
    lambda_env: Callable[..., None],
    tmp_path: Path,
    options: dict[str, Any],
    retries_at_least: int,
) -> None:
    # GIVEN a sink that fails some requests, and 1,000 events in batches of 100
    sink = start_hec(**options)
    lambda_env(
        HSMAUDIT_HEC_URL=sink.url,
        HSMAUDIT_HEC_TOKEN=TOKEN,
        HSMAUDIT_SPOOL_DIR=str(tmp_path / "spool"),
        HSMAUDIT_BATCH_MAX_EVENTS="100",
    )
    docs = documents(1000)
    # WHEN the handler runs
    result = handler(subscription_event(*docs), FakeContext())
    # THEN every event was accepted exactly once and nothing needed the spool
    assert result["events_in"] == result["accepted"] == 1000
    assert result["spooled"] == 0
    assert result["retries"] >= retries_at_least
    assert sink_counter(sink) == canonical(expected_lines(*docs))
    assert sink.stats()["injected_failures"] >= retries_at_least


def test_429_with_retry_after_is_retried(
    fault_hec: FaultHec, lambda_env: Callable[..., None], tmp_path: Path
) -> None:
    fault_hec.script = [("status", 429, {"text": "Too Many Requests"}, {"Retry-After": "0"})] * 2
    lambda_env(HSMAUDIT_HEC_URL=fault_hec.url, HSMAUDIT_HEC_TOKEN=TOKEN, HSMAUDIT_SPOOL_DIR=str(tmp_path))
    docs = documents(50)
    result = handler(subscription_event(*docs), FakeContext())
    assert (result["accepted"], result["spooled"], result["retries"]) == (50, 0, 2)
    assert fault_hec.accepted == expected_lines(*docs)


@pytest.mark.parametrize(
    "fault",
    [
        pytest.param(("sleep", 1.0), id="answer-slower-than-the-timeout"),
        pytest.param("reset", id="connection-reset"),
    ],
)
def test_transport_failures_are_retried(
    fault_hec: FaultHec, lambda_env: Callable[..., None], tmp_path: Path, fault: Any
) -> None:
    # GIVEN an HEC whose first two answers never come (slow past the 0.5 s timeout, or reset)
    fault_hec.script = [fault, fault]
    lambda_env(HSMAUDIT_HEC_URL=fault_hec.url, HSMAUDIT_HEC_TOKEN=TOKEN, HSMAUDIT_SPOOL_DIR=str(tmp_path))
    docs = documents(120)
    started = time.monotonic()
    result = handler(subscription_event(*docs), FakeContext())
    # THEN the third attempt delivers everything, byte for byte, within the time the faults cost
    assert (result["accepted"], result["spooled"], result["retries"]) == (120, 0, 2)
    assert fault_hec.accepted == expected_lines(*docs)
    assert time.monotonic() - started < 3.0


# --------------------------------------------------------------------------- partial failures


def test_invalid_event_mid_batch_is_spooled_alone_and_the_rest_is_sent_once(
    fault_hec: FaultHec, lambda_env: Callable[..., None], tmp_path: Path
) -> None:
    # GIVEN 300 events, three of which HEC rejects (positions 10, 150 and 299), batches of 100
    messages = [record_text(n, user_name="POISON" if n in (10, 150, 299) else "admin") for n in range(300)]
    doc = subscription_document(messages)
    fault_hec.poison = lambda envelope: received_event(envelope).user_name == "POISON"
    spool_dir = tmp_path / "spool"
    lambda_env(
        HSMAUDIT_HEC_URL=fault_hec.url,
        HSMAUDIT_HEC_TOKEN=TOKEN,
        HSMAUDIT_SPOOL_DIR=str(spool_dir),
        HSMAUDIT_BATCH_MAX_EVENTS="100",
    )
    result = handler(subscription_event(doc), FakeContext())
    lines = expected_lines(doc)
    poison = [lines[10], lines[150], lines[299]]
    # THEN the good events are in HEC exactly once (no whole-batch resend), the bad ones spooled
    assert (result["accepted"], result["spooled"]) == (297, 3)
    assert fault_hec.accepted == [line for line in lines if line not in poison]
    assert spooled(spool_dir) == poison
    assert all(
        "HEC rejected this event" in LocalSpool(spool_dir).get(b).reason for b in LocalSpool(spool_dir).list()
    )
    # AND after the cause is fixed, replay delivers the three, and every event is there once
    fault_hec.poison = None
    replay_to(fault_hec.url, spool_dir)
    assert Counter(fault_hec.accepted) == Counter(lines)


# --------------------------------------------------------------------------- configuration faults


def test_bad_token_spools_everything_at_once_with_one_log_line(
    start_hec: Callable[..., HecServer],
    lambda_env: Callable[..., None],
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    sink = start_hec()
    spool_dir = tmp_path / "spool"
    lambda_env(
        HSMAUDIT_HEC_URL=sink.url,
        HSMAUDIT_HEC_TOKEN=OTHER_TOKEN,
        HSMAUDIT_SPOOL_DIR=str(spool_dir),
        HSMAUDIT_BATCH_MAX_EVENTS="100",
    )
    docs = documents(500)
    result = handler(subscription_event(*docs), FakeContext())
    # THEN one request found out, nothing was retried, all 500 are spooled
    assert (result["accepted"], result["spooled"], result["retries"]) == (0, 500, 0)
    assert sink.stats()["requests"] == 1
    assert sorted(spooled(spool_dir)) == sorted(expected_lines(*docs))
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR and "token" in r.getMessage()]
    assert len(errors) == 1
    # AND replay with the right token delivers them all, once
    replay_to(sink.url, spool_dir)
    assert sink_counter(sink) == canonical(expected_lines(*docs))


def test_hec_down_for_the_whole_invocation_spools_everything_in_bounded_time(
    start_hec: Callable[..., HecServer], lambda_env: Callable[..., None], tmp_path: Path
) -> None:
    spool_dir = tmp_path / "spool"
    lambda_env(
        HSMAUDIT_HEC_URL=closed_port_url(),
        HSMAUDIT_HEC_TOKEN=TOKEN,
        HSMAUDIT_SPOOL_DIR=str(spool_dir),
        HSMAUDIT_BATCH_MAX_EVENTS="100",
    )
    docs = documents(800)
    started = time.monotonic()
    result = handler(subscription_event(*docs), FakeContext())
    assert time.monotonic() - started < 2.0
    # THEN one batch was tried max_attempts times, the rest spooled without hammering a dead HEC
    assert (result["accepted"], result["spooled"], result["retries"]) == (0, 800, 3)
    assert sorted(spooled(spool_dir)) == sorted(expected_lines(*docs))
    sink = start_hec()
    replay_to(sink.url, spool_dir)
    assert sink_counter(sink) == canonical(expected_lines(*docs))


def test_time_budget_bounds_retries_and_spools_what_is_left(
    fault_hec: FaultHec, lambda_env: Callable[..., None], tmp_path: Path
) -> None:
    # GIVEN an HEC that is busy for good and an invocation with 1.2 s left (0.5 s reserved)
    fault_hec.default = ("status", 503, {"text": "Server is busy", "code": 9}, {"Retry-After": "0.2"})
    spool_dir = tmp_path / "spool"
    lambda_env(
        HSMAUDIT_HEC_URL=fault_hec.url,
        HSMAUDIT_HEC_TOKEN=TOKEN,
        HSMAUDIT_SPOOL_DIR=str(spool_dir),
        HSMAUDIT_HEC_MAX_ATTEMPTS="50",
        HSMAUDIT_HEC_BACKOFF_CAP="0.3",
    )
    docs = documents(30)
    started = time.monotonic()
    result = handler(subscription_event(*docs), FakeContext(remaining_ms=1200))
    # THEN the handler returns inside the invocation's time with everything spooled
    assert time.monotonic() - started < 1.2
    assert (result["accepted"], result["spooled"]) == (0, 30)
    assert sorted(spooled(spool_dir)) == sorted(expected_lines(*docs))
    fault_hec.default = "ok"
    replay_to(fault_hec.url, spool_dir)
    assert Counter(fault_hec.accepted) == Counter(expected_lines(*docs))


# --------------------------------------------------------------------------- indexer acknowledgement


def test_acks_that_never_arrive_resend_once_then_spool(
    fault_hec: FaultHec, lambda_env: Callable[..., None], tmp_path: Path
) -> None:
    fault_hec.ack = "never"
    spool_dir = tmp_path / "spool"
    lambda_env(
        HSMAUDIT_HEC_URL=fault_hec.url,
        HSMAUDIT_HEC_TOKEN=TOKEN,
        HSMAUDIT_SPOOL_DIR=str(spool_dir),
        HSMAUDIT_HEC_ACK="true",
        HSMAUDIT_BATCH_MAX_EVENTS="40",
    )
    docs = documents(100)
    lines = expected_lines(*docs)
    result = handler(subscription_event(*docs), FakeContext())
    # THEN nothing counts as accepted without an ack: all 100 are spooled after one resend each
    assert (result["accepted"], result["spooled"]) == (0, 100)
    assert sorted(spooled(spool_dir)) == sorted(lines)
    assert fault_hec.ack_polls >= 2
    assert Counter(fault_hec.accepted) == Counter(dict.fromkeys(lines, 2))
    # AND replay sends each once more (HEC may have indexed them: Splunk's ack semantics)
    fault_hec.ack = "instant"
    replay_to(fault_hec.url, spool_dir)
    assert Counter(fault_hec.accepted) == Counter(dict.fromkeys(lines, 3))


def test_acks_that_arrive_after_a_few_polls_count_as_accepted(
    fault_hec: FaultHec, lambda_env: Callable[..., None], tmp_path: Path
) -> None:
    fault_hec.ack = 2  # indexed on the third poll
    lambda_env(
        HSMAUDIT_HEC_URL=fault_hec.url,
        HSMAUDIT_HEC_TOKEN=TOKEN,
        HSMAUDIT_SPOOL_DIR=str(tmp_path),
        HSMAUDIT_HEC_ACK="true",
        HSMAUDIT_HEC_ACK_TIMEOUT="5",
        HSMAUDIT_BATCH_MAX_EVENTS="40",
    )
    docs = documents(100)
    result = handler(subscription_event(*docs), FakeContext())
    assert (result["accepted"], result["spooled"]) == (100, 0)
    assert fault_hec.accepted == expected_lines(*docs)
    assert len(fault_hec.channels) == 1  # one channel GUID per container


# --------------------------------------------------------------------------- when even the spool fails


def test_spool_write_failure_fails_the_invocation(
    lambda_env: Callable[..., None], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("x")
    lambda_env(
        HSMAUDIT_HEC_URL=closed_port_url(),
        HSMAUDIT_HEC_TOKEN=TOKEN,
        HSMAUDIT_SPOOL_DIR=str(blocker / "spool"),
    )
    with pytest.raises(SpoolError, match="cannot write spool file"):
        handler(subscription_event(*documents(10)), FakeContext())
    assert "invocation failed so that AWS retries it" in caplog.text


def test_no_spool_and_hec_down_fails_the_invocation_so_aws_retries(
    lambda_env: Callable[..., None],
) -> None:
    lambda_env(HSMAUDIT_HEC_URL=closed_port_url(), HSMAUDIT_HEC_TOKEN=TOKEN)
    with pytest.raises(DeliveryIncompleteError, match="10 of 10 events"):
        handler(subscription_event(*documents(10)), FakeContext())


# --------------------------------------------------------------------------- content


def test_non_ascii_and_control_characters_arrive_byte_exact(
    fault_hec: FaultHec, lambda_env: Callable[..., None], tmp_path: Path
) -> None:
    names = [
        "jöran",
        "✓ok",
        "日本語ユーザー",
        "tab\tin",
        "nul\x00bel\x07",
        "esc\x1b[31m",
        "ls\u2028ps\u2029",
        "😀",
    ]
    messages = [record_text(n, user_name=name) for n, name in enumerate(names)]
    doc = subscription_document(messages)
    lambda_env(HSMAUDIT_HEC_URL=fault_hec.url, HSMAUDIT_HEC_TOKEN=TOKEN, HSMAUDIT_SPOOL_DIR=str(tmp_path))
    handler(subscription_event(doc), FakeContext())
    assert fault_hec.accepted == expected_lines(doc)
    envelopes = fault_hec.events()
    assert [envelope["event"] for envelope in envelopes] == messages  # lean: the text as written
    received = [received_event(envelope) for envelope in envelopes]
    assert [event.raw for event in received] == messages
    assert [event.user_name for event in received] == names


def test_envelope_carries_time_host_source_and_sourcetype(
    fault_hec: FaultHec, lambda_env: Callable[..., None], tmp_path: Path
) -> None:
    lambda_env(
        HSMAUDIT_HEC_URL=fault_hec.url,
        HSMAUDIT_HEC_TOKEN=TOKEN,
        HSMAUDIT_SPOOL_DIR=str(tmp_path),
        HSMAUDIT_HEC_INDEX="cloudhsm",
    )
    doc = subscription_document([record_text(7)], stream="hsm-abc123")
    handler(subscription_event(doc), FakeContext())
    (envelope,) = fault_hec.events()
    assert envelope["host"] == "hsm-abc123"
    assert envelope["source"] == "/aws/cloudhsm/cluster-fwdtest1"
    assert envelope["sourcetype"] == "aws:cloudhsm:audit:text"
    assert envelope["index"] == "cloudhsm"
    event = received_event(envelope)
    assert fault_hec.accepted[0].startswith(b'{"time":%d.%06d,' % divmod(event.usecs or 0, 1_000_000))
    assert envelope["fields"] == {
        "cluster_id": "cluster-fwdtest1",
        "hsm_id": "hsm-abc123",
        "event_id": event.event_id,
    }


def test_json_format_envelope_carries_the_event_object_without_cloudwatch_metadata(
    fault_hec: FaultHec, lambda_env: Callable[..., None], tmp_path: Path
) -> None:
    lambda_env(
        HSMAUDIT_HEC_URL=fault_hec.url,
        HSMAUDIT_HEC_TOKEN=TOKEN,
        HSMAUDIT_SPOOL_DIR=str(tmp_path),
        HSMAUDIT_EVENT_FORMAT="json",
    )
    doc = subscription_document([record_text(7)], stream="hsm-abc123")
    handler(subscription_event(doc), FakeContext())
    (envelope,) = fault_hec.events()
    assert (envelope["sourcetype"], envelope["host"]) == ("aws:cloudhsm:audit", "hsm-abc123")
    assert envelope["event"]["cluster_id"] == "cluster-fwdtest1" and "fields" not in envelope
    assert envelope["event"]["raw"] == record_text(7)
    assert not {"log_group", "log_stream", "cwl_id", "cwl_timestamp"} & set(envelope["event"])
    # AND the collector restores where it came from from host and source
    assert received_event(envelope).log_stream == "hsm-abc123"


# --------------------------------------------------------------------------- payloads that cannot be decoded


@pytest.mark.parametrize(
    "event",
    [
        pytest.param({"awslogs": {"data": "%%% not base64 %%%"}}, id="bad-base64"),
        pytest.param({"awslogs": {"data": "aGVsbG8gd29ybGQ="}}, id="not-gzip"),
        pytest.param(
            {"awslogs": {"data": "H4sIAAAAAAAC/8vLL0nVtVJIySxRMDRS0DVVUAIAsFmWdRQAAAA="}},
            id="gzip-but-not-json",
        ),
        pytest.param({"awslogs": {}}, id="no-data"),
        pytest.param({"Records": [{"s3": {}}]}, id="not-a-subscription-event"),
    ],
)
def test_undecodable_payload_is_logged_spooled_raw_and_not_retried(
    fault_hec: FaultHec,
    lambda_env: Callable[..., None],
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    event: dict[str, Any],
) -> None:
    spool_dir = tmp_path / "spool"
    lambda_env(HSMAUDIT_HEC_URL=fault_hec.url, HSMAUDIT_HEC_TOKEN=TOKEN, HSMAUDIT_SPOOL_DIR=str(spool_dir))
    result = handler(event, FakeContext())  # returns: AWS must not retry what cannot be fixed
    assert result["bad_payloads"] == 1
    assert fault_hec.requests == 0
    spool = LocalSpool(spool_dir)
    (batch_id,) = spool.list()
    batch = spool.get(batch_id)
    assert batch.kind == "payload"
    assert json.loads(batch.payload) == event
    assert any("not decodable" in r.getMessage() and r.levelno == logging.ERROR for r in caplog.records)
    # replay leaves a raw payload for a person instead of sending it
    client = HecClient(fault_hec.url, StaticToken(TOKEN))
    outcomes = replay_spool(spool, client)
    assert [o.status for o in outcomes] == ["payload"]
    assert list(spool.list()) == [batch_id]


def test_control_messages_are_counted_never_sent(
    fault_hec: FaultHec, lambda_env: Callable[..., None], tmp_path: Path
) -> None:
    lambda_env(HSMAUDIT_HEC_URL=fault_hec.url, HSMAUDIT_HEC_TOKEN=TOKEN, HSMAUDIT_SPOOL_DIR=str(tmp_path))
    result = handler(subscription_event(control_document()), FakeContext())
    assert (result["control_messages"], result["events_in"], fault_hec.requests) == (1, 0, 0)
    # a control document and data documents back to back: only the data is sent
    doc = subscription_document([record_text(1), record_text(2)])
    result = handler(subscription_event(control_document(), doc), FakeContext())
    assert (result["control_messages"], result["accepted"]) == (1, 2)
    assert fault_hec.accepted == expected_lines(doc)


def test_ack_on_but_hec_answers_without_ack_ids_counts_as_accepted(
    fault_hec: FaultHec, lambda_env: Callable[..., None], tmp_path: Path
) -> None:
    # a token without useACK answers a plain success: the events are queued, as without ack
    fault_hec.default = ("status", 200, {"text": "Success", "code": 0}, {})
    lambda_env(
        HSMAUDIT_HEC_URL=fault_hec.url,
        HSMAUDIT_HEC_TOKEN=TOKEN,
        HSMAUDIT_SPOOL_DIR=str(tmp_path),
        HSMAUDIT_HEC_ACK="true",
    )
    result = handler(subscription_event(*documents(20)), FakeContext())
    assert (result["accepted"], result["spooled"]) == (20, 0)
    assert fault_hec.ack_polls == 0


def test_missing_hec_url_fails_the_invocation_with_a_clear_reason(lambda_env: Callable[..., None]) -> None:
    from hsmaudit.config import ConfigError

    lambda_env(HSMAUDIT_HEC_TOKEN=TOKEN)
    with pytest.raises(ConfigError, match="set HSMAUDIT_HEC_URL"):
        handler(subscription_event(*documents(1)), FakeContext())


def test_acks_still_pending_when_the_time_budget_ends_are_spooled(
    fault_hec: FaultHec, lambda_env: Callable[..., None], tmp_path: Path
) -> None:
    fault_hec.ack = "never"
    spool_dir = tmp_path / "spool"
    lambda_env(
        HSMAUDIT_HEC_URL=fault_hec.url,
        HSMAUDIT_HEC_TOKEN=TOKEN,
        HSMAUDIT_SPOOL_DIR=str(spool_dir),
        HSMAUDIT_HEC_ACK="true",
        HSMAUDIT_HEC_ACK_TIMEOUT="30",  # longer than the invocation has left
    )
    docs = documents(10)
    started = time.monotonic()
    result = handler(subscription_event(*docs), FakeContext(remaining_ms=1500))
    assert time.monotonic() - started < 1.5
    assert (result["accepted"], result["spooled"]) == (0, 10)
    (batch_id,) = LocalSpool(spool_dir).list()
    assert "time budget ran out waiting for HEC to acknowledge" in LocalSpool(spool_dir).get(batch_id).reason
    assert fault_hec.accepted == expected_lines(*docs)  # sent once, not resent
