"""The HEC wire protocol as the local collector speaks it: replies, envelopes, channels and acks.

Facts from `docs/reference/splunk.md` §1:
- replies are `{"text": …, "code": N}` with the HTTP status of the §1.8 table (named once, with
  its texts, in `hsmaudit.sinks.hec.answers`, which the HEC client classifies with); per-event
  rejections add `invalid-event-number` (0-based); events before it are accepted (§1.9);
- a body is envelopes back to back (`{"event":…}{"event":…}`), whitespace allowed, no array (§1.4);
- `event` is required (code 12) and must not be blank (code 13); `fields` must be flat (code 15);
- a channel is a GUID (code 11 otherwise); ack ids count per channel, and an id reported `true` is
  forgotten (§1.7);
- gzip request bodies are accepted and size limits apply to the decompressed bytes (§1.5).

Hostile bodies (docs/forwarder.md "Hostile input"): decoding is total. Deterministic bad input
(nesting deeper than `MAX_JSON_DEPTH`, a number msgspec cannot hold such as `time: 1e400` or an
integer of 5,000 digits, invalid UTF-8 or a lone surrogate in a string, a value that is not an
object) is HEC code 6 at its `invalid-event-number`, never a 500 a sender would retry forever; the
events before it are stored. Gzip is counted, then inflated, in 8 KiB input steps within the decompressed-size
limit (a bomb is refused after `limit` bytes, many members cost linear time), and the fast path
decodes at most `_FAST_CHUNK` bytes per msgspec call, so no single C call holds the GIL for long.

What goes into the store: an envelope whose `event` is an hsmaudit event object (the `json`
format) is stored as is; one whose `event` is a string (the `lean` format, or raw CloudHSM text
from another sender, e.g. Splunk's Node logger) is parsed, with `source` as the log group and
`host` as the log stream, and the lean format's indexed `fields` (`cluster_id`, `hsm_id`,
`event_id`) win over what those give. Nothing is dropped: an object that is not an hsmaudit event
is kept as an unparsed event with its JSON in `raw`.
"""

from __future__ import annotations

import logging
import re
import threading
import time
import uuid
from collections import OrderedDict
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Final

import msgspec

from hsmaudit.errors import HsmauditError
from hsmaudit.records.cloudtrail import CloudTrailStats, cloudtrail_events, is_cloudtrail
from hsmaudit.records.context import cluster_id_from_log_group, hsm_id_from_log_stream
from hsmaudit.records.event import SEVERITY_RANK, HsmEvent
from hsmaudit.records.identity import fields_content, text_event_id, unparsed_event_id
from hsmaudit.records.parse import parse_message
from hsmaudit.sinks.hec.answers import (
    EVENT_FIELD_BLANK,
    EVENT_FIELD_REQUIRED,
    INDEXED_FIELDS_ERROR,
    INVALID_DATA_CHANNEL,
    INVALID_DATA_FORMAT,
    NO_DATA,
    REPLIES,
)
from hsmaudit.sources.gzip_members import InflateError, InflateLimitError, inflate_members

LOG: Final = logging.getLogger("hsmaudit.server")

DEFAULT_MAX_CONTENT_LENGTH: Final = 32 * 1024 * 1024
"""Largest decompressed request body, bytes. Splunk's default is 800 MB (limits.conf); a local
collector holding a request in memory wants less: Splunk's own loggers send 1-2 MiB per request and
hsmaudit's HEC client at most 5 MiB, and a decoded request costs about three times its size."""

MAX_JSON_DEPTH: Final = 64
"""Deepest nesting the scanner accepts in one envelope (an hsmaudit envelope is 3 deep). Deeper is
code 6; msgspec's own limit (the interpreter's recursion limit) is caught the same way."""

_INFLATE_STEP: Final = 256 * 1024

Buffer = bytes | bytearray
"""A request body: inflated gzip stays the bytearray it was built in (no second copy)."""

_GZIP_STEP: Final = 8 * 1024
"""zlib copies a member's unread input into `unused_data` at its end: small steps keep that copy
small when a body holds thousands of tiny members (4 MiB of empty members: 0.30 s at 8 KiB,
0.40 s at 64 KiB; the cost left is zlib's per-member set-up, linear in the member count)."""
_FAST_CHUNK: Final = 1024 * 1024

