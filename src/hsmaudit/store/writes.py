"""Writes to the store: events and alerts in, each record once, forged twins kept.

Where it sits: `EventStore.add_events`/`add_rows`/`add_alerts` (store/database.py) call these with
the store's connections (store/connection.py); `GroupCommitWriter` (store/writer.py) builds rows
with `prepare_rows` off the writer thread. Rows come from the codec in store/rows.py.

Repeats are free: `event_id` is UNIQUE and deterministic (records/identity.py), so a Lambda retry,
a replay or a resent batch stores each record once and is counted once. A record that carries a
stored record's id with other content is not a repeat: it goes in under a twin id (contracts.md
§1: de-duplication never hides a forged twin).
"""

# ruff: noqa: S608 - SQL text is built from fixed column names and "?" placeholders only; every
# value is bound as a parameter.
from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any, Final

from hsmaudit.records.event import FIELD_NAMES
from hsmaudit.records.identity import CONTENT_FIELDS, claimed_twin_event_id
from hsmaudit.store.errors import StoreError
from hsmaudit.store.rows import EVENT_ID, alert_row, event_row
from hsmaudit.store.schema import INSERT_ALERT, INSERT_EVENT, ROLLUP_FROM_NEW_ROWS, STREAMS_FROM_NEW_ROWS

if TYPE_CHECKING:
    from hsmaudit.records.alert import Alert
    from hsmaudit.records.event import HsmEvent
    from hsmaudit.store.connection import StoreConnections

PreparedRows = dict[str, tuple[Any, ...]]
"""`events` rows by `event_id` (repeats within the batch dropped), ready to insert."""

# What tells a redelivery from a record that claims another's id: identity, content, parse error.
_SAME_RECORD: Final = tuple(
    FIELD_NAMES.index(name)
    for name in (
        "cluster_id",
        "hsm_id",
        "reboot_counter",
        "sequence_no",
        "usecs",
        *CONTENT_FIELDS,
        "parse_error",
    )
)
_SAME_RECORD_COLUMNS: Final = ", ".join(FIELD_NAMES[index] for index in _SAME_RECORD)


def _record_key(row: Sequence[Any]) -> tuple[Any, ...]:
    return tuple(row[index] for index in _SAME_RECORD)


def _as_claimed_twin(row: tuple[Any, ...]) -> tuple[Any, ...]:
    """The row under `claimed_twin_event_id`: other content behind a stored record's id."""
    twin = list(row)
    twin[EVENT_ID] = claimed_twin_event_id(row[EVENT_ID], repr(_record_key(row)))
    return tuple(twin)


def prepare_rows(events: Iterable[HsmEvent]) -> PreparedRows:
    """Rows for `EventStore.add_rows`: pure Python, so callers can build them off the writer thread.

    A repeat of an id within the batch is dropped when it is the same record (a redelivery) and
    kept under a twin id when its content differs (contracts.md §1: de-duplication never hides
    a forged twin, even one sent with the genuine record's id).
    """
    rows: PreparedRows = {}
    for event in events:
        row = event_row(event)
        known = rows.get(row[EVENT_ID])
        if known is None:
            rows[row[EVENT_ID]] = row
        elif _record_key(known) != _record_key(row):
            twin = _as_claimed_twin(row)
            rows.setdefault(twin[EVENT_ID], twin)
    return rows


def add_rows(connections: StoreConnections, rows: PreparedRows) -> int:
    """Insert `rows` and their rollups in one transaction; returns how many were new."""
    if not rows:
        return 0
    writer = connections.writer
    with connections.write_lock:
        if connections.closed:
            raise StoreError(f"store {connections.path} is closed")
        with connections.transaction(f"cannot write to store {connections.path}"):
            # New rows get rowids above the current maximum (rows are never deleted): the
            # rollups are computed in SQL from exactly those rows, so repeats that INSERT OR
            # IGNORE skipped are never counted.
            (last_rowid,) = writer.execute("SELECT coalesce(max(rowid), 0) FROM events").fetchone()
            before = writer.total_changes
            writer.executemany(INSERT_EVENT, rows.values())
            inserted = writer.total_changes - before
            if inserted < len(rows):  # some ids were stored already: redeliveries or claimed ids
                inserted += _insert_claimed_twins(connections, rows)
            if inserted:
                writer.execute(ROLLUP_FROM_NEW_ROWS, (last_rowid,))
                writer.execute(STREAMS_FROM_NEW_ROWS, (last_rowid,))
    return inserted


def _insert_claimed_twins(connections: StoreConnections, rows: PreparedRows) -> int:
    """Rows whose id was stored with other content go in under a twin id; returns how many."""
    writer = connections.writer
    twins = []
    ids = list(rows)
    for start in range(0, len(ids), 500):
        chunk = ids[start : start + 500]
        marks = ", ".join("?" for _ in chunk)
        stored = writer.execute(
            f"SELECT event_id, {_SAME_RECORD_COLUMNS} FROM events WHERE event_id IN ({marks})",
            chunk,
        )
        for event_id, *values in stored:
            row = rows[event_id]
            if tuple(values) != _record_key(row):
                twins.append(_as_claimed_twin(row))
    if not twins:
        return 0
    before = writer.total_changes
    writer.executemany(INSERT_EVENT, twins)
    return writer.total_changes - before


def add_alerts(connections: StoreConnections, alerts: Iterable[Alert]) -> int:
    """Insert alerts; returns how many were new (the same rule on the same events is stored once)."""
    rows = [alert_row(alert) for alert in alerts]
    if not rows:
        return 0
    writer = connections.writer
    with connections.write_lock, connections.transaction(f"cannot write alerts to store {connections.path}"):
        before = writer.total_changes
        writer.executemany(INSERT_ALERT, rows)
        added = writer.total_changes - before
    return added
