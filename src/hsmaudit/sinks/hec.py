"""The HEC client: events -> Splunk HTTP Event Collector, with nothing lost silently.

Where it sits: the Lambda handlers (and `hsmaudit replay`, the demo) hand it events or
already-built HEC lines; it batches, gzips and POSTs them to `/services/collector/event`, and every
line ends in exactly one of: accepted by HEC, written to the spool, or (when the spool write
fails) an exception that fails the invocation so AWS retries it.

Facts (`docs/reference/splunk.md` §1):
- §1.3/§2 of contracts.md: the envelope is `time` (seconds, microsecond precision from `usecs`),
  `host` (hsm_id, fallback log stream), `source` (log group), `sourcetype`, optional `index`, and
  the event in one of two formats (`EVENT_FORMATS`). `lean`, the default: `event` is the record
  text exactly as CloudHSM wrote it, so the licence Splunk meters (`_raw`) is the record's own
  size, and `fields` (indexed, not metered) carry what the text cannot say (`INDEXED_FIELDS`).
  `json`: the normalised event object without what repeats `host`/`source` (`ORIGIN_FIELDS`).
- §1.4-1.6: envelopes back to back, gzip'd body, one channel GUID per container (`X-Splunk-Request-
  Channel`), always sent so ack-enabled tokens work.
- §1.8: retry HEC codes 8/9/18-20, HTTP 429/5xx, timeouts and resets with backoff and jitter;
  never retry other 4xx; 403 code 1 (disabled token) is configuration: spool and say so once.
- §1.9: `invalid-event-number` N means 0..N-1 were accepted, N is bad, N+1.. were not read:
  spool N, resend only N+1.. (never the whole batch: that duplicates 0..N-1).
- §1.7: with indexer acknowledgement, a 200 carries an `ackId`; poll `/services/collector/ack`
  and resend what is not acknowledged in time; what is still not acknowledged is spooled.
"""

from __future__ import annotations

import gzip
import json
import logging
import random
import time
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final, Literal, Protocol, TypeGuard, get_args
from urllib.parse import unquote, urlsplit

import msgspec
import urllib3

from hsmaudit import __version__
from hsmaudit.config import masked_url
from hsmaudit.records.event import HsmEvent, event_to_dict
from hsmaudit.sinks.batch import (
    DEFAULT_MAX_BYTES,
    DEFAULT_MAX_EVENTS,
    MAX_BYTES_LIMIT,
    batch_lines,
    join_lines,
)
from hsmaudit.sinks.errors import (
    HecError,
    HecInvalidEventError,
    HecRejectedError,
    HecRetryableError,
    HecTokenError,
    HecTooLargeError,
    HecTransportError,
)
from hsmaudit.sinks.spool import Spool, SpoolBatch

logger = logging.getLogger("hsmaudit.hec")

EventFormat = Literal["lean", "json"]
EVENT_FORMATS: Final[tuple[str, ...]] = get_args(EventFormat)
DEFAULT_EVENT_FORMAT: Final[EventFormat] = "lean"
JSON_SOURCETYPE: Final = "aws:cloudhsm:audit"
"""Sourcetype of the `json` format: the normalised event object (`KV_MODE = json` in the app)."""
TEXT_SOURCETYPE: Final = "aws:cloudhsm:audit:text"
"""Sourcetype of the `lean` format: the record text as written (certificate records: their JSON).
One sourcetype for both record forms, as any other forwarder of the log group sends them."""
SOURCETYPES: Final[dict[str, str]] = {"lean": TEXT_SOURCETYPE, "json": JSON_SOURCETYPE}
DEFAULT_SOURCETYPE: Final = SOURCETYPES[DEFAULT_EVENT_FORMAT]
INDEXED_FIELDS: Final = ("cluster_id", "hsm_id", "event_id", "parse_error")
"""HEC `fields` of a lean event (docs/splunk-app.md, "Indexed fields of the lean event"): what the
record text does not carry. Absent values are left out (parse_error only on a flagged record)."""
CLOUDTRAIL_SOURCETYPE: Final = "aws:cloudtrail"
"""A CloudHSM API call (record_format `cloudtrail`) goes as the CloudTrail record itself, in both
formats: the Splunk Add-on for AWS's sourcetype, which the app's `hsmaudit_cloudtrail` macro reads."""
ORIGIN_FIELDS: Final = ("log_group", "log_stream", "cwl_id", "cwl_timestamp")
"""Where CloudWatch delivered a record: `host`/`source` say it; never repeated in `event`."""
EVENT_PATH: Final = "/services/collector/event"
ACK_PATH: Final = "/services/collector/ack"

# HEC codes (reference §1.8). 8/9: internal error / busy; 18-20: unhealthy (queues, ack service).
RETRYABLE_CODES: Final = frozenset({8, 9, 18, 19, 20})
# 1/4/21/22: token disabled or invalid; 2/3: token missing or malformed header.
TOKEN_CODES: Final = frozenset({1, 2, 3, 4, 21, 22})
# 7: incorrect index. It carries an invalid-event-number, but every event of ours has the same
# index, so the rest of the batch would fail the same way: spool it all at once.
INDEX_CODE: Final = 7
MAX_EVENT_BYTES: Final = MAX_BYTES_LIMIT
"""HEC's default per-event `maxEventSize`, 5 MB (docs/reference/splunk.md §1.10)."""
HELD_BYTES_LIMIT: Final = 8 * 1024 * 1024
"""Bytes of lines kept in memory for one spool write once a run is blocked (bounded for 128 MB Lambdas)."""

_STR_ENCODER: Final = msgspec.json.Encoder()
_ANSWER_DECODER: Final = msgspec.json.Decoder()


# --------------------------------------------------------------------------- the envelope