DEFAULT_MAX_EVENT_SIZE: Final = 5 * 1024 * 1024
"""Largest single envelope, bytes: Splunk's `maxEventSize` default (inputs.conf)."""

_GUID: Final = re.compile(r"^[0-9A-Fa-f]{8}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{12}$")
_WHITESPACE: Final = b" \t\r\n"


def reply_body(code: int, **extra: Any) -> dict[str, Any]:
    """The JSON body Splunk sends for `code` (plus e.g. `invalid-event-number` or `ackId`)."""
    text, _ = REPLIES[code]
    return {"text": text, "code": code, **extra}


def reply_status(code: int) -> int:
    """HTTP status Splunk pairs with `code`."""
    return REPLIES[code][1]


class HecRequestError(HsmauditError):
    """A request HEC rejects: `code` from the §1.8 table, `invalid_event_number` for per-event ones."""

    def __init__(
        self, code: int, invalid_event_number: int | None = None, *, text: str | None = None
    ) -> None:
        super().__init__(text or REPLIES[code][0])
        self.code = code
        self.invalid_event_number = invalid_event_number
        self.text = text

    def body(self) -> dict[str, Any]:
        """The JSON reply body."""
        body = reply_body(self.code)
        if self.text is not None:
            body["text"] = self.text
        if self.invalid_event_number is not None:
            body["invalid-event-number"] = self.invalid_event_number
        return body


class PayloadTooLargeError(HsmauditError):
    """The (decompressed) body exceeds the limit: HTTP 413, so the sender splits the batch."""

    def __init__(self, size: int, limit: int) -> None:
        super().__init__(f"Content-Length of {size} too large (maximum is {limit})")
        self.size = size
        self.limit = limit

    def body(self) -> dict[str, Any]:
        """HEC-shaped body for the 413 (Splunk's exact body for this case is unverified, reference §6)."""
        return {"text": str(self), "code": INVALID_DATA_FORMAT}


# --- body decoding --------------------------------------------------------------------------


def decode_body(body: bytes, content_encoding: str | None, *, limit: int) -> Buffer:
    """Undo `Content-Encoding: gzip` (the only encoding HEC takes, §1.5) within `limit` bytes."""
    encoding = (content_encoding or "").strip().lower()
    if encoding in ("", "identity"):
        if len(body) > limit:
            raise PayloadTooLargeError(len(body), limit)
        return body
    if encoding not in ("gzip", "x-gzip"):
        raise HecRequestError(
            INVALID_DATA_FORMAT, text=f"Content-Encoding {encoding[:20]!r} is not supported; use gzip or none"
        )
    return inflate_gzip(body, limit=limit)


def inflate_gzip(body: bytes, *, limit: int) -> bytearray:
    """Every gzip member of `body` (concatenated members are one gzip stream), within `limit`.

    Two passes: the first only counts what the members inflate to (its output is dropped chunk by
    chunk), so a bomb is refused after `limit + 1` bytes without holding any of them; the second
    inflates into a buffer of exactly that size, so a good body costs its size once (no growing
    buffer that reallocates). Inflating is cheap next to parsing; the memory is what a hostile
    sender aims at.
    """
    total = sum(len(chunk) for chunk in _inflated_chunks(body, limit))
    out = bytearray(total)
    position = 0
    for chunk in _inflated_chunks(body, limit):
        out[position : position + len(chunk)] = chunk
        position += len(chunk)
    return out  # no copy: a bytearray serves every reader of the body (split, find, msgspec)


def _inflated_chunks(body: bytes, limit: int) -> Iterator[bytes]:
    """The inflated bytes of every member (`sources.gzip_members`), at most `_INFLATE_STEP` per
    chunk, in `_GZIP_STEP` input slices; past `limit` or on broken gzip, HEC's answers."""
    try:
        yield from inflate_members(
            body, limit=limit, in_step=_GZIP_STEP, out_step=_INFLATE_STEP, skip_nul_padding=True
        )
    except InflateLimitError as error:
        raise PayloadTooLargeError(error.produced, limit) from None
    except InflateError as error:
        text = (
            "Invalid data format: gzip body is truncated"
            if error.reason == "truncated"
            else "Invalid data format: body is not valid gzip"
        )
        raise HecRequestError(INVALID_DATA_FORMAT, text=text) from None


