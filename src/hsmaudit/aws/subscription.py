"""The CloudWatch Logs subscription Lambda: payload -> parsed events -> HEC (or the spool).

The whole flow on one screen (`forward_subscription`), as the Datadog Forwarder's
`lambda_function.py` shows its own:

    1. decode   `{"awslogs":{"data":…}}` -> subscription documents (multi-document safe)
    2. filter   CONTROL_MESSAGE documents are CloudWatch's health checks: counted, never sent
    3. parse    each log message -> its HEC line (`document_lines`: never raises; bad records
                carry `parse_error`)
    4. deliver  `HecClient.send_lines`: batches, gzip, retries; what HEC refuses goes to the spool
    5. account  accepted + spooled == events in, or the invocation fails so AWS retries it

A payload that cannot be decoded at all (bad base64, gzip, JSON, missing fields) is logged with
the reason and spooled raw, and the invocation succeeds: retrying cannot fix it, and the spool
keeps it for a person. The invocation fails only when something could be neither sent nor
spooled (a spool write failed, or no spool is configured).

Entry point: `hsmaudit.aws.subscription.handler`. Importing this module does no work and pulls in
no boto3, Powertools, Typer, Rich, Starlette or Sigma (a test checks `sys.modules`).
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from hsmaudit.aws.document_lines import LineCounts, document_lines
from hsmaudit.aws.errors import DeliveryIncompleteError
from hsmaudit.aws.metrics import InvocationMetrics, emit
from hsmaudit.aws.runtime import deadline_from, get_runtime
from hsmaudit.sinks.errors import SinkError
from hsmaudit.sinks.hec.client import HecClient
from hsmaudit.sinks.hec.report import DeliveryReport
from hsmaudit.sinks.spool import Spool, SpoolBatch
from hsmaudit.sources.cloudwatch import SubscriptionDocument, decode_subscription_event
from hsmaudit.sources.errors import SourceDecodeError

logger = logging.getLogger("hsmaudit.aws.subscription")


@dataclass(frozen=True, slots=True)
class ForwardResult:
    """What one payload became (counts and ids only); returned by the handler as a dict."""

    events_in: int = 0
    accepted: int = 0
    spooled: int = 0
    parse_errors: int = 0
    control_messages: int = 0
    bad_payloads: int = 0
    spooled_batches: tuple[str, ...] = ()
    report: DeliveryReport | None = field(default=None, repr=False, compare=False)

    def as_dict(self) -> dict[str, Any]:
        """The handler's return value and log line."""
        out: dict[str, Any] = {
            "events_in": self.events_in,
            "accepted": self.accepted,
            "spooled": self.spooled,
            "parse_errors": self.parse_errors,
            "control_messages": self.control_messages,
            "bad_payloads": self.bad_payloads,
            "spooled_batches": list(self.spooled_batches),
        }
        if self.report is not None:
            out.update(requests=self.report.requests, retries=self.report.retries)
        return out


def _document_metadata(documents: list[SubscriptionDocument], base: Mapping[str, str]) -> dict[str, str]:
    metadata = dict(base)
    data = [d for d in documents if not d.is_control]
    if data:
        metadata["log_group"] = data[0].log_group
        metadata["log_stream"] = ",".join(sorted({d.log_stream for d in data}))[:1024]
        metadata["owner"] = data[0].owner
    return metadata


def spool_bad_payload(event: Any, reason: str, *, spool: Spool | None, metadata: Mapping[str, str]) -> str:
    """Keep an undecodable payload as received; raises when there is nowhere to keep it."""
    try:
        payload = json.dumps(event, ensure_ascii=False, separators=(",", ":")).encode(
            "utf-8", "surrogatepass"
        )
    except (TypeError, ValueError):
        payload = repr(event).encode("utf-8", "backslashreplace")
    if spool is None:
        raise DeliveryIncompleteError(
            f"undecodable payload ({reason}) and no spool configured: failing so AWS keeps it"
        )
    batch = SpoolBatch(kind="payload", payload=payload, reason=reason, metadata=metadata)
    spool.put(batch)
    logger.error(
        "hsmaudit: payload not decodable (%s): spooled raw as batch %s (%d bytes)",
        reason,
        batch.batch_id,
        len(payload),
    )
    return batch.batch_id


