"""Reading stored events: one by id, some by id, a page, all after a rowid, a session's user.

What the event page, the detections, `tail` and the API read from `events`.
"""

# ruff: noqa: S608 - SQL text is built from fixed column names and "?" placeholders only; every
# value, filter values included, is bound as a parameter.
from __future__ import annotations

import sqlite3
from collections.abc import Iterator, Sequence

from hsmaudit.records.event import FIELD_NAMES, HsmEvent
from hsmaudit.store.conditions import RECENT_LIMIT_MAX, event_conditions
from hsmaudit.store.query import EventFilter
from hsmaudit.store.rows import event_from_row, json_text


def count_events(connection: sqlite3.Connection) -> int:
    """How many distinct events are stored."""
    return int(connection.execute("SELECT count(*) FROM events").fetchone()[0])


def iter_events(
    connection: sqlite3.Connection, filters: EventFilter | None = None, *, after_rowid: int = 0
) -> Iterator[tuple[int, HsmEvent]]:
    """(rowid, event) of the stored events in arrival order, optionally after a rowid (for tailing)."""
    where, params = event_conditions(filters or EventFilter())
    where.append("rowid > ?")
    params.append(after_rowid)
    columns = ", ".join(FIELD_NAMES)
    cursor = connection.execute(
        f"SELECT rowid, {columns} FROM events WHERE {' AND '.join(where)} ORDER BY rowid",
        params,
    )
    for row in cursor:
        yield row[0], event_from_row(row[1:])


def recent_events(connection: sqlite3.Connection, filters: EventFilter, limit: int = 100) -> list[HsmEvent]:
    """The newest events matching the filter (HSM time, then arrival), for the detail table."""
    where, params = event_conditions(filters)
    columns = ", ".join(FIELD_NAMES)
    sql = f"SELECT {columns} FROM events WHERE {' AND '.join(where)} ORDER BY usecs DESC, rowid DESC LIMIT ?"
    rows = connection.execute(sql, [*params, max(1, min(limit, RECENT_LIMIT_MAX))]).fetchall()
    return [event_from_row(row) for row in rows]


def events_page(
    connection: sqlite3.Connection, filters: EventFilter, *, limit: int = 50, offset: int = 0
) -> list[HsmEvent]:
    """One page of the events a filter covers, newest first (HSM time, then arrival)."""
    where, params = event_conditions(filters)
    sql = (
        f"SELECT {', '.join(FIELD_NAMES)} FROM events WHERE {' AND '.join(where)} "
        "ORDER BY usecs DESC, rowid DESC LIMIT ? OFFSET ?"
    )
    rows = connection.execute(sql, [*params, max(1, min(limit, RECENT_LIMIT_MAX)), max(0, offset)])
    return [event_from_row(row) for row in rows]


def find_event(connection: sqlite3.Connection, event_id: str) -> HsmEvent | None:
    """The stored event with this `event_id`, or None."""
    row = connection.execute(
        f"SELECT {', '.join(FIELD_NAMES)} FROM events WHERE event_id = ?", (event_id,)
    ).fetchone()
    return None if row is None else event_from_row(row)


def events_by_id(connection: sqlite3.Connection, event_ids: Sequence[str]) -> list[HsmEvent]:
    """The stored events among `event_ids`, in HSM time order (ids not stored are left out)."""
    ids = list(dict.fromkeys(event_ids))[:RECENT_LIMIT_MAX]
    if not ids:
        return []
    sql = (
        f"SELECT {', '.join(FIELD_NAMES)} FROM events WHERE event_id IN (SELECT value FROM json_each(?)) "
        "ORDER BY usecs, rowid"
    )
    return [event_from_row(row) for row in connection.execute(sql, (json_text(ids),))]


def session_user(connection: sqlite3.Connection, event: HsmEvent) -> str | None:
    """Who ran a command whose record names no user: the last successful login on the same
    HSM and session handle before it (CloudHSM records a session's user only at login)."""
    if event.user_name is not None:
        return event.user_name
    if event.hsm_id is None or event.session_handle is None or event.usecs is None:
        return None
    row = connection.execute(
        "SELECT user_name FROM events INDEXED BY events_opcode_usecs WHERE opcode = 'CN_LOGIN' "
        "AND success = 1 AND usecs <= ? AND hsm_id = ? AND session_handle = ? "
        "ORDER BY usecs DESC LIMIT 1",
        (event.usecs, event.hsm_id, event.session_handle),
    ).fetchone()
    return None if row is None else row[0]
