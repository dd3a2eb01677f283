"""Errors of the sinks layer: what HEC said, and spool writes that failed.

Tree (retry policy is "which classes are retryable", as in httpx/_exceptions.py):

    SinkError
    ├── HecError                    any HEC answer or transport failure other than success
    │   ├── HecRetryableError       worth another attempt: HEC codes 8, 9, 18-20, HTTP 429/5xx,
    │   │   │                       short-lived 404s, timeouts, connection resets
    │   │   └── HecTransportError   no HTTP answer at all (refused, reset, timed out, TLS)
    │   ├── HecRejectedError        never worth retrying as sent: bad/disabled/missing token,
    │   │   │                       incorrect index, channel or format problems (HEC 4xx)
    │   │   ├── HecTokenError       401/403: the token is missing, unknown or disabled
    │   │   └── HecInvalidEventError  HEC stopped at event N (`invalid-event-number`); events
    │   │                           before N were accepted, N is bad, after N were not read
    │   └── HecTooLargeError        413: split the batch and send the halves
    └── SpoolError                  a spool read or write failed (the invocation must fail)
        └── SpoolCorruptError       a stored batch is truncated, not ours, or fails its digest

Facts: `docs/reference/splunk.md` §1.8 (status codes and retryability) and §1.9
(partial failures). Messages carry status, HEC code and text, never the token or a payload.
"""

from __future__ import annotations

from hsmaudit.errors import HsmauditError


class SinkError(HsmauditError):
    """Base class of every sinks-layer error."""


class HecError(SinkError):
    """HEC did not accept a request.

    Attributes:
        status: the HTTP status, or None when there was no HTTP answer.
        code: the HEC `code` from the JSON body, when there was one.
        text: HEC's `text`, or a short description of the transport failure.
    """

    def __init__(self, text: str, *, status: int | None = None, code: int | None = None) -> None:
        self.status = status
        self.code = code
        self.text = text
        where = f"HTTP {status}" if status is not None else "no HTTP answer"
        hec_code = f", HEC code {code}" if code is not None else ""
        super().__init__(f"{where}{hec_code}: {text}")


class HecRetryableError(HecError):
    """A transient failure: back off and try again while time allows.

    `retry_after` is the server's `Retry-After` in seconds, when it sent one.
    """

    def __init__(
        self,
        text: str,
        *,
        status: int | None = None,
        code: int | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(text, status=status, code=code)
        self.retry_after = retry_after


class HecTransportError(HecRetryableError):
    """No HTTP answer: connection refused or reset, read or connect timeout, TLS failure."""


class HecRejectedError(HecError):
    """HEC refused the request for a reason that retrying the same request cannot fix."""


class HecTokenError(HecRejectedError):
    """401/403: the token is missing, malformed, unknown or disabled (refresh it once, then spool)."""


class HecInvalidEventError(HecRejectedError):
    """HEC rejected event `index` of the batch (0-based); events before it were accepted."""

    def __init__(self, text: str, *, status: int | None = None, code: int | None = None, index: int) -> None:
        super().__init__(text, status=status, code=code)
        self.index = index


class HecTooLargeError(HecError):
    """413: the request body is over a proxy's or HEC's limit; send smaller batches."""


class SpoolError(SinkError):
    """A spool operation failed; on the delivery path this must fail the invocation."""


class SpoolCorruptError(SpoolError):
    """A stored batch cannot be trusted: truncated, not a spool file, or its digest does not match.

    Replay moves such a batch to the quarantine and goes on; it is never sent.
    """
