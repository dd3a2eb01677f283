"""The detection engine: events in, alerts out, in one pass with flat memory.

Everything that watches events composes here: the single-event Sigma rules (compiled once,
`ruleset.py`), the login brute force (`bruteforce.py`), log integrity per HSM stream
(`sequence.py`), HSM silence (`silence.py`) and HSMs deleted while logging
(`control_plane.py`). The CLI (`hsmaudit detect`), the local collector and the demo call it:

    engine = DetectionEngine()
    for event in events:
        alerts = engine.process(event)
    alerts = engine.finalize(now_usecs=None)

or simply `detect_events(events)`. Order of work per event: the integrity check sees every record
(a re-delivery and a forgery look alike until compared); then exact re-deliveries (an `event_id`
seen recently) are dropped so no rule fires twice for one record, as Splunk's `dedup event_id`
and the store's UNIQUE `event_id` do (`event_id` hashes the content, so a forged twin is not
dropped). Records of the rules on cluster actions (logins, user management) go to the
`ActionFolder`, which folds the copies every HSM records into one alert (`folding.py`) and hands
the failed-login actions to the brute force as attempts.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Final

from hsmaudit.detect.bruteforce import DEFAULT_REORDER_WINDOW_USECS as LOGIN_REORDER_WINDOW_USECS
from hsmaudit.detect.bruteforce import (
    REPLICA_WINDOW_USECS,
    BruteForceSettings,
    LoginBruteForceDetector,
)
from hsmaudit.detect.control_plane import RULE_ID as REMOVED_WHILE_ACTIVE
from hsmaudit.detect.control_plane import HsmRemovedWhileActiveDetector
from hsmaudit.detect.folding import FOLDED_RULES, LIVE_HOLD_SECONDS, ActionFolder, FoldSettings
from hsmaudit.detect.ruleset import RuleSet, load_ruleset
from hsmaudit.detect.sequence import DEFAULT_REORDER_WINDOW_USECS, SequenceDetector, SequenceSettings
from hsmaudit.detect.silence import DEFAULT_SILENT_AFTER_USECS, SilenceDetector
from hsmaudit.records.alert import Alert
from hsmaudit.records.event import HsmEvent

DEFAULT_SEEN_IDS: Final = 100_000


@dataclass(frozen=True, slots=True)
class DetectionConfig:
    """Knobs of the engine; the defaults are the product's documented behaviour."""

    silent_after_usecs: int = DEFAULT_SILENT_AFTER_USECS
    reorder_window_usecs: int = DEFAULT_REORDER_WINDOW_USECS
    """How long a stream's out-of-order records are waited for before a gap is declared."""
    login_reorder_window_usecs: int = LOGIN_REORDER_WINDOW_USECS
    """How long (HSM time) cluster-action records (logins, user management) are held so their
    copies from other HSMs fall in order before they are folded (`folding.py`)."""
    arrival_hold_seconds: float = LIVE_HOLD_SECONDS
    """With a `clock` (a live collector): how long after arrival those records are held instead,
    covering CloudWatch's delivery lag between the streams of one cluster."""
    replica_window_usecs: int = REPLICA_WINDOW_USECS
    seen_ids: int = DEFAULT_SEEN_IDS
    """How many recent event ids are remembered to drop re-deliveries (two generations of this size)."""
    disabled: frozenset[str] = field(default_factory=frozenset)
    """Rule ids to skip."""


@dataclass(slots=True)
class EngineStats:
    """Counts for summaries: what went in, what was dropped, what came out."""

    events: int = 0
    redelivered: int = 0
    alerts: dict[str, int] = field(default_factory=dict)


class _RecentIds:
    """Recently seen event ids in two generations: O(1), memory bounded by 2 x `size`."""

    def __init__(self, size: int) -> None:
        self._size = max(1, size)
        self._current: set[str] = set()
        self._previous: set[str] = set()

    def seen(self, event_id: str) -> bool:
        if event_id in self._current or event_id in self._previous:
            return True
        if len(self._current) >= self._size:
            self._previous = self._current
            self._current = set()
        self._current.add(event_id)
        return False


