"""Value converters of classic text records: each reads one label's value into typed fields.

`CONVERTERS` maps a field name to its converter; a value that does not have the form its label
promises raises `BadValue` (the parser turns it into `parse_error`). Repeating values (names with
codes, responses, session handles) are memoised (`records.cache.remember`).
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any, Final

from hsmaudit.booleans import FALSE, TRUE
from hsmaudit.errors import HsmauditError
from hsmaudit.records.cache import remember

_TIME_TEXT: Final = re.compile(r"^(\d{2})/(\d{2})/(\d{2}) (\d{2}):(\d{2}):(\d{2})\.(\d{6})$")
_USEC_VALUE: Final = re.compile(r"usecs?[ \t]*:[ \t]*(\d+)")


class BadValue(HsmauditError, ValueError):
    """A value that does not have the form its label promises (the parser makes it `parse_error`)."""


def _int_auto(text: str) -> int:
    """Decimal, or hex with a 0x prefix (any case)."""
    if text[:2] in ("0x", "0X"):
        return int(text, 16)
    if not text.isdigit():
        raise BadValue(text)
    return int(text)


def _hex(text: str) -> int:
    if text[:2] not in ("0x", "0X"):
        raise BadValue(text)
    return int(text, 16)


_ENUMS: dict[str, tuple[str, int | None]] = {}
_RESPONSES: dict[str, tuple[int, str, str | None]] = {}
_SESSIONS: dict[str, str] = {}


def enum_value(text: str) -> tuple[str, int | None]:
    """`NAME (code)` -> (NAME, code), memoised: a stream repeats a few dozen such values."""
    hit = _ENUMS.get(text)
    if hit is None:
        hit = remember(_ENUMS, text, _enum_uncached(text))
    return hit


def session_value(text: str) -> str:
    hit = _SESSIONS.get(text)
    if hit is None:
        hit = remember(_SESSIONS, text, f"0x{_hex(text):x}")
    return hit


def response_value(value: str) -> tuple[int, str, str | None]:
    """`157:HSM Error: user isn't initialized ...` -> (157, "HSM Error", text) (§5), memoised."""
    hit = _RESPONSES.get(value)
    if hit is None:
        code, sep, rest = value.partition(":")
        rest = rest.lstrip()
        kind, sep2, text = rest.partition(":")
        if not sep or not sep2 or not code.strip().isdigit() or kind not in ("HSM Return", "HSM Error"):
            raise BadValue(value)
        hit = remember(_RESPONSES, value, (int(code), kind, text.strip() or None))
    return hit


def _enum_uncached(text: str) -> tuple[str, int | None]:
    """`NAME (code)` -> (NAME, code); a bare NAME is accepted with no code."""
    name, sep, code = text.rpartition(" (")
    if not sep:
        if not text or " " in text:
            raise BadValue(text)
        return text, None
    if not code.endswith(")") or not name:
        raise BadValue(text)
    return name.rstrip(), _int_auto(code[:-1].strip())


def _set_time(value: str, fields: dict[str, Any]) -> None:
    match = _USEC_VALUE.search(value)
    if match is None:
        text = value.rstrip(", ")
        if _TIME_TEXT.match(text) is None:
            raise BadValue(value)
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
    fields["command_type"], fields["command_type_code"] = enum_value(value)


def _set_opcode(value: str, fields: dict[str, Any]) -> None:
    fields["opcode"], fields["opcode_code"] = enum_value(value)


def _set_session(value: str, fields: dict[str, Any]) -> None:
    fields["session_handle"] = session_value(value)


def _set_response(value: str, fields: dict[str, Any]) -> None:
    try:
        fields["response_code"], fields["response_kind"], fields["response"] = response_value(value)
    except BadValue:
        fields["response"] = value
        raise


def _set_log_type(value: str, fields: dict[str, Any]) -> None:
    fields["log_type"], fields["log_type_code"] = enum_value(value)


def _set_user_type(value: str, fields: dict[str, Any]) -> None:
    fields["user_type"], fields["user_type_code"] = enum_value(value)


def _set_target_user_type(value: str, fields: dict[str, Any]) -> None:
    fields["target_user_type"], fields["target_user_type_code"] = enum_value(value)


def _set_operation(value: str, fields: dict[str, Any]) -> None:
    fields["operation"], fields["operation_code"] = enum_value(value)


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
        raise BadValue(value)


def _string(field: str) -> Any:
    def setter(value: str, fields: dict[str, Any]) -> None:
        fields[field] = value or None

    return setter


def _usec_line(field: str) -> Any:
    # TIME_INFO_LOG (§2.2): `local time : 04/22/22 ..., usec:<n>`, `propagation delay : usec:<n>`.
    def setter(value: str, fields: dict[str, Any]) -> None:
        match = _USEC_VALUE.search(value)
        if match is None:
            raise BadValue(value)
        fields[field] = int(match.group(1))

    return setter


CONVERTERS: Final[dict[str, Any]] = {
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


def usecs_from_text(text: str) -> int | None:
    match = _TIME_TEXT.match(text)
    if match is None:
        return None
    month, day, year, hour, minute, second, micros = (int(part) for part in match.groups())
    try:
        moment = datetime(2000 + year, month, day, hour, minute, second, tzinfo=UTC)
    except ValueError:
        return None
    return int(moment.timestamp()) * 1_000_000 + micros
