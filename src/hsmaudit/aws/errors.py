"""Errors of the AWS handlers.

Tree:
    ForwarderError
    └── DeliveryIncompleteError   HEC did not take every event and no spool is configured:
                                  the invocation fails so that AWS retries it (the only way
                                  left not to lose the events)

Spool write failures are `hsmaudit.sinks.errors.SpoolError` and also fail the invocation;
token-store failures surface as `hsmaudit.sinks.errors.HecTokenError` inside the HEC client.
"""

from __future__ import annotations

from hsmaudit.errors import HsmauditError


class ForwarderError(HsmauditError):
    """Base class of the handlers' own errors."""


class DeliveryIncompleteError(ForwarderError):
    """Some events are neither accepted by HEC nor spooled; fail so AWS retries the payload."""
