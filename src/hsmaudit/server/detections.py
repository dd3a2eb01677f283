"""Detections for a running collector: tail the store, feed the engine, store its alerts.

The engine (`hsmaudit.detect.engine`) is a stream processor with state (sequence numbers, login
windows, silence); the tailer gives it every stored event once, in arrival order (rowid), and
writes what it says to the `alerts` table that the dashboard shows. Alerts have deterministic ids
in the store, so a restart that re-reads events adds no duplicate alerts. The engine runs with the
arrival clock: records of cluster actions (logins, user management) are held for
`DetectionConfig.arrival_hold_seconds` (5 minutes) after they arrive, so the copies other HSMs
record, delivered later on their own streams, fold into one alert.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
import time
from typing import TYPE_CHECKING, Final

from hsmaudit.detect.engine import DetectionConfig, DetectionEngine

if TYPE_CHECKING:
    from hsmaudit.records.alert import Alert
    from hsmaudit.store.database import EventStore

LOG: Final = logging.getLogger("hsmaudit.server.detections")


class DetectionTailer:
    """Run the detection engine over new events of `store` every `interval` seconds (in a thread)."""

    def __init__(
        self,
        store: EventStore,
        *,
        interval: float = 2.0,
        engine: DetectionEngine | None = None,
        arrival_hold_seconds: float | None = None,
    ) -> None:
        """`arrival_hold_seconds` overrides the default hold (the demo's streams arrive together)."""
        self.store = store
        self.interval = interval
        # Cluster actions wait by arrival: each HSM's stream reaches us on its own, minutes apart
        # under CloudWatch delivery lag, and HSM time of one stream can run ahead of another's.
        if engine is None:
            config = DetectionConfig()
            if arrival_hold_seconds is not None:
                config = dataclasses.replace(config, arrival_hold_seconds=arrival_hold_seconds)
            engine = DetectionEngine(config, clock=time.monotonic)
        self.engine = engine
        self.last_rowid = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def run_once(self, *, finalize: bool = False) -> int:
        """Process every event stored since the last call; returns how many alerts were new."""
        with self._lock:
            alerts: list[Alert] = []
            for rowid, event in self.store.iter_events(after_rowid=self.last_rowid):
                alerts += self.engine.process(event)
                self.last_rowid = rowid
            alerts += self.engine.finalize() if finalize else self.engine.check_silence()
            return self.store.add_alerts(alerts) if alerts else 0

    def start(self) -> None:
        """Start the background thread (idempotent)."""
        if self._thread is None:
            self._thread = threading.Thread(target=self._loop, name="hsmaudit-detections", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        """Stop the thread after one last pass."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=30)
            self._thread = None

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.run_once()
            except Exception:  # a bad pass must not stop the collector; the next pass retries
                LOG.exception("detection pass failed")
        try:
            self.run_once()
        except Exception:
            LOG.exception("last detection pass failed")
