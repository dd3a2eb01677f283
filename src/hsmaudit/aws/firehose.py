"""The Kinesis Data Firehose transformation Lambda: CloudWatch records -> HEC event JSON.

Firehose (source: a CloudWatch Logs subscription) invokes this synchronously with
`{"records": [{"recordId", "data": base64(gzip(document…))}]}`; each record comes back with the
same `recordId`, a `result` and, for `Ok`, `data` = base64 of HEC event envelopes (contracts.md
§2, one per audit record, separated by newlines) for Firehose's Splunk destination (event
endpoint). Firehose then delivers, waits for HEC acks and retries on its own.

Facts (`docs/reference/cloudhsm-records.md` §11.2): every input recordId must come back;
`Ok`/`Dropped` are successes; `ProcessingFailed` records go to Firehose's S3 `processing-failed/`
prefix with their raw data (kept, not lost); request and response are each limited to 6 MB.

Outcomes per record:
- DATA_MESSAGE(s) -> `Ok` with the envelopes (multi-document and multi-member gzip safe; also
  when Firehose already decompressed them, or extracted single messages: `record_documents`);
- only CONTROL_MESSAGEs -> `Dropped` (CloudWatch's health check, never an event);
- undecodable (bad base64, gzip, JSON, wrong shape) -> `ProcessingFailed`, logged with the reason;
- over the 6 MB response budget -> its envelopes are written to the spool (when configured) and
  the record is `Dropped` (replay sends them to HEC); with no spool it is `ProcessingFailed`, so
  Firehose keeps the original in S3. Nothing is re-ingested with PutRecordBatch: AWS's own
  blueprint did that and could loop (splunk-aws-project-trumpet issue 48).
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final, Literal

from hsmaudit.aws.document_lines import LineCounts, document_lines
from hsmaudit.aws.metrics import InvocationMetrics, emit
from hsmaudit.aws.runtime import get_runtime
from hsmaudit.records.parse import parse_message
from hsmaudit.sinks.hec.envelope import EventEncoder
from hsmaudit.sinks.spool import Spool, SpoolBatch
from hsmaudit.sources.cloudwatch import SubscriptionDocument, decode_documents, gunzip
from hsmaudit.sources.errors import SourceDecodeError
from hsmaudit.sources.gzip_members import GZIP_MAGIC

logger = logging.getLogger("hsmaudit.aws.firehose")

Result = Literal["Ok", "Dropped", "ProcessingFailed"]

RESPONSE_LIMIT: Final = 6 * 1024 * 1024
"""Lambda's synchronous response payload limit (bytes)."""
RESPONSE_BUDGET: Final = RESPONSE_LIMIT - 64 * 1024
"""What we let the response grow to: the limit minus room for JSON framing we do not count."""
_RECORD_OVERHEAD: Final = 64  # {"recordId":"","result":"ProcessingFailed","data":""}, + commas


@dataclass(frozen=True, slots=True)
class FirehoseRecordResult:
    """One output record (Powertools' `KinesisFirehoseDataTransformationRecord`, as a dataclass)."""

    record_id: str
    result: Result
    data: str | None = None

    def as_dict(self) -> dict[str, str]:
        """The JSON shape Firehose expects."""
        out = {"recordId": self.record_id, "result": self.result}
        if self.data is not None:
            out["data"] = self.data
        return out

    @property
    def size(self) -> int:
        """Approximate bytes this record adds to the response."""
        return _RECORD_OVERHEAD + len(self.record_id) + (len(self.data) if self.data is not None else 0)


def record_documents(data: Any, *, name: str) -> tuple[list[SubscriptionDocument], str | None]:
    """One Firehose record's data -> (its subscription documents, or its one extracted message).

    Three shapes, told apart by content (cloudhsm-records.md §11.1):
    - gzip (magic `1f 8b`): CloudWatch's compressed subscription document(s), the default;
    - a JSON subscription document: Firehose's own CloudWatch Logs *decompression* is on (then the
      response is only ~4x the input instead of 20-80x, see docs/forwarder.md);
    - anything else: Firehose's *message extraction* is on, the data is one log message with no
      log group or stream (so no cluster or HSM id): returned as the second item, with no documents.

    Raises `SourceDecodeError` for data that is not base64, bad gzip, a gzip'd non-document, or
    not UTF-8.
    """
    if not isinstance(data, str):
        raise SourceDecodeError(f"{name}: no base64 `data`")
    try:
        raw = base64.b64decode(data, validate=True)
    except (binascii.Error, ValueError) as error:
        raise SourceDecodeError(f"{name}: not valid base64 ({error})") from None
    if raw[:2] == GZIP_MAGIC:
        return decode_documents(gunzip(raw, name=name), name=name), None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as error:
        raise SourceDecodeError(f"{name}: not UTF-8 text ({error.reason} at byte {error.start})") from None
    try:
        documents = decode_documents(raw, name=name) if '"messageType"' in text else []
    except SourceDecodeError:
        documents = []
    return (documents, None) if documents else ([], text)


@dataclass(frozen=True, slots=True)
class TransformedRecord:
    """One Firehose record's HEC lines as Firehose gets them, and what the transformation counted."""

    payload: bytes
    """The HEC event envelopes, each on a line of its own ending in a newline (none holds one)."""
    events: int
    control: int
    parse_errors: int

    @property
    def lines(self) -> list[bytes]:
        """The envelopes one by one (for the spool and the failure-store replay)."""
        return self.payload.split(b"\n")[:-1]


