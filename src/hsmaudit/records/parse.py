"""The parser: one CloudWatch log message (a CloudHSM audit record) -> one `HsmEvent`.

Sits at the head of every flow: sources hand it message text plus where it came from (log group
and stream), it returns a normalised event. It never raises on record content: whatever it cannot
read is reported in `parse_error` with `raw` kept (contracts.md §1).

Facts from `docs/reference/cloudhsm-records.md`:
- §2.1: a record is a `Time:` line then `label<SEP>value` lines; `<SEP>` is ` : `, `: ` or TABs
  before `: `; split at the first separator only (the Response value has more colons).
- §2.3: newer variants add or reorder lines, so parse into a label map, never by position.
- §8.1: certificate-storage records are JSON objects with `op_code` (`records/certificate.py`).

The parts it composes: `records/context.py` (where a record came from), `records/values.py`
(one converter per label), `records/severity.py` (outcome, category, severity),
`records/certificate.py`, `records/time.py` and `records/identity.py` (event ids).
"""

from __future__ import annotations

import re
from hashlib import blake2b
from typing import Any, Final, NamedTuple

import msgspec

from hsmaudit.records.cache import remember
from hsmaudit.records.certificate import parse_certificate
from hsmaudit.records.context import CLOUDHSM_LOG_GROUP_PREFIX as CLOUDHSM_LOG_GROUP_PREFIX  # noqa: PLC0414
from hsmaudit.records.context import NOT_A_RECORD as NOT_A_RECORD  # noqa: PLC0414
from hsmaudit.records.context import ORIGINS, RecordContext, origin_of, unparsed
from hsmaudit.records.context import cluster_id_from_log_group as cluster_id_from_log_group  # noqa: PLC0414
from hsmaudit.records.context import hsm_id_from_log_stream as hsm_id_from_log_stream  # noqa: PLC0414
from hsmaudit.records.event import Category, HsmEvent, Outcome, Severity
from hsmaudit.records.identity import lines_content, text_content, text_event_id, unparsed_event_id
from hsmaudit.records.severity import derive

# Re-exported (the `as` form is the explicit re-export) for callers that still import them here.
from hsmaudit.records.time import format_times as format_times  # noqa: PLC0414
from hsmaudit.records.time import format_usecs as format_usecs  # noqa: PLC0414
from hsmaudit.records.values import (
    CONVERTERS,
    BadValue,
    enum_value,
    response_value,
    session_value,
    usecs_from_text,
)

# A text record whose lines were reordered still has its skeleton labels somewhere.
_TEXT_RECORD_HINT: Final = re.compile(r"^[ \t]*(?:Time|Sequence No|Opcode)[ \t]*:", re.MULTILINE)
# Possessive: giving back a blank can never help (':' and a value's first character are not blanks),
# so the matches are the same without the engine trying to (~15% of the match's time).
_SEP: Final = r"[ \t]*+:[ \t]*+"
_VALUE: Final = r"([^ \t\r\n](?:[^\r\n]*[^ \t\r\n])?)"
_FAST_RECORD: Final = re.compile(
    r"Time: ([0-9]{2}/[0-9]{2}/[0-9]{2} [0-9]{2}:[0-9]{2}:[0-9]{2}\.[0-9]{6}), usecs:([0-9]+)\n"
    rf"Sequence No{_SEP}(0x[0-9a-f]+)\n"
    rf"Reboot counter{_SEP}(0x[0-9a-f]+)\n"
    rf"Command Type\(hex\){_SEP}{_VALUE}\n"
    rf"Opcode{_SEP}{_VALUE}\n"
    rf"Session Handle{_SEP}(0x[0-9a-f]+)\n"
    rf"Response{_SEP}{_VALUE}\n"
    rf"Log type{_SEP}{_VALUE}"
    rf"(?:\nUser Name{_SEP}{_VALUE}\nUser Type{_SEP}{_VALUE}"
    rf"|\nPriv/Secret Key Handle{_SEP}([0-9]+)\nPublic Key Handle{_SEP}([0-9]+))?\Z"
)
_SPACES: Final = re.compile(r"[ \t]+")


def _regex_groups(message: str) -> tuple[Any, ...] | None:
    """`_FAST_RECORD`'s groups, or None: the match as Python runs it."""
    match = _FAST_RECORD.match(message)
    return None if match is None else match.groups()


