"""HEC delivery: events -> Splunk HTTP Event Collector, with nothing lost silently.

One concept per module, in the order a record meets them:

- `envelope`: an `HsmEvent` -> one HEC line (`to_hec_event`, `EventEncoder`, the formats).
- `client`: `HecClient` batches, gzips and POSTs lines, retries, polls acks, spools what HEC refuses.
- `policy`: `ConnectionPolicy`, `RetryPolicy`, `AckPolicy`, `BatchPolicy`, the client's settings as values.
- `answers`: an HEC answer (status + JSON body) -> the ackId or the matching `HecError`.
- `report`: `DeliveryReport`, what became of every line of one send.
- `token`: where the token comes from (`TokenProvider`, `StaticToken`).
- `url`: a HEC URL -> origin, event path, ack path.
- `proxy`: the urllib3 `ProxyManager` for an HEC proxy URL.

This package re-exports the names the handlers, the CLI and the tests import from
`hsmaudit.sinks.hec` (the Lambda's `EventEncoder` and `HecClient` among them). Every name comes
from a module the client imports anyway, so the re-exports cost the Lambda no extra import.
"""

from __future__ import annotations

from hsmaudit.sinks.hec.answers import INDEX_CODE, RETRYABLE_CODES, TOKEN_CODES, classify_answer
from hsmaudit.sinks.hec.client import HELD_BYTES_LIMIT, MAX_EVENT_BYTES, HecClient
from hsmaudit.sinks.hec.envelope import (
    CLOUDTRAIL_SOURCETYPE,
    DEFAULT_EVENT_FORMAT,
    DEFAULT_SOURCETYPE,
    EVENT_FORMATS,
    INDEXED_FIELDS,
    JSON_SOURCETYPE,
    ORIGIN_FIELDS,
    SOURCETYPES,
    TEXT_SOURCETYPE,
    EventEncoder,
    EventFormat,
    event_host,
    hec_time,
    to_hec_event,
)
from hsmaudit.sinks.hec.policy import AckPolicy, BatchPolicy, ConnectionPolicy, RetryPolicy
from hsmaudit.sinks.hec.report import DeliveryReport, FailedBatch, SpooledBatch
from hsmaudit.sinks.hec.token import StaticToken, TokenProvider
from hsmaudit.sinks.hec.url import ACK_PATH, EVENT_PATH, event_url

__all__ = [
    "ACK_PATH",
    "CLOUDTRAIL_SOURCETYPE",
    "DEFAULT_EVENT_FORMAT",
    "DEFAULT_SOURCETYPE",
    "EVENT_FORMATS",
    "EVENT_PATH",
    "HELD_BYTES_LIMIT",
    "INDEXED_FIELDS",
    "INDEX_CODE",
    "JSON_SOURCETYPE",
    "MAX_EVENT_BYTES",
    "ORIGIN_FIELDS",
    "RETRYABLE_CODES",
    "SOURCETYPES",
    "TEXT_SOURCETYPE",
    "TOKEN_CODES",
    "AckPolicy",
    "BatchPolicy",
    "ConnectionPolicy",
    "DeliveryReport",
    "EventEncoder",
    "EventFormat",
    "FailedBatch",
    "HecClient",
    "RetryPolicy",
    "SpooledBatch",
    "StaticToken",
    "TokenProvider",
    "classify_answer",
    "event_host",
    "event_url",
    "hec_time",
    "to_hec_event",
]
