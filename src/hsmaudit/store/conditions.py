"""The WHERE clauses of the dashboard's reads: an `EventFilter` as SQL text and bound values.

Events, the hourly rollup and alerts each read a filter their own way (an alert matches by its
own cluster and time, and by the events that raised it), so each has its function here.
"""

# ruff: noqa: S608 - SQL text is built from fixed column names and "?" placeholders only; every
# value, filter values included, is bound as a parameter.
from __future__ import annotations

from typing import Any, Final

from hsmaudit.records.time import format_usecs
from hsmaudit.store.query import EventFilter

RECENT_LIMIT_MAX: Final = 1000
"""The most rows one page of events or alerts returns."""


def dims_conditions(filters: EventFilter) -> tuple[list[str], list[Any]]:
    """The filter's non-time conditions, on columns `events` and `event_rollup` share."""
    where: list[str] = []
    params: list[Any] = []
    for name in ("cluster_id", "hsm_id", "log_type", "opcode"):
        value = getattr(filters, name)
        if value is not None:
            where.append(f"{name} = ?")
            params.append(value)
    return where, params


def event_conditions(filters: EventFilter) -> tuple[list[str], list[Any]]:
    """The whole filter on `events`: its columns and its time window."""
    dims_where, params = dims_conditions(filters)
    where = ["1 = 1", *dims_where]
    if filters.since_usecs is not None:
        where.append("usecs >= ?")
        params.append(filters.since_usecs)
    if filters.until_usecs is not None:
        where.append("usecs < ?")
        params.append(filters.until_usecs)
    return where, params


def alert_conditions(filters: EventFilter) -> tuple[list[str], list[Any]]:
    """Alerts a filter covers: cluster and time from the alert, HSM, log type and opcode from
    the events that raised it (an alert matches when one of its events does). A cluster-wide
    alert (a brute force over several HSMs) shows under each HSM it touched."""
    where = ["1 = 1"]
    params: list[Any] = []
    if filters.cluster_id is not None:
        where.append("alerts.cluster_id = ?")
        params.append(filters.cluster_id)
    # Alert times are contract ISO strings (fixed width, UTC), so text order is time order.
    if filters.since_usecs is not None:
        where.append("alerts.time >= ?")
        params.append(format_usecs(filters.since_usecs))
    if filters.until_usecs is not None:
        where.append("alerts.time < ?")
        params.append(format_usecs(filters.until_usecs))
    linked: list[str] = []
    linked_params: list[Any] = []
    for name in ("hsm_id", "log_type", "opcode"):
        value = getattr(filters, name)
        if value is not None:
            linked.append(f"+e.{name} = ?")  # "+": look events up by event_id, not by opcode
            linked_params.append(value)
    if linked:
        exists = (
            # IN (json_each) makes SQLite look each id up in the unique event_id index.
            "EXISTS (SELECT 1 FROM events AS e WHERE e.event_id IN "
            f"(SELECT value FROM json_each(alerts.event_ids)) AND {' AND '.join(linked)})"
        )
        if filters.hsm_id is not None and filters.log_type is None and filters.opcode is None:
            # Alerts without events (or whose events are gone) still belong to their HSM.
            where.append(f"(alerts.hsm_id = ? OR {exists})")
            params.extend([filters.hsm_id, *linked_params])
        else:
            where.append(exists)
            params.extend(linked_params)
    return where, params