def hec_time(event: HsmEvent) -> bytes | None:
    """Epoch seconds as a JSON number: from `usecs` with exactly 6 decimals (exact, no float).

    Falls back to the CloudWatch timestamp (ms, 3 decimals) for a record without `usecs` (an
    unparsed one); None when neither is known (HEC then uses the receive time).

    >>> hec_time(HsmEvent(usecs=1513717277140812))
    b'1513717277.140812'
    """
    usecs = event.usecs
    if usecs is not None and usecs >= 0:
        seconds, micros = divmod(usecs, 1_000_000)
        return b"%d.%06d" % (seconds, micros)
    millis = event.cwl_timestamp
    if millis is not None and millis >= 0:
        seconds, rest = divmod(millis, 1000)
        return b"%d.%03d" % (seconds, rest)
    return None


def _envelope_prefix(host: str | None, source: str | None, sourcetype: str, index: str | None) -> bytes:
    parts: list[bytes] = []
    if host is not None:
        parts.append(b'"host":' + _STR_ENCODER.encode(host))
    if source is not None:
        parts.append(b'"source":' + _STR_ENCODER.encode(source))
    parts.append(b'"sourcetype":' + _STR_ENCODER.encode(sourcetype))
    if index is not None:
        parts.append(b'"index":' + _STR_ENCODER.encode(index))
    parts.append(b'"event":')
    return b",".join(parts)


def _json_text(value: str) -> bytes:
    """A string as a JSON string; a lone surrogate (no UTF-8 form) is kept as its `\\u` escape."""
    try:
        return _STR_ENCODER.encode(value)
    except UnicodeEncodeError:
        return json.dumps(value, ensure_ascii=True).encode("ascii")


def _event_json(event: HsmEvent, include_raw: bool) -> bytes:
    """The `json` format's event: the §1 object without `ORIGIN_FIELDS` (and `raw` if told)."""
    event = msgspec.structs.replace(
        event,
        log_group=None,
        log_stream=None,
        cwl_id=None,
        cwl_timestamp=None,
        raw=event.raw if include_raw else None,
    )
    try:
        return _STR_ENCODER.encode(event)
    except UnicodeEncodeError:
        # A lone surrogate (JSON "\ud800" in the input decodes to one) has no UTF-8 form; JSON's
        # \u escape keeps it exactly, so fall back to the stdlib's ASCII-escaping encoder.
        return json.dumps(
            event_to_dict(event, compact=True), ensure_ascii=True, separators=(",", ":")
        ).encode("ascii")


def _fields_head(cluster_id: str | None, hsm_id: str | None) -> bytes:
    """`,"fields":{` and the indexed fields that are the same for every record of one stream."""
    parts = []
    if cluster_id is not None:
        parts.append(b'"cluster_id":' + _json_text(cluster_id))
    if hsm_id is not None:
        parts.append(b'"hsm_id":' + _json_text(hsm_id))
    return b',"fields":{' + b",".join(parts)


def _lean_event(event: HsmEvent, raw: str, head: bytes) -> bytes:
    """`"<record text>","fields":{…}}` minus the envelope's closing brace: the lean `event` part."""
    tail = []
    if event.event_id is not None:
        tail.append(b'"event_id":' + _json_text(event.event_id))
    if event.parse_error is not None:
        tail.append(b'"parse_error":' + _json_text(event.parse_error))
    if not tail:
        if head.endswith(b"{"):
            return _json_text(raw)
        return _json_text(raw) + head + b"}"
    separator = b"" if head.endswith(b"{") else b","
    return _json_text(raw) + head + separator + b",".join(tail) + b"}"


def _has_text(raw: str | None) -> TypeGuard[str]:
    """True when `raw` can be a lean event: HEC refuses a blank `event` (code 13, reference §1.3)."""
    return raw is not None and raw != "" and not raw.isspace()


def _cloudtrail_line(event: HsmEvent, raw: str, index: str | None) -> bytes | None:
    """The CloudTrail record as the HEC event object (None when its text is not a JSON object)."""
    if not raw.startswith("{"):
        return None
    if "\n" in raw or "\r" in raw:
        # Only whitespace between JSON tokens can be a raw line break (a JSON string cannot hold
        # one): a blank keeps the record and the one-line-per-envelope framing of batches and spool.
        raw = raw.replace("\r", " ").replace("\n", " ")
    try:
        record = raw.encode("utf-8")
        msgspec.json.decode(record)  # what is not valid JSON would break the whole envelope
    except (UnicodeEncodeError, msgspec.DecodeError):
        return None
    prefix = _envelope_prefix(event.hsm_id, None, CLOUDTRAIL_SOURCETYPE, index)
    fields = b',"fields":{"event_id":' + _json_text(event.event_id) + b"}" if event.event_id else b""
    return _assemble(hec_time(event), prefix, record + fields)


def _assemble(time_value: bytes | None, prefix: bytes, event_json: bytes) -> bytes:
    if time_value is None:
        return b"{" + prefix + event_json + b"}"
    return b'{"time":' + time_value + b"," + prefix + event_json + b"}"


def to_hec_event(
    event: HsmEvent,
    *,
    source: str | None,
    host: str | None,
    event_format: EventFormat = DEFAULT_EVENT_FORMAT,
    sourcetype: str | None = None,
    index: str | None = None,
    include_raw: bool = True,
) -> bytes:
    """One HEC envelope (contracts.md §2) as one line of compact JSON.

    `host` and `source` are left out when None (HEC then uses the token's defaults); `sourcetype`
    None means the format's own (`SOURCETYPES`). An event without record text (one made by hand,
    or a blank message: HEC refuses a blank `event`, code 13) cannot be lean and is sent in the
    `json` format. `include_raw` applies to `json` only.
    The output never contains a raw newline (JSON escapes it), so lines can be joined with `\\n`.
    """
    raw = event.raw
    if event.record_format == "cloudtrail" and raw is not None:
        line = _cloudtrail_line(event, raw, index)
        if line is not None:
            return line
    if event_format == "lean" and _has_text(raw):
        prefix = _envelope_prefix(host, source, sourcetype or TEXT_SOURCETYPE, index)
        body = _lean_event(event, raw, _fields_head(event.cluster_id, event.hsm_id))
        return _assemble(hec_time(event), prefix, body)
    prefix = _envelope_prefix(host, source, sourcetype or JSON_SOURCETYPE, index)
    return _assemble(hec_time(event), prefix, _event_json(event, include_raw))