class DetectionEngine:
    """Run every detection over a stream of events: `process()` each, then `finalize()` once."""

    def __init__(
        self,
        config: DetectionConfig | None = None,
        ruleset: RuleSet | None = None,
        *,
        clock: Callable[[], float] | None = None,
    ) -> None:
        """`clock` (seconds, e.g. `time.monotonic`) makes cluster actions wait by arrival (live)."""
        self.config = config or DetectionConfig()
        self.ruleset = ruleset or load_ruleset()
        disabled = self.config.disabled
        self._disabled = disabled
        correlation = self.ruleset.correlations.get("login-brute-force")
        self._brute_force: LoginBruteForceDetector | None = None
        self._brute_force_base: str | None = None
        if correlation is not None and correlation.id not in disabled:
            self._brute_force = LoginBruteForceDetector(
                BruteForceSettings(
                    threshold=correlation.threshold,
                    window_usecs=correlation.timespan_seconds * 1_000_000,
                    replica_window_usecs=self.config.replica_window_usecs,
                    reorder_window_usecs=self.config.login_reorder_window_usecs,
                    title=correlation.title,
                    severity=correlation.severity,
                )
            )
            self._brute_force_base = correlation.rules[0]
        titles = {rule_id: rule.title for rule_id, rule in self.ruleset.stateful.items()}
        self._sequence = (
            None
            if {"sequence-gap", "sequence-reset", "sequence-duplicate"} <= disabled
            else SequenceDetector(
                SequenceSettings(reorder_window_usecs=self.config.reorder_window_usecs), titles
            )
        )
        silent = self.ruleset.stateful.get("hsm-silent")
        self._silence = (
            None
            if "hsm-silent" in disabled
            else SilenceDetector(
                self.config.silent_after_usecs,
                title=silent.title if silent else "CloudHSM stopped logging",
                severity=silent.severity if silent else "high",
            )
        )
        removed = self.ruleset.stateful.get(REMOVED_WHILE_ACTIVE)
        self._removed = (
            None
            if REMOVED_WHILE_ACTIVE in disabled
            else HsmRemovedWhileActiveDetector(
                title=removed.title if removed else "CloudHSM HSM deleted while its audit stream was active",
                severity=removed.severity if removed else "critical",
            )
        )
        self._recent = _RecentIds(self.config.seen_ids)
        brute_force_attempt = self._brute_force.count_attempt if self._brute_force is not None else None
        folded = {rule.id: rule for rule in self.ruleset.rules if rule.id in FOLDED_RULES}
        self._folded = frozenset(folded)
        self._folder = ActionFolder(
            folded,
            FoldSettings(
                replica_window_usecs=self.config.replica_window_usecs,
                hold_usecs=self.config.login_reorder_window_usecs,
                hold_seconds=self.config.arrival_hold_seconds,
            ),
            on_attempt=brute_force_attempt,
            clock=clock,
        )
        self.stats = EngineStats()

    def process(self, event: HsmEvent) -> list[Alert]:
        """Alerts this event triggers now (stateful ones may come later, up to `finalize`)."""
        self.stats.events += 1
        alerts = self._sequence.process(event) if self._sequence is not None else []
        event_id = event.event_id
        if event_id is not None and self._recent.seen(event_id):
            self.stats.redelivered += 1
            return self._count(alerts) if alerts else alerts
        if self._silence is not None:
            self._silence.note(event)
        if self._removed is not None:
            self._removed.process(event)
        folder = self._folder
        if folder._held or folder._bursts:  # anything waiting: this event's time may release it
            alerts += folder.advance(event.usecs)
        for rule in self.ruleset.candidates(event):
            if rule.predicate(event):
                if rule.id in self._folded:
                    # Copies on other HSMs are folded into one action; the brute force counts
                    # the actions of failed-login (so it runs even when failed-login is disabled).
                    alerts += folder.hold(rule.id, event)
                elif rule.id not in self._disabled:
                    alerts.append(rule.alert(event))
        return self._count(alerts) if alerts else alerts

    def tick(self, now_usecs: int | None = None) -> list[Alert]:
        """Periodic check for a long-running collector: silent HSMs; held-back logins and gaps released.

        `now_usecs` is the wall clock (None: each cluster's newest record, as for files).
        """
        alerts: list[Alert] = self._folder.advance(now_usecs)
        if now_usecs is not None:
            if self._sequence is not None:
                alerts += self._sequence.advance(now_usecs)
            if self._removed is not None:
                alerts += self._removed.advance(now_usecs)
        if self._silence is not None:
            alerts += self._silence.check(now_usecs)
        return self._count(alerts)

    def check_silence(self, now_usecs: int | None = None) -> list[Alert]:
        """Same as `tick` (the name the collector first used)."""
        return self.tick(now_usecs)

    def finalize(self, now_usecs: int | None = None) -> list[Alert]:
        """End of input: held-back records are judged and silence is checked against `now_usecs`.

        `now_usecs=None` judges silence against each cluster's newest record (right for files).
        """
        alerts: list[Alert] = self._folder.finalize()
        if self._sequence is not None:
            alerts += self._sequence.finalize()
        if self._removed is not None:
            alerts += self._removed.finalize()
        if self._silence is not None:
            alerts += self._silence.finalize(now_usecs)
        return self._count(alerts)

    def _count(self, alerts: list[Alert]) -> list[Alert]:
        if not alerts:
            return alerts
        if self._disabled:
            alerts = [alert for alert in alerts if alert.rule not in self._disabled]
        counts = self.stats.alerts
        for alert in alerts:
            counts[alert.rule] = counts.get(alert.rule, 0) + 1
        return alerts


def detect_events(
    events: Iterable[HsmEvent],
    config: DetectionConfig | None = None,
    *,
    now_usecs: int | None = None,
    engine: DetectionEngine | None = None,
) -> Iterator[Alert]:
    """Every alert for a finite stream of events, in the order they become known."""
    engine = engine or DetectionEngine(config)
    for event in events:
        yield from engine.process(event)
    yield from engine.finalize(now_usecs)
