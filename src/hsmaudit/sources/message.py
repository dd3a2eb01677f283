"""A log message as a transport delivers it: record text plus where it came from.

Sources yield these; `records.parse.parse_message` turns each into an `HsmEvent`.
"""

from __future__ import annotations

import msgspec

from hsmaudit.records.event import HsmEvent
from hsmaudit.records.parse import parse_message


class LogMessage(msgspec.Struct, frozen=True):
    """One CloudWatch log event's message with its log group, stream, id and timestamp (ms)."""

    message: str
    log_group: str | None = None
    log_stream: str | None = None
    cwl_id: str | None = None
    timestamp: int | None = None


def parse_log_message(item: LogMessage) -> HsmEvent:
    """Parse one message with its transport context (cluster and HSM come from group and stream)."""
    return parse_message(
        item.message,
        log_group=item.log_group,
        log_stream=item.log_stream,
        cwl_id=item.cwl_id,
        cwl_timestamp=item.timestamp,
    )
