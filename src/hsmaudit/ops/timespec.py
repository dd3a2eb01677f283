"""Times on the command line: ISO-8601 dates and times, epoch milliseconds, or `90d`/`12h`/`30m` ago.

`--since`/`--until` of `backfill` and `tail` accept the same spellings, always in UTC unless the
ISO text carries an offset. It sits in `ops/` because the backfill engine re-reads a relative
window (`--since 90d`) against the moment its checkpoint's job was first defined.
"""

from __future__ import annotations

import re
import time
from datetime import UTC, datetime
from typing import Final

from hsmaudit.errors import HsmauditError

_RELATIVE: Final = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(s|m|h|d|w)\s*(?:ago)?\s*$", re.IGNORECASE)
_UNIT_SECONDS: Final = {"s": 1, "m": 60, "h": 3600, "d": 86_400, "w": 604_800}


class TimeSpecError(HsmauditError, ValueError):
    """The text is not a time this command understands."""


def parse_time_ms(text: str, *, now_ms: int | None = None) -> int:
    """Milliseconds since the epoch for `text`.

    >>> parse_time_ms("2024-01-02")
    1704153600000
    >>> parse_time_ms("2024-01-02T03:04:05.5Z")
    1704164645500
    >>> parse_time_ms("2h", now_ms=10_000_000)
    2800000
    """
    value = text.strip()
    if not value:
        raise TimeSpecError("empty time")
    now = int(time.time() * 1000) if now_ms is None else now_ms
    if value.lower() == "now":
        return now
    relative = _RELATIVE.match(value)
    if relative:
        amount = float(relative.group(1))
        return now - int(amount * _UNIT_SECONDS[relative.group(2).lower()] * 1000)
    if value.isdigit():
        if len(value) >= 12:
            return int(value)  # epoch milliseconds, as CloudWatch prints them
        raise TimeSpecError(
            f"{text!r} is ambiguous (epoch seconds?): give epoch milliseconds (13 digits) or ISO-8601"
        )
    try:
        parsed = datetime.fromisoformat(value.replace("z", "Z"))
    except ValueError:
        raise TimeSpecError(
            f"{text!r} is not a time: use ISO-8601 (2024-01-31 or 2024-01-31T12:00:00Z), "
            "epoch milliseconds, or an age such as 90d, 12h, 30m"
        ) from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return int(parsed.timestamp() * 1000)


def format_ms(ms: int) -> str:
    """ISO-8601 UTC text of epoch milliseconds (for summaries)."""
    return datetime.fromtimestamp(ms / 1000, tz=UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
