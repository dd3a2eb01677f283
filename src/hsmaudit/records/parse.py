"""The parser: one CloudWatch log message (a CloudHSM audit record) -> one `HsmEvent`.

Sits at the head of every flow: sources hand it message text plus where it came from (log group
and stream), it returns a normalised event. It never raises on record content: whatever it cannot
read is reported in `parse_error` with `raw` kept (contracts.md §1).

Facts from `docs/reference/cloudhsm-records.md`:
- §2.1: a record is a `Time:` line then `label<SEP>value` lines; `<SEP>` is ` : `, `: ` or TABs
  before `: `; split at the first separator only (the Response value has more colons).
- §2.3: newer variants add or reorder lines, so parse into a label map, never by position.
- §8.1: certificate-storage records are JSON objects with `op_code`; their handles exceed 2^53.
"""

from __future__ import annotations

import functools
import re
from datetime import UTC, datetime
from hashlib import blake2b
from typing import Any, Final, NamedTuple

import msgspec

from hsmaudit.booleans import FALSE, TRUE
from hsmaudit.records.event import SEVERITY_RANK, Category, HsmEvent, Outcome, Severity
from hsmaudit.records.identity import (
    certificate_event_id,
    json_content,
    lines_content,
    text_content,
    text_event_id,
    unparsed_event_id,
)
from hsmaudit.records.opcodes import (
    CRYPTO_OFFICER_TYPES,
    TIME_INFO_LOG_TYPE,
    opcode_info,
)

# Re-exported (the `as` form is the explicit re-export) for callers that still import them here.
from hsmaudit.records.time import format_times as format_times  # noqa: PLC0414
from hsmaudit.records.time import format_usecs as format_usecs  # noqa: PLC0414

CLOUDHSM_LOG_GROUP_PREFIX: Final = "/aws/cloudhsm/"

NOT_A_RECORD: Final = "not a CloudHSM audit record"

_TIME_TEXT: Final = re.compile(r"^(\d{2})/(\d{2})/(\d{2}) (\d{2}):(\d{2}):(\d{2})\.(\d{6})$")
_USEC_VALUE: Final = re.compile(r"usecs?[ \t]*:[ \t]*(\d+)")
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


class _Bad(ValueError):
    """A value that does not have the form its label promises (becomes `parse_error`)."""


def cluster_id_from_log_group(log_group: str | None) -> str | None:
    """`/aws/cloudhsm/cluster-likphkxygsn` -> `cluster-likphkxygsn`; None for other groups."""
    if log_group and log_group.startswith(CLOUDHSM_LOG_GROUP_PREFIX):
        rest = log_group[len(CLOUDHSM_LOG_GROUP_PREFIX) :].strip("/")
        return rest or None
    return None


def hsm_id_from_log_stream(log_stream: str | None, cluster_id: str | None) -> str | None:
    """The HSM id is the stream name, except for the cluster-named certificate stream (§1)."""
    if not log_stream or log_stream == cluster_id or log_stream.startswith("cluster-"):
        return None
    return log_stream


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
    origin = _ORIGINS.get((log_group, log_stream))
    if origin is None:
        origin = _origin(log_group, log_stream)
    if message.startswith("Time: ") and message.isascii():
        # The canonical record, with no _Context and no dispatch: what the Lambdas carry.
        try:
            fast = _fast_text(message, *origin, cwl_id or None, cwl_timestamp)
        except (ValueError, OverflowError):
            fast = None  # as in _parse_text: the line path names the bad value
        except Exception as error:  # total, as below
            return _unparsed(
                message,
                _Context(*origin, cwl_id or None, cwl_timestamp),
                f"unreadable record ({type(error).__name__})",
            )
        if fast is not None:
            return fast
    context = _Context(*origin, cwl_id or None, cwl_timestamp)
    if not message.isascii():
        try:
            message.encode("utf-8")
        except UnicodeEncodeError:
            return _with_surrogates_escaped(message, context)
    try:
        return _classify(message, context)
    except Exception as error:  # the parser is total: bad input is data, never a raise
        return _unparsed(message, context, f"unreadable record ({type(error).__name__})")


