"""The dashboard's numbers (`Summary`, also `/api/summary`) and the values its menus offer.

Whole hours come from the `event_rollup` table the writes keep in the same commit; an hour a
time range cuts is counted from `events`, so the numbers are exact at any range.
"""

# ruff: noqa: S608 - SQL text is built from fixed column names and "?" placeholders only; every
# value, filter values included, is bound as a parameter.
from __future__ import annotations

import sqlite3
from collections import Counter
from collections.abc import Iterable
from typing import Any, Final

from hsmaudit.records.opcodes import (
    KEY_DELETION_OPCODES,
    KEY_EXPORT_OPCODES,
    KEY_GENERATION_OPCODES,
    LOGIN_OPCODE,
    USER_TYPE_ABBREVIATIONS,
)
from hsmaudit.records.time import format_usecs
from hsmaudit.store.alerts import alert_counts
from hsmaudit.store.conditions import dims_conditions, event_conditions
from hsmaudit.store.query import EventFilter, FailedLogins, Summary, UserCount
from hsmaudit.store.schema import ROLLUP_BUCKET_USECS

BY_USER_LIMIT: Final = 25
"""The most users the failed-login breakdown lists."""


def filter_choices(connection: sqlite3.Connection) -> dict[str, list[str]]:
    """Values seen for each filter (cluster, HSM, log type, opcode), for the page's menus."""
    choices: dict[str, list[str]] = {}
    for name in ("cluster_id", "hsm_id", "log_type", "opcode"):
        rows = connection.execute(
            f"SELECT DISTINCT {name} FROM event_rollup WHERE {name} != '' ORDER BY {name} LIMIT 500"
        ).fetchall()
        choices[name] = [row[0] for row in rows]
    return choices


def summarize(connection: sqlite3.Connection, filters: EventFilter | None = None) -> Summary:
    """The dashboard's numbers for a filter; the page and `/api/summary` both call this.

    Whole hours come from `event_rollup`; when `since`/`until` cut an hour, that edge is
    counted from `events` itself, so the numbers are exact at any time range.
    """
    filters = filters or EventFilter()
    groups: Counter[tuple[str, str, str, str, int, int]] = Counter()
    last_usecs: int | None = None

    def add(rows: Iterable[tuple[Any, ...]]) -> None:
        nonlocal last_usecs
        for hsm, log_type, opcode, user_type, success, bad, n, last in rows:
            groups[(hsm, log_type, opcode, user_type, success, bad)] += n
            if last is not None and (last_usecs is None or last > last_usecs):
                last_usecs = last

    for query, params in summary_queries(filters):
        add(connection.execute(query, params))

    by_opcode: Counter[str] = Counter()
    by_log_type: Counter[str] = Counter()
    by_hsm: Counter[str] = Counter()
    failed_by_type: Counter[str] = Counter()
    total = generated = deleted = exported = failed = unparsed = 0
    for (hsm, log_type, opcode, user_type, success, bad), n in groups.items():
        total += n
        if opcode:
            by_opcode[opcode] += n
        if bad:
            unparsed += n
        if log_type:
            by_log_type[log_type] += n
        if hsm:
            by_hsm[hsm] += n
        if success == 1 and opcode in KEY_GENERATION_OPCODES:
            generated += n
        if success == 1 and opcode in KEY_DELETION_OPCODES:
            deleted += n
        if success == 1 and opcode in KEY_EXPORT_OPCODES:
            exported += n
        if opcode == LOGIN_OPCODE and success == 0:
            failed += n
            failed_by_type[USER_TYPE_ABBREVIATIONS.get(user_type, user_type or "unknown")] += n

    return Summary(
        total_events=total,
        failed_logins=FailedLogins(
            total=failed,
            by_user_type=dict(failed_by_type.most_common()),
            by_user=failed_logins_by_user(connection, filters) if failed else [],
        ),
        key_generated=generated,
        key_deleted=deleted,
        key_exported=exported,
        parse_errors=unparsed,
        by_opcode=dict(sorted(by_opcode.items(), key=lambda item: (-item[1], item[0]))),
        by_log_type=dict(sorted(by_log_type.items(), key=lambda item: (-item[1], item[0]))),
        by_hsm=dict(sorted(by_hsm.items(), key=lambda item: (-item[1], item[0]))),
        alerts=alert_counts(connection, filters),
        last_event_time=None if last_usecs is None else format_usecs(last_usecs),
        filters=filters.as_params(),
    )


