"""Login brute force: failed logins per user and cluster in a sliding window, replicas counted once.

A login is recorded by the HSM that served it and by every other HSM of the cluster shortly
afterwards (`docs/reference/cloudhsm-records.md` §1, §9), so one failed attempt can be N
records. The detector first folds those copies into *attempts*, then counts attempts per
(cluster, user) in a sliding window (contracts.md §4: 5 or more within 10 minutes, sliding).

Folding copies, the same definition in Python, SQLite (`generated/sqlite/failed-login-attempts.sql`)
and SPL (`savedsearches.conf`), so all three agree:

1. Failed-login records are grouped by (cluster, lower(user name), user type, response code) and
   taken in (usecs, event_id) order.
2. A *burst* is a run of such records with no more than `REPLICA_WINDOW_USECS` between neighbours.
3. Within a burst, the k-th record of each HSM is a copy of the k-th attempt; the first record to
   reach rank k is that attempt. (So repeated attempts on one HSM always count; records on
   different HSMs a moment apart count once. A failed login that is *not* replicated and is spread
   over several HSMs within seconds can be under-counted: documented in docs/detections.md.)

Out-of-order arrival (CloudWatch delivers per stream) is absorbed by a reorder buffer: records are
held until the clock (the newest usecs of any event the engine saw, or the time a live collector
passes to `advance`) is `reorder_window_usecs` past them, then released in order.
State is per (cluster, user) and per open burst, never per event.
"""

from __future__ import annotations

import heapq
from collections import deque
from dataclasses import dataclass, field
from typing import Final

from hsmaudit.detect.ruleset import ascii_lower
from hsmaudit.records.alert import Alert
from hsmaudit.records.event import HsmEvent
from hsmaudit.records.time import format_usecs

RULE_ID: Final = "login-brute-force"
REPLICA_WINDOW_USECS: Final = 5_000_000
"""Records of one attempt on other HSMs arrive within this of each other ("shortly afterwards")."""
DEFAULT_REORDER_WINDOW_USECS: Final = 30_000_000
"""Replicas arrive within seconds; 30 s of slack bounds how late a brute-force alert can be."""


@dataclass(frozen=True, slots=True)
class BruteForceSettings:
    """Threshold and window of the rule (from the compiled Sigma correlation)."""

    threshold: int = 5
    window_usecs: int = 600_000_000
    replica_window_usecs: int = REPLICA_WINDOW_USECS
    reorder_window_usecs: int = DEFAULT_REORDER_WINDOW_USECS
    title: str = "CloudHSM login brute force"
    severity: str = "critical"


@dataclass(slots=True)
class _Burst:
    last_usecs: int
    per_hsm: dict[str, int] = field(default_factory=dict)
    attempts: int = 0


@dataclass(slots=True)
class _Window:
    attempts: deque[tuple[int, str, str]] = field(default_factory=deque)
    firing: bool = False
    user_name: str | None = None


def replica_key(event: HsmEvent) -> tuple[str, str, str, int]:
    """The identity an attempt's copies share (NULLs folded as the SQL view folds them)."""
    return (
        event.cluster_id or "",
        ascii_lower(event.user_name or ""),
        event.user_type or "",
        -1 if event.response_code is None else event.response_code,
    )


class LoginBruteForceDetector:
    """`process(event)` failed-login records (already matched by the failed-login rule); `finalize()`."""

    def __init__(self, settings: BruteForceSettings | None = None) -> None:
        self.settings = settings or BruteForceSettings()
        self._pending: list[tuple[int, str, HsmEvent]] = []
        self._newest = 0
        self._bursts: dict[tuple[str, str, str, int], _Burst] = {}
        self._windows: dict[tuple[str, str], _Window] = {}
        self.attempts_counted = 0
        self.copies_folded = 0

    def process(self, event: HsmEvent) -> list[Alert]:
        """Take one failed-login record; returns alerts for attempts now old enough to be ordered."""
        if event.usecs is None:
            return []
        heapq.heappush(self._pending, (event.usecs, event.event_id or "", event))
        self._newest = max(self._newest, event.usecs)
        return self._release(self._newest - self.settings.reorder_window_usecs)

    def advance(self, now_usecs: int) -> list[Alert]:
        """Move the clock (any event's time, or wall-clock time) and release what is now in order."""
        self._newest = max(self._newest, now_usecs)
        if not self._pending:
            return []
        return self._release(self._newest - self.settings.reorder_window_usecs)

    def finalize(self) -> list[Alert]:
        """Release everything still held back (end of input)."""
        return self._release(None)

    def _release(self, horizon: int | None) -> list[Alert]:
        alerts: list[Alert] = []
        pending = self._pending
        while pending and (horizon is None or pending[0][0] <= horizon):
            _, _, event = heapq.heappop(pending)
            alert = self._attempt(event)
            if alert is not None:
                alerts.append(alert)
        return alerts

    def _attempt(self, event: HsmEvent) -> Alert | None:
        usecs = event.usecs
        assert usecs is not None
        key = replica_key(event)
        burst = self._bursts.get(key)
        if burst is None or usecs - burst.last_usecs > self.settings.replica_window_usecs:
            burst = _Burst(usecs)
            self._bursts[key] = burst
            self._forget_old_bursts(usecs)
        burst.last_usecs = usecs
        hsm = event.hsm_id or event.log_stream or ""
        rank = burst.per_hsm.get(hsm, 0) + 1
        burst.per_hsm[hsm] = rank
        if rank <= burst.attempts:
            self.copies_folded += 1
            return None
        burst.attempts = rank
        self.attempts_counted += 1
        return self._count(event, usecs)

    def count_attempt(self, event: HsmEvent) -> list[Alert]:
        """Count one attempt already folded from its copies (`folding.ActionFolder`), in time order."""
        if event.usecs is None:
            return []
        self.attempts_counted += 1
        alert = self._count(event, event.usecs)
        return [alert] if alert is not None else []

    def _forget_old_bursts(self, now: int) -> None:
        # Bursts closed long ago only hold memory; drop them when the table grows.
        if len(self._bursts) > 4096:
            limit = now - self.settings.replica_window_usecs
            for key in [k for k, b in self._bursts.items() if b.last_usecs < limit]:
                del self._bursts[key]

    def _count(self, event: HsmEvent, usecs: int) -> Alert | None:
        settings = self.settings
        key = (event.cluster_id or "", ascii_lower(event.user_name or ""))
        window = self._windows.get(key)
        if window is None:
            window = self._windows[key] = _Window()
        window.attempts.append((usecs, event.event_id or "", event.hsm_id or ""))
        if window.user_name is None:
            window.user_name = event.user_name
        start = usecs - settings.window_usecs
        while window.attempts and window.attempts[0][0] < start:
            window.attempts.popleft()
        if len(window.attempts) < settings.threshold:
            window.firing = False
            return None
        if window.firing:
            return None
        window.firing = True
        hsms = sorted({hsm for _, _, hsm in window.attempts if hsm})
        return Alert(
            rule=RULE_ID,
            title=settings.title,
            severity=settings.severity,  # type: ignore[arg-type]
            time=format_usecs(usecs),
            cluster_id=event.cluster_id,
            hsm_id=None,
            user_name=window.user_name,
            event_ids=[event_id for _, event_id, _ in window.attempts],
            details={
                "failed_attempts": len(window.attempts),
                "threshold": settings.threshold,
                "window_seconds": settings.window_usecs // 1_000_000,
                "window_start": format_usecs(window.attempts[0][0]),
                "user_type": event.user_type,
                "hsms": hsms,
            },
        )