try:  # the same match (and lean_identity's checks and id) in C (records/_scan.c), where it was built
    from hsmaudit.records._scan import lean as _lean_c
    from hsmaudit.records._scan import lean_lines as _lean_lines_c
    from hsmaudit.records._scan import scan as _scan_c
except ImportError:  # no compiler at install time, or a zip built for another architecture
    _scan_c = None  # type: ignore[assignment]
    _lean_c = None  # type: ignore[assignment]
    _lean_lines_c = None  # type: ignore[assignment]

FAST_SCAN_COMPILED: Final = _scan_c is not None
"""Whether the fast path's match runs in C here (the benchmarks print it with their figures)."""

_LABEL_SHAPE: Final = re.compile(r"[A-Za-z][A-Za-z0-9 \t/()_.#-]*")

# label as printed -> internal key. Labels are case-sensitive (§2.1); inner spacing is folded.
_LABELS: Final[dict[str, str]] = {
    "Time": "time",
    "Version No": "version_no",
    "Sequence No": "sequence_no",
    "Reboot counter": "reboot_counter",
    "Command Type(hex)": "command_type",
    "Opcode": "opcode",
    "Session Handle": "session_handle",
    "Response": "response",
    "Log type": "log_type",
    "User Name": "user_name",
    "User Type": "user_type",
    "User id": "user_id",
    "Target User Name": "target_user_name",
    "Target User Type": "target_user_type",
    "Target User id": "target_user_id",
    "Priv/Secret Key Handle": "key_handle",
    "Key Handle": "key_handle",
    "Public Key Handle": "public_key_handle",
    "Mechanism": "mechanism",
    "Mfa enabled": "mfa_enabled",
    "Operation": "operation",
    "Number of Users": "number_of_users",
    "UserIDs": "user_ids",
    "local time": "local_time",
    "host time": "host_time",
    "propagation delay": "propagation_delay",
}
_KEY_ORDER: Final = tuple(dict.fromkeys(_LABELS.values()))
"""Field names in `_LABELS` order: the order of `identity.text_content` (the fast path follows it)."""
_REQUIRED: Final = (
    "time",
    "sequence_no",
    "reboot_counter",
    "command_type",
    "opcode",
    "session_handle",
    "response",
    "log_type",
)
_REQUIRED_BY_LOG_TYPE: Final[dict[str, tuple[str, ...]]] = {
    "MGMT_KEY_DETAILS_LOG": ("key_handle",),
    "MGMT_USER_DETAILS_LOG": ("user_name", "user_type"),
}
_LABEL_OF: Final[dict[str, str]] = {
    "time": "Time",
    "sequence_no": "Sequence No",
    "reboot_counter": "Reboot counter",
    "command_type": "Command Type(hex)",
    "opcode": "Opcode",
    "session_handle": "Session Handle",
    "response": "Response",
    "log_type": "Log type",
    "key_handle": "Priv/Secret Key Handle",
    "user_name": "User Name",
    "user_type": "User Type",
}


def parse_message(
    message: str,
    *,
    log_group: str | None = None,
    log_stream: str | None = None,
    cwl_id: str | None = None,
    cwl_timestamp: int | None = None,
) -> HsmEvent:
    """Parse one CloudWatch log message: a text record, a certificate record, or neither.

    Anything else still becomes an event, with `parse_error` set and `raw` kept.

    >>> parse_message("hello").parse_error
    'not a CloudHSM audit record'
    """
    origin = ORIGINS.get((log_group, log_stream))
    if origin is None:
        origin = origin_of(log_group, log_stream)
    if message.startswith("Time: ") and message.isascii():
        # The canonical record, with no RecordContext and no dispatch: what the Lambdas carry.
        try:
            fast = _fast_text(message, *origin, cwl_id or None, cwl_timestamp)
        except (ValueError, OverflowError):
            fast = None  # as in _parse_text: the line path names the bad value
        except Exception as error:  # total, as below
            return unparsed(
                message,
                RecordContext(*origin, cwl_id or None, cwl_timestamp),
                f"unreadable record ({type(error).__name__})",
            )
        if fast is not None:
            return fast
    context = RecordContext(*origin, cwl_id or None, cwl_timestamp)
    if not message.isascii():
        try:
            message.encode("utf-8")
        except UnicodeEncodeError:
            return _with_surrogates_escaped(message, context)
    try:
        return _classify(message, context)
    except Exception as error:  # the parser is total: bad input is data, never a raise
        return unparsed(message, context, f"unreadable record ({type(error).__name__})")