def forward_subscription(
    event: Any,
    *,
    client: HecClient,
    spool: Spool | None,
    deadline: float,
    metadata: Mapping[str, str] | None = None,
    metrics: InvocationMetrics | None = None,
) -> ForwardResult:
    """Forward one CloudWatch Logs subscription payload; the handler without the Lambda plumbing.

    The demo and tests call this with their own client, spool and deadline (`time.monotonic()`
    based). Raises `DeliveryIncompleteError` when events could be neither sent nor spooled, and
    `SpoolError` when a spool write fails: both must fail the invocation.
    """
    tally = metrics if metrics is not None else InvocationMetrics()
    base = dict(metadata or {})
    # 1. decode
    try:
        documents = decode_subscription_event(event)
    except SourceDecodeError as error:
        batch_id = spool_bad_payload(event, str(error), spool=spool, metadata=base)
        tally.add("BadPayloads", 1)
        return ForwardResult(bad_payloads=1, spooled_batches=(batch_id,))
    # 2. filter
    control = sum(1 for document in documents if document.is_control)
    tally.add("ControlMessages", control)
    counts = LineCounts()

    # 3. parse (lazily: lines stream into batches; `document_lines` says how, and what SequenceGaps is)
    def lines() -> Iterator[bytes]:
        encoder = client.encoder
        for document in documents:
            if document.is_control:
                continue
            for chunk in document_lines(document, encoder=encoder, counts=counts, follow_order=True):
                yield from chunk[:-1].split(b"\n")

    # 4. deliver
    started = time.perf_counter()
    report = client.send_lines(
        lines(), deadline=deadline, spool=spool, metadata=_document_metadata(documents, base)
    )
    # 5. account
    tally.add("EventsIn", counts.events)
    tally.add("ParseErrors", counts.parse_errors)
    tally.add("SequenceGaps", counts.sequence_gaps)
    tally.add("EventsSent", report.accepted)
    tally.add("EventsSpooled", report.spooled_events)
    tally.add("EventsFailed", report.failed_events)
    tally.add("Retries", report.retries)
    tally.add("HecRequests", report.requests)
    for latency in report.latencies_ms:
        tally.observe("HecLatency", round(latency, 3))
    if report.requests:
        tally.observe("BatchBytes", report.wire_bytes / report.requests)
    result = ForwardResult(
        events_in=counts.events,
        accepted=report.accepted,
        spooled=report.spooled_events,
        parse_errors=counts.parse_errors,
        control_messages=control,
        spooled_batches=tuple(b.batch_id for b in report.spooled),
        report=report,
    )
    if report.failed_events:
        raise DeliveryIncompleteError(
            f"{report.failed_events} of {report.lines_in} events were neither accepted by HEC nor "
            f"spooled ({report.failed[0].reason}); configure HSMAUDIT_SPOOL_BUCKET. Failing so AWS retries."
        )
    # An invariant, checked at run time because silent loss is the one unacceptable bug.
    if not report.complete or report.lines_in != counts.events:
        raise DeliveryIncompleteError(f"delivery bookkeeping does not add up: {report.summary()}")
    logger.debug("hsmaudit: forwarded in %.1f ms", (time.perf_counter() - started) * 1000)
    return result


def handler(event: Any, context: Any) -> dict[str, Any]:
    """Lambda entry point for a CloudWatch Logs subscription (asynchronous invocation)."""
    runtime = get_runtime("subscription")
    settings = runtime.settings
    assert runtime.client is not None
    metadata = {
        "aws_request_id": str(getattr(context, "aws_request_id", "") or ""),
        "function_name": str(getattr(context, "function_name", "") or ""),
    }
    metrics = InvocationMetrics()
    try:
        result = forward_subscription(
            event,
            client=runtime.client,
            spool=runtime.spool,
            deadline=deadline_from(context, settings.time_reserve),
            metadata=metadata,
            metrics=metrics,
        )
    except (SinkError, DeliveryIncompleteError) as error:
        # The third branch of the guarantee: nothing could keep these events, so AWS must retry.
        logger.error(
            json.dumps(
                {
                    "message": "hsmaudit: invocation failed so that AWS retries it",
                    **metadata,
                    "reason": str(error),
                }
            )
        )
        raise
    finally:
        if settings.metrics:
            emit(metrics, namespace=settings.metrics_namespace, service="subscription")
    summary = result.as_dict()
    logger.info(json.dumps({"message": "hsmaudit: payload forwarded", **metadata, **summary}))
    return summary
