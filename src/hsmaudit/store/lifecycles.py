"""Key lifecycles: each key handle of a cluster with every step recorded for it.

Generated or imported, shared, wrapped or exported, synced to other HSMs, deleted: the key page
reads this, each step with the user who ran it (the session's login when the record names none).
"""

# ruff: noqa: S608 - SQL text is built from fixed column names and "?" placeholders only; every
# value, filter values included, is bound as a parameter.
from __future__ import annotations

import sqlite3

from hsmaudit.records.event import FIELD_NAMES
from hsmaudit.store.conditions import RECENT_LIMIT_MAX, event_conditions
from hsmaudit.store.events import session_user
from hsmaudit.store.query import EventFilter, KeyLifecycle, KeyStep
from hsmaudit.store.rows import event_from_row, integer_from_column


def key_lifecycles(
    connection: sqlite3.Connection, filters: EventFilter | None = None, *, limit: int = 10, offset: int = 0
) -> tuple[int, list[KeyLifecycle]]:
    """(how many key handles, one page of them): each key handle of a cluster seen in the
    filtered events, most recently active first, with every step recorded for it."""
    filters = filters or EventFilter()
    where, params = event_conditions(filters)
    where.append("key_handle IS NOT NULL")
    grouped = (
        f"SELECT coalesce(cluster_id, '') AS c, key_handle AS k, max(usecs) AS last FROM events "
        f"WHERE {' AND '.join(where)} GROUP BY 1, 2"
    )
    (total,) = connection.execute(f"SELECT count(*) FROM ({grouped})", params).fetchone()
    keys = connection.execute(
        f"{grouped} ORDER BY last DESC, k DESC LIMIT ? OFFSET ?",
        [*params, max(1, min(limit, RECENT_LIMIT_MAX)), max(0, offset)],
    ).fetchall()
    out: list[KeyLifecycle] = []
    for cluster, handle, _ in keys:
        step_where = [*where, "coalesce(cluster_id, '') = ?", "key_handle = ?"]
        events = [
            event_from_row(row)
            for row in connection.execute(
                f"SELECT {', '.join(FIELD_NAMES)} FROM events WHERE {' AND '.join(step_where)} "
                "ORDER BY usecs, rowid",
                [*params, cluster, handle],
            )
        ]
        steps = [
            KeyStep(
                event_id=event.event_id or "",
                time=event.time,
                hsm_id=event.hsm_id,
                opcode=event.opcode,
                action=event.action,
                success=event.success,
                user_name=session_user(connection, event),
                session_handle=event.session_handle,
            )
            for event in events
        ]

        def first(actions: frozenset[str], steps: list[KeyStep] = steps) -> KeyStep | None:
            return next((s for s in steps if s.success and s.action in actions), None)

        out.append(
            KeyLifecycle(
                cluster_id=cluster or None,
                key_handle=integer_from_column(handle),
                public_key_handle=next(
                    (e.public_key_handle for e in events if e.public_key_handle is not None), None
                ),
                events=len(events),
                first_time=events[0].time if events else None,
                last_time=events[-1].time if events else None,
                generated=first(frozenset({"generate", "import"})),
                shared=first(frozenset({"share"})),
                wrapped=first(frozenset({"export", "wrap"})),
                deleted=first(frozenset({"delete"})),
                synced_to=sorted(
                    {
                        s.hsm_id
                        for s in steps
                        if s.opcode == "CN_INSERT_MASKED_OBJECT_USER" and s.success and s.hsm_id
                    }
                ),
                steps=steps,
            )
        )
    return total, out