class Envelope(msgspec.Struct, frozen=True):
    """One HEC event envelope (§1.3); `event` stays raw JSON until we know what it holds."""

    event: msgspec.Raw = msgspec.field(default_factory=msgspec.Raw)
    """Empty when the key is absent (code 12); the JSON text otherwise (`null` -> code 13)."""
    time: float | str | None = None
    host: str | None = None
    source: str | None = None
    sourcetype: str | None = None
    index: str | None = None
    fields: dict[str, Any] | None = None


_ENVELOPE_DECODER: Final = msgspec.json.Decoder(Envelope)
_ENVELOPES_DECODER: Final = msgspec.json.Decoder(list[Envelope])
_EVENT_DECODER: Final = msgspec.json.Decoder(HsmEvent)
_ANY_DECODER: Final = msgspec.json.Decoder()


def decode_envelopes(body: Buffer, *, max_event_size: int) -> tuple[list[Envelope], HecRequestError | None]:
    """Decode a body of envelopes back to back: the good ones in order, then the first error.

    HEC processes events in order and stops at the first bad one (§1.9), so the envelopes before
    the error are still stored. Never raises. Fast path: senders usually put one envelope per
    line, and a JSON string cannot hold a raw newline, so up to `_FAST_CHUNK` bytes of lines
    joined into one array decode in one call. A chunk that does not decode that way (values
    spanning lines or sharing one, or a bad value) is read from its first byte by the scanner,
    which finds each value's end without recursion and decodes it alone.
    """
    envelopes: list[Envelope] = []
    start, end = 0, len(body)
    while start < end:
        cut = body.find(b"\n", min(start + _FAST_CHUNK, end))
        cut = end if cut < 0 else cut + 1
        lines = [line for line in body[start:cut].split(b"\n") if line.strip(_WHITESPACE)]
        decoded = _decode_lines(lines)
        if decoded is None:
            return _decode_scanned(body, start, envelopes, max_event_size=max_event_size)
        for envelope, line in zip(decoded, lines, strict=True):
            try:
                envelopes.append(_checked(envelope, line, len(envelopes), max_event_size=max_event_size))
            except HecRequestError as error:
                return envelopes, error
        start = cut
    if not envelopes:
        return [], HecRequestError(NO_DATA)
    return envelopes, None


def _decode_lines(lines: list[Buffer]) -> list[Envelope] | None:
    """The envelopes of `lines`, one per line, or None when they are not exactly that."""
    if not lines:
        return []
    try:
        decoded = _ENVELOPES_DECODER.decode(b"[" + b",".join(lines) + b"]")
    except (msgspec.DecodeError, RecursionError):
        return None
    return decoded if len(decoded) == len(lines) else None


def _decode_scanned(
    body: Buffer, start: int, envelopes: list[Envelope], *, max_event_size: int
) -> tuple[list[Envelope], HecRequestError | None]:
    for text in iter_json_values(body, start):
        index = len(envelopes)
        if text is None:
            return envelopes, HecRequestError(INVALID_DATA_FORMAT, index)
        try:
            envelopes.append(decode_envelope(text, index, max_event_size=max_event_size))
        except HecRequestError as error:
            return envelopes, error
    if not envelopes:
        return [], HecRequestError(NO_DATA)
    return envelopes, None


# A JSON string (escapes included; possessive, so an unterminated one fails in one linear pass) or
# one bracket. Everything else (numbers, literals, commas, colons) is skipped by finditer.
_STRUCTURE: Final = re.compile(rb'"(?:[^"\\]++|\\.)*+"|["\[\]{}]', re.DOTALL)