def event_host(event: HsmEvent) -> str | None:
    """contracts.md §2: the HSM id, falling back to the log stream."""
    return event.hsm_id or event.log_stream


class EventEncoder:
    """Builds HEC lines with fixed format, sourcetype, index and raw setting, fast.

    The envelope keys before `event` depend only on (host, source), and a lean event's stream
    fields only on (cluster_id, hsm_id); both are the same for every record of a CloudWatch
    document, so they are encoded once and reused (the hot path of `benchmarks/handler_bench.py`).
    """

    def __init__(
        self,
        *,
        event_format: EventFormat = DEFAULT_EVENT_FORMAT,
        sourcetype: str | None = None,
        index: str | None = None,
        include_raw: bool = True,
    ) -> None:
        if event_format not in EVENT_FORMATS:
            raise ValueError(f"event format must be one of {', '.join(EVENT_FORMATS)}, not {event_format!r}")
        self.event_format: EventFormat = event_format
        self.sourcetype = sourcetype or SOURCETYPES[event_format]
        self._explicit_sourcetype = sourcetype
        self.index = index
        self.include_raw = include_raw
        self._lean = event_format == "lean"
        self._prefixes: dict[tuple[str | None, str | None], bytes] = {}
        self._heads: dict[tuple[str | None, str | None], bytes] = {}
        self._lean_parts: dict[
            tuple[str | None, str | None, str | None, str | None], tuple[bytes, bytes]
        ] = {}

    def line(self, event: HsmEvent) -> bytes:
        """The same bytes as `to_hec_event(event, host=event_host(event), source=log_group, ...)`.

        A parsed lean record (time, id, no error: nearly every one) is one join of cached parts;
        anything else takes `_line`, the general path.
        """
        raw = event.raw
        usecs = event.usecs
        event_id = event.event_id
        if (
            self._lean
            and raw  # neither None nor blank (`_has_text`): a blank event goes as json
            and not raw.isspace()
            and usecs is not None
            and usecs >= 0
            and event_id is not None
            and event.parse_error is None
            and event.record_format != "cloudtrail"
        ):
            line = self.text_line(
                raw, usecs, event_id, event.hsm_id, event.log_stream, event.log_group, event.cluster_id
            )
            if line is not None:
                return line
        return self._line(event)

    def text_line(
        self,
        raw: str,
        usecs: int,
        event_id: str,
        hsm_id: str | None,
        log_stream: str | None,
        log_group: str | None,
        cluster_id: str | None,
    ) -> bytes | None:
        """The lean line of a clean text record from its parts (no `HsmEvent` needed), or None.

        The caller vouches that the record parsed clean, `raw` is not blank and `usecs` >= 0
        (`line`, or `records.parse.lean_identity` in the Firehose transformation); None when
        the text has no UTF-8 form, and then `line` of the parsed event says what to send.
        """
        key = (hsm_id, log_stream, log_group, cluster_id)
        parts = self._lean_parts.get(key)
        if parts is None:
            parts = self._lean_head(key)
        try:
            text, identity = _STR_ENCODER.encode(raw), _STR_ENCODER.encode(event_id)
        except UnicodeEncodeError:
            return None
        return b"".join(
            (
                b'{"time":',
                b"%d.%06d" % divmod(usecs, 1_000_000),
                parts[0],
                text,
                parts[1],
                identity,
                b"}}",
            )
        )

    def _lean_head(self, key: tuple[str | None, str | None, str | None, str | None]) -> tuple[bytes, bytes]:
        """Bytes around one stream's lean event text: `,<envelope>,"event":`, `,"fields":{…"event_id":`."""
        hsm_id, log_stream, log_group, cluster_id = key
        prefix = _envelope_prefix(hsm_id or log_stream, log_group, self.sourcetype, self.index)
        head = _fields_head(cluster_id, hsm_id)
        parts = (b"," + prefix, head + (b'"event_id":' if head.endswith(b"{") else b',"event_id":'))
        if len(self._lean_parts) > 4096:
            self._lean_parts.clear()
        self._lean_parts[key] = parts
        return parts

    def _line(self, event: HsmEvent) -> bytes:
        """`line` for every event (cloudtrail, unparsed, json format, hand-made, flagged)."""
        raw = event.raw
        if event.record_format == "cloudtrail" and raw is not None:
            line = _cloudtrail_line(event, raw, self.index)
            if line is not None:
                return line
        if self._lean and not _has_text(raw):
            return to_hec_event(
                event,
                source=event.log_group,
                host=event_host(event),
                event_format="json",
                sourcetype=self._explicit_sourcetype,
                index=self.index,
                include_raw=self.include_raw,
            )
        key = (event.hsm_id or event.log_stream, event.log_group)
        prefix = self._prefixes.get(key)
        if prefix is None:
            if len(self._prefixes) > 4096:
                self._prefixes.clear()
            prefix = self._prefixes[key] = _envelope_prefix(key[0], key[1], self.sourcetype, self.index)
        if raw is None or not self._lean:
            return _assemble(hec_time(event), prefix, _event_json(event, self.include_raw))
        stream = (event.cluster_id, event.hsm_id)
        head = self._heads.get(stream)
        if head is None:
            if len(self._heads) > 4096:
                self._heads.clear()
            head = self._heads[stream] = _fields_head(stream[0], stream[1])
        return _assemble(hec_time(event), prefix, _lean_event(event, raw, head))


