"""`EventStore`: the local SQLite store of events and alerts (stdlib `sqlite3`).

Where it sits: the local collector (`hsmaudit serve`) writes HEC events here, the dashboard and
`/api/summary` read from here, the detections read events and write alerts. Writes are durable
when `add_events` returns: WAL mode with `synchronous=FULL` fsyncs the log at every commit, and
the collector answers HEC success only after that (so a SIGKILL loses nothing acknowledged).

`EventStore` only composes; each concept has its module:

- store/connection.py: opening, pragmas, the schema check, transactions, checkpoints, closing;
- store/rows.py: the row codec, `HsmEvent`/`Alert` to and from rows;
- store/writes.py: inserts and de-duplication (repeats, forged twins), rollups in the same commit;
- the reads below: what the dashboard, the API, the detections and `tail` read.

Repeats are free: `event_id` is UNIQUE and deterministic (records/identity.py), so a Lambda retry,
a replay or a resent batch stores each record once and is counted once.

>>> from hsmaudit.records.parse import parse_message
>>> store = EventStore(":memory:")
>>> store.add_events([parse_message("garbage")])
1
>>> store.add_events([parse_message("garbage")])
0
"""

# ruff: noqa: S608 - SQL text is built from fixed column names and "?" placeholders only; every
# value, filter values included, is bound as a parameter.
from __future__ import annotations

import sqlite3
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any, Final

from hsmaudit.records.alert import Alert
from hsmaudit.records.event import FIELD_NAMES, HsmEvent
from hsmaudit.records.opcodes import (
    KEY_DELETION_OPCODES,
    KEY_EXPORT_OPCODES,
    KEY_GENERATION_OPCODES,
    LOGIN_OPCODE,
    USER_TYPE_ABBREVIATIONS,
)
from hsmaudit.records.time import format_usecs
from hsmaudit.store import writes
from hsmaudit.store.connection import StoreConnections, Synchronous
from hsmaudit.store.query import (
    CONTROL_PLANE_LANE,
    EventFilter,
    FailedLogins,
    FilterError,
    KeyLifecycle,
    KeyStep,
    NeighbourRow,
    StoredAlert,
    StreamStatus,
    Summary,
    Timeline,
    TimelineLane,
    UserCount,
    parse_time,
)
from hsmaudit.store.rows import (
    ALERT_COLUMNS,
    alert_from_row,
    event_from_row,
    integer_from_column,
    json_text,
    stored_alert,
)
from hsmaudit.store.schema import ROLLUP_BUCKET_USECS
from hsmaudit.store.writes import PreparedRows

_RECENT_LIMIT_MAX: Final = 1000
_BY_USER_LIMIT: Final = 25
_MINUTE: Final = 60_000_000
_TIMELINE_WIDTHS: Final = tuple(
    m * _MINUTE for m in (1, 2, 5, 10, 15, 30, 60, 120, 180, 360, 720, 1440, 2880, 10080, 43200, 525600)
)
"""Round bucket widths of the timeline (1 minute … 1 year); from 1 h on, whole rollup buckets."""