def _classify(message: str, context: RecordContext) -> HsmEvent:
    """Pick the record format by its first characters and parse it."""
    if message.startswith("Time: "):
        return _parse_text(message, context)
    stripped = message.lstrip()
    if stripped.startswith("Time") or _TEXT_RECORD_HINT.search(message):
        return _parse_text(message, context)
    if stripped.startswith("{"):
        return parse_certificate(message, context)
    return unparsed(message, context, NOT_A_RECORD if stripped else "empty message")


SURROGATES_ESCAPED: Final = "lone surrogate(s) in the record, kept as \\uXXXX escapes"


def _with_surrogates_escaped(message: str, context: RecordContext) -> HsmEvent:
    """A record with lone surrogates (no UTF-8 form) is parsed with each one written `\\udXXX`.

    The escapes keep the original reversibly visible in `raw` and every later stage (JSON, HEC,
    SQLite) can encode the event; `parse_error` flags the record so it is never taken as clean.
    """
    escaped = message.encode("utf-8", "backslashreplace").decode("utf-8")
    try:
        event = _classify(escaped, context)
    except Exception as error:  # total, as above
        event = unparsed(escaped, context, f"unreadable record ({type(error).__name__})")
    errors = (event.parse_error, SURROGATES_ESCAPED) if event.parse_error else (SURROGATES_ESCAPED,)
    flagged = "; ".join(errors)
    return msgspec.structs.replace(event, parse_error=flagged)


# --- classic text records ---------------------------------------------------------------


def _parse_text(message: str, ctx: RecordContext) -> HsmEvent:
    try:
        fast = _fast_text_event(message, ctx)
    except (ValueError, OverflowError):
        fast = None  # e.g. a number past int()'s digit limit: the line path names the bad value
    return fast or _parse_text_lines(message, ctx)


class _Static(NamedTuple):
    """What a record's repeating values (names, codes, response) convert to, computed once."""

    command_type: str
    command_type_code: int | None
    opcode: str
    opcode_code: int | None
    log_type: str
    log_type_code: int | None
    response_code: int
    response: str | None
    success: bool
    user_type: str | None
    user_type_code: int | None
    derived_first: tuple[Outcome | None, Category, str, Severity]  # at sequence number 0
    derived_later: tuple[Outcome | None, Category, str, Severity]
    required: tuple[str, ...]
    template_first: HsmEvent  # the fields above as an event, for `msgspec.structs.replace`
    template_later: HsmEvent


_STATIC: dict[tuple[str, str, str, str, str | None], _Static | None] = {}


def _static(command: str, opcode: str, response: str, log_type: str, user_type: str | None) -> _Static | None:
    try:
        command_name, command_code = enum_value(command)
        opcode_name, opcode_code = enum_value(opcode)
        log_type_name, log_type_code = enum_value(log_type)
        response_code, kind, response_text = response_value(response)
        user_type_name, user_type_code = enum_value(user_type) if user_type is not None else (None, None)
    except (BadValue, ValueError):
        static = None
    else:
        success = kind == "HSM Return" and response_code == 0
        derived = [
            derive(opcode_name, success, user_type_name, None, log_type_name, later, False)
            for later in (False, True)
        ]
        # Building an event with 33 keywords costs ~4x replacing 14 fields of a template (and a
        # record's static part repeats), so the fast path copies one of these.
        templates = [
            HsmEvent(
                record_format="text",
                command_type=command_name,
                command_type_code=command_code,
                opcode=opcode_name,
                opcode_code=opcode_code,
                response_code=response_code,
                response=response_text,
                success=success,
                outcome=outcome,
                log_type=log_type_name,
                log_type_code=log_type_code,
                user_type=user_type_name,
                user_type_code=user_type_code,
                category=category,
                action=action,
                severity=severity,
            )
            for outcome, category, action, severity in derived
        ]
        static = _Static(
            command_name,
            command_code,
            opcode_name,
            opcode_code,
            log_type_name,
            log_type_code,
            response_code,
            response_text,
            success,
            user_type_name,
            user_type_code,
            derived[0],
            derived[1],
            _REQUIRED_BY_LOG_TYPE.get(log_type_name, ()),
            templates[0],
            templates[1],
        )
    return remember(_STATIC, (command, opcode, response, log_type, user_type), static)