def iter_json_values(body: Buffer, start: int = 0) -> Iterator[Buffer | None]:
    """The text of each object or array back to back in `body` from `start`; None where that breaks.

    Only finds where each value ends (bracket depth outside strings), in time linear in the body
    and without recursion; msgspec validates each value afterwards. None (and the end) for a top
    level value that is not an object or array, an unterminated string or value, or nesting
    deeper than `MAX_JSON_DEPTH`.
    """
    position, end = start, len(body)
    while True:
        while position < end and body[position] in _WHITESPACE:
            position += 1
        if position >= end:
            return
        if body[position] not in b"{[":
            yield None
            return
        depth = 0
        for match in _STRUCTURE.finditer(body, position):
            first = body[match.start()]
            if first == 0x22:  # '"'
                if match.end() - match.start() == 1:  # a quote that no closing quote ends
                    break
                continue
            if first in b"{[":
                depth += 1
                if depth > MAX_JSON_DEPTH:
                    break
                continue
            depth -= 1
            if depth == 0:
                yield body[position : match.end()]
                position = match.end()
                break
        else:
            yield None  # ran out inside the value
            return
        if depth != 0:
            yield None
            return


def nested_deeper_than(text: Buffer, limit: int) -> bool:
    """True when brackets outside strings nest deeper than `limit` in `text` (one JSON value).

    Two C-speed counts first: a text with no more brackets than `limit` cannot be that deep, so an
    ordinary envelope costs no scan.
    """
    if text.count(b"{") + text.count(b"[") <= limit:
        return False
    depth = 0
    for match in _STRUCTURE.finditer(text):
        first = text[match.start()]
        if first == 0x22:
            continue
        if first in b"{[":
            depth += 1
            if depth > limit:
                return True
        else:
            depth -= 1
    return False


def decode_envelope(text: Buffer, index: int, *, max_event_size: int) -> Envelope:
    """Decode one envelope; raise the HEC error Splunk gives for it (with its event number)."""
    if len(text) > max_event_size:
        raise HecRequestError(INVALID_DATA_FORMAT, index)
    try:
        envelope = _ENVELOPE_DECODER.decode(text)
    except msgspec.ValidationError:
        # Valid JSON of the wrong shape: an array, a bare value, or wrongly typed metadata; or
        # JSON msgspec cannot hold (a number out of range): that last one is code 6 as well.
        try:
            value = _ANY_DECODER.decode(text)
        except (msgspec.DecodeError, RecursionError):
            raise HecRequestError(INVALID_DATA_FORMAT, index) from None
        if not isinstance(value, dict):
            raise HecRequestError(INVALID_DATA_FORMAT, index) from None
        if "event" not in value:
            raise HecRequestError(EVENT_FIELD_REQUIRED, index) from None
        if value.get("fields") is not None and not isinstance(value.get("fields"), dict):
            raise HecRequestError(INDEXED_FIELDS_ERROR, index) from None
        raise HecRequestError(INVALID_DATA_FORMAT, index) from None
    except (msgspec.DecodeError, RecursionError):
        raise HecRequestError(INVALID_DATA_FORMAT, index) from None
    return _checked(envelope, text, index, max_event_size=max_event_size)


def _checked(envelope: Envelope, text: Buffer, index: int, *, max_event_size: int) -> Envelope:
    if len(text) > max_event_size or nested_deeper_than(text, MAX_JSON_DEPTH):
        # The depth check makes the fast path agree with the scanner's limit.
        raise HecRequestError(INVALID_DATA_FORMAT, index)
    raw = bytes(envelope.event).strip(_WHITESPACE)
    if not raw:
        raise HecRequestError(EVENT_FIELD_REQUIRED, index)
    if raw in (b"null", b'""', b"{}", b"[]"):
        raise HecRequestError(EVENT_FIELD_BLANK, index)
    if envelope.fields is not None and not _flat_fields(envelope.fields):
        raise HecRequestError(INDEXED_FIELDS_ERROR, index)
    return envelope


def _flat_fields(fields: dict[str, Any]) -> bool:
    """§1.3: values are strings or numbers, or flat arrays of them (OTel receiver's test cases)."""
    for value in fields.values():
        if isinstance(value, dict):
            return False
        if isinstance(value, list) and any(isinstance(item, dict | list) for item in value):
            return False
    return True


