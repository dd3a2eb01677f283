"""`hsmaudit replay` on AWS's failure stores, through the real console script, against moto and FaultHec.

Shapes from AWS's docs:
- the Lambda on-failure destination record (Lambda developer guide, "Invocation record"):
  version, timestamp, requestContext {requestId, functionArn, condition, approximateInvokeCount},
  requestPayload (the original event), responseContext {statusCode, executedVersion,
  functionError}, responsePayload;
- Firehose's Splunk failed-delivery records (S3BackupMode FailedEventsOnly): attemptsMade,
  arrivalTimestamp, errorCode, errorMessage, attemptEndingTimestamp, rawData (base64 of what
  Firehose tried to send to HEC), EventId;
- Firehose's processing-failed records (ErrorOutputPrefix .../processing-failed/): the same with
  lambdaArn, rawData the original record (CloudWatch's gzip'd subscription document);
both gzip'd (CompressionFormat GZIP), one JSON record per line.
"""

from __future__ import annotations

import base64
import gzip
import json
import os
import subprocess
import sys
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

import boto3
import pytest

from hsmaudit.aws.firehose import transform_record
from hsmaudit.sinks.hec.envelope import SOURCETYPES, EventEncoder
from hsmaudit.sinks.spool import LocalSpool

from .fault_hec import TOKEN, FaultHec
from .payloads import record_text, subscription_document, subscription_event

HSMAUDIT = str(Path(sys.executable).with_name("hsmaudit"))
FAST = {
    "HSMAUDIT_HEC_BACKOFF_BASE": "0.01",
    "HSMAUDIT_HEC_BACKOFF_CAP": "0.02",
    "HSMAUDIT_HEC_MAX_ATTEMPTS": "2",
    "HSMAUDIT_HEC_TIMEOUT": "2",
}
BUSY = ("status", 503, {"text": "Server is busy", "code": 9}, {})


def run(*args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("HSMAUDIT_")}
    env.update({"HOME": "/nonexistent", "NO_COLOR": "1", "HSMAUDIT_HEC_TOKEN": TOKEN, **FAST})
    done = subprocess.run(
        [HSMAUDIT, "replay", *args], check=False, capture_output=True, text=True, env=env, timeout=120
    )
    assert TOKEN not in done.stdout + done.stderr
    return done


def outcomes(done: subprocess.CompletedProcess[str]) -> list[dict[str, Any]]:
    return [json.loads(line) for line in done.stdout.splitlines()]


def event_ids(hec: FaultHec) -> Counter[str]:
    return Counter(str(envelope["fields"]["event_id"]) for envelope in hec.events())


def on_failure_record(payload: Any, *, condition: str = "RetriesExhausted") -> str:
    """The on-failure destination record of one failed asynchronous invocation."""
    return json.dumps(
        {
            "version": "1.0",
            "timestamp": "2026-12-02T10:15:00.000Z",
            "requestContext": {
                "requestId": str(uuid.uuid4()),
                "functionArn": "arn:aws:lambda:us-east-1:123456789012:function:hsmaudit-forwarder:$LATEST",
                "condition": condition,
                "approximateInvokeCount": 3,
            },
            "requestPayload": payload,
            "responseContext": {
                "statusCode": 200,
                "executedVersion": "$LATEST",
                "functionError": "Unhandled",
            },
            "responsePayload": {"errorMessage": "HEC unavailable", "errorType": "DeliveryIncompleteError"},
        }
    )


def cloudwatch_payload(first: int, count: int = 5, *, stream: str = "hsm-aaaa1111") -> dict[str, Any]:
    messages = [record_text(n) for n in range(first, first + count)]
    return subscription_event(subscription_document(messages, stream=stream, first_id=first))


def make_queue(name: str) -> str:
    return str(boto3.client("sqs").create_queue(QueueName=name)["QueueUrl"])


def queue_size(url: str) -> int:
    attributes = boto3.client("sqs").get_queue_attributes(
        QueueUrl=url, AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"]
    )["Attributes"]
    return int(attributes["ApproximateNumberOfMessages"]) + int(
        attributes["ApproximateNumberOfMessagesNotVisible"]
    )


