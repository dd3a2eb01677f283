"""The period a report covers, which both its inputs and its sections filter by."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Period:
    """The period a report covers: `since` inclusive, `until` exclusive (None: open)."""

    since_usecs: int | None = None
    until_usecs: int | None = None

    def holds(self, usecs: int | None) -> bool:
        """Whether an event time lies in the period (an event without a time is always reported)."""
        if usecs is None:
            return True
        if self.since_usecs is not None and usecs < self.since_usecs:
            return False
        return self.until_usecs is None or usecs < self.until_usecs