def envelope_event(envelope: Envelope) -> HsmEvent:
    """The `HsmEvent` an envelope carries: stored as is, parsed from text, or kept as unparsed."""
    raw = bytes(envelope.event).strip(_WHITESPACE)
    source = envelope.source
    host = envelope.host
    if raw[:1] == b'"':
        text = _ANY_DECODER.decode(raw)
        return _with_indexed_fields(parse_message(text, log_group=source, log_stream=host), envelope.fields)
    if raw[:1] == b"{":
        try:
            event = _EVENT_DECODER.decode(raw)
        except msgspec.ValidationError:
            event = None
        if event is not None and event.event_id is not None:
            if event.log_group is None and event.log_stream is None:
                # The json format leaves them out: `source` and `host` say them (contracts.md §2).
                return msgspec.structs.replace(event, log_group=source, log_stream=host)
            return event
        value = _ANY_DECODER.decode(raw)
        if event is not None and event.raw is not None:
            # An hsmaudit event without its id (a hand-made one): the record text decides.
            return parse_message(
                event.raw, log_group=event.log_group or source, log_stream=event.log_stream or host
            )
        if event is not None and event.usecs is not None and event.sequence_no is not None:
            cluster_id = event.cluster_id or cluster_id_from_log_group(source)
            hsm_id = event.hsm_id or hsm_id_from_log_stream(host, cluster_id)
            return msgspec.structs.replace(
                event,
                cluster_id=cluster_id,
                hsm_id=hsm_id,
                event_id=text_event_id(
                    cluster_id,
                    hsm_id,
                    event.reboot_counter,
                    event.sequence_no,
                    event.usecs,
                    fields_content(event),
                ),
            )
        if isinstance(value, dict) and is_cloudtrail(value):
            calls = list(cloudtrail_events(value, CloudTrailStats()))
            if len(calls) == 1:
                # A CloudHSM API call (one CloudTrail record or an EventBridge "AWS API Call via
                # CloudTrail" event), e.g. from EventBridge -> Firehose -> HEC.
                return calls[0]
        message = value.get("message") if isinstance(value, dict) else None
        if isinstance(message, str):
            # splunk-logging (Node) wraps a logged string as {"message": …, "severity": …}.
            return parse_message(message, log_group=source, log_stream=host)
    # Anything else: keep it, flagged, so nothing sent to us vanishes.
    text = raw.decode("utf-8", "replace")
    cluster_id = cluster_id_from_log_group(source)
    return HsmEvent(
        cluster_id=cluster_id,
        hsm_id=hsm_id_from_log_stream(host, cluster_id),
        category="other",
        severity="medium",
        event_id=unparsed_event_id(cluster_id, host, None, text),
        log_group=source,
        log_stream=host,
        parse_error="HEC event is not an hsmaudit event or CloudHSM record text",
        raw=text,
    )


def _with_indexed_fields(event: HsmEvent, fields: dict[str, Any] | None) -> HsmEvent:
    """The lean format's ids (`fields`) over those the collector derived from `source`/`host`.

    The sender parsed the record with all of CloudWatch's context (`cwl_id` is part of an
    unparsed record's id), so its `event_id` is the one Splunk indexed and de-duplicates on. Its
    `parse_error` is kept too: a problem the text no longer shows (a lone surrogate travels as its
    `\\uXXXX` escape) still flags the event, at least `medium` as the parser rates flagged records.
    """
    if not fields:
        return event
    changes: dict[str, Any] = {
        name: value
        for name in ("cluster_id", "hsm_id", "event_id")
        if isinstance(value := fields.get(name), str) and value
    }
    problem = fields.get("parse_error")
    if event.parse_error is None and isinstance(problem, str) and problem:
        changes["parse_error"] = problem
        if SEVERITY_RANK[event.severity or "info"] < SEVERITY_RANK["medium"]:
            changes["severity"] = "medium"
    return msgspec.structs.replace(event, **changes) if changes else event