def test_queue_replay_delivers_each_event_once_deletes_and_a_second_run_sends_nothing(
    aws_env: str, fault_hec: FaultHec, tmp_path: Path
) -> None:
    # GIVEN three on-failure records (5 audit records each) and one whose payload is not CloudWatch's
    url = make_queue("hsmaudit-failed-a")
    sqs = boto3.client("sqs")
    for first in (0, 10, 20):
        sqs.send_message(QueueUrl=url, MessageBody=on_failure_record(cloudwatch_payload(first)))
    sqs.send_message(QueueUrl=url, MessageBody=on_failure_record({"awslogs": {"data": "%%%"}}))
    quarantine = tmp_path / "spool"
    # WHEN listing: everything is shown, nothing moves
    listed = run("sqs://hsmaudit-failed-a", "--dry-run", "--hec-url", fault_hec.url)
    assert listed.returncode == 0, listed.stderr
    assert sorted(o["events"] for o in outcomes(listed)) == [1, 5, 5, 5]
    assert sorted(o["status"] for o in outcomes(listed)) == ["listed"] * 3 + ["unreadable"]
    assert fault_hec.stats()["requests"] == 0 and queue_size(url) == 4
    # WHEN replaying
    done = run("sqs://hsmaudit-failed-a", "--hec-url", fault_hec.url, "--quarantine", str(quarantine))
    # THEN 15 distinct events arrived once each, lean format, the queue is empty, the bad one quarantined
    assert done.returncode == 0, done.stderr
    ids = event_ids(fault_hec)
    assert len(ids) == 15 and set(ids.values()) == {1}
    assert all(envelope["sourcetype"] == SOURCETYPES["lean"] for envelope in fault_hec.events())
    assert queue_size(url) == 0
    assert sorted(o["status"] for o in outcomes(done)) == ["delivered"] * 3 + ["quarantined"]
    (held,) = LocalSpool(quarantine).quarantined()
    assert "not valid base64" in held[1]
    assert (
        "sqs://hsmaudit-failed-a: delivered 15 events from 4 items; quarantined 1; left 0 items"
        in done.stderr
    )
    # AND a second run delivers nothing new
    again = run("sqs://hsmaudit-failed-a", "--hec-url", fault_hec.url, "--quarantine", str(quarantine))
    assert again.returncode == 0 and outcomes(again) == []
    assert event_ids(fault_hec) == ids


def test_queue_url_and_hec_failure_half_way_leaves_the_rest_in_place(
    aws_env: str, fault_hec: FaultHec
) -> None:
    url = make_queue("hsmaudit-failed-b")
    sqs = boto3.client("sqs")
    for first in (0, 10, 20, 30):
        sqs.send_message(QueueUrl=url, MessageBody=on_failure_record(cloudwatch_payload(first)))
    queue_url = "https://sqs.us-east-1.amazonaws.com/123456789012/hsmaudit-failed-b"
    # GIVEN an HEC that takes one request, then is busy
    fault_hec.script = ["ok"]
    fault_hec.default = BUSY
    done = run(queue_url, "--hec-url", fault_hec.url)
    # THEN one message is delivered and deleted, the run stops, the rest is visible again at once
    assert done.returncode == 1
    assert [o["status"] for o in outcomes(done)] == ["delivered", "kept"]
    assert len(fault_hec.accepted) == 5
    assert queue_size(url) == 3
    assert "left 1 items (5 events)" in done.stderr and "Server is busy" in done.stderr
    # WHEN HEC is back, the rest arrives and nothing twice
    fault_hec.default = "ok"
    again = run(queue_url, "--hec-url", fault_hec.url)
    assert again.returncode == 0, again.stderr
    ids = event_ids(fault_hec)
    assert len(ids) == 20 and set(ids.values()) == {1}
    assert queue_size(url) == 0


def firehose_object(records: list[dict[str, Any]]) -> bytes:
    return gzip.compress(b"".join(json.dumps(r).encode() + b"\n" for r in records))


def delivery_failed_record(first: int) -> tuple[dict[str, Any], list[bytes]]:
    """What Firehose writes when it could not deliver one transformed record to Splunk."""
    data = base64.b64encode(gzip.compress(json.dumps(subscription_document(
        [record_text(n) for n in range(first, first + 3)], first_id=first
    )).encode())).decode()  # fmt: skip
    transformed = transform_record(data, encoder=EventEncoder(), name="test")
    lines, sent = transformed.lines, transformed.payload
    record = {
        "attemptsMade": 4,
        "arrivalTimestamp": 1_764_670_500_000,
        "errorCode": "Splunk.ServerError",
        "errorMessage": "The Splunk server returned an error: Server is busy",
        "attemptEndingTimestamp": 1_764_670_800_000,
        "rawData": base64.b64encode(sent).decode(),
        "EventId": f"49640000000000000000000000000000000000000000000000{first:04d}.0",
    }
    return record, lines


