"""HEC's answers: an HTTP status and JSON body -> the ackId, or the `HecError` that says what next.

Facts (`docs/reference/splunk.md` §1.8): retry HEC codes 8/9/18-20, HTTP 429/5xx; never retry
other 4xx; token codes are configuration.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

import msgspec

from hsmaudit.sinks.errors import (
    HecInvalidEventError,
    HecRejectedError,
    HecRetryableError,
    HecTokenError,
    HecTooLargeError,
)

# HEC codes (reference §1.8). 8/9: internal error / busy; 18-20: unhealthy (queues, ack service).
RETRYABLE_CODES: Final = frozenset({8, 9, 18, 19, 20})
# 1/4/21/22: token disabled or invalid; 2/3: token missing or malformed header.
TOKEN_CODES: Final = frozenset({1, 2, 3, 4, 21, 22})
# 7: incorrect index. It carries an invalid-event-number, but every event of ours has the same
# index, so the rest of the batch would fail the same way: spool it all at once.
INDEX_CODE: Final = 7

_ANSWER_DECODER: Final = msgspec.json.Decoder()


def _retry_after(headers: Mapping[str, str]) -> float | None:
    value = headers.get("Retry-After")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        return None  # an HTTP date: rare from HEC or its proxies; fall back to our backoff


def classify_answer(status: int, data: bytes, headers: Mapping[str, str]) -> int | None:
    """Turn an HEC answer into the `ackId` (or None) on success, or raise the matching `HecError`.

    Success is a 2xx *with* HEC's JSON answer `code` 0; any other 2xx is refused (see below).

    Retryable: HEC codes 8, 9, 18-20; HTTP 408, 429, 5xx; 404 (short-lived during Splunk Cloud
    maintenance, Vector issue 13414; bounded by our attempt limit). Token problems: 401/403 and
    codes 1-4, 21, 22. 413: too large. Any other 4xx: rejected.
    """
    body: Any = None
    if data:
        try:
            body = _ANSWER_DECODER.decode(data)
        except msgspec.DecodeError:
            body = None
    code: int | None = None
    text = ""
    invalid: int | None = None
    ack_id: int | None = None
    if isinstance(body, dict):
        raw_code = body.get("code")
        code = raw_code if isinstance(raw_code, int) and not isinstance(raw_code, bool) else None
        raw_text = body.get("text")
        text = raw_text[:200] if isinstance(raw_text, str) else ""
        raw_invalid = body.get("invalid-event-number")
        invalid = raw_invalid if isinstance(raw_invalid, int) and not isinstance(raw_invalid, bool) else None
        raw_ack = body.get("ackId")
        ack_id = raw_ack if isinstance(raw_ack, int) and not isinstance(raw_ack, bool) else None
    if not text:
        text = f"HTTP {status} without an HEC answer" if body is None else "no text"
    if 200 <= status < 300 and code == 0:
        return ack_id
    if 200 <= status < 300 and code is None:
        # HEC always answers {"text":"Success","code":0}. A 2xx without it is something else (a
        # proxy's login page, a wrong URL on a web server): counting it as accepted would lose
        # the events silently, so it is refused and the events are spooled.
        raise HecRejectedError(
            f"HTTP {status} without an HEC success answer; is the URL an HEC endpoint?", status=status
        )
    if code in RETRYABLE_CODES or status in (404, 408, 429) or status >= 500:
        raise HecRetryableError(text, status=status, code=code, retry_after=_retry_after(headers))
    if status in (401, 403) or code in TOKEN_CODES:
        raise HecTokenError(text, status=status, code=code)
    if status == 413:
        raise HecTooLargeError(text, status=status, code=code)
    if invalid is not None:
        raise HecInvalidEventError(text, status=status, code=code, index=invalid)
    raise HecRejectedError(text, status=status, code=code)
