"""`EventStore`: the local SQLite store of events and alerts (stdlib `sqlite3`).

Where it sits: the local collector (`hsmaudit serve`) writes HEC events here, the dashboard and
`/api/summary` read from here, the detections read events and write alerts. Writes are durable
when `add_events` returns: WAL mode with `synchronous=FULL` fsyncs the log at every commit, and
the collector answers HEC success only after that (so a SIGKILL loses nothing acknowledged).

`EventStore` only composes; each concept has its module:

- store/connection.py: opening, pragmas, the schema check, transactions, checkpoints, closing;
- store/rows.py: the row codec, `HsmEvent`/`Alert` to and from rows;
- store/writes.py: inserts and de-duplication (repeats, forged twins), rollups in the same commit;
- the reads (what the dashboard, the API, the detections and `tail` read), each over this
  thread's read connection: store/conditions.py (an `EventFilter` as WHERE clauses),
  store/events.py, store/alerts.py, store/streams.py (sequence continuity), store/timeline.py,
  store/lifecycles.py (key lifecycles), store/summary.py (the numbers and the filter menus).

Repeats are free: `event_id` is UNIQUE and deterministic (records/identity.py), so a Lambda retry,
a replay or a resent batch stores each record once and is counted once.

>>> from hsmaudit.records.parse import parse_message
>>> store = EventStore(":memory:")
>>> store.add_events([parse_message("garbage")])
1
>>> store.add_events([parse_message("garbage")])
0
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path

from hsmaudit.records.alert import Alert
from hsmaudit.records.event import HsmEvent
from hsmaudit.store import writes
from hsmaudit.store.alerts import alert_rows, alerts_for_event, find_alert, recent_alerts
from hsmaudit.store.connection import StoreConnections, Synchronous
from hsmaudit.store.events import (
    count_events,
    events_by_id,
    events_page,
    find_event,
    iter_events,
    recent_events,
    session_user,
)
from hsmaudit.store.lifecycles import key_lifecycles
from hsmaudit.store.query import (
    EventFilter,
    KeyLifecycle,
    NeighbourRow,
    StoredAlert,
    StreamStatus,
    Summary,
    Timeline,
)
from hsmaudit.store.streams import sequence_neighbours, stream_status
from hsmaudit.store.summary import filter_choices, summarize
from hsmaudit.store.timeline import build_timeline
from hsmaudit.store.writes import PreparedRows


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

    # --- reads (one module per concept) ---------------------------------------------------

    def count_events(self) -> int:
        """How many distinct events are stored."""
        return count_events(self._reader())

    def iter_events(
        self, filters: EventFilter | None = None, *, after_rowid: int = 0
    ) -> Iterator[tuple[int, HsmEvent]]:
        """(rowid, event) of the stored events in arrival order, optionally after a rowid (for tailing)."""
        # A generator, as before the split: the reader is this thread's when iteration starts.
        yield from iter_events(self._reader(), filters, after_rowid=after_rowid)

    def recent_events(self, filters: EventFilter, limit: int = 100) -> list[HsmEvent]:
        """The newest events matching the filter (HSM time, then arrival), for the detail table."""
        return recent_events(self._reader(), filters, limit)

    def alerts(self, filters: EventFilter | None = None, limit: int = 200) -> list[Alert]:
        """Stored alerts, newest first, narrowed by cluster, HSM and time range."""
        return recent_alerts(self._reader(), filters, limit)

    def alert_rows(
        self, filters: EventFilter | None = None, *, limit: int = 25, offset: int = 0
    ) -> list[StoredAlert]:
        """One page of the alerts a filter covers (store/conditions.py), newest first, with their ids."""
        return alert_rows(self._reader(), filters, limit=limit, offset=offset)

    def alert(self, alert_id: str) -> StoredAlert | None:
        """The stored alert with this id, or None."""
        return find_alert(self._reader(), alert_id)

    def alerts_for_event(self, event_id: str) -> list[StoredAlert]:
        """The alerts an event raised (or helped raise), newest first."""
        return alerts_for_event(self._reader(), event_id)

    def events_page(self, filters: EventFilter, *, limit: int = 50, offset: int = 0) -> list[HsmEvent]:
        """One page of the events a filter covers, newest first (HSM time, then arrival)."""
        return events_page(self._reader(), filters, limit=limit, offset=offset)

    def event(self, event_id: str) -> HsmEvent | None:
        """The stored event with this `event_id`, or None."""
        return find_event(self._reader(), event_id)

    def events_by_id(self, event_ids: Sequence[str]) -> list[HsmEvent]:
        """The stored events among `event_ids`, in HSM time order (ids not stored are left out)."""
        return events_by_id(self._reader(), event_ids)

    def session_user(self, event: HsmEvent) -> str | None:
        """Who ran a command whose record names no user (store/events.py)."""
        return session_user(self._reader(), event)

    def sequence_neighbours(self, event: HsmEvent, around: int = 5) -> list[NeighbourRow]:
        """`around` records before and after `event` in its HSM's sequence, gaps and duplicates marked."""
        return sequence_neighbours(self._reader(), event, around)

    def timeline(self, filters: EventFilter | None = None, max_buckets: int = 60) -> Timeline | None:
        """Events, failed logins and alerts per time bucket and HSM; None when nothing has a time."""
        return build_timeline(self._reader(), filters, max_buckets)

    def key_lifecycles(
        self, filters: EventFilter | None = None, *, limit: int = 10, offset: int = 0
    ) -> tuple[int, list[KeyLifecycle]]:
        """(how many key handles, one page of them), most recently active first (store/lifecycles.py)."""
        return key_lifecycles(self._reader(), filters, limit=limit, offset=offset)

    def stream_status(self, filters: EventFilter | None = None) -> list[StreamStatus]:
        """Per-HSM sequence continuity and last-seen (narrowed by cluster and HSM only)."""
        return stream_status(self._reader(), filters)

    def filter_choices(self) -> dict[str, list[str]]:
        """Values seen for each filter (cluster, HSM, log type, opcode), for the page's menus."""
        return filter_choices(self._reader())

    def summary(self, filters: EventFilter | None = None) -> Summary:
        """The dashboard's numbers for a filter; the page and `/api/summary` both call this."""
        return summarize(self._reader(), filters)