def _fast_text_event(message: str, ctx: RecordContext) -> HsmEvent | None:
    """The canonical layout in one regex match, or None to take the line-by-line path."""
    return _fast_text(
        message, ctx.log_group, ctx.log_stream, ctx.cluster_id, ctx.hsm_id, ctx.cwl_id, ctx.cwl_timestamp
    )


def _fast_text(
    message: str,
    log_group: str | None,
    log_stream: str | None,
    cluster_id: str | None,
    hsm_id: str | None,
    cwl_id: str | None,
    cwl_timestamp: int | None,
) -> HsmEvent | None:
    """`_fast_text_event` with the context as arguments (no struct built per record).

    Every published record and everything CloudHSM is known to write has this shape, so this
    path carries the Lambda's load (benchmarks/parse_bench.py). Any deviation (order, CR, extra
    lines, odd values) falls back to `_parse_text_lines`, which yields the same event and
    explains what is wrong; a property test holds the two paths equal.
    """
    core = _fast_core(message, cluster_id, hsm_id)
    if core is None:
        return None
    static, time_text, usecs, sequence_no, reboot_counter, session_handle, user, key, public, event_id = core
    try:
        iso, expected_text = format_times(usecs)
    except (OverflowError, ValueError, OSError):
        return None
    return _replace(
        static.template_later if sequence_no else static.template_first,
        time=iso,
        usecs=usecs,
        cluster_id=cluster_id,
        hsm_id=hsm_id,
        sequence_no=sequence_no,
        reboot_counter=reboot_counter,
        session_handle=session_handle,
        user_name=user,
        key_handle=key,
        public_key_handle=public,
        event_id=event_id,
        log_group=log_group,
        log_stream=log_stream,
        cwl_id=cwl_id,
        cwl_timestamp=cwl_timestamp,
        extra=None if time_text == expected_text else {"time_disagreement": time_text},
        raw=message,
    )


_Core = tuple[_Static, str, int, int, int, str, str | None, int | None, int | None, str]


def _fast_core(message: str, cluster_id: str | None, hsm_id: str | None) -> _Core | None:
    """One regex match and the checks of the fast path, without building an event.

    -> (static part, time text, usecs, sequence_no, reboot_counter, session handle, user name,
    key handle, public key handle, event_id), or None to take the line-by-line path. Shared by
    `_fast_text` (the event) and `lean_identity` (the lean HEC line needs only time and id), so
    both accept exactly the same records.
    """
    groups = _scan_c(message) if _scan_c is not None else NotImplemented
    if groups is NotImplemented:
        groups = _regex_groups(message)
    if groups is None:
        return None
    (
        time_text,
        usecs_text,
        sequence,
        reboot,
        command,
        opcode,
        session,
        response,
        log_type,
        user,
        user_type,
        key,
        public,
    ) = groups
    key_tuple = (command, opcode, response, log_type, user_type)
    static = _STATIC[key_tuple] if key_tuple in _STATIC else _static(*key_tuple)
    if static is None:
        return None
    if static.required and (user if static.required[0] == "user_name" else key) is None:
        return None
    try:
        session_handle = session_value(session)
    except (BadValue, ValueError):
        return None
    usecs = int(usecs_text)
    sequence_no = int(sequence, 16)
    reboot_counter = int(reboot, 16)
    # identity.text_content of the same record as the line path sees it (a property test holds them equal).
    content = (
        f"time={time_text}, usecs:{usecs_text}\nsequence_no={sequence}\nreboot_counter={reboot}"
        f"\ncommand_type={command}\nopcode={opcode}\nsession_handle={session}\nresponse={response}"
        f"\nlog_type={log_type}"
    )
    if user is not None:
        content += f"\nuser_name={user}\nuser_type={user_type}"
    elif key is not None:
        content += f"\nkey_handle={key}\npublic_key_handle={public}"
    return (
        static,
        time_text,
        usecs,
        sequence_no,
        reboot_counter,
        session_handle,
        user,
        int(key) or None if key is not None else None,
        int(public) or None if public is not None else None,
        blake2b(
            f"{cluster_id or ''}|{hsm_id or ''}|{reboot_counter}|{sequence_no}|{usecs}|{content}".encode(
                "utf-8", "surrogatepass"
            ),
            digest_size=16,
        ).hexdigest(),  # identity.text_event_id, inlined (ASCII text; its ints are never None here)
    )


