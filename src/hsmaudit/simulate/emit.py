"""Simulated records in the shapes the rest of hsmaudit reads.

- `subscription_events`: CloudWatch Logs subscription payloads, `{"awslogs": {"data": …}}` with
  `data` = base64(gzip(JSON document)), one document per stream and batch, as CloudWatch invokes
  a Lambda (reference cloudhsm-records.md §10);
- `control_message_event`: the CONTROL_MESSAGE health check CloudWatch sends now and then (§10.3);
- `raw_text`: record text back to back, as a file of records;
- `parsed_events`: the `HsmEvent`s the parser makes of the records (what the store must hold).
"""

from __future__ import annotations

import base64
import gzip
import itertools
import json
from collections.abc import Iterable, Iterator
from typing import Any, Final

from hsmaudit.records.event import HsmEvent
from hsmaudit.records.parse import parse_message
from hsmaudit.simulate.cluster import SimRecord

DEFAULT_OWNER: Final = "123456789012"
SUBSCRIPTION_FILTER: Final = "hsmaudit"


def subscription_document(records: list[SimRecord], *, owner: str = DEFAULT_OWNER) -> dict[str, Any]:
    """One DATA_MESSAGE document for records of one stream."""
    first = records[0]
    return {
        "messageType": "DATA_MESSAGE",
        "owner": owner,
        "logGroup": first.log_group,
        "logStream": first.hsm_id,
        "subscriptionFilters": [SUBSCRIPTION_FILTER],
        "logEvents": [
            {"id": record.cwl_id, "timestamp": record.cwl_timestamp, "message": record.message}
            for record in records
        ],
    }


def encode_subscription_event(document: dict[str, Any]) -> dict[str, Any]:
    """Wrap a document as CloudWatch invokes a Lambda: gzip (level 6, as CloudWatch), base64."""
    data = gzip.compress(
        json.dumps(document, separators=(",", ":")).encode("utf-8"), compresslevel=6, mtime=0
    )
    return {"awslogs": {"data": base64.b64encode(data).decode("ascii")}}


def subscription_events(
    records: Iterable[SimRecord], *, batch_size: int = 50, owner: str = DEFAULT_OWNER
) -> Iterator[dict[str, Any]]:
    """Subscription payloads in delivery order: consecutive records of one stream share a payload."""
    for _, group in itertools.groupby(records, key=lambda record: (record.cluster_id, record.hsm_id)):
        batch = list(group)
        for start in range(0, len(batch), batch_size):
            yield encode_subscription_event(
                subscription_document(batch[start : start + batch_size], owner=owner)
            )


def control_message_event(log_group: str = "", log_stream: str = "") -> dict[str, Any]:
    """A CONTROL_MESSAGE payload (§10.3 shape): never an event, must be skipped."""
    return encode_subscription_event(
        {
            "messageType": "CONTROL_MESSAGE",
            "owner": "CloudwatchLogs",
            "logGroup": log_group,
            "logStream": log_stream,
            "subscriptionFilters": [],
            "logEvents": [
                {
                    "id": "",
                    "timestamp": 0,
                    "message": "CWL CONTROL MESSAGE: Checking health of destination Lambda.",
                }
            ],
        }
    )


def raw_text(records: Iterable[SimRecord]) -> str:
    """Record text back to back, one blank line between records (what `hsmaudit parse` reads)."""
    return "\n\n".join(record.message for record in records) + "\n"


def parsed_event(record: SimRecord) -> HsmEvent:
    """The event the parser makes of one record with its CloudWatch context."""
    return parse_message(
        record.message,
        log_group=record.log_group,
        log_stream=record.hsm_id,
        cwl_id=record.cwl_id,
        cwl_timestamp=record.cwl_timestamp,
    )


def parsed_events(records: Iterable[SimRecord]) -> Iterator[HsmEvent]:
    """Every record parsed, in order."""
    return (parsed_event(record) for record in records)
