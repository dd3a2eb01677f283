"""Hypothesis through the real handlers and the real collector: hostile input never raises, never
loses a record.

Strategies generate what an attacker with write access to a log group, a Firehose stream or the
collector can send: certificate JSON nested thousands deep, numbers of thousands of digits, lone
surrogates, invalid UTF-8, runs of whitespace, thousands of gzip members, compression bombs.

- Subscription handler -> our loopback HEC (`FaultHec`) and a local spool: no exception; every
  log event is accepted by HEC or spooled (`accepted + spooled == events_in`), each as its own
  line; a payload that cannot be decoded is spooled raw (`bad_payloads`), never dropped.
- Firehose handler: every recordId comes back with Ok / Dropped / ProcessingFailed; an Ok record
  holds one envelope per log event, and the envelopes are what a HEC takes: posted to the real
  collector on 127.0.0.1 they are answered 200.
- Collector: bodies of good envelopes with one hostile envelope among them are answered 400 at the
  hostile one's number (never a 500) and exactly the good ones before it are stored.

Bounds on time and memory are benchmark figures (`benchmarks/hostile_bench.py`), not asserts.
"""

from __future__ import annotations

import base64
import gzip
import json
from collections.abc import Callable, Iterator
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import urllib3
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hsmaudit.aws.firehose import handler as firehose_handler
from hsmaudit.aws.subscription import handler as subscription_handler
from hsmaudit.server.hec import MAX_JSON_DEPTH

from ..support.collector import TOKEN as COLLECTOR_TOKEN
from ..support.collector import Collector, start_collector
from .fault_hec import TOKEN, FaultHec
from .payloads import FakeContext, control_document, record_text, subscription_document

HOSTILE = settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[
        HealthCheck.function_scoped_fixture,
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
    ],
)

# ---------------------------------------------------------------------------------- strategies

WHITESPACE = st.sampled_from([" ", "\t", "\r", "\n", "\u00a0", "\u3000"])


@st.composite
def hostile_messages(draw: st.DrawFn) -> str:
    """One log event's message: a real record, or one bent the ways the issue found."""
    sequence = draw(st.integers(0, 10_000))
    base = record_text(sequence)
    kind = draw(
        st.sampled_from(
            ["record", "whitespace", "huge-hex", "huge-usecs", "deep-cert", "surrogates", "text", "cert-huge"]
        )
    )
    if kind == "record":
        return base
    if kind == "whitespace":
        run = draw(WHITESPACE) * draw(st.integers(1_000, 300_000))
        cut = draw(st.integers(0, len(base)))
        return base[:cut] + run + base[cut:]
    if kind == "huge-hex":
        return base.replace(
            "Sequence No : 0x", "Sequence No : 0x" + "f" * draw(st.integers(4_000, 20_000)), 1
        )
    if kind == "huge-usecs":
        return base.replace("usecs:", "usecs:" + "9" * draw(st.integers(4_000, 20_000)), 1)
    if kind == "deep-cert":
        depth = draw(st.integers(500, 5_000))
        return '{"op_code":"CreateObject","object_handle":' + "[" * depth + "]" * depth + "}"
    if kind == "cert-huge":
        return '{"op_code":"CreateObject","timestamp":' + "9" * draw(st.integers(4_301, 20_000)) + "}"
    if kind == "surrogates":
        lone = draw(
            st.text(st.characters(min_codepoint=0xD800, max_codepoint=0xDFFF), min_size=1, max_size=5)
        )
        cut = draw(st.integers(0, len(base)))
        return base[:cut] + lone + base[cut:]
    # min_size=1: CloudWatch Logs refuses an empty message (PutLogEvents), and the lean format's
    # `event` would then be "" (HEC code 13, blank event).
    return draw(st.text(min_size=1, max_size=2_000))


@cache
def bomb() -> bytes:
    """A gzip member that inflates to 48 MiB (past the handlers' 32 MiB cap); about 48 KB."""
    return gzip.compress(b"\0" * (48 * 1024 * 1024), compresslevel=9, mtime=0)


GARBAGE = -2
"""Bytes that are not a subscription document (not gzip, or not UTF-8 JSON inside): the
subscription handler spools them raw; Firehose may hand over records already decompressed, so its
handler keeps such bytes as flagged events (Ok) or fails the record (kept by Firehose)."""