_USECS_LIMIT: Final = 253_402_300_800_000_000
"""10000-01-01T00:00:00Z in usecs: `format_times` (datetime) cannot represent this or later."""


def lean_identity(message: str, cluster_id: str | None, hsm_id: str | None) -> tuple[int, str] | None:
    """(usecs, event_id) of a record that `parse_message` parses clean on its fast path, else None.

    The lean HEC event is the record text as written plus its time and id (and the stream's
    cluster and HSM), so the Firehose transformation needs nothing else from the parse: this is the
    same match and the same checks as `_fast_text` without building an `HsmEvent` (about half of
    the parse's cost, benchmarks/parse_bench.py). None means: call `parse_message`, which flags or
    explains the record. A property test holds both equal to `parse_message` for any message.
    """
    if not (message.startswith("Time: ") and message.isascii()):
        return None
    if _lean_c is not None:
        # the same match, checks and id in C; NotImplemented leaves the record to the lines below
        # (a repeating part not converted yet, which they convert and remember in _STATIC)
        lean = _lean_c(message, cluster_id, hsm_id, _STATIC)
        if lean is not NotImplemented:
            return lean
    core = _clean_core(message, cluster_id, hsm_id)
    return None if core is None else (core[2], core[9])


def _clean_core(message: str, cluster_id: str | None, hsm_id: str | None) -> _Core | None:
    """`_fast_core` of an ASCII record the fast path parses clean (before the year 10000), else None."""
    if not (message.startswith("Time: ") and message.isascii()):
        return None
    try:
        core = _fast_core(message, cluster_id, hsm_id)
    except Exception:  # anything odd is parse_message's to explain
        return None
    return None if core is None or core[2] >= _USECS_LIMIT else core


def lean_position(
    message: str, cluster_id: str | None, hsm_id: str | None
) -> tuple[int, str, int, int] | None:
    """`lean_identity`'s (usecs, event_id) and the record's (reboot_counter, sequence_no), or None.

    For a stream whose order is followed (the subscription Lambda's SequenceGaps) on the Python
    path: the same match and checks as `lean_identity`, so a clean record needs no `HsmEvent`.
    """
    core = _clean_core(message, cluster_id, hsm_id)
    return None if core is None else (core[2], core[9], core[4], core[3])


_U64: Final = 1 << 64


def lean_lines(
    entries: list[Any],
    start: int,
    cluster_id: str | None,
    hsm_id: str | None,
    before_text: bytes,
    before_id: bytes,
    reboot: int | None = None,
    sequence: int | None = None,
) -> tuple[bytes, int, int | None, int | None, int] | None:
    """The lean HEC lines of a run of one stream's clean records, in one call into the C core.

    From `entries[start]` (CloudWatch log events) on, while `lean_identity` would be sure of the
    record, its line as `EventEncoder.text_line` writes it (`before_text`/`before_id` are
    `EventEncoder.lean_parts` of the stream), each ending in a newline. On the way it follows the
    stream's order from the last (reboot counter, sequence number) seen. Returns (the lines, the
    index it stopped at: the first record left to the Python path, or the end; the last reboot
    counter and sequence number; the records missing between consecutive records of one boot), or
    None when the compiled core is not here (then every record takes the Python path).
    """
    if _lean_lines_c is None:
        return None
    known = reboot is not None and sequence is not None and 0 <= reboot < _U64 and 0 <= sequence < _U64
    run = _lean_lines_c(
        entries, start, cluster_id, hsm_id, _STATIC, before_text, before_id,
        reboot if known else None, sequence if known else None,
    )  # fmt: skip
    if run[1] == start:  # it took no record: the position stays the caller's (whatever its size)
        return run[0], start, reboot, sequence, 0
    return run


_replace: Final = msgspec.structs.replace