# --------------------------------------------------------------------------- tokens


class TokenProvider(Protocol):
    """Gives the HEC token; `refresh=True` fetches it again (after HEC said 401/403).

    Implementations raise `HecTokenError` when the token cannot be had, with a message that
    names the store and the reason but never the token.
    """

    def token(self, *, refresh: bool = False) -> str:
        """The current token."""
        ...


class StaticToken:
    """A token given directly (`HSMAUDIT_HEC_TOKEN`, for local use); never shown in repr."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        if not value or not value.strip():
            raise HecTokenError("the HEC token is empty")
        self._value = value.strip()

    def token(self, *, refresh: bool = False) -> str:
        """The token (refreshing changes nothing)."""
        return self._value

    def __repr__(self) -> str:
        return "StaticToken(<redacted>)"


# --------------------------------------------------------------------------- the report


@dataclass(frozen=True, slots=True)
class SpooledBatch:
    """Lines that went to the spool instead of HEC, and why."""

    batch_id: str
    reason: str
    count: int
    location: str


@dataclass(frozen=True, slots=True)
class FailedBatch:
    """Lines HEC did not take when no spool was given (replay keeps its own copy)."""

    lines: tuple[bytes, ...]
    reason: str
    retryable: bool = True
    """False when HEC refused these exact lines (a bad event, one event too large): sending them
    again cannot help, so replay quarantines them instead of keeping them."""


@dataclass(frozen=True, slots=True)
class DeliveryReport:
    """What happened to every line handed to `HecClient.send`/`send_lines`.

    Invariant: `accepted + spooled_events + failed_events == lines_in`.
    """

    lines_in: int
    accepted: int
    spooled: tuple[SpooledBatch, ...]
    failed: tuple[FailedBatch, ...]
    requests: int
    retries: int
    wire_bytes: int
    body_bytes: int
    latencies_ms: tuple[float, ...]
    resent_unacked: int = 0
    blocked: str | None = None
    """Why the run stopped sending (HEC down, token refused, …); None when it never did."""

    @property
    def spooled_events(self) -> int:
        """Lines written to the spool."""
        return sum(batch.count for batch in self.spooled)

    @property
    def failed_events(self) -> int:
        """Lines neither accepted nor spooled (only when no spool was given)."""
        return sum(len(batch.lines) for batch in self.failed)

    @property
    def complete(self) -> bool:
        """True when every line is accounted for (the no-silent-loss invariant)."""
        return self.accepted + self.spooled_events + self.failed_events == self.lines_in

    def summary(self) -> dict[str, Any]:
        """Counts and ids only (never lines), for logs and CLI output."""
        return {
            "lines_in": self.lines_in,
            "accepted": self.accepted,
            "spooled": self.spooled_events,
            "spooled_batches": [b.batch_id for b in self.spooled],
            "failed": self.failed_events,
            "requests": self.requests,
            "retries": self.retries,
            "wire_bytes": self.wire_bytes,
            "body_bytes": self.body_bytes,
            "resent_unacked": self.resent_unacked,
            "blocked": self.blocked,
        }


@dataclass(slots=True)
class _Pending:
    lines: list[bytes]
    sent_at: float
    resends: int


@dataclass(slots=True)
class _Run:
    """The mutable bookkeeping of one `send` call (never shared between calls)."""

    deadline: float
    spool: Spool | None
    metadata: Mapping[str, str]
    lines_in: int = 0
    accepted: int = 0
    requests: int = 0
    retries: int = 0
    wire_bytes: int = 0
    body_bytes: int = 0
    resent_unacked: int = 0
    blocked: str | None = None
    token_refreshed: bool = False
    spooled: list[SpooledBatch] = field(default_factory=list)
    failed: list[FailedBatch] = field(default_factory=list)
    latencies_ms: list[float] = field(default_factory=list)
    pending: dict[int, _Pending] = field(default_factory=dict)
    held: list[bytes] = field(default_factory=list)
    held_bytes: int = 0

    def report(self) -> DeliveryReport:
        return DeliveryReport(
            lines_in=self.lines_in,
            accepted=self.accepted,
            spooled=tuple(self.spooled),
            failed=tuple(self.failed),
            requests=self.requests,
            retries=self.retries,
            wire_bytes=self.wire_bytes,
            body_bytes=self.body_bytes,
            latencies_ms=tuple(self.latencies_ms),
            resent_unacked=self.resent_unacked,
            blocked=self.blocked,
        )


# --------------------------------------------------------------------------- answers


def _retry_after(headers: Mapping[str, str]) -> float | None:
    value = headers.get("Retry-After")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        return None  # an HTTP date: rare from HEC or its proxies; fall back to our backoff


def classify_answer(status: int, data: bytes, headers: Mapping[str, str]) -> int | None:
    """Turn an HEC answer into the `ackId` (or None) on success, or raise the matching `HecError`.

    Success is a 2xx *with* HEC's JSON answer `code` 0; any other 2xx is refused (see below).

    Retryable: HEC codes 8, 9, 18-20; HTTP 408, 429, 5xx; 404 (short-lived during Splunk Cloud
    maintenance, Vector issue 13414; bounded by our attempt limit). Token problems: 401/403 and
    codes 1-4, 21, 22. 413: too large. Any other 4xx: rejected.
    """
    body: Any = None
    if data:
        try:
            body = _ANSWER_DECODER.decode(data)
        except msgspec.DecodeError:
            body = None
    code: int | None = None
    text = ""
    invalid: int | None = None
    ack_id: int | None = None
    if isinstance(body, dict):
        raw_code = body.get("code")
        code = raw_code if isinstance(raw_code, int) and not isinstance(raw_code, bool) else None
        raw_text = body.get("text")
        text = raw_text[:200] if isinstance(raw_text, str) else ""
        raw_invalid = body.get("invalid-event-number")
        invalid = raw_invalid if isinstance(raw_invalid, int) and not isinstance(raw_invalid, bool) else None
        raw_ack = body.get("ackId")
        ack_id = raw_ack if isinstance(raw_ack, int) and not isinstance(raw_ack, bool) else None
    if not text:
        text = f"HTTP {status} without an HEC answer" if body is None else "no text"
    if 200 <= status < 300 and code == 0:
        return ack_id
    if 200 <= status < 300 and code is None:
        # HEC always answers {"text":"Success","code":0}. A 2xx without it is something else (a
        # proxy's login page, a wrong URL on a web server): counting it as accepted would lose
        # the events silently, so it is refused and the events are spooled.
        raise HecRejectedError(
            f"HTTP {status} without an HEC success answer; is the URL an HEC endpoint?", status=status
        )
    if code in RETRYABLE_CODES or status in (404, 408, 429) or status >= 500:
        raise HecRetryableError(text, status=status, code=code, retry_after=_retry_after(headers))
    if status in (401, 403) or code in TOKEN_CODES:
        raise HecTokenError(text, status=status, code=code)
    if status == 413:
        raise HecTooLargeError(text, status=status, code=code)
    if invalid is not None:
        raise HecInvalidEventError(text, status=status, code=code, index=invalid)
    raise HecRejectedError(text, status=status, code=code)


def event_url(url: str) -> tuple[str, str, str]:
    """Split a HEC URL into (origin, event path, ack path).

    Accepts a bare origin (`https://hec.example.com:8088`), `.../services/collector`, or the full
    `.../services/collector/event` (and `/event/1.0`) path.
    """
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ValueError("the HEC URL must start with https:// (or http:// for a local collector)")
    origin = f"{parts.scheme}://{parts.netloc}"
    path = parts.path.rstrip("/")
    marker = "/services/collector"
    if not path:
        return origin, EVENT_PATH, ACK_PATH
    if marker in path:
        base = path[: path.index(marker) + len(marker)]
        event_path = path if path != base else base + "/event"
        return origin, event_path, base + "/ack"
    return origin, path, ACK_PATH


# --------------------------------------------------------------------------- the client


class HecClient:
    """Sends HEC event lines with bounded retries, spooling what HEC does not take.

    One instance per Lambda container (or CLI run): it owns the urllib3 pool (keep-alive reused
    across invocations) and the channel GUID (reference §1.6: one per execution environment).
    Construct it from explicit values; `hsmaudit.config` and the handlers decide those values.

    Args:
        url: HEC origin or endpoint URL (https; http only for a local collector).
        token: where the token comes from; it is read per request and never logged.
        verify: verify TLS certificates (on by default; turning it off logs a warning).
        ca_bundle: a PEM file of CA certificates to trust instead of the system store.
        ack: use indexer acknowledgement (poll `/services/collector/ack`).
        index: HEC `index` for every event (only when set).
        event_format: `lean` (the record text, indexed fields; the default) or `json`.
        sourcetype: HEC `sourcetype`; None: the format's own (`SOURCETYPES`).
        include_raw: keep the record text in `event.raw` (the `json` format only).
        max_events, max_bytes: batch caps (uncompressed bytes, reference §1.10).
        timeout: seconds per request (connect and read), further bounded by the deadline.
        max_attempts: tries per batch for retryable failures before it is spooled.
        backoff_base, backoff_cap: full-jitter exponential backoff: sleep U(0, min(cap, base*2^n)).
        ack_timeout: seconds to wait for an ack before resending once, then spooling.
        ack_poll_interval: seconds between ack polls (Splunk suggests 10 s; a Lambda pays for it).
        gzip_level: compression level for request bodies. 1 by default: on lean batches it takes
            half the CPU of level 6 for about 10% more bytes (`benchmarks/handler_bench.py --gzip-levels`).
        proxy: an HTTP(S) proxy URL (`http://[user:password@]proxy:3128`) for HEC requests; https
            HEC URLs are tunnelled with CONNECT, so TLS stays end to end. Not read from
            `HTTPS_PROXY`: the setting names the proxy for HEC explicitly.
    """

    def __init__(
        self,
        url: str,
        token: TokenProvider,
        *,
        verify: bool = True,
        ca_bundle: str | None = None,
        ack: bool = False,
        index: str | None = None,
        event_format: EventFormat = DEFAULT_EVENT_FORMAT,
        sourcetype: str | None = None,
        include_raw: bool = True,
        max_events: int = DEFAULT_MAX_EVENTS,
        max_bytes: int = DEFAULT_MAX_BYTES,
        timeout: float = 5.0,
        max_attempts: int = 5,
        backoff_base: float = 0.5,
        backoff_cap: float = 8.0,
        ack_timeout: float = 60.0,
        ack_poll_interval: float = 2.0,
        gzip_level: int = 1,
        proxy: str | None = None,
        channel: str | None = None,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
        rng: random.Random | None = None,
    ) -> None:
        origin, self.event_path, self.ack_path = event_url(url)
        if max_events < 1:
            raise ValueError("max_events must be at least 1")
        if not 1 <= max_bytes <= MAX_BYTES_LIMIT:
            raise ValueError(f"max_bytes must be between 1 and {MAX_BYTES_LIMIT}")
        if max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        self.origin = origin
        self._token = token
        self.ack = ack
        self.index = index
        self.include_raw = include_raw
        self.max_events = max_events
        self.max_bytes = max_bytes
        self.timeout = timeout
        self.max_attempts = max_attempts
        self.backoff_base = backoff_base
        self.backoff_cap = backoff_cap
        self.ack_timeout = ack_timeout
        self.ack_poll_interval = ack_poll_interval
        self.gzip_level = gzip_level
        self.channel = channel or str(uuid.uuid4())
        self._sleep = sleep
        self._clock = clock
        self._rng = rng or random.Random()  # noqa: S311 - jitter, not cryptography
        self.encoder = EventEncoder(
            event_format=event_format, sourcetype=sourcetype, index=index, include_raw=include_raw
        )
        self.event_format = event_format
        self.sourcetype = self.encoder.sourcetype
        pool_options: dict[str, Any] = {"num_pools": 2, "maxsize": 2, "block": False, "retries": False}
        if origin.startswith("https://"):
            if verify:
                pool_options["cert_reqs"] = "CERT_REQUIRED"
                if ca_bundle:
                    pool_options["ca_certs"] = ca_bundle
            else:
                pool_options["cert_reqs"] = "CERT_NONE"
                logger.warning(
                    "hec: TLS certificate verification is OFF for %s; set a CA bundle instead",
                    masked_url(origin),
                )
        elif urlsplit(origin).hostname not in ("127.0.0.1", "localhost", "::1"):
            logger.warning(
                "hec: %s is plain HTTP: the token and the audit records travel unencrypted",
                masked_url(origin),
            )
        self._http: urllib3.PoolManager
        if proxy:
            self._http = _proxy_manager(proxy, pool_options)
        else:
            self._http = urllib3.PoolManager(**pool_options)
        self._user_agent = f"hsmaudit/{__version__}"

    def __repr__(self) -> str:
        shown = masked_url(self.origin + self.event_path)  # never a user:password in the URL
        return f"HecClient({shown}, ack={self.ack}, channel={self.channel})"

    def close(self) -> None:
        """Close pooled connections (tests and CLI runs; a Lambda keeps them)."""
        self._http.clear()

    # -- lines ----------------------------------------------------------------

    def event_line(self, event: HsmEvent) -> bytes:
        """The HEC envelope of one event with this client's format, sourcetype, index and raw setting."""
        return self.encoder.line(event)

    # -- sending --------------------------------------------------------------

    def send(
        self,
        events: Iterable[HsmEvent],
        *,
        deadline: float,
        spool: Spool | None = None,
        metadata: Mapping[str, str] | None = None,
        blocked: str | None = None,
    ) -> DeliveryReport:
        """Send events; see `send_lines`."""
        return self.send_lines(
            map(self.encoder.line, events),
            deadline=deadline,
            spool=spool,
            metadata=metadata,
            blocked=blocked,
        )

    def send_lines(
        self,
        lines: Iterable[bytes],
        *,
        deadline: float,
        spool: Spool | None = None,
        metadata: Mapping[str, str] | None = None,
        blocked: str | None = None,
    ) -> DeliveryReport:
        """Send HEC lines before `deadline` (a `clock()` value); spool or report what HEC refuses.

        With a spool, lines HEC does not take are written to it as they fail (a `SpoolError`
        propagates: the caller must fail). Without one, they come back in `report.failed`.
        Lines are streamed: only one batch (plus unacknowledged ones, with ack on) is held.

        `blocked` starts the run with the circuit open: a caller that sends in several calls
        (the CLI, chunk by chunk) passes the previous report's `blocked`, so once HEC is known to
        be down or to refuse the token, the rest goes to the spool at once with that reason
        instead of every chunk paying the full retry schedule again.
        """
        run = _Run(deadline=deadline, spool=spool, metadata=dict(metadata or {}), blocked=blocked)

        # Every line is in exactly one batch: counting per batch is counting per line, without a
        # generator frame per line.
        for batch in batch_lines(lines, max_events=self.max_events, max_bytes=self.max_bytes):
            run.lines_in += len(batch)
            self._deliver(batch, run, resends=0)
            if self.ack and len(run.pending) >= 64:
                self._poll_acks(run)
        if self.ack:
            self._await_acks(run)
        self._flush_blocked(run)
        return run.report()

    def _park(self, lines: list[bytes], reason: str, run: _Run, *, retryable: bool = True) -> None:
        """Spool (or hand back) lines HEC did not take; the one place that decides their fate."""
        if not lines:
            return
        if run.spool is None:
            run.failed.append(FailedBatch(tuple(lines), reason, retryable))
            return
        batch = SpoolBatch(lines=tuple(lines), reason=reason, metadata=run.metadata)
        where = run.spool.put(batch)  # SpoolError propagates: the invocation must fail
        run.spooled.append(SpooledBatch(batch.batch_id, reason, len(lines), where))
        logger.warning("hec: spooled %d events as batch %s: %s", len(lines), batch.batch_id, reason)

    def _flush_blocked(self, run: _Run) -> None:
        if run.held:
            held, run.held, run.held_bytes = run.held, [], 0
            self._park(held, run.blocked or "HEC refused the run", run)

    def _block(self, run: _Run, reason: str) -> None:
        if run.blocked is None:
            run.blocked = reason
            logger.error("hec: %s; spooling the rest of this run without sending", reason)

    def _backoff(self, attempt: int, retry_after: float | None) -> float:
        delay = self._rng.uniform(0.0, min(self.backoff_cap, self.backoff_base * (2 ** (attempt - 1))))
        if retry_after is not None:
            delay = max(delay, min(retry_after, self.backoff_cap))
        return delay

    def _deliver(self, batch: list[bytes], run: _Run, *, resends: int) -> None:
        """Get one batch accepted, or park every line of it; never lose or duplicate a line."""
        if len(batch) == 1 and len(batch[0]) > MAX_EVENT_BYTES:
            # batch_lines puts any line over max_bytes (<= 5 MiB) in a batch of its own, so only a
            # one-line batch can hold an event over HEC's limit. HEC would refuse it with a bare
            # "Invalid data format"; we say why and keep it (spooled, quarantined by replay).
            size = len(batch[0]) / (1024 * 1024)
            reason = (
                f"an event of {size:.1f} MiB exceeds HEC's per-event limit of "
                f"{MAX_EVENT_BYTES // (1024 * 1024)} MiB (maxEventSize, inputs.conf [http]); not sent"
            )
            self._park(batch, reason, run, retryable=False)
            return
        todo: list[list[bytes]] = [batch]
        while todo:
            lines = todo.pop()
            attempt = 0
            while lines:
                if run.blocked is not None:
                    # Once HEC is known to refuse everything, the rest of the run goes to the spool
                    # as one batch rather than one write per batch (one S3 put, not dozens).
                    run.held.extend(lines)
                    run.held_bytes += sum(len(line) for line in lines)
                    if run.held_bytes >= HELD_BYTES_LIMIT:
                        self._flush_blocked(run)
                    break
                remaining = run.deadline - self._clock()
                if remaining <= 0.05:
                    self._park(lines, "the time budget ran out before HEC accepted these events", run)
                    break
                try:
                    ack_id = self._post(lines, remaining, run)
                except HecInvalidEventError as error:
                    bad = min(max(error.index, 0), len(lines) - 1)
                    run.accepted += bad  # reference §1.9: 0..N-1 are accepted and will be indexed
                    if error.code == INDEX_CODE:
                        reason = f"HEC refused the index ({error})"
                        self._park(lines[bad:], reason, run)
                        self._block(run, reason)
                        break
                    self._park([lines[bad]], f"HEC rejected this event ({error})", run, retryable=False)
                    lines, attempt = lines[bad + 1 :], 0
                    continue
                except HecTokenError as error:
                    if not run.token_refreshed and self._refresh_token():
                        run.token_refreshed = True
                        continue
                    if error.status is None:
                        # Raised by the token provider, before any request: HEC never saw it.
                        reason = f"no HEC token: {error.text}"
                    else:
                        reason = (
                            f"HEC refused the token ({error}); check the token "
                            "(HSMAUDIT_HEC_TOKEN or its secret) and that it is enabled in Splunk"
                        )
                    self._park(lines, reason, run)
                    self._block(run, reason)
                    break
                except HecTooLargeError as error:
                    if len(lines) > 1:
                        middle = len(lines) // 2
                        todo.extend((lines[middle:], lines[:middle]))
                    else:
                        self._park(
                            lines, f"HEC refused a single event as too large ({error})", run, retryable=False
                        )
                    break
                except HecRejectedError as error:
                    reason = f"HEC rejected the request ({error})"
                    self._park(lines, reason, run)
                    self._block(run, reason)
                    break
                except HecRetryableError as error:
                    attempt += 1
                    if attempt >= self.max_attempts:
                        reason = f"HEC still failing after {attempt} attempts ({error})"
                        self._park(lines, reason, run)
                        self._block(run, f"HEC unavailable ({error})")
                        break
                    delay = self._backoff(attempt, error.retry_after)
                    if self._clock() + delay >= run.deadline - 0.05:
                        self._park(lines, f"no time left to retry ({error})", run)
                        break
                    run.retries += 1
                    logger.info("hec: attempt %d failed (%s); retrying in %.2fs", attempt, error, delay)
                    self._sleep(delay)
                    continue
                if self.ack and ack_id is not None:
                    run.pending[ack_id] = _Pending(lines, self._clock(), resends)
                else:
                    run.accepted += len(lines)
                lines = []

    def _refresh_token(self) -> bool:
        """Fetch the token again after a 401/403; True when it changed (worth one more try)."""
        try:
            before = self._token.token()
            after = self._token.token(refresh=True)
        except HecTokenError as error:
            logger.error("hec: cannot refresh the token: %s", error)
            return False
        return after != before

    def _headers(self, token: str) -> dict[str, str]:
        return {
            "Authorization": f"Splunk {token}",
            "X-Splunk-Request-Channel": self.channel,
            "Content-Type": "application/json",
            "User-Agent": self._user_agent,
        }

    def _post(self, lines: list[bytes], remaining: float, run: _Run) -> int | None:
        body = join_lines(lines)
        wire = gzip.compress(body, compresslevel=self.gzip_level, mtime=0)
        headers = self._headers(self._token.token())
        headers["Content-Encoding"] = "gzip"
        run.requests += 1
        run.wire_bytes += len(wire)
        run.body_bytes += len(body)
        status, data, answer_headers = self._request(self.event_path, wire, headers, remaining, run)
        return classify_answer(status, data, answer_headers)

    def _request(
        self, path: str, body: bytes, headers: dict[str, str], remaining: float, run: _Run
    ) -> tuple[int, bytes, Mapping[str, str]]:
        limit = max(0.05, min(self.timeout, remaining))
        started = time.perf_counter()
        try:
            response = self._http.urlopen(
                "POST",
                self.origin + path,
                body=body,
                headers=headers,
                retries=False,
                redirect=False,
                timeout=urllib3.Timeout(connect=limit, read=limit),
                preload_content=True,
            )
        except urllib3.exceptions.SSLError as error:
            text = str(error)
            if "CERTIFICATE_VERIFY_FAILED" in text or "certificate verify failed" in text:
                # OpenSSL's own words say which: "self-signed certificate", "unable to get local
                # issuer certificate", "certificate has expired", "Hostname mismatch".
                detail = text.partition("certificate verify failed:")[2].split("(")[0].strip(" )'\"")
                raise HecRejectedError(
                    "TLS certificate verification failed"
                    + (f" ({detail})" if detail else "")
                    + "; trust the HEC certificate's CA with a CA bundle "
                    "(--ca-bundle / HSMAUDIT_HEC_CA_BUNDLE)"
                ) from None
            raise HecTransportError(f"TLS failure ({type(error).__name__})") from None
        except urllib3.exceptions.ProxyError as error:
            if "407" in str(error):  # the proxy refused our credentials: retrying cannot help
                raise HecRejectedError("the HEC proxy refused the credentials (HTTP 407)") from None
            raise HecTransportError("the HEC proxy could not be used or could not connect") from None
        except urllib3.exceptions.HTTPError as error:
            raise HecTransportError(_transport_reason(error, self.origin)) from None
        finally:
            run.latencies_ms.append((time.perf_counter() - started) * 1000.0)
        return response.status, response.data, response.headers

    # -- indexer acknowledgement --------------------------------------------------

    def _poll_acks(self, run: _Run) -> None:
        """Ask HEC which pending ackIds are indexed; count those as accepted."""
        if not run.pending:
            return
        remaining = run.deadline - self._clock()
        if remaining <= 0.05:
            return
        body = _STR_ENCODER.encode({"acks": sorted(run.pending)})
        try:
            status, data, _headers = self._request(
                self.ack_path, body, self._headers(self._token.token()), remaining, run
            )
        except HecError as error:
            logger.info("hec: ack poll failed (%s); will ask again", error)
            return
        if status != 200:
            logger.info("hec: ack poll answered HTTP %d; will ask again", status)
            return
        try:
            answer = _ANSWER_DECODER.decode(data)
        except msgspec.DecodeError:
            return
        acks = answer.get("acks") if isinstance(answer, dict) else None
        if not isinstance(acks, dict):
            return
        for key, indexed in acks.items():
            try:
                ack_id = int(key)
            except ValueError:
                continue
            if indexed is True and ack_id in run.pending:
                run.accepted += len(run.pending.pop(ack_id).lines)

    def _await_acks(self, run: _Run) -> None:
        """Poll until every ack arrives; resend once what is late; spool what never arrives."""
        while run.pending:
            now = self._clock()
            late = [ack_id for ack_id, p in run.pending.items() if now - p.sent_at >= self.ack_timeout]
            for ack_id in late:
                pending = run.pending.pop(ack_id)
                time_left = run.deadline - now > self.ack_poll_interval
                if pending.resends < 1 and run.blocked is None and time_left:
                    run.resent_unacked += len(pending.lines)
                    logger.warning(
                        "hec: ackId %d not acknowledged within %.1fs; resending its %d events "
                        "(HEC may index them twice)",
                        ack_id,
                        self.ack_timeout,
                        len(pending.lines),
                    )
                    self._deliver(pending.lines, run, resends=pending.resends + 1)
                else:
                    self._park(
                        pending.lines,
                        f"HEC did not acknowledge indexing within {self.ack_timeout:g}s "
                        f"(ackId {ack_id}); they may be indexed, so replay may duplicate them",
                        run,
                    )
            if not run.pending:
                return
            wait = min(self.ack_poll_interval, run.deadline - self._clock() - 0.05)
            if wait <= 0:
                break
            self._sleep(wait)
            self._poll_acks(run)
        for ack_id in sorted(run.pending):
            pending = run.pending.pop(ack_id)
            self._park(
                pending.lines,
                f"the time budget ran out waiting for HEC to acknowledge ackId {ack_id}; "
                "they may be indexed, so replay may duplicate them",
                run,
            )


