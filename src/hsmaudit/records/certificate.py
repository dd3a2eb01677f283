"""Certificate-storage records (cloudhsm-records.md §8.1): JSON objects with `op_code`.

Their handles exceed 2^53, so msgspec decodes them (integers stay exact); the event id hashes the
normalised JSON and the stream, as such records carry no sequence number.
"""

from __future__ import annotations

from typing import Final

import msgspec

from hsmaudit.records.context import NOT_A_RECORD, RecordContext, unparsed
from hsmaudit.records.event import SEVERITY_RANK, HsmEvent, Severity
from hsmaudit.records.identity import certificate_event_id, json_content
from hsmaudit.records.opcodes import opcode_info
from hsmaudit.records.severity import SEVERITY_BY_RANK
from hsmaudit.records.time import format_times

_JSON_DECODER: Final = msgspec.json.Decoder()


def parse_certificate(message: str, ctx: RecordContext) -> HsmEvent:
    try:
        document = _JSON_DECODER.decode(message)  # msgspec keeps integers beyond 2^53 exact
    except msgspec.DecodeError:
        return unparsed(message, ctx, "malformed JSON record")
    if not isinstance(document, dict) or "op_code" not in document:
        return unparsed(message, ctx, NOT_A_RECORD + " (JSON without op_code)")
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
        severity = SEVERITY_BY_RANK[max(SEVERITY_RANK[severity], SEVERITY_RANK["medium"])]
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
