"""Splunk licence of the lean default: `_raw` (the HEC `event` value) at most 1.05x the record text.

Measured, not assumed: the lines come from the real Lambda client encoder (`build_client` from
`Settings`, as the subscription handler builds it) and the real Firehose transformation, over every
published sample record and a simulated batch of mixed log types (benchmarks/license_bench.py
prints the same figures for a whole simulated day).
"""

from __future__ import annotations

import base64
import gzip
import json
from pathlib import Path

import pytest

from hsmaudit.aws.firehose import transform_records
from hsmaudit.aws.runtime import build_client
from hsmaudit.config import Settings
from hsmaudit.records.parse import parse_message
from hsmaudit.simulate.emit import subscription_document
from hsmaudit.simulate.scenarios import run_scenarios
from hsmaudit.sinks.hec.envelope import EventEncoder, EventFormat

SAMPLES = Path(__file__).resolve().parent.parent / "data" / "samples"
LOG_GROUP = "/aws/cloudhsm/cluster-licence1"


def licence_bytes(line: bytes) -> int:
    """What Splunk meters for one HEC /event line: its `event` value as `_raw`."""
    event = json.loads(line)["event"]
    if isinstance(event, str):
        return len(event.encode("utf-8"))
    return len(json.dumps(event, ensure_ascii=False, separators=(",", ":")).encode("utf-8"))


def ratio(lines: list[bytes], texts: list[str]) -> float:
    assert len(lines) == len(texts)
    return sum(map(licence_bytes, lines)) / sum(len(t.encode("utf-8")) for t in texts)


def lambda_lines(
    texts: list[str], streams: list[str], event_format: EventFormat, log_group: str = LOG_GROUP
) -> list[bytes]:
    settings = Settings(hec_url="https://hec.invalid:8088", hec_token="t", event_format=event_format)
    client = build_client(settings)
    try:
        return [
            client.event_line(parse_message(text, log_group=log_group, log_stream=stream))
            for text, stream in zip(texts, streams, strict=True)
        ]
    finally:
        client.close()


def sample_texts() -> tuple[list[str], list[str]]:
    paths = sorted(SAMPLES.glob("aws-*.txt"))
    streams = ["cluster-licence1" if "certstore" in p.name else "hsm-licence1" for p in paths]
    return [p.read_text(encoding="utf-8") for p in paths], streams


@pytest.mark.parametrize(("event_format", "at_most"), [("lean", 1.05), ("json", None)])
def test_licence_per_sample_record_on_the_lambda_path(
    event_format: EventFormat, at_most: float | None
) -> None:
    texts, streams = sample_texts()
    assert any('"op_code"' in t for t in texts) and any(t.startswith("Time") for t in texts)
    measured = ratio(lambda_lines(texts, streams, event_format), texts)
    if at_most is not None:
        assert measured <= at_most
        # and record by record, not only on average
        for text, stream in zip(texts, streams, strict=True):
            assert ratio(lambda_lines([text], [stream], event_format), [text]) <= at_most
    else:
        assert measured > 2  # the normalised object costs far more: what the lean default saves


def test_licence_of_a_simulated_batch_on_the_firehose_and_lambda_paths() -> None:
    # GIVEN simulated cluster activity of several log types, as CloudWatch delivers it to Firehose
    records = run_scenarios(seed=5).records
    assert len({parse_message(r.message).log_type for r in records}) >= 3
    streams: dict[str, list[int]] = {}
    for number, record in enumerate(records):
        streams.setdefault(record.hsm_id, []).append(number)
    order = [n for numbers in streams.values() for n in numbers]
    firehose = {
        "records": [
            {
                "recordId": hsm,
                "data": base64.b64encode(
                    gzip.compress(json.dumps(subscription_document([records[n] for n in numbers])).encode())
                ).decode(),
            }
            for hsm, numbers in streams.items()
        ]
    }
    # WHEN the Firehose transformation and the Lambda client encode them in the default format
    answer = transform_records(firehose, encoder=EventEncoder(), spool=None)["records"]
    lines = [line for result in answer for line in base64.b64decode(result["data"]).splitlines()]
    texts = [records[n].message for n in order]
    # THEN licence bytes are at most 1.05x the record text, and both paths send the same lines
    assert ratio(lines, texts) <= 1.05
    streams_in_order = [records[n].hsm_id for n in order]
    assert lines == lambda_lines(texts, streams_in_order, "lean", records[0].log_group)
