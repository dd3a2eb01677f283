"""What the dashboard asks the store and what it gets back: filters, summary, stream status.

One `Summary` feeds both the HTML page and `GET /api/summary` (contracts.md §5), so the numbers
people see and the numbers machines read cannot drift apart.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final

import msgspec

from hsmaudit.errors import HsmauditError

FILTER_NAMES: Final = ("cluster_id", "hsm_id", "log_type", "opcode", "since", "until")
"""Query parameters of the page and of `/api/summary` (contracts.md §5)."""

_EPOCH: Final = re.compile(r"^\d+(\.\d+)?$")


class FilterError(HsmauditError, ValueError):
    """A filter value that cannot be used (an unreadable time); the message says which."""


def parse_time(value: str, *, name: str) -> int:
    """Read `since`/`until`: ISO-8601 (`2026-11-26T10:00:00Z`, a date) or epoch seconds -> usecs.

    A time without a zone is UTC, as every time in an audit record is.
    """
    text = value.strip()
    if _EPOCH.match(text):
        return round(float(text) * 1_000_000)
    try:
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        raise FilterError(f"{name}: {value[:40]!r} is not an ISO-8601 time or epoch seconds") from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    delta = parsed - datetime(1970, 1, 1, tzinfo=UTC)
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


@dataclass(frozen=True, slots=True)
class EventFilter:
    """Which events a view covers; None means "any". `since` is inclusive, `until` exclusive."""

    cluster_id: str | None = None
    hsm_id: str | None = None
    log_type: str | None = None
    opcode: str | None = None
    since_usecs: int | None = None
    until_usecs: int | None = None

    @classmethod
    def from_params(cls, params: Mapping[str, str]) -> EventFilter:
        """Build a filter from query parameters; empty values mean "any" (an HTML form sends them)."""

        def text(name: str) -> str | None:
            value = params.get(name)
            return value if value else None

        since = text("since")
        until = text("until")
        return cls(
            cluster_id=text("cluster_id"),
            hsm_id=text("hsm_id"),
            log_type=text("log_type"),
            opcode=text("opcode"),
            since_usecs=None if since is None else parse_time(since, name="since"),
            until_usecs=None if until is None else parse_time(until, name="until"),
        )

    def as_params(self) -> dict[str, str]:
        """The filter as query parameters (times as ISO-8601), leaving out the "any" ones."""
        from hsmaudit.records.time import format_usecs

        params: dict[str, str] = {}
        for name in ("cluster_id", "hsm_id", "log_type", "opcode"):
            value = getattr(self, name)
            if value is not None:
                params[name] = value
        if self.since_usecs is not None:
            params["since"] = format_usecs(self.since_usecs)
        if self.until_usecs is not None:
            params["until"] = format_usecs(self.until_usecs)
        return params

    @property
    def has_time_range(self) -> bool:
        """True when `since` or `until` is set (unparsed records without a time drop out)."""
        return self.since_usecs is not None or self.until_usecs is not None


class UserCount(msgspec.Struct, frozen=True):
    """Failed logins of one user name (as the client sent it) and user type."""

    user_name: str | None
    user_type: str | None
    count: int


class FailedLogins(msgspec.Struct, frozen=True):
    """CN_LOGIN records that did not succeed, by user type (CO, CU, …) and by user."""

    total: int
    by_user_type: dict[str, int]
    by_user: list[UserCount]


class Summary(msgspec.Struct, frozen=True):
    """The dashboard's numbers (contracts.md §5). Maps are sorted by count, largest first."""

    total_events: int
    failed_logins: FailedLogins
    key_generated: int
    key_deleted: int
    key_exported: int
    parse_errors: int
    by_opcode: dict[str, int]
    by_log_type: dict[str, int]
    by_hsm: dict[str, int]
    alerts: dict[str, int]
    last_event_time: str | None
    filters: dict[str, str]


class StreamStatus(msgspec.Struct, frozen=True):
    """Sequence continuity and last-seen of one HSM stream (one reboot-counter epoch).

    `missing` is the count of sequence numbers in [first, last] with no record: the docs say a
    stream has no gaps, so anything above 0 means lost or removed records.
    """

    cluster_id: str | None
    hsm_id: str
    reboot_counter: int
    records: int
    first_sequence_no: int
    last_sequence_no: int
    missing: int
    first_seen: str | None
    last_seen: str | None


