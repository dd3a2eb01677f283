"""The HEC envelope: an `HsmEvent` -> one line of HEC JSON (`to_hec_event`, `EventEncoder`).

Where it sits: the first step of delivery. The Lambda handlers and the Firehose transformation
turn each event into its line here; the client (`client.py`) batches and sends lines.

Facts (`docs/reference/splunk.md` §1, contracts.md §1.3/§2): the envelope is `time` (seconds,
microsecond precision from `usecs`), `host` (hsm_id, fallback log stream), `source` (log group),
`sourcetype`, optional `index`, and the event in one of two formats (`EVENT_FORMATS`). `lean`, the
default: `event` is the record text exactly as CloudHSM wrote it, so the licence Splunk meters
(`_raw`) is the record's own size, and `fields` (indexed, not metered) carry what the text cannot
say (`INDEXED_FIELDS`). `json`: the normalised event object without what repeats `host`/`source`
(`ORIGIN_FIELDS`).
"""

from __future__ import annotations

import json
from typing import Final, Literal, TypeGuard, get_args

import msgspec

from hsmaudit import defaults
from hsmaudit.records.event import HsmEvent, event_to_dict

EventFormat = Literal["lean", "json"]
EVENT_FORMATS: Final[tuple[str, ...]] = get_args(EventFormat)
DEFAULT_EVENT_FORMAT: Final[EventFormat] = defaults.EVENT_FORMAT
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
_STR_ENCODER: Final = msgspec.json.Encoder()


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
        parts = self.lean_parts(hsm_id, log_stream, log_group, cluster_id)
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

    def lean_parts(
        self, hsm_id: str | None, log_stream: str | None, log_group: str | None, cluster_id: str | None
    ) -> tuple[bytes, bytes]:
        """One stream's bytes around a lean line's text and id (what `text_line` joins), cached."""
        key = (hsm_id, log_stream, log_group, cluster_id)
        parts = self._lean_parts.get(key)
        return parts if parts is not None else self._lean_head(key)

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
