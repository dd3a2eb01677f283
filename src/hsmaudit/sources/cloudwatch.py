"""CloudWatch Logs subscription payloads -> log messages.

Facts (`docs/reference/cloudhsm-records.md` §§10-11):
- Lambda gets `{"awslogs": {"data": base64(gzip(JSON))}}`; Firehose gets the same gzip'd JSON
  base64-encoded in `records[].data`. Decode as UTF-8 (Splunk's Node blueprint decodes ASCII and
  mangles non-ASCII user names).
- gzip may hold several members and the JSON documents may sit back to back with no delimiter
  (Firehose concatenation), so decode every document in the buffer, not just the first.
- `CONTROL_MESSAGE` is CloudWatch checking the destination is reachable: never an event.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Iterator
from typing import Any, Final

import msgspec

from hsmaudit.sources.errors import SourceDecodeError
from hsmaudit.sources.gzip_members import InflateError, InflateLimitError, inflate_members
from hsmaudit.sources.message import LogMessage

DATA_MESSAGE: Final = "DATA_MESSAGE"
CONTROL_MESSAGE: Final = "CONTROL_MESSAGE"


class CloudWatchLogEvent(msgspec.Struct, frozen=True):
    """One entry of `logEvents`: the id is a 56-digit string, keep it a string (§10.2)."""

    id: str
    timestamp: int
    message: str


class SubscriptionDocument(msgspec.Struct, frozen=True, rename="camel"):
    """The decoded subscription payload; unknown extra keys are ignored."""

    message_type: str
    log_group: str = ""
    log_stream: str = ""
    owner: str = ""
    subscription_filters: list[str] = msgspec.field(default_factory=list)
    log_events: list[CloudWatchLogEvent] = msgspec.field(default_factory=list)

    @property
    def is_control(self) -> bool:
        """True for CloudWatch's health check, which carries no audit record."""
        return self.message_type == CONTROL_MESSAGE


_DOCUMENT_DECODER: Final = msgspec.json.Decoder(SubscriptionDocument)


def gunzip_base64(data: str | bytes, *, name: str = "payload") -> bytes:
    """base64 -> gzip (every member) -> bytes; errors name the input and what failed."""
    try:
        compressed = base64.b64decode(data, validate=True)
    except (binascii.Error, ValueError) as error:
        raise SourceDecodeError(f"{name}: not valid base64 ({error})") from None
    return gunzip(compressed, name=name)


MAX_DECOMPRESSED_BYTES: Final = 32 * 1024 * 1024
"""Cap on what one payload may decompress to. CloudWatch Logs batches at most 1 MiB of log data
per PutLogEvents call and a Lambda request is at most 6 MB, so a real subscription document is a
few MiB at most even with JSON escaping; 32 MiB keeps a decoded payload far below half of the
function's 512 MB while a compression bomb is refused after reading only that much."""
_GZIP_CHUNK: Final = 64 * 1024


def gunzip(compressed: bytes, *, name: str = "payload", limit: int = MAX_DECOMPRESSED_BYTES) -> bytes:
    """Decompress gzip data, all members (Firehose concatenates them), within `limit` bytes.

    Streams in 64 KiB input chunks, so memory is bounded by `limit` and many members cost linear
    time (no copy of the rest of the buffer per member).
    """
    out = bytearray()
    try:
        for chunk in inflate_members(compressed, limit=limit, in_step=_GZIP_CHUNK):
            out += chunk
    except InflateLimitError:
        raise SourceDecodeError(
            f"{name}: decompresses to more than {limit} bytes (refused as a compression bomb)"
        ) from None
    except InflateError as error:
        raise SourceDecodeError(f"{name}: not valid gzip data ({error.reason})") from None
    return bytes(out)


def decode_documents(payload: bytes, *, name: str = "payload") -> list[SubscriptionDocument]:
    """Decode one or more subscription documents from gunzipped bytes."""
    try:
        return [_DOCUMENT_DECODER.decode(payload)]
    except msgspec.ValidationError as error:
        raise SourceDecodeError(f"{name}: not a CloudWatch Logs subscription document ({error})") from None
    except (msgspec.DecodeError, RecursionError):
        pass  # several documents back to back, or not JSON at all: take the slow path
    return [document_from_object(obj, name=name) for obj in iter_json_documents(payload, name=name)]


def document_from_object(obj: Any, *, name: str = "payload") -> SubscriptionDocument:
    """Validate an already-decoded JSON object as a subscription document."""
    try:
        return msgspec.convert(obj, SubscriptionDocument)
    except (msgspec.ValidationError, RecursionError, ValueError, TypeError) as error:
        raise SourceDecodeError(f"{name}: not a CloudWatch Logs subscription document ({error})") from None


def iter_json_documents(payload: bytes | str, *, name: str = "payload") -> Iterator[Any]:
    """Yield every JSON value in a buffer of values back to back (whitespace between allowed)."""
    for obj, _text in iter_json_spans(payload, name=name):
        yield obj


def iter_json_spans(payload: bytes | str, *, name: str = "payload") -> Iterator[tuple[Any, str]]:
    """Like `iter_json_documents`, with each value's exact source text (for `raw`)."""
    try:
        text = payload.decode("utf-8") if isinstance(payload, bytes) else payload
    except UnicodeDecodeError as error:
        raise SourceDecodeError(f"{name}: not UTF-8 text ({error.reason} at byte {error.start})") from None
    decoder = json.JSONDecoder()
    position, end = 0, len(text)
    while True:
        while position < end and text[position] in " \t\r\n":
            position += 1
        if position >= end:
            return
        start = position
        try:
            obj, position = decoder.raw_decode(text, position)
        except json.JSONDecodeError as error:
            raise SourceDecodeError(
                f"{name}: not valid JSON ({error.msg} at line {error.lineno} column {error.colno})"
            ) from None
        except RecursionError:
            raise SourceDecodeError(f"{name}: JSON nested too deeply") from None
        except ValueError as error:  # e.g. an integer past int()'s digit limit
            raise SourceDecodeError(f"{name}: not valid JSON ({error})") from None
        yield obj, text[start:position]


def decode_subscription_event(event: Any, *, name: str = "event") -> list[SubscriptionDocument]:
    """Decode a Lambda subscription event `{"awslogs": {"data": ...}}`."""
    try:
        data = event["awslogs"]["data"]
    except (KeyError, TypeError):
        raise SourceDecodeError(
            f"{name}: not a CloudWatch Logs subscription event (no awslogs.data)"
        ) from None
    if not isinstance(data, str | bytes):
        raise SourceDecodeError(f"{name}: awslogs.data is not a string")
    return decode_documents(gunzip_base64(data, name=name), name=name)


def log_messages(document: SubscriptionDocument) -> Iterator[LogMessage]:
    """The audit messages of one document; a CONTROL_MESSAGE yields nothing."""
    if document.is_control:
        return
    group, stream = document.log_group or None, document.log_stream or None
    for entry in document.log_events:
        yield LogMessage(entry.message, group, stream, entry.id or None, entry.timestamp)
