"""The real Firehose handler at Lambda's 6 MB response limit, spooling to S3 on moto, then replay:
no record lost, none sent twice."""

from __future__ import annotations

import base64
import gzip
import json
from collections import Counter
from collections.abc import Callable

import boto3

from hsmaudit.aws.firehose import RESPONSE_LIMIT, handler
from hsmaudit.aws.s3spool import S3Spool
from hsmaudit.ops.replay import replay_spool
from hsmaudit.sinks.hec.client import HecClient
from hsmaudit.sinks.hec.token import StaticToken

from .fault_hec import TOKEN, FaultHec
from .payloads import FakeContext, received_event, record_text, subscription_document


def firehose_record(record_id: str, start: int, count: int) -> dict[str, str]:
    document = subscription_document([record_text(n) for n in range(start, start + count)], first_id=start)
    data = gzip.compress(json.dumps(document).encode())
    return {"recordId": record_id, "approximateArrivalTimestamp": 1, "data": base64.b64encode(data).decode()}


def test_response_stays_under_6_mb_and_the_overflow_reaches_hec_through_the_spool(
    aws_env: str, lambda_env: Callable[..., None], fault_hec: FaultHec
) -> None:
    # GIVEN 24 records of 400 lean events: enveloped and base64'd, about 8 MB of response
    boto3.client("s3").create_bucket(Bucket="firehose-spool")
    lambda_env(HSMAUDIT_SPOOL_BUCKET="firehose-spool", HSMAUDIT_SPOOL_PREFIX="firehose/")
    records = [firehose_record(f"rec-{i}", i * 1000, 400) for i in range(24)]
    event = {"invocationId": "inv-1", "deliveryStreamArn": "arn:aws:firehose:us-east-1:1:deliverystream/x"}
    response = handler({**event, "records": records}, FakeContext())
    # THEN the response fits, every record is answered, and the overflow is Dropped into the spool
    assert len(json.dumps(response).encode()) < RESPONSE_LIMIT
    results = {r["recordId"]: r["result"] for r in response["records"]}
    assert list(results) == [r["recordId"] for r in records]
    ok = [rid for rid, result in results.items() if result == "Ok"]
    dropped = [rid for rid, result in results.items() if result == "Dropped"]
    assert ok and dropped and len(ok) + len(dropped) == 24
    delivered = [
        line
        for r in response["records"]
        if r["result"] == "Ok"
        for line in base64.b64decode(r["data"]).splitlines()
    ]
    # AND replay sends the spooled records to HEC, so every event arrives exactly once overall
    spool = S3Spool("firehose-spool", "firehose/")
    assert sorted(spool.get(b).metadata["record_id"] for b in spool.list()) == sorted(dropped)
    outcomes = replay_spool(spool, HecClient(fault_hec.url, StaticToken(TOKEN)))
    assert {o.status for o in outcomes} == {"replayed"}
    sequence = Counter(received_event(line).sequence_no for line in delivered + fault_hec.accepted)
    assert sequence == Counter(i * 1000 + n for i in range(24) for n in range(400))
