"""The Firehose transformation: every recordId answered, Ok/Dropped/ProcessingFailed, and the
6 MB response limit respected without losing a record."""

from __future__ import annotations

import base64
import gzip
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hsmaudit.aws.firehose import RESPONSE_BUDGET, handler, transform_records
from hsmaudit.aws.metrics import InvocationMetrics
from hsmaudit.aws.runtime import clear_runtime
from hsmaudit.records.event import HsmEvent
from hsmaudit.records.parse import parse_message
from hsmaudit.sinks.hec.envelope import EventEncoder
from hsmaudit.sinks.spool import LocalSpool
from hsmaudit.sources.errors import SourceDecodeError

GROUP = "/aws/cloudhsm/cluster-fh1"
RECORD = (
    "Time: 01/16/18 01:48:49.824999, usecs:1516067329824999\nSequence No : 0x{seq:x}\nReboot counter : 0x107\n"
    "Command Type(hex) : CN_MGMT_CMD (0x0)\nOpcode : CN_LOGIN (0xd)\nSession Handle : 0x7014006\n"
    "Response : 0:HSM Return: SUCCESS\nLog type : MGMT_USER_DETAILS_LOG (2)\nUser Name : jöran\n"
    "User Type : CN_CRYPTO_OFFICER (2)"
)


def document(count: int, *, start: int = 0, control: bool = False) -> bytes:
    doc: dict[str, Any] = {
        "messageType": "CONTROL_MESSAGE" if control else "DATA_MESSAGE",
        "owner": "123456789012",
        "logGroup": "" if control else GROUP,
        "logStream": "" if control else "hsm-fh",
        "subscriptionFilters": [],
        "logEvents": [
            {"id": str(start + i), "timestamp": 1516067329824, "message": RECORD.format(seq=start + i)}
            for i in range(count)
        ],
    }
    return json.dumps(doc, ensure_ascii=False).encode()


def record(record_id: str, *parts: bytes, members: bool = False) -> dict[str, str]:
    """A Firehose record: documents back to back, as one gzip member or one member each."""
    data = b"".join(gzip.compress(p) for p in parts) if members else gzip.compress(b"".join(parts))
    return {"recordId": record_id, "approximateArrivalTimestamp": 1, "data": base64.b64encode(data).decode()}


def decoded(result: dict[str, str]) -> list[dict[str, Any]]:
    text = base64.b64decode(result["data"]).decode("utf-8")
    return [json.loads(line) for line in text.splitlines()]


def record_of(envelope: dict[str, Any]) -> HsmEvent:
    """What Splunk (or our collector) reads from a lean envelope: the record text, parsed."""
    assert envelope["sourcetype"] == "aws:cloudhsm:audit:text" and isinstance(envelope["event"], str)
    return parse_message(envelope["event"], log_group=envelope.get("source"), log_stream=envelope.get("host"))


def sequence_numbers(envelopes: list[dict[str, Any]]) -> list[int | None]:
    return [record_of(e).sequence_no for e in envelopes]


def test_data_control_and_bad_records_get_their_results() -> None:
    event = {
        "records": [
            record("ok-1", document(3)),
            record("control", document(1, control=True)),
            record(
                "multi", document(2, start=10), document(1, control=True), document(2, start=20), members=True
            ),
            {"recordId": "bad-base64", "data": "%%%"},
            {"recordId": "bad-gzip", "data": base64.b64encode(b"\x1f\x8bnot really gzip").decode()},
            record("bad-json", b'{"messageType": '),
            {"recordId": "not-utf8", "data": base64.b64encode(b"\xff\xfe").decode()},
            {"recordId": "no-data"},
        ]
    }
    out = transform_records(event, encoder=EventEncoder(), spool=None)["records"]
    assert [r["recordId"] for r in out] == [r["recordId"] for r in event["records"]]
    assert [r["result"] for r in out] == ["Ok", "Dropped", "Ok"] + ["ProcessingFailed"] * 5
    first = decoded(out[0])
    assert sequence_numbers(first) == [0, 1, 2]
    assert first[0]["event"] == RECORD.format(seq=0)  # lean: the record text as written
    assert record_of(first[0]).user_name == "jöran"
    assert (first[0]["host"], first[0]["source"], first[0]["time"]) == ("hsm-fh", GROUP, 1516067329.824999)
    assert first[0]["fields"] == {
        "cluster_id": "cluster-fh1",
        "hsm_id": "hsm-fh",
        "event_id": record_of(first[0]).event_id,
    }
    assert sequence_numbers(decoded(out[2])) == [10, 11, 20, 21]
    assert "data" not in out[1] and "data" not in out[3]