def _parse_text_lines(message: str, ctx: RecordContext) -> HsmEvent:
    """General path: any line order, unknown labels, CRLF; reports everything that is wrong."""
    text = message.replace("\r\n", "\n").replace("\r", "\n") if "\r" in message else message
    values: dict[str, str] = {}
    extra: dict[str, str] | None = None
    errors: list[str] = []
    for text_line in text.split("\n"):
        # str methods, not a regex: linear in the line's length whatever its whitespace.
        line = text_line.strip(" \t")
        if not line:
            continue  # blank line
        label, colon, value = line.partition(":")
        if not colon:
            errors.append(f"unrecognised line {line[:40]!r}")
            continue
        label, value = label.rstrip(" \t"), value.lstrip(" \t")
        key = _LABELS.get(label)
        if key is None:
            folded = _SPACES.sub(" ", label)
            key = _LABELS.get(folded)
            if key is None:
                if not _LABEL_SHAPE.fullmatch(label):
                    errors.append(f"unrecognised line {(label + ':' + value)[:40]!r}")
                    continue
                if extra is None:
                    extra = {}
                if folded in extra:
                    errors.append(f"duplicate line {folded!r}")
                else:
                    extra[folded] = value
                continue
        if key in values:
            errors.append(f"duplicate line {label!r}")
            continue
        values[key] = value

    fields: dict[str, Any] = {}
    for key, value in values.items():
        try:
            CONVERTERS[key](value, fields)
        except (BadValue, ValueError):
            errors.append(f"bad {_LABEL_OF.get(key, key)} value {value[:40]!r}")
    log_type = fields.get("log_type")
    missing = [key for key in _REQUIRED if key not in values]
    if isinstance(log_type, str):
        missing += [key for key in _REQUIRED_BY_LOG_TYPE.get(log_type, ()) if key not in values]
    if missing:
        errors.insert(0, "missing field(s): " + ", ".join(_LABEL_OF[key] for key in missing))
    if "usecs" not in fields and "time_text" in fields and "time" in values:
        usecs = usecs_from_text(fields["time_text"])
        if usecs is not None:
            fields["usecs"] = usecs
            errors.append("Time line has no usecs; time taken from its text")
    if errors:
        content = lines_content(text)
    else:
        content = text_content({key: values[key] for key in _KEY_ORDER if key in values}, extra)
    return _text_event(message, ctx, fields, extra, errors, content)


def _text_event(
    message: str,
    ctx: RecordContext,
    fields: dict[str, Any],
    extra: dict[str, str] | None,
    errors: list[str],
    content: str,
) -> HsmEvent:
    """Finish a text record: time, outcome, category, severity and id from the converted fields."""
    # Time: usecs is authoritative (§3); the text form must agree or the disagreement is flagged.
    usecs: int | None = fields.pop("usecs", None)
    time_text: str | None = fields.pop("time_text", None)
    iso: str | None = None
    if usecs is not None:
        try:
            iso, expected_text = format_times(usecs)
        except (OverflowError, ValueError, OSError):
            errors.append(f"usecs {usecs} is out of range")
            usecs = None
        else:
            if time_text is not None and time_text != expected_text:
                extra = dict(extra or {})
                extra["time_disagreement"] = time_text
    kind = fields.pop("response_kind", None)
    success: bool | None = None
    if "response" in fields:
        success = kind == "HSM Return" and fields.get("response_code") == 0
    parse_error = "; ".join(errors) if errors else None
    opcode = fields.get("opcode")
    sequence_no = fields.get("sequence_no")
    reboot_counter = fields.get("reboot_counter")
    derived = derive(
        opcode,
        success,
        fields.get("user_type"),
        fields.get("target_user_type"),
        fields.get("log_type"),
        bool(sequence_no),
        parse_error is not None,
    )
    if parse_error is None or (usecs is not None and sequence_no is not None and reboot_counter is not None):
        event_id = text_event_id(ctx.cluster_id, ctx.hsm_id, reboot_counter, sequence_no, usecs, content)
    else:
        event_id = unparsed_event_id(ctx.cluster_id, ctx.log_stream, ctx.cwl_id, message)
    return HsmEvent(
        time=iso,
        usecs=usecs,
        cluster_id=ctx.cluster_id,
        hsm_id=ctx.hsm_id,
        record_format="text",
        success=success,
        outcome=derived[0],
        category=derived[1],
        action=derived[2],
        severity=derived[3],
        event_id=event_id,
        log_group=ctx.log_group,
        log_stream=ctx.log_stream,
        cwl_id=ctx.cwl_id,
        cwl_timestamp=ctx.cwl_timestamp,
        extra=extra,
        parse_error=parse_error,
        raw=message,
        **fields,
    )