@st.composite
def payloads(draw: st.DrawFn) -> tuple[bytes, int]:
    """Gzipped subscription bytes, and how many log events they carry (-1: a bomb, refused by
    both handlers; GARBAGE: not a subscription document)."""
    documents = []
    events = 0
    for index in range(draw(st.integers(1, 3))):
        if draw(st.integers(0, 9)) == 0:
            documents.append(control_document())
            continue
        messages = draw(st.lists(hostile_messages(), min_size=1, max_size=6))
        documents.append(subscription_document(messages, stream=f"hsm-{index:08x}", first_id=index * 100))
        events += len(messages)
    body = b"".join(json.dumps(d).encode() for d in documents)  # ensure_ascii: surrogates as \ud8xx
    envelope = draw(st.sampled_from(["one", "members", "empty-members", "invalid-utf8", "bomb", "garbage"]))
    if envelope == "one":
        return gzip.compress(body, mtime=0), events
    if envelope == "members":
        cuts = sorted(draw(st.lists(st.integers(0, len(body)), max_size=20)))
        pieces = [body[a:b] for a, b in zip([0, *cuts], [*cuts, len(body)], strict=True)]
        return b"".join(gzip.compress(p, mtime=0) for p in pieces), events
    if envelope == "empty-members":
        empty = gzip.compress(b"", mtime=0)
        return empty * draw(st.integers(1_000, 50_000)) + gzip.compress(body, mtime=0), events
    if envelope == "invalid-utf8":
        at = draw(st.integers(1, len(body) - 1))
        bad = draw(st.sampled_from([b"\xff", b"\xc3(", b"\xed\xa0\x80"]))
        return gzip.compress(body[:at] + bad + body[at:]), GARBAGE
    if envelope == "bomb":
        return gzip.compress(body, mtime=0) + bomb(), -1
    return draw(st.binary(min_size=1, max_size=200)), GARBAGE


# ----------------------------------------------------------------------- subscription handler


@pytest.fixture
def forwarder(fault_hec: FaultHec, lambda_env: Callable[..., None], tmp_path: Path) -> Iterator[FaultHec]:
    lambda_env(
        HSMAUDIT_HEC_URL=fault_hec.url,
        HSMAUDIT_HEC_TOKEN=TOKEN,
        HSMAUDIT_SPOOL_DIR=str(tmp_path / "spool"),
        HSMAUDIT_BATCH_MAX_EVENTS="4",
    )
    yield fault_hec


@HOSTILE
@given(payload=payloads())
def test_the_subscription_handler_never_raises_and_accounts_for_every_record(
    forwarder: FaultHec, payload: tuple[bytes, int]
) -> None:
    data, events = payload
    before = len(forwarder.accepted)
    event = {"awslogs": {"data": base64.b64encode(data).decode()}}
    # WHEN the real handler gets the payload (an exception here fails the test)
    result = subscription_handler(event, FakeContext())
    delivered = len(forwarder.accepted) - before
    # THEN every log event is accepted by HEC or spooled; an undecodable payload is spooled raw
    if result["bad_payloads"]:
        assert result["events_in"] == 0 and len(result["spooled_batches"]) == 1
        assert events < 0, "a decodable payload was refused"
        return
    assert events >= 0, "an undecodable payload was not spooled raw"
    assert result["events_in"] == events
    assert result["accepted"] + result["spooled"] == result["events_in"]
    assert delivered == result["accepted"]
    assert result["parse_errors"] <= result["events_in"]


def test_a_bomb_payload_is_spooled_raw_not_inflated() -> None:
    # A cheap, explicit example of the strategy's bomb branch (hypothesis may not draw it).
    from hsmaudit.sources.cloudwatch import MAX_DECOMPRESSED_BYTES

    assert len(bomb()) < 100_000 and MAX_DECOMPRESSED_BYTES < 48 * 1024 * 1024


# --------------------------------------------------------------------------- Firehose handler


@pytest.fixture(scope="module")
def collector(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Collector]:
    running = start_collector(tmp_path_factory.mktemp("collector"))
    yield running
    running.server.stop()
    running.store.close()


HTTP = urllib3.PoolManager(retries=False, timeout=60)


def post(collector: Collector, body: bytes) -> tuple[int, dict[str, Any]]:
    response = HTTP.request(
        "POST",
        collector.url + "/services/collector/event",
        body=body,
        headers={"Authorization": f"Splunk {COLLECTOR_TOKEN}"},
    )
    return response.status, json.loads(response.data)


