"""Time formatting: microseconds since the epoch -> the contract's ISO-8601 `time` and the record's text.

Stdlib only, like the rest of `records/`; detect/, store/, server/ and ops/ import the formatting
from here (`records.parse` re-exports both names for older callers).
"""

from __future__ import annotations

from datetime import UTC, datetime

from hsmaudit.records.cache import remember

_DAY_CACHE: dict[int, tuple[str, str]] = {}
_SECOND_CACHE: dict[int, tuple[str, str]] = {}


def format_times(usecs: int) -> tuple[str, str]:
    """usecs -> (ISO-8601 with 6 digits and Z, the record's own `MM/DD/YY hh:mm:ss.ffffff`).

    Prefixes are cached per second (records come in bursts) and dates per day; strftime per
    record cost more than the rest of the parse (benchmarks/parse_bench.py). Raises
    OverflowError/ValueError/OSError for instants datetime cannot represent.
    """
    seconds, micros = divmod(usecs, 1_000_000)
    prefixes = _SECOND_CACHE.get(seconds)
    if prefixes is None:
        day, second_of_day = divmod(seconds, 86_400)
        dates = _DAY_CACHE.get(day)
        if dates is None:
            moment = datetime.fromtimestamp(day * 86_400, UTC)
            dates = remember(_DAY_CACHE, day, (moment.strftime("%Y-%m-%d"), moment.strftime("%m/%d/%y")))
        hour, rest = divmod(second_of_day, 3600)
        clock = f"{hour:02d}:{rest // 60:02d}:{rest % 60:02d}."
        prefixes = remember(_SECOND_CACHE, seconds, (f"{dates[0]}T{clock}", f"{dates[1]} {clock}"))
    fraction = f"{micros:06d}"
    return f"{prefixes[0]}{fraction}Z", prefixes[1] + fraction


def format_usecs(usecs: int) -> str:
    """ISO-8601 UTC with exactly six fractional digits and `Z` (the contract's `time`)."""
    return format_times(usecs)[0]
