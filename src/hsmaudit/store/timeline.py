"""The dashboard's timeline: events, failed logins and alerts per time bucket and HSM lane."""

# ruff: noqa: S608 - SQL text is built from fixed column names and "?" placeholders only; every
# value, filter values included, is bound as a parameter.
from __future__ import annotations

import sqlite3
from typing import Any, Final

from hsmaudit.records.opcodes import LOGIN_OPCODE
from hsmaudit.store.conditions import alert_conditions, dims_conditions, event_conditions
from hsmaudit.store.query import (
    CONTROL_PLANE_LANE,
    EventFilter,
    FilterError,
    Timeline,
    TimelineLane,
    parse_time,
)
from hsmaudit.store.schema import ROLLUP_BUCKET_USECS

MINUTE: Final = 60_000_000
TIMELINE_WIDTHS: Final = tuple(
    m * MINUTE for m in (1, 2, 5, 10, 15, 30, 60, 120, 180, 360, 720, 1440, 2880, 10080, 43200, 525600)
)
"""Round bucket widths of the timeline (1 minute … 1 year); from 1 h on, whole rollup buckets."""


def build_timeline(
    connection: sqlite3.Connection, filters: EventFilter | None = None, max_buckets: int = 60
) -> Timeline | None:
    """Events, failed logins and alerts per time bucket and HSM; None when nothing has a time.

    The range is the filter's `since`/`until` where given, else the first and last matching
    event. Buckets are a round width (1 min … 1 week). Whole hours come from `event_rollup`
    when the buckets are whole hours, as in `summary`; finer buckets count `events` directly.
    """
    filters = filters or EventFilter()
    dims_where, dims_params = dims_conditions(filters)
    first, last = filters.since_usecs, filters.until_usecs
    if first is None or last is None:
        where = ["bucket >= 0", *dims_where]
        lo_bucket, hi_usecs = connection.execute(
            f"SELECT min(bucket), max(last_usecs) FROM event_rollup WHERE {' AND '.join(where)}",
            dims_params,
        ).fetchone()
        if lo_bucket is None or hi_usecs is None:
            return None
        if first is None:
            ev_where, ev_params = event_conditions(filters)
            (first,) = connection.execute(
                f"SELECT min(usecs) FROM events WHERE usecs >= ? AND {' AND '.join(ev_where)}",
                [lo_bucket * ROLLUP_BUCKET_USECS, *ev_params],
            ).fetchone()
            if first is None:
                return None
        if last is None:
            last = hi_usecs + 1
    if last <= first:
        return None
    span = last - first
    width = next((w for w in TIMELINE_WIDTHS if span <= w * max_buckets), TIMELINE_WIDTHS[-1])
    start = first - first % width
    buckets = min(max_buckets * 2, -(-(last - start) // width))
    end = start + buckets * width
    lanes: dict[str, list[list[int]]] = {}

    def lane(hsm: str) -> list[list[int]]:
        return lanes.setdefault(hsm, [[0] * buckets, [0] * buckets, [0] * buckets])

    low = max(start, first)
    high = min(end, last)
    if (
        width % ROLLUP_BUCKET_USECS == 0
        and low % ROLLUP_BUCKET_USECS == 0
        and high % ROLLUP_BUCKET_USECS == 0
    ):
        per = width // ROLLUP_BUCKET_USECS
        sql = (
            "SELECT (bucket - ?) / ?, hsm_id, sum(n), "
            f"sum(CASE WHEN opcode = '{LOGIN_OPCODE}' AND success = 0 THEN n ELSE 0 END) "
            "FROM event_rollup WHERE bucket >= ? AND bucket < ?"
            + "".join(f" AND {w}" for w in dims_where)
            + " GROUP BY 1, 2"
        )
        params: list[Any] = [
            start // ROLLUP_BUCKET_USECS,
            per,
            low // ROLLUP_BUCKET_USECS,
            high // ROLLUP_BUCKET_USECS,
            *dims_params,
        ]
    else:
        ev_where, ev_params = event_conditions(filters)
        sql = (
            f"SELECT (usecs - ?) / ?, coalesce(hsm_id, ''), count(*), sum(opcode = '{LOGIN_OPCODE}' "
            f"AND success = 0) FROM events WHERE usecs >= ? AND usecs < ? AND {' AND '.join(ev_where)}"
            " GROUP BY 1, 2"
        )
        params = [start, width, low, high, *ev_params]
    for index, hsm, n, failed in connection.execute(sql, params):
        if 0 <= index < buckets:
            counts = lane(hsm)
            counts[0][index] += n
            counts[1][index] += failed or 0
    ev_where, ev_params = event_conditions(filters)
    for index, hsm, n in connection.execute(
        "SELECT (usecs - ?) / ?, coalesce(hsm_id, ''), count(*) FROM events "
        f"WHERE record_format = 'cloudtrail' AND usecs >= ? AND usecs < ? AND {' AND '.join(ev_where)} "
        "GROUP BY 1, 2",
        [start, width, low, high, *ev_params],
    ):
        if 0 <= index < buckets:  # moved from the HSM it names to the control-plane lane
            if hsm in lanes:
                lanes[hsm][0][index] -= n
            lane(CONTROL_PLANE_LANE)[0][index] += n
    lanes = {hsm: counts for hsm, counts in lanes.items() if any(any(row) for row in counts)}
    alert_where, alert_params = alert_conditions(filters)
    for hsm, time in connection.execute(
        "SELECT coalesce(hsm_id, ''), time FROM alerts "
        f"WHERE {' AND '.join(alert_where)} AND time IS NOT NULL",
        alert_params,
    ):
        try:
            usecs = parse_time(time, name="time")
        except FilterError:
            continue
        index = (usecs - start) // width
        if 0 <= index < buckets:
            lane(hsm)[2][index] += 1
    ordered = sorted(lanes.items(), key=lambda item: (item[0] == CONTROL_PLANE_LANE, item[0] == "", item[0]))
    return Timeline(
        start_usecs=start,
        bucket_usecs=width,
        buckets=buckets,
        lanes=[
            TimelineLane(hsm_id=hsm, events=counts[0], failed_logins=counts[1], alerts=counts[2])
            for hsm, counts in ordered
        ],
    )