@HOSTILE
@given(records=st.lists(payloads(), min_size=1, max_size=4))
def test_the_firehose_handler_answers_every_record_and_its_envelopes_are_taken_by_a_hec(
    lambda_env: Callable[..., None], collector: Collector, records: list[tuple[bytes, int]]
) -> None:
    lambda_env()  # no spool: an over-budget record would be ProcessingFailed (kept by Firehose)
    event = {
        "invocationId": "inv",
        "deliveryStreamArn": "arn:aws:firehose:us-east-1:123456789012:deliverystream/x",
        "records": [
            {"recordId": f"r{i}", "approximateArrivalTimestamp": 1, "data": base64.b64encode(data).decode()}
            for i, (data, _) in enumerate(records)
        ],
    }
    response = firehose_handler(event, FakeContext())
    results = response["records"]
    # THEN every record is answered, in order, with one of Firehose's three results
    assert [r["recordId"] for r in results] == [f"r{i}" for i in range(len(records))]
    for (_data, events), result in zip(records, results, strict=True):
        assert result["result"] in ("Ok", "Dropped", "ProcessingFailed")
        if events == -1:
            assert result["result"] in ("ProcessingFailed", "Dropped"), "a bomb was inflated"
        if result["result"] != "Ok":
            continue
        lines = base64.b64decode(result["data"]).splitlines()
        if events >= 0:
            assert len(lines) == events
        # AND what Firehose would send to HEC is valid HEC, hostile content included
        status, answer = post(collector, b"\n".join(lines))
        assert (status, answer["code"]) == (200, 0), answer


# ---------------------------------------------------------------------------------- collector


def good_envelope(message: str, n: int) -> bytes:
    """A string event HEC takes: lone surrogates (no UTF-8 form, refused as code 6) written out."""
    text = message.encode("utf-8", "backslashreplace").decode("utf-8") + f" #{n}"
    return json.dumps({"event": text, "source": "/aws/cloudhsm/cluster-hyp", "host": "hsm-hyp"}).encode()


@st.composite
def hostile_envelopes(draw: st.DrawFn) -> bytes:
    """One envelope the collector must refuse as bad data (code 6)."""
    kind = draw(
        st.sampled_from(["deep", "deep-fields", "huge-int", "huge-time", "1e400", "utf8", "surrogate", "top"])
    )
    if kind == "deep":
        depth = draw(st.integers(MAX_JSON_DEPTH, 5_000))
        return b'{"event":' + b"[" * depth + b"]" * depth + b"}"
    if kind == "deep-fields":
        depth = draw(st.integers(MAX_JSON_DEPTH, 5_000))
        return b'{"event":"x","fields":{"a":' + b"[" * depth + b"]" * depth + b"}}"
    if kind == "huge-int":
        return b'{"event":{"usecs":' + b"7" * draw(st.integers(4_301, 30_000)) + b"}}"
    if kind == "huge-time":
        return b'{"event":"x","time":' + b"7" * draw(st.integers(4_301, 30_000)) + b"}"
    if kind == "1e400":
        return (
            b'{"event":"x","time":' + draw(st.sampled_from([b"1e400", b"-1e999", b"NaN", b"Infinity"])) + b"}"
        )
    if kind == "utf8":
        bad = draw(st.sampled_from([b"\xff", b"\xc0\xaf", b"\xed\xa0\x80", b"\xf4\x90\x80\x80"]))
        return b'{"event":"Time: ' + bad + b'"}'
    if kind == "surrogate":
        return b'{"event":"a\\u' + draw(st.sampled_from([b"d800", b"dbff", b"dc00", b"dfff"])) + b'b"}'
    return draw(st.sampled_from([b"[1,2]", b'"text"', b"17", b"null", b"true"]))


@HOSTILE
@given(
    before=st.lists(hostile_messages(), max_size=5),
    bad=hostile_envelopes(),
    after=st.integers(0, 3),
    layout=st.sampled_from([b"\n", b"", b" \r\n\t"]),
    compress=st.booleans(),
)
def test_the_collector_stores_the_events_before_a_hostile_one_and_refuses_it_as_bad_data(
    collector: Collector, before: list[str], bad: bytes, after: int, layout: bytes, compress: bool
) -> None:
    start = collector.count()
    serial = start * 100
    good = [good_envelope(message, serial + i) for i, message in enumerate(before)]
    tail = [good_envelope("after", serial + 50 + i) for i in range(after)]
    body = layout.join([*good, bad, *tail])
    headers = {"Authorization": f"Splunk {COLLECTOR_TOKEN}"}
    if compress:
        body = gzip.compress(body, mtime=0)
        headers["Content-Encoding"] = "gzip"
    response = HTTP.request("POST", collector.url + "/services/collector/event", body=body, headers=headers)
    answer = json.loads(response.data)
    assert response.status == 400, answer
    assert (answer["code"], answer["invalid-event-number"]) == (6, len(good)), answer
    assert collector.count() == start + len(good)