def transform_record(data: Any, *, encoder: EventEncoder, name: str) -> TransformedRecord:
    """One Firehose record's data -> its HEC lines and counts.

    Each document's lines come from `document_lines` (clean records in runs through the compiled
    core, the rest parsed). Raises `SourceDecodeError` for data that cannot be decoded.
    """
    documents, extracted = record_documents(data, name=name)
    line = encoder.line
    if extracted is not None:
        event = parse_message(extracted)
        return TransformedRecord(line(event) + b"\n", 1, 0, int(event.parse_error is not None))
    counts = LineCounts()
    chunks: list[bytes] = []
    control = 0
    for document in documents:
        if document.is_control:
            control += 1
            continue
        chunks.extend(document_lines(document, encoder=encoder, counts=counts, follow_order=False))
    return TransformedRecord(b"".join(chunks), counts.events, control, counts.parse_errors)


def transform_records(
    event: Mapping[str, Any],
    *,
    encoder: EventEncoder,
    spool: Spool | None,
    budget: int = RESPONSE_BUDGET,
    metadata: Mapping[str, str] | None = None,
    metrics: InvocationMetrics | None = None,
) -> dict[str, list[dict[str, str]]]:
    """The whole transformation, without the Lambda plumbing (tests and the demo call it).

    Raises `SourceDecodeError` if the invocation itself is malformed (no `records` list, or a
    record without a `recordId`, which cannot be answered) and `SpoolError` if a spool write
    fails: both fail the invocation so Firehose retries it.
    """
    tally = metrics if metrics is not None else InvocationMetrics()
    records = event.get("records")
    if not isinstance(records, list):
        raise SourceDecodeError("Firehose event: no `records` list")
    out: list[FirehoseRecordResult] = []
    used = 16  # {"records":[]}
    for position, record in enumerate(records):
        record_id = record.get("recordId") if isinstance(record, dict) else None
        if not isinstance(record_id, str) or not record_id:
            raise SourceDecodeError(f"Firehose record {position}: no recordId (cannot be answered)")
        try:
            transformed = transform_record(record.get("data"), encoder=encoder, name=f"record {record_id}")
        except SourceDecodeError as error:
            logger.error("hsmaudit: Firehose record %s not decodable: %s", record_id, error)
            tally.add("BadPayloads", 1)
            result = FirehoseRecordResult(record_id, "ProcessingFailed")
            out.append(result)
            used += result.size
            continue
        tally.add("ControlMessages", transformed.control)
        tally.add("ParseErrors", transformed.parse_errors)
        tally.add("EventsIn", transformed.events)
        if not transformed.events:
            result = FirehoseRecordResult(record_id, "Dropped")
        else:
            result = FirehoseRecordResult(
                record_id, "Ok", base64.b64encode(transformed.payload).decode("ascii")
            )
            if used + result.size > budget:
                result = _over_budget(
                    record_id, transformed.lines, spool=spool, metadata=metadata, tally=tally
                )
            else:
                tally.add("EventsSent", transformed.events)
        out.append(result)
        used += result.size
    for result in out:
        tally.add(f"FirehoseRecords{'Failed' if result.result == 'ProcessingFailed' else result.result}", 1)
    return {"records": [result.as_dict() for result in out]}


def _over_budget(
    record_id: str,
    lines: list[bytes],
    *,
    spool: Spool | None,
    metadata: Mapping[str, str] | None,
    tally: InvocationMetrics,
) -> FirehoseRecordResult:
    """A record that would push the response past 6 MB: spool it, or let Firehose keep it."""
    reason = "Firehose transformation response would exceed 6 MB"
    if spool is None:
        logger.warning(
            "hsmaudit: record %s (%d events) over the 6 MB response budget and no spool: "
            "ProcessingFailed, Firehose keeps it under processing-failed/",
            record_id,
            len(lines),
        )
        tally.add("EventsFailed", len(lines))
        return FirehoseRecordResult(record_id, "ProcessingFailed")
    batch = SpoolBatch(
        lines=tuple(lines), reason=reason, metadata={**(metadata or {}), "record_id": record_id}
    )
    spool.put(batch)  # SpoolError propagates: the invocation fails and Firehose retries it
    logger.warning(
        "hsmaudit: record %s (%d events) over the 6 MB response budget: spooled as batch %s",
        record_id,
        len(lines),
        batch.batch_id,
    )
    tally.add("EventsSpooled", len(lines))
    return FirehoseRecordResult(record_id, "Dropped")


def handler(event: Any, context: Any) -> dict[str, list[dict[str, str]]]:
    """Lambda entry point for a Firehose data transformation."""
    runtime = get_runtime("firehose")
    settings = runtime.settings
    encoder = EventEncoder(
        event_format=settings.event_format,
        sourcetype=settings.hec_sourcetype,
        index=settings.hec_index,
        include_raw=settings.include_raw,
    )
    metadata = {
        "aws_request_id": str(getattr(context, "aws_request_id", "") or ""),
        "delivery_stream": str(event.get("deliveryStreamArn", "") if isinstance(event, dict) else ""),
    }
    metrics = InvocationMetrics()
    try:
        response = transform_records(
            event, encoder=encoder, spool=runtime.spool, metadata=metadata, metrics=metrics
        )
    finally:
        if settings.metrics:
            emit(metrics, namespace=settings.metrics_namespace, service="firehose")
    logger.info(
        json.dumps(
            {
                "message": "hsmaudit: Firehose records transformed",
                **metadata,
                **metrics.counts,
            }
        )
    )
    return response