def processing_failed_record(first: int) -> dict[str, Any]:
    """What Firehose writes when the transformation answered ProcessingFailed for a record."""
    document = subscription_document(
        [record_text(n) for n in range(first, first + 4)], first_id=first, stream="hsm-bbbb2222"
    )
    return {
        "attemptsMade": 4,
        "arrivalTimestamp": 1_764_670_500_000,
        "errorCode": "Lambda.FunctionError",
        "errorMessage": "The Lambda function was successfully invoked but it returned an error result.",
        "attemptEndingTimestamp": 1_764_670_800_000,
        "rawData": base64.b64encode(gzip.compress(json.dumps(document).encode())).decode(),
        "lambdaArn": "arn:aws:lambda:us-east-1:123456789012:function:hsmaudit-transform:$LATEST",
    }


def test_firehose_objects_failed_delivery_sent_as_they_were_processing_failed_parsed(
    aws_env: str, fault_hec: FaultHec, tmp_path: Path
) -> None:
    s3 = boto3.client("s3")
    s3.create_bucket(Bucket="hsmaudit-fh")
    # GIVEN two failed-delivery objects (2 records x 3 events each) and one processing-failed object
    expected: list[bytes] = []
    for hour, first in (("10", 0), ("11", 100)):
        records = []
        for offset in (0, 10):
            record, lines = delivery_failed_record(first + offset)
            records.append(record)
            expected.extend(lines)
        key = (
            f"hsmaudit/firehose-failed/2026/12/02/{hour}/hsmaudit-1-2026-12-02-{hour}-00-00-{uuid.uuid4()}.gz"
        )
        s3.put_object(Bucket="hsmaudit-fh", Key=key, Body=firehose_object(records))
    errors_key = f"hsmaudit/firehose-errors/processing-failed/2026/12/02/10/hsmaudit-1-{uuid.uuid4()}.gz"
    s3.put_object(
        Bucket="hsmaudit-fh",
        Key=errors_key,
        Body=firehose_object([processing_failed_record(200), processing_failed_record(300)]),
    )
    # WHEN listing, then replaying the failed deliveries
    listed = run("s3://hsmaudit-fh/hsmaudit/firehose-failed/", "--list", "--hec-url", fault_hec.url)
    assert [o["events"] for o in outcomes(listed)] == [6, 6]
    assert {o["kind"] for o in outcomes(listed)} == {"delivery-failed"}
    done = run("s3://hsmaudit-fh/hsmaudit/firehose-failed/", "--hec-url", fault_hec.url)
    # THEN every HEC event went as it was, byte for byte, once; the objects are gone
    assert done.returncode == 0, done.stderr
    assert Counter(fault_hec.accepted) == Counter(expected)
    assert s3.list_objects_v2(Bucket="hsmaudit-fh", Prefix="hsmaudit/firehose-failed/")["KeyCount"] == 0
    # WHEN replaying the processing failures: parsed from the original CloudWatch records
    errors = run("s3://hsmaudit-fh/hsmaudit/firehose-errors/", "--hec-url", fault_hec.url)
    assert errors.returncode == 0, errors.stderr
    assert [(o["kind"], o["accepted"]) for o in outcomes(errors)] == [("processing-failed", 8)]
    ids = event_ids(fault_hec)
    assert len(ids) == 20 and set(ids.values()) == {1}
    hosts = Counter(envelope["host"] for envelope in fault_hec.events())
    assert hosts == {"hsm-aaaa1111": 12, "hsm-bbbb2222": 8}
    # AND a second run finds nothing
    for prefix in ("firehose-failed/", "firehose-errors/"):
        again = run(f"s3://hsmaudit-fh/hsmaudit/{prefix}", "--hec-url", fault_hec.url)
        assert again.returncode == 0 and outcomes(again) == []
    assert len(fault_hec.accepted) == 20


def test_firehose_object_stays_whole_when_hec_fails_half_way(aws_env: str, fault_hec: FaultHec) -> None:
    s3 = boto3.client("s3")
    s3.create_bucket(Bucket="hsmaudit-fh2")
    keys = []
    for hour in ("10", "11", "12"):
        record, _ = delivery_failed_record(int(hour) * 10)
        key = f"hsmaudit/firehose-failed/2026/12/02/{hour}/o-{hour}.gz"
        s3.put_object(Bucket="hsmaudit-fh2", Key=key, Body=firehose_object([record]))
        keys.append(key)
    fault_hec.script = ["ok"]
    fault_hec.default = BUSY
    done = run("s3://hsmaudit-fh2/hsmaudit/firehose-failed/", "--hec-url", fault_hec.url)
    assert done.returncode == 1
    assert [o["status"] for o in outcomes(done)] == ["delivered", "kept"]
    left = [item["Key"] for item in s3.list_objects_v2(Bucket="hsmaudit-fh2")["Contents"]]
    assert sorted(left) == keys[1:]


