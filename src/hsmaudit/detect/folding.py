"""One alert per cluster action: fold the copies every HSM of a cluster records of one command.

A login, and every user-management and quorum command, is recorded by the HSM that served it and
by every other HSM of the cluster shortly afterwards (`docs/reference/cloudhsm-records.md` §1),
so one failed login on a 3-HSM cluster is three records. contracts.md §4: the copies raise one
alert naming every copy's `event_id`, whatever order the streams are read in.

The folding is the one `bruteforce.py` defines, written the same way in SQLite
(`detect/sqlite.py`, `generated/sqlite/failed-login-attempts.sql`) and SPL (`savedsearches.conf`):
records of one rule with the same *fold key* (cluster, user name case-folded, user type, response
code; for other rules than failed-login also the opcode and the target user) are taken in
(usecs, event_id) order; a *burst* is a run of them no more than `replica_window_usecs` apart;
within a burst the k-th record of each HSM is a copy of the k-th action. That is a function of the
set of records, not of their arrival order, provided every copy is in hand when the burst is
judged. So records are held before folding:

- by HSM time (files, merged input): until the newest record seen is `hold_usecs` past them;
  `hsmaudit detect` sorts finite input by time first, so streams read one after another fold
  exactly as merged ones;
- by arrival (a live collector, `clock` given): until `hold_seconds` after they arrived, which
  must cover CloudWatch's delivery lag between the streams of one cluster (streams are delivered
  independently, minutes apart under load). HSM time cannot be trusted for that: one stream's
  records can run far ahead of another's.

An action's alert comes out when its burst is closed (nothing more can join it): one alert per
action, with every copy. A copy later than the hold is reported as an action of its own (the
price of a bounded hold; the collector's default is 5 minutes). State is the held records and
the open bursts: bounded by the hold, never by the length of the input.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Final

import msgspec

from hsmaudit.detect.bruteforce import REPLICA_WINDOW_USECS, replica_key
from hsmaudit.detect.ruleset import Rule, ascii_lower
from hsmaudit.records.alert import Alert
from hsmaudit.records.event import SEVERITY_RANK, HsmEvent

FOLDED_RULES: Final = frozenset(
    {
        "failed-login",
        "password-changed",
        "user-created",
        "user-deleted",
        "crypto-officer-created",
        "quorum-changed",
    }
)
"""Rules on commands every HSM of a cluster records (logins, user management, quorum)."""

FAILED_LOGIN: Final = "failed-login"
DEFAULT_HOLD_USECS: Final = 30_000_000
"""HSM-time hold for files and merged input: copies are seconds apart in HSM time."""
LIVE_HOLD_SECONDS: Final = 300.0
"""Arrival hold of the live collector: CloudWatch delivers each HSM's stream on its own."""

FoldKey = tuple[str, str, str, int, str, str]


def fold_key(rule_id: str, event: HsmEvent) -> FoldKey:
    """What the copies of one action share (NULLs folded as the SQL and SPL fold them).

    failed-login uses the brute force's replica key (so its alerts and the brute force's attempts
    are the same partition); the other rules add the opcode and the target user.
    """
    if rule_id == FAILED_LOGIN:
        return (*replica_key(event), "", "")
    return (
        event.cluster_id or "",
        ascii_lower(event.user_name or ""),
        event.user_type or "",
        -1 if event.response_code is None else event.response_code,
        event.opcode or "",
        ascii_lower(event.target_user_name or ""),
    )


def action_alert(rule: Rule, copies: list[HsmEvent]) -> Alert:
    """The one alert of a cluster action: the first copy's facts, every copy's event_id.

    `copies` in (usecs, event_id) order; the first is the record of the HSM that served it.
    """
    first = copies[0]
    alert = rule.alert(first)
    severity = alert.severity
    for copy in copies[1:]:
        if copy.severity is not None and SEVERITY_RANK[copy.severity] > SEVERITY_RANK[severity]:
            severity = copy.severity
    hsms = sorted({copy.hsm_id or copy.log_stream or "" for copy in copies} - {""})
    return msgspec.structs.replace(
        alert,
        severity=severity,
        event_ids=[copy.event_id for copy in copies if copy.event_id],
        details={**alert.details, "copies": len(copies), "hsms": hsms},
    )


def fold_events(
    rule: Rule, events: Iterable[HsmEvent], replica_window_usecs: int = REPLICA_WINDOW_USECS
) -> list[list[HsmEvent]]:
    """The actions of a complete set of records matched by `rule` (for the store and for tests)."""
    ordered = sorted(events, key=lambda e: (e.usecs is None, e.usecs or 0, e.event_id or ""))
    actions: list[list[HsmEvent]] = []
    bursts: dict[FoldKey, _Burst] = {}
    for event in ordered:
        if event.usecs is None:
            actions.append([event])
            continue
        key = fold_key(rule.id, event)
        burst = bursts.get(key)
        if burst is None or event.usecs - burst.last_usecs > replica_window_usecs:
            burst = bursts[key] = _Burst(event.usecs, 0.0)
        _join(burst, event, actions.append)
    return actions


@dataclass(slots=True)
class _Burst:
    last_usecs: int
    last_arrival: float
    per_hsm: dict[str, int] = field(default_factory=dict)
    actions: list[list[HsmEvent]] = field(default_factory=list)