def envelope_events(envelopes: list[Envelope]) -> tuple[list[HsmEvent], HecRequestError | None]:
    """`envelope_event` for each envelope in order, stopping at the first one that cannot be read.

    Total: an `event` msgspec cannot decode (invalid UTF-8 or a lone surrogate in a string,
    nesting past the recursion limit, a number out of range) is code 6 at its position, and the
    events before it are returned to be stored (§1.9). Any other exception is a bug of ours on
    this input; it is the same on every retry, so it is answered like bad data (code 6, which the
    sender does not retry) and logged with its traceback, rather than a 500 that would loop.
    """
    events: list[HsmEvent] = []
    for index, envelope in enumerate(envelopes):
        try:
            events.append(envelope_event(envelope))
        except (msgspec.DecodeError, RecursionError, UnicodeError):
            return events, HecRequestError(INVALID_DATA_FORMAT, index)
        except Exception:
            LOG.exception("HEC event %d could not be turned into an event; answered as bad data", index)
            return events, HecRequestError(INVALID_DATA_FORMAT, index)
    return events, None


# --- channels and indexer acknowledgement -----------------------------------------------------


def check_channel(channel: str | None) -> str | None:
    """Validate a channel id (a GUID, §1.6); None when the request has none."""
    if channel is None or channel == "":
        return None
    if not _GUID.match(channel):
        raise HecRequestError(INVALID_DATA_CHANNEL)
    return channel.lower()


@dataclass
class _Channel:
    next_id: int = 0
    pending: set[int] | None = None
    last_used: float = 0.0


class AckRegistry:
    """Ack ids per channel (§1.7). The collector commits before it answers, so an issued id is
    already "indexed"; the registry only has to remember ids until they are queried once.

    Bounded like Splunk's limits.conf: idle channels expire, and a channel keeps at most
    `max_pending` unqueried ids (the oldest are forgotten; a later query says false, as Splunk does).
    """

    def __init__(
        self, *, max_channels: int = 10_000, max_pending: int = 100_000, idle_seconds: float = 600.0
    ) -> None:
        self._channels: OrderedDict[str, _Channel] = OrderedDict()
        self._lock = threading.Lock()
        self.max_channels = max_channels
        self.max_pending = max_pending
        self.idle_seconds = idle_seconds

    def issue(self, channel: str) -> int:
        """A new ack id on `channel` for a request whose events are committed."""
        now = time.monotonic()
        with self._lock:
            self._expire(now)
            state = self._channels.get(channel)
            if state is None:
                state = _Channel(pending=set())
                self._channels[channel] = state
                while len(self._channels) > self.max_channels:
                    self._channels.popitem(last=False)
            self._channels.move_to_end(channel)
            state.last_used = now
            ack_id = state.next_id
            state.next_id += 1
            assert state.pending is not None
            state.pending.add(ack_id)
            if len(state.pending) > self.max_pending:
                state.pending.discard(min(state.pending))
            return ack_id

    def query(self, channel: str, ack_ids: list[int]) -> dict[str, bool]:
        """`{"<id>": true|false}`; a `true` is reported once, then forgotten (§1.7 point 3)."""
        now = time.monotonic()
        with self._lock:
            self._expire(now)
            state = self._channels.get(channel)
            result: dict[str, bool] = {}
            for ack_id in ack_ids:
                done = state is not None and state.pending is not None and ack_id in state.pending
                if done and state is not None and state.pending is not None:
                    state.pending.discard(ack_id)
                result[str(ack_id)] = done
            if state is not None:
                state.last_used = now
            return result

    def _expire(self, now: float) -> None:
        while self._channels:
            name, state = next(iter(self._channels.items()))
            if now - state.last_used <= self.idle_seconds:
                break
            del self._channels[name]


def decode_ack_request(body: Buffer) -> list[int]:
    """`{"acks": [1, 2]}` -> [1, 2]; anything else is HEC's invalid data format."""
    try:
        value = _ANY_DECODER.decode(body)
    except msgspec.DecodeError:
        raise HecRequestError(INVALID_DATA_FORMAT) from None
    acks = value.get("acks") if isinstance(value, dict) else None
    if not isinstance(acks, list) or not all(isinstance(a, int) and not isinstance(a, bool) for a in acks):
        raise HecRequestError(INVALID_DATA_FORMAT)
    return acks


def new_token() -> str:
    """A fresh collector token, GUID-shaped like Splunk's."""
    return str(uuid.uuid4())