def failed_logins_by_user(connection: sqlite3.Connection, filters: EventFilter) -> list[UserCount]:
    if filters.opcode is not None and filters.opcode != LOGIN_OPCODE:
        return []
    where, params = event_conditions(
        EventFilter(
            filters.cluster_id,
            filters.hsm_id,
            filters.log_type,
            None,
            filters.since_usecs,
            filters.until_usecs,
        )
    )
    sql = (
        # The planner would pick the opcode index (a third of all rows are logins); the
        # partial index holds only failed logins.
        "SELECT user_name, user_type, count(*) AS n FROM events INDEXED BY events_failed_logins "
        f"WHERE opcode = 'CN_LOGIN' AND success = 0 AND {' AND '.join(where)} "
        "GROUP BY user_name, user_type ORDER BY n DESC, user_name LIMIT ?"
    )
    rows = connection.execute(sql, [*params, BY_USER_LIMIT]).fetchall()
    return [UserCount(user_name=name, user_type=user_type, count=n) for name, user_type, n in rows]


def summary_queries(filters: EventFilter) -> list[tuple[str, list[Any]]]:
    """SQL for the summary: whole buckets from the rollup, cut edges from `events`."""
    dims_where, dims_params = dims_conditions(filters)

    rollup_select = (
        "SELECT hsm_id, log_type, opcode, user_type, success, parse_error, sum(n), max(last_usecs) "
        "FROM event_rollup "
    )
    rollup_group = " GROUP BY hsm_id, log_type, opcode, user_type, success, parse_error"
    events_select = (
        "SELECT coalesce(hsm_id, ''), coalesce(log_type, ''), coalesce(opcode, ''), coalesce(user_type, ''), "
        "coalesce(success, -1), parse_error IS NOT NULL, count(*), max(usecs) FROM events "
    )
    events_group = " GROUP BY 1, 2, 3, 4, 5, 6"

    since, until = filters.since_usecs, filters.until_usecs
    if since is None and until is None:
        return [
            (rollup_select + "WHERE " + (" AND ".join(dims_where) or "1 = 1") + rollup_group, dims_params)
        ]

    bucket = ROLLUP_BUCKET_USECS
    # Whole buckets: [first_full, end_full) in bucket numbers; -1 (no time) is never inside.
    first_full = 0 if since is None else -(-since // bucket)
    end_full = None if until is None else until // bucket
    queries: list[tuple[str, list[Any]]] = []
    edges: list[tuple[int | None, int | None]]
    if end_full is None or first_full < end_full:
        where = [*dims_where, "bucket >= ?"]
        params = [*dims_params, first_full]
        if end_full is not None:
            where.append("bucket < ?")
            params.append(end_full)
        queries.append((rollup_select + "WHERE " + " AND ".join(where) + rollup_group, params))
        edges = []
        if since is not None and since < first_full * bucket:
            edges.append((since, first_full * bucket))
        if until is not None and end_full is not None and end_full * bucket < until:
            edges.append((end_full * bucket, until))
    else:
        edges = [(since if since is not None else None, until)]
    for low, high in edges:
        where = list(dims_where)
        params = list(dims_params)
        if low is not None:
            where.append("usecs >= ?")
            params.append(low)
        else:
            where.append("usecs IS NOT NULL")
        if high is not None:
            where.append("usecs < ?")
            params.append(high)
        queries.append((events_select + "WHERE " + " AND ".join(where) + events_group, params))
    return queries