def _join(burst: _Burst, event: HsmEvent, new_action: Callable[[list[HsmEvent]], None]) -> bool:
    """Put a record in its burst's k-th action (k = its rank on its HSM); True when it starts one."""
    assert event.usecs is not None
    burst.last_usecs = max(burst.last_usecs, event.usecs)
    hsm = event.hsm_id or event.log_stream or ""
    rank = burst.per_hsm.get(hsm, 0) + 1
    burst.per_hsm[hsm] = rank
    if rank <= len(burst.actions):
        burst.actions[rank - 1].append(event)
        return False
    action = [event]
    burst.actions.append(action)
    new_action(action)
    return True


@dataclass(frozen=True, slots=True)
class FoldSettings:
    """How copies are recognised and how long records are held for them."""

    replica_window_usecs: int = REPLICA_WINDOW_USECS
    hold_usecs: int = DEFAULT_HOLD_USECS
    hold_seconds: float = LIVE_HOLD_SECONDS


class ActionFolder:
    """Hold matched records, fold copies into actions, emit one alert per closed action.

    `on_attempt(first_copy)` is called for every new failed-login action, in HSM-time order, as
    soon as it is known (the brute force counts attempts; it needs no closed burst).
    """

    def __init__(
        self,
        rules: dict[str, Rule],
        settings: FoldSettings | None = None,
        *,
        on_attempt: Callable[[HsmEvent], list[Alert]] | None = None,
        clock: Callable[[], float] | None = None,
    ) -> None:
        self.rules = rules
        self.settings = settings or FoldSettings()
        self._on_attempt = on_attempt
        self._clock = clock
        self._held: list[tuple[int, str, int, str, HsmEvent, float]] = []
        self._order = 0
        self._newest = 0
        self._bursts: dict[tuple[str, FoldKey], _Burst] = {}
        self.actions = 0
        self.copies_folded = 0

    @property
    def pending(self) -> int:
        """Records held or in open bursts (memory is proportional to this)."""
        return len(self._held) + sum(len(b.per_hsm) for b in self._bursts.values())

    def hold(self, rule_id: str, event: HsmEvent) -> list[Alert]:
        """Take one record matched by a folded rule; returns alerts of actions now closed."""
        arrival = self._clock() if self._clock is not None else 0.0
        if event.usecs is None:  # no time, no copies to wait for: an action of its own
            return [action_alert(self.rules[rule_id], [event])]
        self._order += 1
        heapq.heappush(self._held, (event.usecs, event.event_id or "", self._order, rule_id, event, arrival))
        return self.advance(event.usecs)

    def advance(self, usecs: int | None = None) -> list[Alert]:
        """Move the HSM-time clock (any event's time) and/or look at the arrival clock."""
        if usecs is not None and usecs > self._newest:
            self._newest = usecs
        if not self._held and not self._bursts:
            return []
        if self._clock is not None:
            return self._release(None, self._clock())
        return self._release(self._newest - self.settings.hold_usecs, None)

    def finalize(self) -> list[Alert]:
        """End of input: every held record is folded and every burst closed."""
        return self._release(None, None, final=True)

    def _release(self, horizon: int | None, now: float | None, *, final: bool = False) -> list[Alert]:
        alerts: list[Alert] = []
        held = self._held
        hold_seconds = self.settings.hold_seconds
        window = self.settings.replica_window_usecs
        while held and (
            final
            or (horizon is not None and held[0][0] <= horizon)
            or (now is not None and held[0][5] + hold_seconds <= now)
        ):
            usecs, _, _, rule_id, event, arrival = heapq.heappop(held)
            key = (rule_id, fold_key(rule_id, event))
            burst = self._bursts.get(key)
            if burst is None or usecs - burst.last_usecs > window:
                if burst is not None:
                    alerts += self._close(rule_id, burst)
                burst = self._bursts[key] = _Burst(usecs, arrival)
            burst.last_arrival = max(burst.last_arrival, arrival)
            if _join(burst, event, lambda _action: None):
                self.actions += 1
                if rule_id == FAILED_LOGIN and self._on_attempt is not None:
                    alerts += self._on_attempt(event)
            else:
                self.copies_folded += 1
        # A burst is closed when nothing can join it any more: every record within the replica
        # window of its last one has been released (HSM time), or its newest copy has waited
        # the whole hold (arrival time).
        if self._bursts:
            frontier = held[0][0] if held else None
            for key, burst in list(self._bursts.items()):
                if (
                    final
                    or (horizon is not None and burst.last_usecs + window < horizon)
                    or (
                        now is not None
                        and burst.last_arrival + hold_seconds <= now
                        and (frontier is None or frontier > burst.last_usecs + window)
                    )
                ):
                    del self._bursts[key]
                    alerts += self._close(key[0], burst)
        return alerts

    def _close(self, rule_id: str, burst: _Burst) -> list[Alert]:
        rule = self.rules[rule_id]
        return [action_alert(rule, sorted(action, key=_order)) for action in burst.actions]


def _order(event: HsmEvent) -> tuple[int, str]:
    return (event.usecs or 0, event.event_id or "")