def _proxy_manager(proxy: str, pool_options: dict[str, Any]) -> urllib3.ProxyManager:
    """A ProxyManager for `proxy`, with basic auth from its URL (never logged)."""
    parts = urlsplit(proxy)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError("the HEC proxy must be an http:// or https:// URL")
    headers = None
    if parts.username is not None:
        credentials = f"{unquote(parts.username)}:{unquote(parts.password or '')}"
        headers = urllib3.make_headers(proxy_basic_auth=credentials)
    bare = f"{parts.scheme}://{parts.hostname}" + (f":{parts.port}" if parts.port else "")
    return urllib3.ProxyManager(bare, proxy_headers=headers, **pool_options)


def _transport_reason(error: Exception, origin: str = "") -> str:
    """A one-line reason for a transport failure, without URLs' query strings or payloads.

    Names the real cause: a name that does not resolve is not a refused connection (the fix is
    the URL or DNS, not starting HEC).
    """
    where = urlsplit(masked_url(origin)).netloc if origin else ""
    # NameResolutionError subclasses NewConnectionError, which subclasses ConnectTimeoutError in
    # urllib3 2.x: test the most specific first.
    if isinstance(error, urllib3.exceptions.NameResolutionError):
        host = urlsplit(origin).hostname if origin else None
        return f"cannot resolve host {host or '(unknown)'}: check the HEC URL's host name and DNS"
    if isinstance(error, urllib3.exceptions.NewConnectionError):
        text = str(error)
        at = f" {where}" if where else ""
        if "refused" in text.lower():
            return f"connection refused by{at}; is HEC running on that port?"
        if "unreachable" in text.lower() or "no route" in text.lower():
            return f"network unreachable: no route to{at}"
        return f"cannot connect to{at}"
    if isinstance(error, urllib3.exceptions.ReadTimeoutError):
        return "read timed out"
    if isinstance(error, urllib3.exceptions.ConnectTimeoutError):
        return "connect timed out"
    if isinstance(error, urllib3.exceptions.ProtocolError):
        return "connection reset or closed mid-request"
    return f"transport failure ({type(error).__name__})"