def summary_to_dict(summary: Summary) -> dict[str, Any]:
    """The summary as plain JSON-ready data (for the API and for templates)."""
    data: dict[str, Any] = msgspec.to_builtins(summary)
    return data


# --- the dashboard's other views: alerts with ids, one event, the timeline, key lifecycles ------


class StoredAlert(msgspec.Struct, frozen=True):
    """An alert as the store keeps it: the contract §4 fields plus its `alert_id` (for links)."""

    alert_id: str
    rule: str
    title: str
    severity: str
    time: str | None
    cluster_id: str | None
    hsm_id: str | None
    user_name: str | None
    event_ids: list[str]
    details: dict[str, Any]


class Page(msgspec.Struct, frozen=True):
    """Which slice of a long list a view shows: 1-based `number`, `size` rows, of `total`."""

    number: int
    size: int
    total: int

    @property
    def offset(self) -> int:
        return (self.number - 1) * self.size

    @property
    def pages(self) -> int:
        return max(1, -(-self.total // self.size))

    @property
    def first_row(self) -> int:
        return 0 if self.total == 0 else self.offset + 1

    @property
    def last_row(self) -> int:
        return min(self.total, self.offset + self.size)


def page_number(value: str | None) -> int:
    """`?page=N` (1-based); anything else is page 1, so a hand-edited URL never fails."""
    if value is None or not value.isdigit():
        return 1
    return max(1, min(int(value), 1_000_000))


CONTROL_PLANE_LANE: Final = "control-plane"
"""The timeline lane of CloudTrail's CloudHSM API calls (record_format `cloudtrail`), whatever HSM
they name: what happened to the cluster beside what its HSMs logged."""


class TimelineLane(msgspec.Struct, frozen=True):
    """One row of the timeline: an HSM (or `""`: records with no HSM, e.g. cluster-level ones;
    or `CONTROL_PLANE_LANE`: the CloudTrail calls).

    The three lists have one count per bucket of the `Timeline`.
    """

    hsm_id: str
    events: list[int]
    failed_logins: list[int]
    alerts: list[int]


class Timeline(msgspec.Struct, frozen=True):
    """Events, failed logins and alerts per time bucket and lane, over the filter's time range.

    `start_usecs + i * bucket_usecs` is bucket i's start; the range covers every matching event
    with a time (records without one, e.g. some unparsed ones, cannot be placed).
    """

    start_usecs: int
    bucket_usecs: int
    buckets: int
    lanes: list[TimelineLane]


class NeighbourRow(msgspec.Struct, frozen=True):
    """One line of an event's neighbourhood in its HSM's sequence: an event or a gap."""

    sequence_no: int
    event_id: str | None = None
    time: str | None = None
    opcode: str | None = None
    user_name: str | None = None
    response: str | None = None
    missing: int = 0
    """For a gap line: how many sequence numbers have no record (`sequence_no` is the first)."""
    duplicate: bool = False
    """Another stored record has the same sequence number in the same epoch."""
    current: bool = False


class KeyStep(msgspec.Struct, frozen=True):
    """One thing done to a key: an audit event with a key handle."""

    event_id: str
    time: str | None
    hsm_id: str | None
    opcode: str | None
    action: str | None
    success: bool | None
    user_name: str | None
    """The record's user or, when it names none, the user logged in on that session of that HSM."""
    session_handle: str | None


class KeyLifecycle(msgspec.Struct, frozen=True):
    """A key handle of a cluster and what happened to it, oldest first.

    `generated`, `shared`, `wrapped`, `deleted` are the first successful step of each kind (None:
    not seen in the store); `synced_to` the HSMs that received a masked copy.
    """

    cluster_id: str | None
    key_handle: int
    public_key_handle: int | None
    events: int
    first_time: str | None
    last_time: str | None
    generated: KeyStep | None
    shared: KeyStep | None
    wrapped: KeyStep | None
    deleted: KeyStep | None
    synced_to: list[str]
    steps: list[KeyStep]
