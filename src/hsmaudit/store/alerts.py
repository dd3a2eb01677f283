"""Reading stored alerts: the newest, one page, one by id, those an event raised, counts per rule."""

# ruff: noqa: S608 - SQL text is built from fixed column names and "?" placeholders only; every
# value, filter values included, is bound as a parameter.
from __future__ import annotations

import sqlite3

from hsmaudit.records.alert import Alert
from hsmaudit.store.conditions import RECENT_LIMIT_MAX, alert_conditions
from hsmaudit.store.query import EventFilter, StoredAlert
from hsmaudit.store.rows import ALERT_COLUMNS, alert_from_row, stored_alert


def recent_alerts(
    connection: sqlite3.Connection, filters: EventFilter | None = None, limit: int = 200
) -> list[Alert]:
    """Stored alerts, newest first, narrowed by cluster, HSM and time range."""
    where, params = alert_conditions(filters or EventFilter())
    sql = (
        "SELECT rule, title, severity, time, cluster_id, hsm_id, user_name, event_ids, details "
        f"FROM alerts WHERE {' AND '.join(where)} ORDER BY time DESC, rowid DESC LIMIT ?"
    )
    rows = connection.execute(sql, [*params, limit]).fetchall()
    return [alert_from_row(row) for row in rows]


def alert_rows(
    connection: sqlite3.Connection, filters: EventFilter | None = None, *, limit: int = 25, offset: int = 0
) -> list[StoredAlert]:
    """One page of the alerts a filter covers (see `alert_conditions`), newest first, with their ids."""
    where, params = alert_conditions(filters or EventFilter())
    sql = (
        f"SELECT {ALERT_COLUMNS} FROM alerts WHERE {' AND '.join(where)} "
        "ORDER BY time DESC, rowid DESC LIMIT ? OFFSET ?"
    )
    rows = connection.execute(sql, [*params, max(1, min(limit, RECENT_LIMIT_MAX)), max(0, offset)])
    return [stored_alert(row) for row in rows]


def find_alert(connection: sqlite3.Connection, alert_id: str) -> StoredAlert | None:
    """The stored alert with this id, or None."""
    row = connection.execute(f"SELECT {ALERT_COLUMNS} FROM alerts WHERE alert_id = ?", (alert_id,)).fetchone()
    return None if row is None else stored_alert(row)


def alerts_for_event(connection: sqlite3.Connection, event_id: str) -> list[StoredAlert]:
    """The alerts an event raised (or helped raise), newest first."""
    sql = (
        f"SELECT {ALERT_COLUMNS} FROM alerts WHERE instr(event_ids, ?) > 0 AND EXISTS "
        "(SELECT 1 FROM json_each(alerts.event_ids) WHERE value = ?) ORDER BY time DESC, rowid DESC"
    )
    return [stored_alert(row) for row in connection.execute(sql, (event_id, event_id))]


def alert_counts(connection: sqlite3.Connection, filters: EventFilter) -> dict[str, int]:
    where, params = alert_conditions(filters)
    sql = (
        f"SELECT rule, count(*) AS n FROM alerts WHERE {' AND '.join(where)} "
        "GROUP BY rule ORDER BY n DESC, rule"
    )
    return dict(connection.execute(sql, params))
