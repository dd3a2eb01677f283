"""`hsm-removed-while-active`: an HSM deleted through the API while its audit stream was live.

Deleting an HSM (CloudTrail `DeleteHsm`) ends its audit stream without a record in the HSM's own
log, and takes the HSM's copy of the audit trail with it. A planned removal drains the HSM first,
so it has been quiet for a while; someone covering tracks deletes it while it is still being used.
This detector puts the two sources side by side: per HSM it remembers the last audit record, per
successful `DeleteHsm` it waits until the audit records around the call can have arrived, then
alerts when the HSM logged within `active_window_usecs` before the call (or after it).

Judged only at `finalize()` or by `advance(now)` with a clock at least one window past the call,
so the answer does not depend on whether the CloudTrail file or the HSM's stream is read first.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from hsmaudit.records.alert import Alert
from hsmaudit.records.event import HsmEvent, Severity
from hsmaudit.records.time import format_usecs

RULE_ID: Final = "hsm-removed-while-active"
DEFAULT_ACTIVE_WINDOW_USECS: Final = 10 * 60 * 1_000_000
"""An HSM that logged less than 10 minutes before its deletion was in use, not drained."""


@dataclass(slots=True)
class _LastRecord:
    usecs: int
    event_id: str | None


@dataclass(slots=True)
class _Deletion:
    event: HsmEvent
    usecs: int
    hsm_id: str


class HsmRemovedWhileActiveDetector:
    """Audit records per HSM + successful `DeleteHsm` calls -> one alert per deletion of a live HSM."""

    def __init__(
        self,
        active_window_usecs: int = DEFAULT_ACTIVE_WINDOW_USECS,
        *,
        title: str = "CloudHSM HSM deleted while its audit stream was active",
        severity: Severity = "critical",
    ) -> None:
        if active_window_usecs <= 0:
            raise ValueError("active_window_usecs must be positive")
        self.window = active_window_usecs
        self.title = title
        self.severity: Severity = severity
        self._last: dict[str, _LastRecord] = {}
        self._pending: list[_Deletion] = []

    def process(self, event: HsmEvent) -> list[Alert]:
        """Note an audit record or a deletion; alerts come from `advance`/`finalize`."""
        hsm_id, usecs = event.hsm_id, event.usecs
        if hsm_id is None or usecs is None:
            return []
        if event.record_format == "cloudtrail":
            # `response` is "SUCCESS" or CloudTrail's errorCode (records/cloudtrail.py).
            if event.opcode == "DeleteHsm" and event.response == "SUCCESS":
                self._pending.append(_Deletion(event, usecs, hsm_id))
            return []
        last = self._last.get(hsm_id)
        if last is None or usecs >= last.usecs:
            self._last[hsm_id] = _LastRecord(usecs, event.event_id)
        return []

    def advance(self, now_usecs: int) -> list[Alert]:
        """Judge the deletions whose window has passed by `now_usecs` (a wall clock)."""
        due = [d for d in self._pending if now_usecs - d.usecs >= self.window]
        return self._judge(due)

    def finalize(self) -> list[Alert]:
        """End of input: every deletion is judged with everything that was read."""
        return self._judge(list(self._pending))

    def _judge(self, due: list[_Deletion]) -> list[Alert]:
        alerts: list[Alert] = []
        for deletion in due:
            self._pending.remove(deletion)
            last = self._last.get(deletion.hsm_id)
            if last is None or last.usecs < deletion.usecs - self.window:
                continue
            event = deletion.event
            alerts.append(
                Alert(
                    rule=RULE_ID,
                    title=self.title,
                    severity=self.severity,
                    time=format_usecs(deletion.usecs),
                    cluster_id=event.cluster_id,
                    hsm_id=deletion.hsm_id,
                    user_name=event.user_name,
                    event_ids=[i for i in (event.event_id, last.event_id) if i is not None],
                    details={
                        "deleted_at": format_usecs(deletion.usecs),
                        "last_record_at": format_usecs(last.usecs),
                        "seconds_from_last_record_to_deletion": (deletion.usecs - last.usecs) // 1_000_000,
                        "logged_after_deletion": last.usecs > deletion.usecs,
                        "active_window_seconds": self.window // 1_000_000,
                    },
                )
            )
        return alerts