class EventStore:
    """The local store. `path` is a file (created if missing) or `:memory:` for tests."""

    def __init__(self, path: str | Path, *, synchronous: Synchronous = "FULL") -> None:
        self.path = str(path)
        self._connections = StoreConnections(self.path, synchronous=synchronous)
        # The writer's lock, for tests that hold the writer back (the group commit's).
        self._write_lock = self._connections.write_lock

    def _reader(self) -> sqlite3.Connection:
        """This thread's read connection (store/connection.py)."""
        return self._connections.reader()

    def close(self) -> None:
        """Close every connection (idempotent); the WAL is checkpointed into the database file."""
        self._connections.close()

    def __enter__(self) -> EventStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- writes (store/writes.py) -----------------------------------------------------

    def add_events(self, events: Iterable[HsmEvent]) -> int:
        """Store events durably; returns how many were new (repeats of a stored `event_id` are skipped).

        One transaction: the events and the rollups commit together or not at all. When this
        returns, the commit is on disk (WAL, synchronous=FULL).
        """
        return writes.add_rows(self._connections, writes.prepare_rows(events))

    def add_rows(self, rows: PreparedRows) -> int:
        """Store rows made by `prepare_rows` (the writer thread's half of `add_events`)."""
        return writes.add_rows(self._connections, rows)

    def add_alerts(self, alerts: Iterable[Alert]) -> int:
        """Store alerts; returns how many were new (the same rule on the same events is stored once)."""
        return writes.add_alerts(self._connections, alerts)

    # --- reads ------------------------------------------------------------------------

    def count_events(self) -> int:
        """How many distinct events are stored."""
        return int(self._reader().execute("SELECT count(*) FROM events").fetchone()[0])

    def iter_events(
        self, filters: EventFilter | None = None, *, after_rowid: int = 0
    ) -> Iterator[tuple[int, HsmEvent]]:
        """(rowid, event) of the stored events in arrival order, optionally after a rowid (for tailing)."""
        where, params = _event_where(filters or EventFilter())
        where.append("rowid > ?")
        params.append(after_rowid)
        columns = ", ".join(FIELD_NAMES)
        cursor = self._reader().execute(
            f"SELECT rowid, {columns} FROM events WHERE {' AND '.join(where)} ORDER BY rowid",
            params,
        )
        for row in cursor:
            yield row[0], event_from_row(row[1:])

    def recent_events(self, filters: EventFilter, limit: int = 100) -> list[HsmEvent]:
        """The newest events matching the filter (HSM time, then arrival), for the detail table."""
        where, params = _event_where(filters)
        columns = ", ".join(FIELD_NAMES)
        sql = (
            f"SELECT {columns} FROM events WHERE {' AND '.join(where)} "
            "ORDER BY usecs DESC, rowid DESC LIMIT ?"
        )
        rows = self._reader().execute(sql, [*params, max(1, min(limit, _RECENT_LIMIT_MAX))]).fetchall()
        return [event_from_row(row) for row in rows]

    def alerts(self, filters: EventFilter | None = None, limit: int = 200) -> list[Alert]:
        """Stored alerts, newest first, narrowed by cluster, HSM and time range."""
        where, params = _alert_where(filters or EventFilter())
        sql = (
            "SELECT rule, title, severity, time, cluster_id, hsm_id, user_name, event_ids, details "
            f"FROM alerts WHERE {' AND '.join(where)} ORDER BY time DESC, rowid DESC LIMIT ?"
        )
        rows = self._reader().execute(sql, [*params, limit]).fetchall()
        return [alert_from_row(row) for row in rows]

    def alert_rows(
        self, filters: EventFilter | None = None, *, limit: int = 25, offset: int = 0
    ) -> list[StoredAlert]:
        """One page of the alerts a filter covers (see `_alert_where`), newest first, with their ids."""
        where, params = _alert_where(filters or EventFilter())
        sql = (
            f"SELECT {ALERT_COLUMNS} FROM alerts WHERE {' AND '.join(where)} "
            "ORDER BY time DESC, rowid DESC LIMIT ? OFFSET ?"
        )
        rows = self._reader().execute(sql, [*params, max(1, min(limit, _RECENT_LIMIT_MAX)), max(0, offset)])
        return [stored_alert(row) for row in rows]

    def alert(self, alert_id: str) -> StoredAlert | None:
        """The stored alert with this id, or None."""
        row = (
            self._reader()
            .execute(f"SELECT {ALERT_COLUMNS} FROM alerts WHERE alert_id = ?", (alert_id,))
            .fetchone()
        )
        return None if row is None else stored_alert(row)

    def alerts_for_event(self, event_id: str) -> list[StoredAlert]:
        """The alerts an event raised (or helped raise), newest first."""
        sql = (
            f"SELECT {ALERT_COLUMNS} FROM alerts WHERE instr(event_ids, ?) > 0 AND EXISTS "
            "(SELECT 1 FROM json_each(alerts.event_ids) WHERE value = ?) ORDER BY time DESC, rowid DESC"
        )
        return [stored_alert(row) for row in self._reader().execute(sql, (event_id, event_id))]

    def events_page(self, filters: EventFilter, *, limit: int = 50, offset: int = 0) -> list[HsmEvent]:
        """One page of the events a filter covers, newest first (HSM time, then arrival)."""
        where, params = _event_where(filters)
        sql = (
            f"SELECT {', '.join(FIELD_NAMES)} FROM events WHERE {' AND '.join(where)} "
            "ORDER BY usecs DESC, rowid DESC LIMIT ? OFFSET ?"
        )
        rows = self._reader().execute(sql, [*params, max(1, min(limit, _RECENT_LIMIT_MAX)), max(0, offset)])
        return [event_from_row(row) for row in rows]

    def event(self, event_id: str) -> HsmEvent | None:
        """The stored event with this `event_id`, or None."""
        row = (
            self._reader()
            .execute(f"SELECT {', '.join(FIELD_NAMES)} FROM events WHERE event_id = ?", (event_id,))
            .fetchone()
        )
        return None if row is None else event_from_row(row)

    def events_by_id(self, event_ids: Sequence[str]) -> list[HsmEvent]:
        """The stored events among `event_ids`, in HSM time order (ids not stored are left out)."""
        ids = list(dict.fromkeys(event_ids))[:_RECENT_LIMIT_MAX]
        if not ids:
            return []
        sql = (
            f"SELECT {', '.join(FIELD_NAMES)} FROM events WHERE event_id IN (SELECT value FROM json_each(?)) "
            "ORDER BY usecs, rowid"
        )
        return [event_from_row(row) for row in self._reader().execute(sql, (json_text(ids),))]

    def session_user(self, event: HsmEvent) -> str | None:
        """Who ran a command whose record names no user: the last successful login on the same
        HSM and session handle before it (CloudHSM records a session's user only at login)."""
        if event.user_name is not None:
            return event.user_name
        if event.hsm_id is None or event.session_handle is None or event.usecs is None:
            return None
        row = (
            self._reader()
            .execute(
                "SELECT user_name FROM events INDEXED BY events_opcode_usecs WHERE opcode = 'CN_LOGIN' "
                "AND success = 1 AND usecs <= ? AND hsm_id = ? AND session_handle = ? "
                "ORDER BY usecs DESC LIMIT 1",
                (event.usecs, event.hsm_id, event.session_handle),
            )
            .fetchone()
        )
        return None if row is None else row[0]

    def sequence_neighbours(self, event: HsmEvent, around: int = 5) -> list[NeighbourRow]:
        """`around` records before and after `event` in its HSM's sequence (same reboot epoch),
        gaps and duplicates marked: where a record went missing or a forged twin sits shows here."""
        if event.hsm_id is None or event.sequence_no is None or event.reboot_counter is None:
            return []
        select = (
            "SELECT sequence_no, event_id, usecs, opcode, user_name, response FROM events "
            "WHERE hsm_id = ? AND reboot_counter = ? AND coalesce(cluster_id, '') = ? AND sequence_no "
        )
        where = (event.hsm_id, event.reboot_counter, event.cluster_id or "", event.sequence_no)
        connection = self._reader()
        before = connection.execute(select + "< ? ORDER BY sequence_no DESC LIMIT ?", (*where, around))
        rows = list(reversed(before.fetchall()))
        rows += connection.execute(select + "= ? ORDER BY usecs, rowid", where).fetchall()
        rows += connection.execute(
            select + "> ? ORDER BY sequence_no, usecs LIMIT ?", (*where, around)
        ).fetchall()
        counts = Counter(row[0] for row in rows)
        out: list[NeighbourRow] = []
        previous: int | None = None
        for sequence_no, event_id, usecs, opcode, user_name, response in rows:
            if previous is not None and sequence_no > previous + 1:
                out.append(NeighbourRow(sequence_no=previous + 1, missing=sequence_no - previous - 1))
            out.append(
                NeighbourRow(
                    sequence_no=sequence_no,
                    event_id=event_id,
                    time=None if not isinstance(usecs, int) else format_usecs(usecs),
                    opcode=opcode,
                    user_name=user_name,
                    response=response,
                    duplicate=counts[sequence_no] > 1,
                    current=event_id == event.event_id,
                )
            )
            previous = sequence_no
        return out

    def timeline(self, filters: EventFilter | None = None, max_buckets: int = 60) -> Timeline | None:
        """Events, failed logins and alerts per time bucket and HSM; None when nothing has a time.

        The range is the filter's `since`/`until` where given, else the first and last matching
        event. Buckets are a round width (1 min … 1 week). Whole hours come from `event_rollup`
        when the buckets are whole hours, as in `summary`; finer buckets count `events` directly.
        """
        filters = filters or EventFilter()
        connection = self._reader()
        dims_where, dims_params = _dims_where(filters)
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
                ev_where, ev_params = _event_where(filters)
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
        width = next((w for w in _TIMELINE_WIDTHS if span <= w * max_buckets), _TIMELINE_WIDTHS[-1])
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
            ev_where, ev_params = _event_where(filters)
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
        ev_where, ev_params = _event_where(filters)
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
        alert_where, alert_params = _alert_where(filters)
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
        ordered = sorted(
            lanes.items(), key=lambda item: (item[0] == CONTROL_PLANE_LANE, item[0] == "", item[0])
        )
        return Timeline(
            start_usecs=start,
            bucket_usecs=width,
            buckets=buckets,
            lanes=[
                TimelineLane(hsm_id=hsm, events=counts[0], failed_logins=counts[1], alerts=counts[2])
                for hsm, counts in ordered
            ],
        )

    def key_lifecycles(
        self, filters: EventFilter | None = None, *, limit: int = 10, offset: int = 0
    ) -> tuple[int, list[KeyLifecycle]]:
        """(how many key handles, one page of them): each key handle of a cluster seen in the
        filtered events, most recently active first, with every step recorded for it."""
        filters = filters or EventFilter()
        where, params = _event_where(filters)
        where.append("key_handle IS NOT NULL")
        connection = self._reader()
        grouped = (
            f"SELECT coalesce(cluster_id, '') AS c, key_handle AS k, max(usecs) AS last FROM events "
            f"WHERE {' AND '.join(where)} GROUP BY 1, 2"
        )
        (total,) = connection.execute(f"SELECT count(*) FROM ({grouped})", params).fetchone()
        keys = connection.execute(
            f"{grouped} ORDER BY last DESC, k DESC LIMIT ? OFFSET ?",
            [*params, max(1, min(limit, _RECENT_LIMIT_MAX)), max(0, offset)],
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
                    user_name=self.session_user(event),
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

    def stream_status(self, filters: EventFilter | None = None) -> list[StreamStatus]:
        """Per-HSM sequence continuity and last-seen (narrowed by cluster and HSM only)."""
        filters = filters or EventFilter()
        where = ["1 = 1"]
        params: list[Any] = []
        if filters.cluster_id is not None:
            where.append("cluster_id = ?")
            params.append(filters.cluster_id)
        if filters.hsm_id is not None:
            where.append("hsm_id = ?")
            params.append(filters.hsm_id)
        sql = (
            "SELECT cluster_id, hsm_id, reboot_counter, n, min_sequence_no, max_sequence_no, "
            "first_usecs, last_usecs "
            f"FROM hsm_streams WHERE {' AND '.join(where)} ORDER BY cluster_id, hsm_id, reboot_counter"
        )
        out = []
        for cluster_id, hsm_id, reboot, n, lo, hi, first, last in self._reader().execute(sql, params):
            out.append(
                StreamStatus(
                    cluster_id=cluster_id or None,
                    hsm_id=hsm_id,
                    reboot_counter=reboot,
                    records=n,
                    first_sequence_no=lo,
                    last_sequence_no=hi,
                    missing=max(0, hi - lo + 1 - n),
                    first_seen=None if first is None else format_usecs(first),
                    last_seen=None if last is None else format_usecs(last),
                )
            )
        return out

    def filter_choices(self) -> dict[str, list[str]]:
        """Values seen for each filter (cluster, HSM, log type, opcode), for the page's menus."""
        connection = self._reader()
        choices: dict[str, list[str]] = {}
        for name in ("cluster_id", "hsm_id", "log_type", "opcode"):
            rows = connection.execute(
                f"SELECT DISTINCT {name} FROM event_rollup WHERE {name} != '' ORDER BY {name} LIMIT 500"
            ).fetchall()
            choices[name] = [row[0] for row in rows]
        return choices

    def summary(self, filters: EventFilter | None = None) -> Summary:
        """The dashboard's numbers for a filter; the page and `/api/summary` both call this.

        Whole hours come from `event_rollup`; when `since`/`until` cut an hour, that edge is
        counted from `events` itself, so the numbers are exact at any time range.
        """
        filters = filters or EventFilter()
        connection = self._reader()
        groups: Counter[tuple[str, str, str, str, int, int]] = Counter()
        last_usecs: int | None = None

        def add(rows: Iterable[tuple[Any, ...]]) -> None:
            nonlocal last_usecs
            for hsm, log_type, opcode, user_type, success, bad, n, last in rows:
                groups[(hsm, log_type, opcode, user_type, success, bad)] += n
                if last is not None and (last_usecs is None or last > last_usecs):
                    last_usecs = last

        for query, params in _summary_queries(filters):
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
                by_user=self._failed_logins_by_user(filters) if failed else [],
            ),
            key_generated=generated,
            key_deleted=deleted,
            key_exported=exported,
            parse_errors=unparsed,
            by_opcode=dict(sorted(by_opcode.items(), key=lambda item: (-item[1], item[0]))),
            by_log_type=dict(sorted(by_log_type.items(), key=lambda item: (-item[1], item[0]))),
            by_hsm=dict(sorted(by_hsm.items(), key=lambda item: (-item[1], item[0]))),
            alerts=self._alert_counts(filters),
            last_event_time=None if last_usecs is None else format_usecs(last_usecs),
            filters=filters.as_params(),
        )

    def _failed_logins_by_user(self, filters: EventFilter) -> list[UserCount]:
        if filters.opcode is not None and filters.opcode != LOGIN_OPCODE:
            return []
        where, params = _event_where(
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
        rows = self._reader().execute(sql, [*params, _BY_USER_LIMIT]).fetchall()
        return [UserCount(user_name=name, user_type=user_type, count=n) for name, user_type, n in rows]

    def _alert_counts(self, filters: EventFilter) -> dict[str, int]:
        where, params = _alert_where(filters)
        sql = (
            f"SELECT rule, count(*) AS n FROM alerts WHERE {' AND '.join(where)} "
            "GROUP BY rule ORDER BY n DESC, rule"
        )
        return dict(self._reader().execute(sql, params))


def _dims_where(filters: EventFilter) -> tuple[list[str], list[Any]]:
    """The filter's non-time conditions, on columns `events` and `event_rollup` share."""
    where: list[str] = []
    params: list[Any] = []
    for name in ("cluster_id", "hsm_id", "log_type", "opcode"):
        value = getattr(filters, name)
        if value is not None:
            where.append(f"{name} = ?")
            params.append(value)
    return where, params


def _event_where(filters: EventFilter) -> tuple[list[str], list[Any]]:
    where = ["1 = 1"]
    params: list[Any] = []
    for name in ("cluster_id", "hsm_id", "log_type", "opcode"):
        value = getattr(filters, name)
        if value is not None:
            where.append(f"{name} = ?")
            params.append(value)
    if filters.since_usecs is not None:
        where.append("usecs >= ?")
        params.append(filters.since_usecs)
    if filters.until_usecs is not None:
        where.append("usecs < ?")
        params.append(filters.until_usecs)
    return where, params


def _alert_where(filters: EventFilter) -> tuple[list[str], list[Any]]:
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


def _summary_queries(filters: EventFilter) -> list[tuple[str, list[Any]]]:
    """SQL for the summary: whole buckets from the rollup, cut edges from `events`."""
    dims_where: list[str] = []
    dims_params: list[Any] = []
    for name in ("cluster_id", "hsm_id", "log_type", "opcode"):
        value = getattr(filters, name)
        if value is not None:
            dims_where.append(f"{name} = ?")
            dims_params.append(value)

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