def test_a_record_without_record_id_fails_the_invocation() -> None:
    with pytest.raises(SourceDecodeError, match="no recordId"):
        transform_records({"records": [{"data": "x"}]}, encoder=EventEncoder(), spool=None)
    with pytest.raises(SourceDecodeError, match="no `records`"):
        transform_records({}, encoder=EventEncoder(), spool=None)


def test_records_past_the_response_budget_are_spooled_and_dropped(tmp_path: Path) -> None:
    # GIVEN 6 records of 50 events and a budget that fits about two of them
    records = [record(f"r{i}", document(50, start=i * 100)) for i in range(6)]
    one = transform_records({"records": records[:1]}, encoder=EventEncoder(), spool=None)
    budget = int(len(json.dumps(one)) * 2.5)
    spool = LocalSpool(tmp_path)
    metrics = InvocationMetrics()
    out = transform_records(
        {"records": records}, encoder=EventEncoder(), spool=spool, budget=budget, metrics=metrics
    )["records"]
    # THEN the response stays under the budget, and every event is in it or in the spool, once
    assert len(json.dumps({"records": out})) <= budget
    assert [r["result"] for r in out] == ["Ok", "Ok", "Dropped", "Dropped", "Dropped", "Dropped"]
    sent = [n for r in out if r["result"] == "Ok" for n in sequence_numbers(decoded(r))]
    kept = sequence_numbers([json.loads(line) for b in spool.list() for line in spool.get(b).lines])
    assert sorted(sent + kept) == sorted(i * 100 + n for i in range(6) for n in range(50))
    assert metrics.counts["EventsSpooled"] == 200 and metrics.counts["EventsSent"] == 100
    assert {spool.get(b).metadata["record_id"] for b in spool.list()} == {"r2", "r3", "r4", "r5"}


def test_without_a_spool_records_past_the_budget_are_processing_failed_so_firehose_keeps_them() -> None:
    records = [record(f"r{i}", document(50, start=i * 100)) for i in range(3)]
    one = transform_records({"records": records[:1]}, encoder=EventEncoder(), spool=None)
    out = transform_records(
        {"records": records}, encoder=EventEncoder(), spool=None, budget=int(len(json.dumps(one)) * 1.5)
    )["records"]
    assert [r["result"] for r in out] == ["Ok", "ProcessingFailed", "ProcessingFailed"]


def test_the_default_budget_is_under_lambdas_6_mb_response_limit() -> None:
    assert RESPONSE_BUDGET < 6 * 1024 * 1024


@pytest.fixture
def firehose_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[Path]:
    import os

    for key in list(os.environ):
        if key.startswith("HSMAUDIT_"):
            monkeypatch.delenv(key)
    monkeypatch.delenv("HOME", raising=False)
    monkeypatch.setenv("HSMAUDIT_SPOOL_DIR", str(tmp_path))
    monkeypatch.setenv("HSMAUDIT_HEC_SOURCETYPE", "aws:cloudhsm:audit:firehose")
    monkeypatch.setenv("HSMAUDIT_INCLUDE_RAW", "false")
    clear_runtime()
    yield tmp_path
    clear_runtime()


