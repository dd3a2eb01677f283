"""The shape every stateful detector has: a plug point, like pySigma's validators.

pySigma's `SigmaRuleValidator` has `validate(rule)` per item and `finalize()` for findings that need
the whole collection (`sigma/validators/base.py`); our detectors have `process(event)` per event
and `finalize()` for what only the end of input (or a clock) can decide. State lives per HSM
stream and per user inside each detector, never per event.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol, runtime_checkable

if TYPE_CHECKING:
    from hsmaudit.records.alert import Alert
    from hsmaudit.records.event import HsmEvent


@runtime_checkable
class Detector(Protocol):
    """Events in, alerts out, one at a time; `finalize()` once at the end."""

    def process(self, event: HsmEvent) -> list[Alert]:
        """Alerts this event makes certain now."""
        ...

    def finalize(self) -> list[Alert]:
        """Alerts only the end of the input can decide (held-back records, silence)."""
        ...
