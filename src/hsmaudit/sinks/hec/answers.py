"""HEC's answers: the one table of HEC codes, and an HTTP status and JSON body -> the ackId, or
the `HecError` that says what next.

The codes are named once here: the client classifies with them, the local collector
(`server/hec.py`) answers with them and `hsmaudit doctor` (`ops/hec_probe.py`) reads them.

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

# --- the codes: Splunk's "Troubleshoot HTTP Event Collector" table (reference §1.8) ----------

SUCCESS: Final = 0
TOKEN_DISABLED: Final = 1
TOKEN_REQUIRED: Final = 2
INVALID_AUTHORIZATION: Final = 3
INVALID_TOKEN: Final = 4
NO_DATA: Final = 5
INVALID_DATA_FORMAT: Final = 6
INCORRECT_INDEX: Final = 7
INTERNAL_ERROR: Final = 8
SERVER_BUSY: Final = 9
DATA_CHANNEL_MISSING: Final = 10
INVALID_DATA_CHANNEL: Final = 11
EVENT_FIELD_REQUIRED: Final = 12
EVENT_FIELD_BLANK: Final = 13
ACK_DISABLED: Final = 14
INDEXED_FIELDS_ERROR: Final = 15
QUERY_STRING_AUTH_DISABLED: Final = 16
HEALTHY: Final = 17
UNHEALTHY_QUEUES_FULL: Final = 18
# 19/20: unhealthy, the ack service (and the queues) too; retryable like 18.
UNHEALTHY_ACK_SERVICE: Final = 19
UNHEALTHY_QUEUES_AND_ACK_SERVICE: Final = 20
# 21/22: token codes outside the collector's table, read as the client and doctor always have:
# 21 like 4 (the token is not accepted), 22 like 1 (the token is disabled).
TOKEN_NOT_ACCEPTED: Final = 21
TOKEN_NOT_ENABLED: Final = 22

# code -> (text, HTTP status) as Splunk sends them; what the local collector answers.
REPLIES: Final[dict[int, tuple[str, int]]] = {
    SUCCESS: ("Success", 200),
    TOKEN_DISABLED: ("Token disabled", 403),
    TOKEN_REQUIRED: ("Token is required", 401),
    INVALID_AUTHORIZATION: ("Invalid authorization", 401),
    INVALID_TOKEN: ("Invalid token", 403),
    NO_DATA: ("No data", 400),
    INVALID_DATA_FORMAT: ("Invalid data format", 400),
    INCORRECT_INDEX: ("Incorrect index", 400),
    INTERNAL_ERROR: ("Internal server error", 500),
    SERVER_BUSY: ("Server is busy", 503),
    DATA_CHANNEL_MISSING: ("Data channel is missing", 400),
    INVALID_DATA_CHANNEL: ("Invalid data channel", 400),
    EVENT_FIELD_REQUIRED: ("Event field is required", 400),
    EVENT_FIELD_BLANK: ("Event field cannot be blank", 400),
    ACK_DISABLED: ("ACK is disabled", 400),
    INDEXED_FIELDS_ERROR: ("Error in handling indexed fields", 400),
    QUERY_STRING_AUTH_DISABLED: ("Query string authorization is not enabled", 400),
    HEALTHY: ("HEC is healthy", 200),
    UNHEALTHY_QUEUES_FULL: ("HEC is unhealthy, queues are full", 503),
}

# --- what the codes mean to a sender ------------------------------------------------------

# 8/9: internal error / busy; 18-20: unhealthy (queues, ack service).
RETRYABLE_CODES: Final = frozenset(
    {
        INTERNAL_ERROR,
        SERVER_BUSY,
        UNHEALTHY_QUEUES_FULL,
        UNHEALTHY_ACK_SERVICE,
        UNHEALTHY_QUEUES_AND_ACK_SERVICE,
    }
)
# 1/4/21/22: token disabled or invalid; 2/3: token missing or malformed header.
TOKEN_CODES: Final = frozenset(
    {
        TOKEN_DISABLED,
        TOKEN_REQUIRED,
        INVALID_AUTHORIZATION,
        INVALID_TOKEN,
        TOKEN_NOT_ACCEPTED,
        TOKEN_NOT_ENABLED,
    }
)
# What an empty POST's answer says about the token (`hsmaudit doctor`'s token check): "No data"
# and the other complaints about the body (or a success) mean HEC took the token; 1/22: the token
# is disabled; 4/21: HEC does not know or accept it.
TOKEN_ACCEPTED_CODES: Final = frozenset(
    {NO_DATA, DATA_CHANNEL_MISSING, EVENT_FIELD_REQUIRED, EVENT_FIELD_BLANK, SUCCESS}
)
DISABLED_TOKEN_CODES: Final = frozenset({TOKEN_DISABLED, TOKEN_NOT_ENABLED})
REFUSED_TOKEN_CODES: Final = frozenset({INVALID_TOKEN, TOKEN_NOT_ACCEPTED})
# 7: incorrect index. It carries an invalid-event-number, but every event of ours has the same
# index, so the rest of the batch would fail the same way: spool it all at once.
INDEX_CODE: Final = INCORRECT_INDEX

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
    if 200 <= status < 300 and code == SUCCESS:
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