@pytest.mark.parametrize("where", ["sqs://", "sqs://a/b"])
def test_a_malformed_queue_url_is_one_line(where: str) -> None:
    done = run(where, "--hec-url", "http://127.0.0.1:9")
    assert done.returncode != 0
    assert "not a queue" in done.stderr and "Traceback" not in done.stderr


def test_an_event_hec_refuses_goes_to_the_quarantine_and_the_rest_is_delivered(
    aws_env: str, fault_hec: FaultHec, tmp_path: Path
) -> None:
    # GIVEN a failed-delivery object whose second event HEC refuses as it is, and a bad record
    s3 = boto3.client("s3")
    s3.create_bucket(Bucket="hsmaudit-fh3")
    record, lines = delivery_failed_record(0)
    junk = {"attemptsMade": 1, "arrivalTimestamp": 1, "errorCode": "x", "errorMessage": "y", "rawData": "%%%"}
    key = "hsmaudit/firehose-failed/2026/12/02/10/mixed.gz"
    s3.put_object(Bucket="hsmaudit-fh3", Key=key, Body=firehose_object([record, junk]))
    refused = json.loads(lines[1])
    fault_hec.poison = lambda envelope: envelope == refused
    quarantine = tmp_path / "spool"
    # WHEN without a quarantine spool: nothing can keep them, so the object stays
    kept = run("s3://hsmaudit-fh3/hsmaudit/firehose-failed/", "--hec-url", fault_hec.url)
    assert kept.returncode == 1 and [o["status"] for o in outcomes(kept)] == ["kept"]
    assert "no quarantine spool" in kept.stderr and fault_hec.stats()["requests"] == 0
    # WHEN with one
    done = run(
        "s3://hsmaudit-fh3/hsmaudit/firehose-failed/",
        "--hec-url",
        fault_hec.url,
        "--quarantine",
        str(quarantine),
    )
    # THEN the good events arrived, the refused one and the bad record are in the quarantine, the object is gone
    assert done.returncode == 0, done.stderr
    (outcome,) = outcomes(done)
    assert (outcome["status"], outcome["accepted"], outcome["quarantined"]) == ("quarantined", 2, 2)
    assert Counter(fault_hec.accepted) == Counter([lines[0], lines[2]])
    reasons = sorted(reason for _, reason in LocalSpool(quarantine).quarantined())
    assert len(reasons) == 2 and any("Invalid data format" in r for r in reasons)
    assert any("rawData is not valid base64" in r for r in reasons)
    assert s3.list_objects_v2(Bucket="hsmaudit-fh3")["KeyCount"] == 0


def test_ctrl_c_stops_a_queue_replay_after_the_message_in_flight(aws_env: str, fault_hec: FaultHec) -> None:
    # GIVEN 12 on-failure messages and a HEC that takes 0.3 s per request
    import signal
    import time

    url = make_queue("hsmaudit-failed-c")
    sqs = boto3.client("sqs")
    for first in range(0, 120, 10):
        sqs.send_message(QueueUrl=url, MessageBody=on_failure_record(cloudwatch_payload(first)))
    fault_hec.latency = 0.3
    env = {k: v for k, v in os.environ.items() if not k.startswith("HSMAUDIT_")}
    env.update({"HOME": "/nonexistent", "NO_COLOR": "1", "HSMAUDIT_HEC_TOKEN": TOKEN, **FAST})
    process = subprocess.Popen(
        [HSMAUDIT, "replay", "sqs://hsmaudit-failed-c", "--hec-url", fault_hec.url],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
    )  # fmt: skip
    deadline = time.monotonic() + 30
    while fault_hec.stats()["requests"] < 2 and time.monotonic() < deadline:
        time.sleep(0.02)
    # WHEN Ctrl-C
    process.send_signal(signal.SIGINT)
    out, err = process.communicate(timeout=60)
    # THEN it stops with 130, what it delivered was deleted, the rest is in the queue, visible
    assert process.returncode == 130, err
    delivered = len(out.splitlines())
    assert 0 < delivered < 12 and len(fault_hec.accepted) == 5 * delivered
    assert queue_size(url) == 12 - delivered
    assert err.strip().splitlines()[-1] == (
        f"hsmaudit: interrupted: {5 * delivered} events of {delivered} items delivered; the rest is "
        "left in sqs://hsmaudit-failed-c: run replay again for it"
    ), err
    visible = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["ApproximateNumberOfMessages"])
    assert int(visible["Attributes"]["ApproximateNumberOfMessages"]) == 12 - delivered
