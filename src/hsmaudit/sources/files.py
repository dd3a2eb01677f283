"""Files and stdin -> log messages (or already-parsed events): every input shape `hsmaudit parse` takes.

Shapes (contracts.md §3), recognised per document, so one file may mix JSON shapes:
- raw record text: records start at a `Time:` line (anything before the first one is kept as an
  unparsed message, never dropped);
- JSON values back to back (one document, JSON lines, or concatenated), each one of:
  a subscription envelope `{"awslogs": {"data": ...}}`, a decoded subscription document
  (`messageType`), `aws logs filter-log-events`/`get-log-events` output (`events`), a
  certificate-storage record (`op_code`), a single CloudWatch log event (`message`), an
  hsmaudit event (`record_format`/`event_id`, as `hsmaudit parse` prints), or a JSON string;
- CloudTrail: a log file (`Records`, gzip'd as S3 holds it), an EventBridge "AWS API Call via
  CloudTrail" event, `aws cloudtrail lookup-events` output (`Events`): CloudHSM calls become
  `cloudtrail` events, other services' records are skipped and counted (records/cloudtrail.py).
"""

from __future__ import annotations

import itertools
import re
import sys
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any, Final

import msgspec

from hsmaudit.records.cloudtrail import cloudtrail_events, is_cloudtrail
from hsmaudit.records.event import HsmEvent, event_from_dict
from hsmaudit.sources.cloudwatch import (
    decode_subscription_event,
    document_from_object,
    iter_json_spans,
    log_messages,
)
from hsmaudit.sources.errors import SourceDecodeError
from hsmaudit.sources.gzip_members import GZIP_MAGIC
from hsmaudit.sources.message import LogMessage

STDIN: Final = "-"

_RECORD_START: Final = re.compile(r"^[ \t]*Time[ \t]*:", re.MULTILINE)

Item = LogMessage | HsmEvent


def read_paths(
    paths: Iterable[str], *, log_group: str | None = None, log_stream: str | None = None
) -> Iterator[Item]:
    """Read every path (`-` is stdin) in order and yield what it holds."""
    for path in paths:
        if path == STDIN:
            data = sys.stdin.buffer.read()
            name = "<stdin>"
        else:
            try:
                data = Path(path).read_bytes()
            except OSError as error:
                raise SourceDecodeError(f"{path}: cannot read ({error.strerror or error})") from None
            name = path
        yield from read_bytes(data, name=name, log_group=log_group, log_stream=log_stream)


def read_bytes(
    data: bytes, *, name: str, log_group: str | None = None, log_stream: str | None = None
) -> Iterator[Item]:
    """Classify a whole input and yield its messages or events."""
    if data[:2] == GZIP_MAGIC:
        from hsmaudit.sources.cloudwatch import gunzip

        data = gunzip(data, name=name)
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as error:
        raise SourceDecodeError(f"{name}: not UTF-8 text ({error.reason} at byte {error.start})") from None
    text = text.removeprefix("\ufeff")
    head = text.lstrip()
    if not head:
        return
    if head[0] in '{["':
        for index, (obj, source) in enumerate(iter_json_spans(text, name=name)):
            where = f"{name} (document {index + 1})"
            if isinstance(obj, dict) and "op_code" in obj:
                yield LogMessage(source, log_group, log_stream)  # keep the record's own text as raw
            else:
                yield from _from_json(obj, name=where, log_group=log_group, log_stream=log_stream)
    else:
        for record in split_records(text):
            yield LogMessage(record, log_group, log_stream)


def split_records(text: str) -> Iterator[str]:
    """Split raw text into records, each starting at a `Time:` line; blank edges are trimmed."""
    text = text.replace("\r\n", "\n")
    starts = [match.start() for match in _RECORD_START.finditer(text)]
    if not starts or starts[0] != 0:
        starts.insert(0, 0)
    starts.append(len(text))
    for begin, end in itertools.pairwise(starts):
        record = text[begin:end].strip("\n").rstrip()
        if record.strip():
            yield record


def _from_json(obj: Any, *, name: str, log_group: str | None, log_stream: str | None) -> Iterator[Item]:
    if isinstance(obj, list):
        for item in obj:
            yield from _from_json(item, name=name, log_group=log_group, log_stream=log_stream)
        return
    if isinstance(obj, str):
        yield LogMessage(obj, log_group, log_stream)
        return
    if not isinstance(obj, dict):
        raise SourceDecodeError(f"{name}: a JSON {type(obj).__name__} is not an audit record or envelope")
    if is_cloudtrail(obj):
        # CloudTrail log file (`Records`), EventBridge API-call event, lookup-events (`Events`).
        yield from cloudtrail_events(obj)
    elif "awslogs" in obj:
        for document in decode_subscription_event(obj, name=name):
            yield from log_messages(document)
    elif "messageType" in obj:
        yield from log_messages(document_from_object(obj, name=name))
    elif isinstance(obj.get("events"), list):
        # `aws logs filter-log-events` (has logStreamName per event) / `get-log-events` output.
        for entry in obj["events"]:
            yield _cloudwatch_event(entry, name=name, log_group=log_group, log_stream=log_stream)
    elif "op_code" in obj:
        yield LogMessage(msgspec.json.encode(obj).decode(), log_group, log_stream)
    elif "record_format" in obj or "event_id" in obj:
        try:
            yield event_from_dict(obj)
        except msgspec.ValidationError as error:
            raise SourceDecodeError(f"{name}: not a valid hsmaudit event ({error})") from None
    elif "message" in obj:
        yield _cloudwatch_event(obj, name=name, log_group=log_group, log_stream=log_stream)
    else:
        keys = ", ".join(sorted(obj)[:5])
        raise SourceDecodeError(f"{name}: unrecognised JSON object (keys: {keys})")


def _cloudwatch_event(entry: Any, *, name: str, log_group: str | None, log_stream: str | None) -> LogMessage:
    if not isinstance(entry, dict) or not isinstance(entry.get("message"), str):
        raise SourceDecodeError(f"{name}: a log event without a message string")
    stream = entry.get("logStreamName") or log_stream
    group = entry.get("logGroupName") or log_group
    event_id = entry.get("eventId") or entry.get("id")
    timestamp = entry.get("timestamp")
    return LogMessage(
        entry["message"],
        group if isinstance(group, str) else None,
        stream if isinstance(stream, str) else None,
        event_id if isinstance(event_id, str) else None,
        timestamp if isinstance(timestamp, int) and not isinstance(timestamp, bool) else None,
    )
