"""The events `hsmaudit tail` shows, as a stream: polled from CloudWatch Logs or followed in the
local store (an operator engine: no Typer, no Rich; `cli/tail.py` renders what it yields).

CloudWatch makes events searchable a little after their timestamp, and not always in order, so
each poll looks back `lookback_ms` from the newest event of that log group and skips event ids
already shown (kept for that window only, per group):
late events appear, none twice. The store is read from its newest rows, then followed by rowid.
Both yield None after each poll with `follow`, so the caller can judge silence between polls.
"""

from __future__ import annotations

import sqlite3
import time
from collections import deque
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from hsmaudit.records.event import HsmEvent
from hsmaudit.sources.message import LogMessage, parse_log_message

if TYPE_CHECKING:
    from hsmaudit.aws.logs import LogsReader


class SeenIds:
    """Event ids shown recently, forgotten once older than the lookback window."""

    def __init__(self, window_ms: int) -> None:
        self.window_ms = window_ms
        self._ids: dict[str, int] = {}
        self._order: deque[tuple[int, str]] = deque()
        self.newest_ms = 0

    def add(self, event_id: str, timestamp_ms: int) -> bool:
        """Remember an id; False if it was already shown."""
        if event_id in self._ids:
            return False
        self._ids[event_id] = timestamp_ms
        self._order.append((timestamp_ms, event_id))
        self.newest_ms = max(self.newest_ms, timestamp_ms)
        horizon = self.newest_ms - 2 * self.window_ms
        while self._order and self._order[0][0] < horizon:
            _, old = self._order.popleft()
            self._ids.pop(old, None)
        return True

    def __len__(self) -> int:
        return len(self._ids)


def poll_cloudwatch(
    reader: LogsReader,
    log_groups: list[str],
    *,
    start_ms: int,
    follow: bool,
    interval: float,
    lookback_ms: int,
    streams: list[str] | None = None,
    sleep: Callable[[float], None] = time.sleep,
    polls: int | None = None,
) -> Iterator[HsmEvent | None]:
    """Events of the log groups from `start_ms`, oldest first per poll, each shown once.

    With `follow`, a None after each poll lets the caller check for silence between polls.
    """
    # Per group: each has its own clocks and delays, so one group's newest event must not move
    # another's look-back window (its late events would be skipped, or shown twice once forgotten).
    seen = {group: SeenIds(lookback_ms) for group in log_groups}
    since = dict.fromkeys(log_groups, start_ms)
    count = 0
    while True:
        for group in log_groups:
            fresh: list[LogMessage] = []
            for page in reader.filter_events(group, start_ms=since[group], streams=streams):
                for message in page:
                    key = (
                        message.cwl_id or f"{message.log_stream}|{message.timestamp}|{hash(message.message)}"
                    )
                    if seen[group].add(key, message.timestamp or 0):
                        fresh.append(message)
            fresh.sort(key=lambda m: (m.timestamp or 0, m.log_stream or ""))
            yield from (parse_log_message(message) for message in fresh)
            if seen[group].newest_ms:
                since[group] = max(start_ms, seen[group].newest_ms - lookback_ms)
        count += 1
        if not follow or (polls is not None and count >= polls):
            return
        yield None  # a poll ended: time for silence checks
        sleep(interval)


def follow_store(
    db: Path,
    *,
    lines: int,
    follow: bool,
    interval: float,
    cluster_id: str | None,
    sleep: Callable[[float], None] = time.sleep,
) -> Iterator[HsmEvent | None]:
    """The last `lines` events of the store, then (with `follow`) every new one as it arrives."""
    from hsmaudit.store.database import EventStore
    from hsmaudit.store.query import EventFilter

    if not db.exists():
        raise FileNotFoundError(f"no local store at {db} (start 'hsmaudit serve' or give the right --db)")
    filters = EventFilter(cluster_id=cluster_id)
    with EventStore(db) as store:
        last_rowid = _max_rowid(db)
        recent: deque[HsmEvent] = deque(maxlen=max(0, lines))
        if lines:
            # Look at the newest rows first; a cluster filter may need the whole table.
            for start in dict.fromkeys((max(0, last_rowid - 50 * lines), 0)):
                recent.clear()
                for rowid, event in store.iter_events(filters, after_rowid=start):
                    recent.append(event)
                    last_rowid = max(last_rowid, rowid)
                if len(recent) >= lines:
                    break
        yield from recent
        while follow:
            yield None  # a poll ended: time for silence checks
            sleep(interval)
            for rowid, event in store.iter_events(filters, after_rowid=last_rowid):
                last_rowid = rowid
                yield event


def _max_rowid(db: Path) -> int:
    # A read-only peek at where the table ends; EventStore offers iteration after a rowid only.
    connection = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        row = connection.execute("SELECT coalesce(max(rowid), 0) FROM events").fetchone()
    except sqlite3.DatabaseError:
        return 0
    finally:
        connection.close()
    return int(row[0])
