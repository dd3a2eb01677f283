"""`hsm-silent`: an HSM that was logging has sent nothing for a configurable time.

PCI DSS v4 10.7.2 asks that failures of audit logging are detected and alerted
(`docs/reference/operator-needs.md` §2.4, §3 item 7). An HSM that is deleted or broken just stops
its stream (`cloudhsm-records.md` §8.3), so silence is the only signal.

The detector only remembers, per HSM, when it last logged (HSM time). It is evaluated against a
clock the caller passes in (`check(now_usecs)`): the server passes wall-clock time; for a file or a
store, `now_usecs=None` means "the newest record of the same cluster", so an HSM is silent when its
cluster kept logging without it (logins are replicated to every HSM, so a live HSM of an active
cluster logs too). Each silence is reported once, until the HSM logs again.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from hsmaudit.records.alert import Alert
from hsmaudit.records.event import HsmEvent, Severity
from hsmaudit.records.time import format_usecs

RULE_ID: Final = "hsm-silent"
DEFAULT_SILENT_AFTER_USECS: Final = 3_600_000_000


@dataclass(slots=True)
class _Hsm:
    cluster_id: str | None
    hsm_id: str
    last_usecs: int
    last_event_id: str | None
    records: int
    reported_at: int | None = None


class SilenceDetector:
    """Last-seen time per HSM; `check(now)` reports the ones silent for `silent_after_usecs`."""

    def __init__(
        self,
        silent_after_usecs: int = DEFAULT_SILENT_AFTER_USECS,
        *,
        title: str = "CloudHSM stopped logging",
        severity: Severity = "high",
    ) -> None:
        if silent_after_usecs <= 0:
            raise ValueError("silent_after_usecs must be positive")
        self.silent_after_usecs = silent_after_usecs
        self.title = title
        self.severity: Severity = severity
        self._hsms: dict[str, _Hsm] = {}
        self._cluster_newest: dict[str, int] = {}

    def process(self, event: HsmEvent) -> list[Alert]:
        """Note that the event's HSM is alive; silence is only reported by `check`/`finalize`."""
        self.note(event)
        return []

    def note(self, event: HsmEvent) -> None:
        """Record that the event's HSM logged (records without an HSM id or time are ignored)."""
        if event.hsm_id is None or event.usecs is None or event.record_format == "cloudtrail":
            return  # a CloudTrail call about an HSM is not the HSM logging
        usecs = event.usecs
        hsm = self._hsms.get(event.hsm_id)  # HSM ids are unique across clusters
        if hsm is None:
            hsm = self._hsms[event.hsm_id] = _Hsm(event.cluster_id, event.hsm_id, usecs, event.event_id, 0)
        hsm.records += 1
        if usecs >= hsm.last_usecs:
            hsm.last_usecs = usecs
            hsm.last_event_id = event.event_id
            hsm.reported_at = None
        cluster = event.cluster_id or ""
        if usecs > self._cluster_newest.get(cluster, 0):
            self._cluster_newest[cluster] = usecs

    def check(self, now_usecs: int | None = None) -> list[Alert]:
        """Alerts for HSMs silent at `now_usecs` (None: each cluster's newest record time)."""
        alerts = []
        for _, hsm in sorted(self._hsms.items()):
            cluster = hsm.cluster_id or ""
            clock = now_usecs if now_usecs is not None else self._cluster_newest.get(cluster, 0)
            silent_for = clock - hsm.last_usecs
            if silent_for < self.silent_after_usecs or hsm.reported_at == hsm.last_usecs:
                continue
            hsm.reported_at = hsm.last_usecs
            alerts.append(
                Alert(
                    rule=RULE_ID,
                    title=self.title,
                    severity=self.severity,
                    time=format_usecs(clock),
                    cluster_id=hsm.cluster_id,
                    hsm_id=hsm.hsm_id,
                    event_ids=[hsm.last_event_id] if hsm.last_event_id else [],
                    details={
                        "last_seen": format_usecs(hsm.last_usecs),
                        "silent_seconds": silent_for // 1_000_000,
                        "silent_after_seconds": self.silent_after_usecs // 1_000_000,
                        "records_seen": hsm.records,
                        "clock": "given" if now_usecs is not None else "newest record of the cluster",
                    },
                )
            )
        return alerts

    def finalize(self, now_usecs: int | None = None) -> list[Alert]:
        """End of input: same as `check`."""
        return self.check(now_usecs)
