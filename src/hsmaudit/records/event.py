"""The event: one normalised CloudHSM audit record (contracts.md §1).

Every other part of hsmaudit speaks in `HsmEvent`s: the parser makes them, the HEC client and
the local store carry them, the detections read them. The model is a frozen `msgspec.Struct`
rather than a dataclass because construction and JSON encoding sit on the Lambda's hot path:
`benchmarks/parse_bench.py` measures msgspec at several times the speed of a frozen slotted
dataclass with `json`/`orjson` for the same 40 fields.

Field names and meanings are the contract; add fields freely, rename none. JSON leaves absent
(None) values out, the contract's compact form: an event is 35-47% smaller on the wire and in
Splunk's index than with explicit nulls, and Splunk would otherwise index `null` as a string.
Decoding restores them as None.
"""

from __future__ import annotations

from typing import Any, Final, Literal

import msgspec

RecordFormat = Literal["text", "certificate", "cloudtrail"]
Outcome = Literal["success", "failure"]
Severity = Literal["critical", "high", "medium", "info"]
Category = Literal[
    "login",
    "session",
    "user_management",
    "key_management",
    "key_sync",
    "quorum",
    "backup",
    "cluster",
    "certificate",
    "time_sync",
    "other",
]

SEVERITY_RANK: Final[dict[str, int]] = {"info": 0, "medium": 1, "high": 2, "critical": 3}
"""Order of severities, for `max()` and thresholds."""


class HsmEvent(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """One CloudHSM audit record, parsed and normalised.

    A record that could not be parsed is still an `HsmEvent`: `parse_error` says why, `raw`
    keeps the text as received and every field that could be read is filled in.
    """

    time: str | None = None
    usecs: int | None = None
    cluster_id: str | None = None
    hsm_id: str | None = None
    record_format: RecordFormat | None = None
    sequence_no: int | None = None
    reboot_counter: int | None = None
    command_type: str | None = None
    command_type_code: int | None = None
    opcode: str | None = None
    opcode_code: int | None = None
    session_handle: str | None = None
    response_code: int | None = None
    response: str | None = None
    success: bool | None = None
    outcome: Outcome | None = None
    log_type: str | None = None
    log_type_code: int | None = None
    user_name: str | None = None
    user_type: str | None = None
    user_type_code: int | None = None
    user_id: str | None = None
    target_user_name: str | None = None
    target_user_type: str | None = None
    target_user_type_code: int | None = None
    target_user_id: str | None = None
    key_handle: int | None = None
    public_key_handle: int | None = None
    object_handle: int | None = None
    attributes: list[str] | None = None
    mechanism: int | None = None
    mfa_enabled: bool | None = None
    operation: str | None = None
    operation_code: int | None = None
    number_of_users: int | None = None
    user_ids: str | None = None
    version_no: str | None = None
    local_time_usecs: int | None = None
    host_time_usecs: int | None = None
    propagation_delay_usecs: int | None = None
    category: Category | None = None
    action: str | None = None
    severity: Severity | None = None
    event_id: str | None = None
    log_group: str | None = None
    log_stream: str | None = None
    cwl_id: str | None = None
    cwl_timestamp: int | None = None
    extra: dict[str, str] | None = None
    parse_error: str | None = None
    raw: str | None = None


_ENCODER: Final = msgspec.json.Encoder()
_EVENT_DECODER: Final = msgspec.json.Decoder(HsmEvent)

FIELD_NAMES: Final[tuple[str, ...]] = HsmEvent.__struct_fields__
"""Every field an event can carry, in contract order (the Splunk app and store check against it)."""


def event_to_json(event: HsmEvent, *, include_raw: bool = True) -> bytes:
    """Encode an event as one compact JSON object; absent (None) values are left out.

    `include_raw=False` drops `raw` (the HEC forwarder's `HSMAUDIT_INCLUDE_RAW=false`).
    """
    if not include_raw and event.raw is not None:
        event = msgspec.structs.replace(event, raw=None)
    return _ENCODER.encode(event)


def event_to_dict(event: HsmEvent, *, include_raw: bool = True, compact: bool = False) -> dict[str, Any]:
    """Return the event as a plain dict (for HEC envelopes and tables).

    `compact=True` leaves out absent (None) values, as the JSON encoding does; the default keeps
    every field (None included), for code that indexes by field name.
    """
    data: dict[str, Any] = msgspec.structs.asdict(event)
    if not include_raw:
        data.pop("raw", None)
    if compact:
        data = {key: value for key, value in data.items() if value is not None}
    return data


def event_from_json(data: bytes | str) -> HsmEvent:
    """Decode one event previously written by `event_to_json` (raises `msgspec.DecodeError`)."""
    return _EVENT_DECODER.decode(data)


def event_from_dict(data: dict[str, Any]) -> HsmEvent:
    """Build an event from a decoded JSON object (raises `msgspec.ValidationError` on bad types)."""
    return msgspec.convert(data, HsmEvent)