def test_handler_needs_no_hec_url_and_applies_settings(
    firehose_env: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = handler({"records": [record("a", document(2))], "deliveryStreamArn": "arn:x"}, None)["records"]
    (envelope, _) = decoded(out[0])
    assert envelope["sourcetype"] == "aws:cloudhsm:audit:firehose"
    assert envelope["event"] == RECORD.format(seq=0)  # lean: HSMAUDIT_INCLUDE_RAW applies to json only
    emf = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith('{"_aws"')]
    assert emf and emf[-1]["FirehoseRecordsOk"] in (1, [1.0], 1.0)


@given(
    datas=st.lists(
        st.one_of(
            st.binary(max_size=64).map(lambda b: base64.b64encode(b).decode()),
            st.binary(max_size=64).map(lambda b: base64.b64encode(gzip.compress(b)).decode()),
            st.text(max_size=32),
            st.none(),
            st.integers(),
        ),
        max_size=8,
    )
)
def test_any_record_data_gets_an_answer_and_never_crashes_the_batch(datas: list[Any]) -> None:
    records = [{"recordId": f"id-{i}", "data": data} for i, data in enumerate(datas)]
    records.append(record("good", document(1)))
    out = transform_records({"records": records}, encoder=EventEncoder(), spool=None)["records"]
    assert [r["recordId"] for r in out] == [r["recordId"] for r in records]
    assert all(r["result"] in ("Ok", "Dropped", "ProcessingFailed") for r in out)
    assert out[-1]["result"] == "Ok"


def test_documents_firehose_already_decompressed_are_read_too() -> None:
    # Firehose's CloudWatch Logs decompression hands over the JSON document itself
    plain = {
        "recordId": "plain",
        "data": base64.b64encode(document(2, start=5) + document(1, start=9)).decode(),
    }
    (result,) = transform_records({"records": [plain]}, encoder=EventEncoder(), spool=None)["records"]
    envelopes = decoded(result)
    assert sequence_numbers(envelopes) == [5, 6, 9]
    assert {e["host"] for e in envelopes} == {"hsm-fh"}


def test_extracted_messages_become_events_without_cluster_or_hsm() -> None:
    # Firehose's message extraction hands over one log message per record, nothing else
    text = RECORD.format(seq=3)
    extracted = [
        {"recordId": "text", "data": base64.b64encode(text.encode()).decode()},
        {"recordId": "junk", "data": base64.b64encode(b"not an audit record").decode()},
    ]
    out = transform_records({"records": extracted}, encoder=EventEncoder(), spool=None)["records"]
    assert [r["result"] for r in out] == ["Ok", "Ok"]
    (envelope,) = decoded(out[0])
    assert envelope["event"] == text and record_of(envelope).sequence_no == 3
    assert "host" not in envelope and "source" not in envelope
    assert set(envelope["fields"]) == {"event_id"}  # no cluster or HSM id to index
    (junk,) = decoded(out[1])
    assert junk["fields"]["parse_error"] and junk["event"] == "not an audit record"


def test_handler_sends_the_json_format_when_configured(
    firehose_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HSMAUDIT_EVENT_FORMAT", "json")
    monkeypatch.delenv("HSMAUDIT_HEC_SOURCETYPE")
    clear_runtime()
    out = handler({"records": [record("a", document(2))], "deliveryStreamArn": "arn:x"}, None)["records"]
    (envelope, _) = decoded(out[0])
    assert envelope["sourcetype"] == "aws:cloudhsm:audit" and "fields" not in envelope
    assert envelope["event"]["sequence_no"] == 0 and envelope["event"]["cluster_id"] == "cluster-fh1"
    assert "raw" not in envelope["event"]  # HSMAUDIT_INCLUDE_RAW=false
    assert not {"log_group", "log_stream", "cwl_id", "cwl_timestamp"} & set(envelope["event"])
