"""The parser: one CloudWatch log message (a CloudHSM audit record) -> one `HsmEvent`.

Sits at the head of every flow: sources hand it message text plus where it came from (log group
and stream), it returns a normalised event. It never raises on record content: whatever it cannot
read is reported in `parse_error` with `raw` kept (contracts.md §1).

Facts from `shared/reference/cloudhsm-audit-format.md`:
- §2.1: a record is a `Time:` line then `label<SEP>value` lines; `<SEP>` is ` : `, `: ` or TABs
  before `: `; split at the first separator only (the Response value has more colons).
- §2.3: newer variants add or reorder lines, so parse into a label map, never by position.
- §8.1: certificate-storage records are JSON objects with `op_code`; their handles exceed 2^53.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any, Final

import msgspec

from hsmaudit.records.event import SEVERITY_RANK, HsmEvent, Severity
from hsmaudit.records.identity import certificate_event_id, text_event_id, unparsed_event_id
from hsmaudit.records.opcodes import (
    CRYPTO_OFFICER_TYPES,
    TIME_INFO_LOG_TYPE,
    opcode_info,
)

CLOUDHSM_LOG_GROUP_PREFIX: Final = "/aws/cloudhsm/"

NOT_A_RECORD: Final = "not a CloudHSM audit record"

# Every line of a record, in one C-level pass: (label, value) for `label[ \t]*:[ \t]*value`
# lines, or (_, _, text) for a line without a colon (garbage unless blank).
_LINE: Final = re.compile(r"^[ \t]*(?:([^:\n]*?)[ \t]*:[ \t]*([^\n]*?)|([^\n]*?))[ \t\r]*$", re.MULTILINE)
_TIME_TEXT: Final = re.compile(r"^(\d{2})/(\d{2})/(\d{2}) (\d{2}):(\d{2}):(\d{2})\.(\d{6})$")
_USEC_VALUE: Final = re.compile(r"usecs?[ \t]*:[ \t]*(\d+)")
# A text record whose lines were reordered still has its skeleton labels somewhere.
_TEXT_RECORD_HINT: Final = re.compile(r"^[ \t]*(?:Time|Sequence No|Opcode)[ \t]*:", re.MULTILINE)
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
_TRUE: Final = frozenset({"yes", "true", "enabled", "1", "on"})
_FALSE: Final = frozenset({"no", "false", "disabled", "0", "off"})


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
    cluster_id = cluster_id_from_log_group(log_group)
    context = _Context(
        log_group or None,
        log_stream or None,
        cluster_id,
        hsm_id_from_log_stream(log_stream, cluster_id),
        cwl_id or None,
        cwl_timestamp,
    )
    stripped = message.lstrip()
    if stripped.startswith("Time") or _TEXT_RECORD_HINT.search(message):
        return _parse_text(message, context)
    if stripped.startswith("{"):
        return _parse_certificate(message, context)
    return _unparsed(message, context, NOT_A_RECORD if stripped else "empty message")


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
    text = message.replace("\r\n", "\n").replace("\r", "\n") if "\r" in message else message
    values: dict[str, str] = {}
    extra: dict[str, str] | None = None
    errors: list[str] = []
    for label, value, junk in _LINE.findall(text):
        if junk:
            errors.append(f"unrecognised line {junk[:40]!r}")
            continue
        if not label and not value:
            continue  # blank line
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

    # Time: usecs is authoritative (§3); the text form must agree or the disagreement is flagged.
    usecs: int | None = fields.pop("usecs", None)
    time_text: str | None = fields.pop("time_text", None)
    if usecs is None and time_text is not None and "time" in values:
        usecs = _usecs_from_text(time_text)
        if usecs is not None:
            errors.append("Time line has no usecs; time taken from its text")
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

    response_code = fields.get("response_code")
    kind = fields.pop("response_kind", None)
    success: bool | None = None
    if "response" in fields:
        success = kind == "HSM Return" and response_code == 0
    opcode = fields.get("opcode")
    info = opcode_info(opcode)
    category = "time_sync" if log_type == TIME_INFO_LOG_TYPE else info.category
    parse_error = "; ".join(errors) if errors else None
    severity = _severity(info.severity, opcode, success, fields, parse_error)
    if parse_error is None or (
        usecs is not None
        and fields.get("sequence_no") is not None
        and fields.get("reboot_counter") is not None
    ):
        event_id = text_event_id(
            ctx.cluster_id, ctx.hsm_id, fields.get("reboot_counter"), fields.get("sequence_no"), usecs
        )
    else:
        event_id = unparsed_event_id(ctx.cluster_id, ctx.log_stream, ctx.cwl_id, message)
    return HsmEvent(
        time=iso,
        usecs=usecs,
        cluster_id=ctx.cluster_id,
        hsm_id=ctx.hsm_id,
        record_format="text",
        success=success,
        outcome=None if success is None else ("success" if success else "failure"),
        category=category,
        action=info.action,
        severity=severity,
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


def _severity(
    base: Severity, opcode: str | None, success: bool | None, fields: dict[str, Any], parse_error: str | None
) -> Severity:
    """Base severity from the opcode table, raised by what the record says (§4, §9)."""
    rank = SEVERITY_RANK[base]
    if opcode == "CN_LOGIN" and success is False:
        # A failed crypto-officer login is an attack on the keys to the kingdom.
        rank = max(
            rank, SEVERITY_RANK["critical" if fields.get("user_type") in CRYPTO_OFFICER_TYPES else "high"]
        )
    elif opcode == "CN_CHANGE_PSWD" and (
        fields.get("user_type") in CRYPTO_OFFICER_TYPES
        or fields.get("target_user_type") in CRYPTO_OFFICER_TYPES
    ):
        rank = max(rank, SEVERITY_RANK["critical"])
    elif opcode == "CN_INIT_TOKEN" and (fields.get("sequence_no") or 0) > 0:
        # Initialisation is the first record of a new HSM; later in a stream it re-initialises one.
        rank = max(rank, SEVERITY_RANK["critical"])
    elif success is False:
        rank = max(rank, SEVERITY_RANK["medium"])
    if parse_error is not None:
        rank = max(rank, SEVERITY_RANK["medium"])
    return _SEVERITY_BY_RANK[rank]


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


def _enum(text: str) -> tuple[str, int | None]:
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
    fields["session_handle"] = f"0x{_hex(value):x}"


def _set_response(value: str, fields: dict[str, Any]) -> None:
    # `157:HSM Error: user isn't initialized ...`: decimal code, kind, text (§5).
    code, sep, rest = value.partition(":")
    rest = rest.lstrip()
    kind, sep2, text = rest.partition(":")
    if not sep or not sep2 or not code.strip().isdigit() or kind not in ("HSM Return", "HSM Error"):
        fields["response"] = value
        raise _Bad(value)
    fields["response_code"] = int(code)
    fields["response_kind"] = kind
    fields["response"] = text.strip() or None


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
    if word in _TRUE:
        fields["mfa_enabled"] = True
    elif word in _FALSE:
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


# --- time --------------------------------------------------------------------------------

_SECOND_CACHE: dict[int, tuple[str, str]] = {}


def format_times(usecs: int) -> tuple[str, str]:
    """usecs -> (ISO-8601 with 6 digits and Z, the record's own `MM/DD/YY hh:mm:ss.ffffff`).

    Records come in bursts within the same second, so the date part is cached per second.
    """
    seconds, micros = divmod(usecs, 1_000_000)
    parts = _SECOND_CACHE.get(seconds)
    if parts is None:
        moment = datetime.fromtimestamp(seconds, UTC)
        parts = (moment.strftime("%Y-%m-%dT%H:%M:%S"), moment.strftime("%m/%d/%y %H:%M:%S"))
        if len(_SECOND_CACHE) >= 4096:
            _SECOND_CACHE.clear()
        _SECOND_CACHE[seconds] = parts
    return f"{parts[0]}.{micros:06d}Z", f"{parts[1]}.{micros:06d}"


def format_usecs(usecs: int) -> str:
    """ISO-8601 UTC with exactly six fractional digits and `Z` (the contract's `time`)."""
    return format_times(usecs)[0]


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
        event_id=certificate_event_id(ctx.cluster_id, ctx.log_stream, opcode, handle, usecs, response),
        log_group=ctx.log_group,
        log_stream=ctx.log_stream,
        cwl_id=ctx.cwl_id,
        cwl_timestamp=ctx.cwl_timestamp,
        extra=extra,
        parse_error=parse_error,
        raw=message,
    )
