"""`GroupCommitWriter`: many concurrent writers, one durable commit.

Why: a commit costs an fsync and rewrites every index page it touched; `event_id` is a hash, so
each event touches a random page of the unique index. Committing several HEC requests together
amortises both (`benchmarks/collector_bench.py` on a quiet 2-core machine: about 31-34k
events/s acknowledged with one connection, 40k with 8 and 46k with 32 sharing commits). Each
caller still gets its answer only after the commit that holds its events is on disk.
"""

from __future__ import annotations

import queue
import threading
from concurrent.futures import Future
from typing import TYPE_CHECKING, Final

from hsmaudit.store.errors import StoreDataError, StoreError
from hsmaudit.store.writes import prepare_rows

if TYPE_CHECKING:
    from collections.abc import Iterable

    from hsmaudit.records.event import HsmEvent
    from hsmaudit.store.database import EventStore
    from hsmaudit.store.writes import PreparedRows

_STOP: Final = object()


class GroupCommitWriter:
    """A thread that drains queued batches into one `EventStore.add_events` call at a time."""

    def __init__(self, store: EventStore, *, max_events: int = 20000) -> None:
        self.store = store
        self.max_events = max_events
        self._queue: queue.SimpleQueue[tuple[PreparedRows, Future[int]] | object] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._run, name="hsmaudit-store-writer", daemon=True)
        self._stopped = False
        self._thread.start()

    def submit(self, events: Iterable[HsmEvent]) -> Future[int]:
        """Queue a batch; the future resolves to the number of new events once they are committed.

        The rows are built here, in the caller's thread, so the writer thread (the bottleneck:
        one SQLite writer) only runs SQL.
        """
        future: Future[int] = Future()
        if self._stopped:
            future.set_exception(StoreError("the store writer is stopped"))
            return future
        self._queue.put((prepare_rows(events), future))
        return future

    @property
    def alive(self) -> bool:
        """True while the writer thread accepts batches (the collector's health check)."""
        return not self._stopped and self._thread.is_alive()

    def close(self) -> None:
        """Commit what is queued, then stop the thread."""
        if not self._stopped:
            self._stopped = True
            self._queue.put(_STOP)
            self._thread.join()

    def _run(self) -> None:
        stopping = False
        while not stopping:
            item = self._queue.get()
            if item is _STOP:
                return
            batch = [item]
            size = len(item[0])  # type: ignore[index]
            while size < self.max_events:
                try:
                    more = self._queue.get_nowait()
                except queue.Empty:
                    break
                if more is _STOP:
                    stopping = True
                    break
                batch.append(more)
                size += len(more[0])  # type: ignore[index]
            self._commit(batch)  # type: ignore[arg-type]

    def _commit(self, batch: list[tuple[PreparedRows, Future[int]]]) -> None:
        # Events of one request may repeat another's: count "new" per request in order.
        try:
            if len(batch) == 1:
                batch[0][1].set_result(self.store.add_rows(batch[0][0]))
                return
            merged: PreparedRows = {}
            for rows, _ in batch:
                for event_id, row in rows.items():
                    merged.setdefault(event_id, row)
            added = self.store.add_rows(merged)
        except StoreDataError:
            # One request's rows cannot be stored (deterministic): commit each request on its
            # own so that request alone fails and the others sharing the commit are kept.
            for rows, future in batch:
                try:
                    future.set_result(self.store.add_rows(rows))
                except Exception as error:
                    future.set_exception(error)
            return
        except Exception as error:  # every waiter must hear about the failure
            for _, future in batch:
                future.set_exception(error)
            return
        remaining = added
        for index, (events, future) in enumerate(batch):
            # The shared commit cannot say whose events were new; attribute in order, which is
            # exact when batches do not overlap (the common case) and never over-counts.
            share = len(events) if index < len(batch) - 1 else remaining
            share = min(share, remaining)
            remaining -= share
            future.set_result(share)