def _classify(message: str, context: _Context) -> HsmEvent:
    """Pick the record format by its first characters and parse it."""
    if message.startswith("Time: "):
        return _parse_text(message, context)
    stripped = message.lstrip()
    if stripped.startswith("Time") or _TEXT_RECORD_HINT.search(message):
        return _parse_text(message, context)
    if stripped.startswith("{"):
        return _parse_certificate(message, context)
    return _unparsed(message, context, NOT_A_RECORD if stripped else "empty message")


SURROGATES_ESCAPED: Final = "lone surrogate(s) in the record, kept as \\uXXXX escapes"


def _with_surrogates_escaped(message: str, context: _Context) -> HsmEvent:
    """A record with lone surrogates (no UTF-8 form) is parsed with each one written `\\udXXX`.

    The escapes keep the original reversibly visible in `raw` and every later stage (JSON, HEC,
    SQLite) can encode the event; `parse_error` flags the record so it is never taken as clean.
    """
    escaped = message.encode("utf-8", "backslashreplace").decode("utf-8")
    try:
        event = _classify(escaped, context)
    except Exception as error:  # total, as above
        event = _unparsed(escaped, context, f"unreadable record ({type(error).__name__})")
    errors = (event.parse_error, SURROGATES_ESCAPED) if event.parse_error else (SURROGATES_ESCAPED,)
    flagged = "; ".join(errors)
    return msgspec.structs.replace(event, parse_error=flagged)


_ORIGINS: dict[tuple[str | None, str | None], tuple[str | None, str | None, str | None, str | None]] = {}


def _origin(
    log_group: str | None, log_stream: str | None
) -> tuple[str | None, str | None, str | None, str | None]:
    """(log_group, log_stream, cluster_id, hsm_id), memoised: a payload has one group and stream."""
    cluster_id = cluster_id_from_log_group(log_group)
    origin = (
        log_group or None,
        log_stream or None,
        cluster_id,
        hsm_id_from_log_stream(log_stream, cluster_id),
    )
    if len(_ORIGINS) >= _CACHE_LIMIT:
        _ORIGINS.clear()
    _ORIGINS[(log_group, log_stream)] = origin
    return origin


class _Context(msgspec.Struct, frozen=True):
    log_group: str | None
    log_stream: str | None
    cluster_id: str | None
    hsm_id: str | None
    cwl_id: str | None
    cwl_timestamp: int | None


def _unparsed(message: str, ctx: _Context, error: str) -> HsmEvent:
    return HsmEvent(
        cluster_id=ctx.cluster_id,
        hsm_id=ctx.hsm_id,
        category="other",
        severity="medium",
        event_id=unparsed_event_id(ctx.cluster_id, ctx.log_stream, ctx.cwl_id, message),
        log_group=ctx.log_group,
        log_stream=ctx.log_stream,
        cwl_id=ctx.cwl_id,
        cwl_timestamp=ctx.cwl_timestamp,
        parse_error=error,
        raw=message,
    )


# --- classic text records ---------------------------------------------------------------


def _parse_text(message: str, ctx: _Context) -> HsmEvent:
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
        command_name, command_code = _enum(command)
        opcode_name, opcode_code = _enum(opcode)
        log_type_name, log_type_code = _enum(log_type)
        response_code, kind, response_text = _response(response)
        user_type_name, user_type_code = _enum(user_type) if user_type is not None else (None, None)
    except (_Bad, ValueError):
        static = None
    else:
        success = kind == "HSM Return" and response_code == 0
        derived = [
            _derive(opcode_name, success, user_type_name, None, log_type_name, later, False)
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
    if len(_STATIC) >= _CACHE_LIMIT:
        _STATIC.clear()
    _STATIC[(command, opcode, response, log_type, user_type)] = static
    return static


def _fast_text_event(message: str, ctx: _Context) -> HsmEvent | None:
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
    match = _FAST_RECORD.match(message)
    if match is None:
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
    ) = match.groups()
    key_tuple = (command, opcode, response, log_type, user_type)
    static = _STATIC[key_tuple] if key_tuple in _STATIC else _static(*key_tuple)
    if static is None:
        return None
    if static.required and (user if static.required[0] == "user_name" else key) is None:
        return None
    try:
        session_handle = _session(session)
    except (_Bad, ValueError):
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
    try:
        core = _fast_core(message, cluster_id, hsm_id)
    except Exception:  # anything odd is parse_message's to explain
        return None
    if core is None or core[2] >= _USECS_LIMIT:
        return None
    return core[2], core[9]


