"""What `hsmaudit detect` and `hsmaudit rules list` compute, without Typer or Rich: the detection
settings from the flags' values, alerts over a local store, events merged by HSM time, the rule
rows and the one-line summary; `cli/detect.py` prints them as tables or JSON lines.

Flags that cannot be used raise `DetectOptionError` (a usage error: the CLI exits 2); a store that
cannot be opened raises detect's `DetectStoreError` (the one the detections raise for a store they
cannot read, so one `except` catches both).
"""

from __future__ import annotations

import heapq
import re
import sqlite3
import time
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

import msgspec

from hsmaudit.detect.errors import DetectStoreError
from hsmaudit.errors import HsmauditError
from hsmaudit.records.alert import Alert
from hsmaudit.records.event import HsmEvent

if TYPE_CHECKING:
    from hsmaudit.detect.engine import DetectionConfig

_DURATION: Final = re.compile(r"^\s*(\d+)\s*([smhd]?)\s*$")
_UNIT_SECONDS: Final[dict[str, int]] = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}


class DetectOptionError(HsmauditError, ValueError):
    """A detection flag that cannot be used (unknown rule id, bad duration, no store at the path)."""


def parse_duration_usecs(text: str) -> int:
    """`90`, `90s`, `30m`, `6h`, `1d` -> microseconds (raises ValueError)."""
    match = _DURATION.match(text)
    if match is None or int(match.group(1)) == 0:
        raise ValueError(f"bad duration {text!r}: use a positive number with s, m, h or d (e.g. 30m)")
    return int(match.group(1)) * _UNIT_SECONDS[match.group(2)] * 1_000_000


def parse_now_usecs(text: str | None) -> int | None:
    """`--now`: absent = each cluster's newest record; `now` = wall clock; or an ISO-8601 time."""
    if text is None:
        return None
    if text.strip().lower() == "now":
        return time.time_ns() // 1000
    try:
        moment = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError as error:
        raise ValueError(f"bad --now {text!r}: use 'now' or an ISO-8601 time") from error
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return int(moment.timestamp() * 1_000_000)


def detection_config(silent_after: str, disabled: list[str] | None) -> DetectionConfig:
    """`--silent-after` and `--disable` as the engine's config; unknown rule ids are refused."""
    from hsmaudit.detect.engine import DetectionConfig
    from hsmaudit.detect.ruleset import load_ruleset

    known = set(load_ruleset().rule_ids)
    unknown = sorted(set(disabled or ()) - known)
    if unknown:
        raise DetectOptionError(f"unknown rule id(s) {', '.join(unknown)}; see 'hsmaudit rules list'")
    try:
        silent_usecs = parse_duration_usecs(silent_after)
    except ValueError as error:
        raise DetectOptionError(str(error)) from None
    return DetectionConfig(silent_after_usecs=silent_usecs, disabled=frozenset(disabled or ()))


def store_alerts(db: Path, config: DetectionConfig, now_usecs: int | None) -> list[Alert]:
    """Every alert the detections raise over a local store, which is opened read-only."""
    from hsmaudit.detect.sqlite import detect_store

    if not db.is_file():
        raise DetectOptionError(f"no store at {db}: give the path of an hsmaudit SQLite store")
    try:
        # Read-only: detection never changes the store (its temporary view lives in `temp`).
        connection = sqlite3.connect(db.resolve().as_uri() + "?mode=ro", uri=True)
    except sqlite3.Error as error:
        raise DetectStoreError(f"cannot open {db}: {error}") from None
    try:
        return detect_store(connection, config, now_usecs=now_usecs)
    finally:
        connection.close()


def time_ordered(events: Iterable[HsmEvent]) -> Iterator[HsmEvent]:
    """Every event, the HSM streams merged by HSM time, each stream in its own (input) order.

    Reading one HSM's stream after another would otherwise release its records before the other
    HSMs' copies of the same logins arrive. Within a stream the input order is kept (it is the
    sequence order; an HSM clock stepped back must not reorder the stream into a false gap).
    Ties go by stream name, so the result does not depend on the order the inputs were given.
    Memory is proportional to the input (about 1 KB per event); `--stream` keeps it flat for
    input that is already in time order.
    """
    streams: dict[str, list[HsmEvent]] = {}
    for event in events:
        stream = event.hsm_id or f"{event.log_group or ''}|{event.log_stream or ''}"
        streams.setdefault(stream, []).append(event)
    keyed = (
        [(event.usecs or 0, index, position, event) for position, event in enumerate(streams[name])]
        for index, name in enumerate(sorted(streams))
    )
    return (item[3] for item in heapq.merge(*keyed, key=lambda item: item[:3]))


def alerts_summary(alerts: list[Alert], events: int | None) -> str:
    """`--summary`: `N events, M alerts: rule count, ...` (rules by id; `none` when nothing fired)."""
    counts: dict[str, int] = {}
    for alert in alerts:
        counts[alert.rule] = counts.get(alert.rule, 0) + 1
    parts = ", ".join(f"{rule} {count}" for rule, count in sorted(counts.items())) or "none"
    seen = "" if events is None else f"{events} events, "
    return f"{seen}{len(alerts)} alerts: {parts}"


class RuleRow(msgspec.Struct, frozen=True):
    """One line of `hsmaudit rules list`."""

    rule: str
    severity: str
    kind: str
    runs_in: list[str]
    title: str


def rule_rows(metadata: dict[str, dict[str, Any]]) -> list[RuleRow]:
    """One row per rule id, sorted: its kind and where it runs (stateful rules have no SQL)."""
    rows = []
    for rule_id, entry in sorted(metadata.items()):
        if "condition" in entry:
            kind, runs_in = "single-event", ["python", "sqlite", "splunk"]
        elif "timespan_seconds" in entry:
            kind, runs_in = "correlation", ["python", "sqlite", "splunk"]
        else:
            kind, runs_in = "stateful", ["python", "splunk"]
        rows.append(RuleRow(rule_id, str(entry["severity"]), kind, runs_in, str(entry["title"])))
    return rows
