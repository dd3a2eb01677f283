"""The row codec: `HsmEvent` and `Alert` to and from the store's SQLite rows.

Where it sits: the writes (store/writes.py) turn events and alerts into rows with `event_row` and
`alert_row`; the reads (store/events.py, store/alerts.py, store/lifecycles.py) turn rows back with
`event_from_row`, `alert_from_row` and `stored_alert`. The column layout is store/schema.py's:
JSON text for maps and lists, 0/1 for booleans, integers beyond 64 bits as tagged text.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Any, Final

import msgspec

from hsmaudit.records.alert import Alert
from hsmaudit.records.event import FIELD_NAMES, HsmEvent, event_to_json
from hsmaudit.records.identity import unparsed_event_id
from hsmaudit.store.query import StoredAlert
from hsmaudit.store.schema import BOOL_FIELDS, EVENT_COLUMNS, JSON_FIELDS

_INT64_MAX: Final = 2**63 - 1
_BIG_INT_TAG: Final = "int:"
_JSON_INDEXES: Final = tuple(i for i, name in enumerate(FIELD_NAMES) if name in JSON_FIELDS)
_INT_INDEXES: Final = tuple(
    i for i, (name, sql_type) in enumerate(EVENT_COLUMNS) if sql_type == "INTEGER" and name not in BOOL_FIELDS
)
_ENCODE: Final = msgspec.json.Encoder().encode
_DECODE_JSON: Final = msgspec.json.Decoder().decode

EVENT_ID: Final = FIELD_NAMES.index("event_id")
"""Index of `event_id` in an `events` row."""

EVENT_COLUMNS_SQL: Final = ", ".join(FIELD_NAMES)
"""The `events` columns in `HsmEvent` field order, as `event_from_row` reads them."""

ALERT_COLUMNS: Final = (
    "alert_id, rule, title, severity, time, cluster_id, hsm_id, user_name, event_ids, details"
)
"""The `alerts` columns in the order `stored_alert` reads them."""


def json_text(value: Any) -> str:
    """`value` as compact JSON text, as the store keeps JSON columns and binds JSON parameters."""
    return _ENCODE(value).decode()


def event_row(event: HsmEvent) -> tuple[Any, ...]:
    """One `events` row: JSON text for maps/lists, 0/1 for booleans, huge ints kept as text."""
    row = list(msgspec.structs.astuple(event))
    for index in _JSON_INDEXES:
        if row[index] is not None:
            row[index] = _ENCODE(row[index]).decode()
    for index in _INT_INDEXES:
        value = row[index]
        # SQLite integers are 64-bit; certificate handles stay below that, hostile input may not.
        # Kept exact as tagged text (plain digits would be turned into a lossy REAL by the
        # column's INTEGER affinity).
        if value is not None and not -_INT64_MAX - 1 <= value <= _INT64_MAX:
            row[index] = _BIG_INT_TAG + str(value)
    if row[EVENT_ID] is None:
        row[EVENT_ID] = unparsed_event_id(
            event.cluster_id, event.log_stream, event.cwl_id, event_to_json(event).decode()
        )
    return tuple(row)


def event_from_row(row: Sequence[Any]) -> HsmEvent:
    """The `HsmEvent` an `events` row (columns `EVENT_COLUMNS_SQL`) holds."""
    data: dict[str, Any] = dict(zip(FIELD_NAMES, row, strict=True))
    for name in JSON_FIELDS:
        if data[name] is not None:
            data[name] = _DECODE_JSON(data[name])
    for name in BOOL_FIELDS:
        if data[name] is not None:
            data[name] = bool(data[name])
    for index in _INT_INDEXES:
        name = FIELD_NAMES[index]
        if isinstance(data[name], str) and data[name].startswith(_BIG_INT_TAG):
            data[name] = int(data[name][len(_BIG_INT_TAG) :])
    return msgspec.convert(data, HsmEvent)


def integer_from_column(value: int | str) -> int:
    """An INTEGER column's value as read by plain SQL: huge ints come back as tagged text."""
    return value if isinstance(value, int) else int(str(value).removeprefix(_BIG_INT_TAG))


def alert_id(alert: Alert) -> str:
    """Deterministic id of an alert (rule, events, where): re-running detections adds nothing."""
    basis = "|".join(
        (
            alert.rule,
            alert.cluster_id or "",
            alert.hsm_id or "",
            alert.user_name or "",
            ",".join(alert.event_ids),
        )
    )
    if not alert.event_ids:
        basis += "|" + (alert.time or "") + "|" + _ENCODE(alert.details).decode()
    return hashlib.blake2b(basis.encode("utf-8", "surrogatepass"), digest_size=16).hexdigest()


def alert_row(alert: Alert) -> tuple[Any, ...]:
    """One `alerts` row (store/schema.py `INSERT_ALERT`), its id first."""
    return (
        alert_id(alert),
        alert.rule,
        alert.title,
        alert.severity,
        alert.time,
        alert.cluster_id,
        alert.hsm_id,
        alert.user_name,
        _ENCODE(alert.event_ids).decode(),
        _ENCODE(alert.details).decode(),
    )


def alert_from_row(row: Sequence[Any]) -> Alert:
    """The contract `Alert` of a row of `ALERT_COLUMNS` without its first column, `alert_id`."""
    rule, title, severity, time, cluster_id, hsm_id, user_name, event_ids, details = row
    return msgspec.convert(
        {
            "rule": rule,
            "title": title,
            "severity": severity,
            "time": time,
            "cluster_id": cluster_id,
            "hsm_id": hsm_id,
            "user_name": user_name,
            "event_ids": _DECODE_JSON(event_ids),
            "details": _DECODE_JSON(details),
        },
        Alert,
    )


def stored_alert(row: Sequence[Any]) -> StoredAlert:
    """The `StoredAlert` (contract fields and `alert_id`) of a row of `ALERT_COLUMNS`."""
    alert_id, rule, title, severity, time, cluster_id, hsm_id, user_name, event_ids, details = row
    return StoredAlert(
        alert_id=alert_id,
        rule=rule,
        title=title,
        severity=severity,
        time=time,
        cluster_id=cluster_id,
        hsm_id=hsm_id,
        user_name=user_name,
        event_ids=_DECODE_JSON(event_ids),
        details=_DECODE_JSON(details),
    )