_replace: Final = msgspec.structs.replace


def _parse_text_lines(message: str, ctx: _Context) -> HsmEvent:
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
            _CONVERTERS[key](value, fields)
        except (_Bad, ValueError):
            errors.append(f"bad {_LABEL_OF.get(key, key)} value {value[:40]!r}")
    log_type = fields.get("log_type")
    missing = [key for key in _REQUIRED if key not in values]
    if isinstance(log_type, str):
        missing += [key for key in _REQUIRED_BY_LOG_TYPE.get(log_type, ()) if key not in values]
    if missing:
        errors.insert(0, "missing field(s): " + ", ".join(_LABEL_OF[key] for key in missing))
    if "usecs" not in fields and "time_text" in fields and "time" in values:
        usecs = _usecs_from_text(fields["time_text"])
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
    ctx: _Context,
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
    derived = _derive(
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


@functools.lru_cache(maxsize=4096)
def _derive(
    opcode: str | None,
    success: bool | None,
    user_type: str | None,
    target_user_type: str | None,
    log_type: str | None,
    past_first_record: bool,
    has_error: bool,
) -> tuple[Outcome | None, Category, str, Severity]:
    """(outcome, category, action, severity): a pure function of few values, so it is cached."""
    info = opcode_info(opcode)
    category: Category = "time_sync" if log_type == TIME_INFO_LOG_TYPE else info.category
    outcome: Outcome | None = None if success is None else ("success" if success else "failure")
    rank = SEVERITY_RANK[info.severity]
    if opcode == "CN_LOGIN" and success is False:
        # A failed crypto-officer login is an attack on the keys to the kingdom.
        rank = max(rank, SEVERITY_RANK["critical" if user_type in CRYPTO_OFFICER_TYPES else "high"])
    elif opcode == "CN_CHANGE_PSWD" and (
        user_type in CRYPTO_OFFICER_TYPES or target_user_type in CRYPTO_OFFICER_TYPES
    ):
        rank = max(rank, SEVERITY_RANK["critical"])
    elif opcode == "CN_INIT_TOKEN" and past_first_record:
        # Initialisation is the first record of a new HSM; later in a stream it re-initialises one.
        rank = max(rank, SEVERITY_RANK["critical"])
    elif success is False:
        rank = max(rank, SEVERITY_RANK["medium"])
    if has_error:
        rank = max(rank, SEVERITY_RANK["medium"])
    return outcome, category, info.action, _SEVERITY_BY_RANK[rank]


_SEVERITY_BY_RANK: Final[dict[int, Severity]] = {0: "info", 1: "medium", 2: "high", 3: "critical"}


# --- value converters: each reads one label's value into typed fields ---------------------


def _int_auto(text: str) -> int:
    """Decimal, or hex with a 0x prefix (any case)."""
    if text[:2] in ("0x", "0X"):
        return int(text, 16)
    if not text.isdigit():
        raise _Bad(text)
    return int(text)


def _hex(text: str) -> int:
    if text[:2] not in ("0x", "0X"):
        raise _Bad(text)
    return int(text, 16)


_CACHE_LIMIT: Final = 4096
_ENUMS: dict[str, tuple[str, int | None]] = {}
_RESPONSES: dict[str, tuple[int, str, str | None]] = {}
_SESSIONS: dict[str, str] = {}


def _enum(text: str) -> tuple[str, int | None]:
    """`NAME (code)` -> (NAME, code), memoised: a stream repeats a few dozen such values."""
    hit = _ENUMS.get(text)
    if hit is None:
        hit = _enum_uncached(text)
        if len(_ENUMS) < _CACHE_LIMIT:
            _ENUMS[text] = hit
    return hit


def _session(text: str) -> str:
    hit = _SESSIONS.get(text)
    if hit is None:
        hit = f"0x{_hex(text):x}"
        if len(_SESSIONS) >= _CACHE_LIMIT:
            _SESSIONS.clear()
        _SESSIONS[text] = hit
    return hit


def _response(value: str) -> tuple[int, str, str | None]:
    """`157:HSM Error: user isn't initialized ...` -> (157, "HSM Error", text) (§5), memoised."""
    hit = _RESPONSES.get(value)
    if hit is None:
        code, sep, rest = value.partition(":")
        rest = rest.lstrip()
        kind, sep2, text = rest.partition(":")
        if not sep or not sep2 or not code.strip().isdigit() or kind not in ("HSM Return", "HSM Error"):
            raise _Bad(value)
        hit = (int(code), kind, text.strip() or None)
        if len(_RESPONSES) < _CACHE_LIMIT:
            _RESPONSES[value] = hit
    return hit


def _enum_uncached(text: str) -> tuple[str, int | None]:
    """`NAME (code)` -> (NAME, code); a bare NAME is accepted with no code."""
    name, sep, code = text.rpartition(" (")
    if not sep:
        if not text or " " in text:
            raise _Bad(text)
        return text, None
    if not code.endswith(")") or not name:
        raise _Bad(text)
    return name.rstrip(), _int_auto(code[:-1].strip())


def _set_time(value: str, fields: dict[str, Any]) -> None:
    match = _USEC_VALUE.search(value)
    if match is None:
        text = value.rstrip(", ")
        if _TIME_TEXT.match(text) is None:
            raise _Bad(value)
        fields["time_text"] = text
        return
    fields["usecs"] = int(match.group(1))
    text = value[: match.start()].rstrip(", \t")
    if text:
        fields["time_text"] = text


def _set_sequence(value: str, fields: dict[str, Any]) -> None:
    fields["sequence_no"] = _hex(value)


def _set_reboot(value: str, fields: dict[str, Any]) -> None:
    fields["reboot_counter"] = _hex(value)


def _set_command_type(value: str, fields: dict[str, Any]) -> None:
    fields["command_type"], fields["command_type_code"] = _enum(value)


def _set_opcode(value: str, fields: dict[str, Any]) -> None:
    fields["opcode"], fields["opcode_code"] = _enum(value)


def _set_session(value: str, fields: dict[str, Any]) -> None:
    fields["session_handle"] = _session(value)


def _set_response(value: str, fields: dict[str, Any]) -> None:
    try:
        fields["response_code"], fields["response_kind"], fields["response"] = _response(value)
    except _Bad:
        fields["response"] = value
        raise


def _set_log_type(value: str, fields: dict[str, Any]) -> None:
    fields["log_type"], fields["log_type_code"] = _enum(value)


def _set_user_type(value: str, fields: dict[str, Any]) -> None:
    fields["user_type"], fields["user_type_code"] = _enum(value)


def _set_target_user_type(value: str, fields: dict[str, Any]) -> None:
    fields["target_user_type"], fields["target_user_type_code"] = _enum(value)


def _set_operation(value: str, fields: dict[str, Any]) -> None:
    fields["operation"], fields["operation_code"] = _enum(value)


def _handle(value: str) -> int | None:
    number = _int_auto(value)
    return number or None  # 0 means "no key in this slot" (§2.1)


def _set_key_handle(value: str, fields: dict[str, Any]) -> None:
    fields["key_handle"] = _handle(value)


def _set_public_key_handle(value: str, fields: dict[str, Any]) -> None:
    fields["public_key_handle"] = _handle(value)


def _set_mechanism(value: str, fields: dict[str, Any]) -> None:
    fields["mechanism"] = _int_auto(value)


def _set_number_of_users(value: str, fields: dict[str, Any]) -> None:
    fields["number_of_users"] = _int_auto(value)


def _set_mfa(value: str, fields: dict[str, Any]) -> None:
    word = value.lower()
    if word in TRUE:
        fields["mfa_enabled"] = True
    elif word in FALSE:
        fields["mfa_enabled"] = False
    else:
        raise _Bad(value)


def _string(field: str) -> Any:
    def setter(value: str, fields: dict[str, Any]) -> None:
        fields[field] = value or None

    return setter


def _usec_line(field: str) -> Any:
    # TIME_INFO_LOG (§2.2): `local time : 04/22/22 ..., usec:<n>`, `propagation delay : usec:<n>`.
    def setter(value: str, fields: dict[str, Any]) -> None:
        match = _USEC_VALUE.search(value)
        if match is None:
            raise _Bad(value)
        fields[field] = int(match.group(1))

    return setter


_CONVERTERS: Final[dict[str, Any]] = {
    "time": _set_time,
    "version_no": _string("version_no"),
    "sequence_no": _set_sequence,
    "reboot_counter": _set_reboot,
    "command_type": _set_command_type,
    "opcode": _set_opcode,
    "session_handle": _set_session,
    "response": _set_response,
    "log_type": _set_log_type,
    "user_name": _string("user_name"),
    "user_type": _set_user_type,
    "user_id": _string("user_id"),
    "target_user_name": _string("target_user_name"),
    "target_user_type": _set_target_user_type,
    "target_user_id": _string("target_user_id"),
    "key_handle": _set_key_handle,
    "public_key_handle": _set_public_key_handle,
    "mechanism": _set_mechanism,
    "mfa_enabled": _set_mfa,
    "operation": _set_operation,
    "number_of_users": _set_number_of_users,
    "user_ids": _string("user_ids"),
    "local_time": _usec_line("local_time_usecs"),
    "host_time": _usec_line("host_time_usecs"),
    "propagation_delay": _usec_line("propagation_delay_usecs"),
}


# --- time (formatting: records/time.py) -------------------------------------------------


def _usecs_from_text(text: str) -> int | None:
    match = _TIME_TEXT.match(text)
    if match is None:
        return None
    month, day, year, hour, minute, second, micros = (int(part) for part in match.groups())
    try:
        moment = datetime(2000 + year, month, day, hour, minute, second, tzinfo=UTC)
    except ValueError:
        return None
    return int(moment.timestamp()) * 1_000_000 + micros


# --- certificate-storage records (§8.1) --------------------------------------------------

_JSON_DECODER: Final = msgspec.json.Decoder()


def _parse_certificate(message: str, ctx: _Context) -> HsmEvent:
    try:
        document = _JSON_DECODER.decode(message)  # msgspec keeps integers beyond 2^53 exact
    except msgspec.DecodeError:
        return _unparsed(message, ctx, "malformed JSON record")
    if not isinstance(document, dict) or "op_code" not in document:
        return _unparsed(message, ctx, NOT_A_RECORD + " (JSON without op_code)")
    errors: list[str] = []
    opcode = document.get("op_code")
    if not isinstance(opcode, str) or not opcode:
        errors.append("bad op_code")
        opcode = None
    handle = document.get("object_handle")
    if handle is not None and (isinstance(handle, bool) or not isinstance(handle, int)):
        errors.append("bad object_handle")
        handle = None
    response = document.get("response")
    if response is not None and not isinstance(response, str):
        errors.append("bad response")
        response = None
    if response is None:
        errors.append("missing response")
    attributes = document.get("attributes")
    if attributes is not None and not (
        isinstance(attributes, list) and all(isinstance(a, str) for a in attributes)
    ):
        errors.append("bad attributes")
        attributes = None
    timestamp = document.get("timestamp")
    usecs: int | None = None
    iso: str | None = None
    if isinstance(timestamp, int) and not isinstance(timestamp, bool):
        try:
            iso = format_times(timestamp * 1000)[0]
            usecs = timestamp * 1000
        except (OverflowError, ValueError, OSError):
            errors.append(f"timestamp {timestamp} is out of range")
    else:
        errors.append("missing timestamp")
    extra = {
        key: value if isinstance(value, str) else msgspec.json.encode(value).decode()
        for key, value in document.items()
        if key not in ("op_code", "object_handle", "response", "attributes", "timestamp")
    } or None
    success = None if response is None else response == "OK"
    info = opcode_info(opcode)
    parse_error = "; ".join(errors) if errors else None
    severity: Severity = info.severity
    if success is False or parse_error is not None:
        severity = _SEVERITY_BY_RANK[max(SEVERITY_RANK[severity], SEVERITY_RANK["medium"])]
    return HsmEvent(
        time=iso,
        usecs=usecs,
        cluster_id=ctx.cluster_id,
        hsm_id=ctx.hsm_id,
        record_format="certificate",
        opcode=opcode,
        response=response,
        success=success,
        outcome=None if success is None else ("success" if success else "failure"),
        object_handle=handle,
        attributes=attributes,
        category="certificate",
        action=info.action,
        severity=severity,
        event_id=certificate_event_id(ctx.cluster_id, ctx.log_stream, json_content(document)),
        log_group=ctx.log_group,
        log_stream=ctx.log_stream,
        cwl_id=ctx.cwl_id,
        cwl_timestamp=ctx.cwl_timestamp,
        extra=extra,
        parse_error=parse_error,
        raw=message,
    )
