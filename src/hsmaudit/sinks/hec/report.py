"""What happened to the lines of one send: `DeliveryReport` and its spooled/failed batches.

The client builds one per `send`/`send_lines`; handlers check its invariant (every line accepted,
spooled or failed) and the CLI prints its summary.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class SpooledBatch:
    """Lines that went to the spool instead of HEC, and why."""

    batch_id: str
    reason: str
    count: int
    location: str


@dataclass(frozen=True, slots=True)
class FailedBatch:
    """Lines HEC did not take when no spool was given (replay keeps its own copy)."""

    lines: tuple[bytes, ...]
    reason: str
    retryable: bool = True
    """False when HEC refused these exact lines (a bad event, one event too large): sending them
    again cannot help, so replay quarantines them instead of keeping them."""


@dataclass(frozen=True, slots=True)
class DeliveryReport:
    """What happened to every line handed to `HecClient.send`/`send_lines`.

    Invariant: `accepted + spooled_events + failed_events == lines_in`.
    """

    lines_in: int
    accepted: int
    spooled: tuple[SpooledBatch, ...]
    failed: tuple[FailedBatch, ...]
    requests: int
    retries: int
    wire_bytes: int
    body_bytes: int
    latencies_ms: tuple[float, ...]
    resent_unacked: int = 0
    blocked: str | None = None
    """Why the run stopped sending (HEC down, token refused, …); None when it never did."""

    @property
    def spooled_events(self) -> int:
        """Lines written to the spool."""
        return sum(batch.count for batch in self.spooled)

    @property
    def failed_events(self) -> int:
        """Lines neither accepted nor spooled (only when no spool was given)."""
        return sum(len(batch.lines) for batch in self.failed)

    @property
    def complete(self) -> bool:
        """True when every line is accounted for (the no-silent-loss invariant)."""
        return self.accepted + self.spooled_events + self.failed_events == self.lines_in

    def summary(self) -> dict[str, Any]:
        """Counts and ids only (never lines), for logs and CLI output."""
        return {
            "lines_in": self.lines_in,
            "accepted": self.accepted,
            "spooled": self.spooled_events,
            "spooled_batches": [b.batch_id for b in self.spooled],
            "failed": self.failed_events,
            "requests": self.requests,
            "retries": self.retries,
            "wire_bytes": self.wire_bytes,
            "body_bytes": self.body_bytes,
            "resent_unacked": self.resent_unacked,
            "blocked": self.blocked,
        }
