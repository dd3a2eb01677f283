"""`ops.follow` in-process: the ids `tail` remembers, CloudWatch polling with late events, and the
local store followed as rows arrive.

CloudWatch's part is an in-memory log group that makes events searchable only from a given poll
on, as CloudWatch does for late ones (moto shows everything at once; the same polling against
moto and the real `LogsReader` is in `tests/integration/test_ops_follow.py`). The store is the
real `EventStore` in a temporary folder.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from hsmaudit.ops.follow import SeenIds, _max_rowid, follow_store, poll_cloudwatch
from hsmaudit.records.event import HsmEvent
from hsmaudit.records.parse import parse_message
from hsmaudit.sources.message import LogMessage
from hsmaudit.store.database import EventStore

from ..support.records import login_record

GROUP = "/aws/cloudhsm/cluster-abc123def45"
OTHER_GROUP = "/aws/cloudhsm/cluster-fff000fff00"
BASE_MS = 1_700_000_000_000


def event(sequence_no: int, group: str = GROUP, stream: str = "hsm-abc123def45") -> HsmEvent:
    return parse_message(login_record(sequence_no), log_group=group, log_stream=stream)


@dataclass
class LateLogs:
    """A log group whose events become searchable at a poll of their own, like CloudWatch's late ones.

    `events` holds (visible from poll number, message); `asked` what each FilterLogEvents call asked.
    """

    events: list[tuple[int, LogMessage]] = field(default_factory=list)
    polls: int = 0
    asked: list[tuple[str, int, list[str] | None]] = field(default_factory=list)

    def add(
        self, visible_from: int, sequence_no: int, timestamp: int, stream: str = "hsm-abc123def45"
    ) -> None:
        message = LogMessage(
            login_record(sequence_no), GROUP, stream, f"id-{stream}-{sequence_no}", timestamp
        )
        self.events.append((visible_from, message))

    def filter_events(
        self, log_group: str, *, start_ms: int, streams: list[str] | None = None
    ) -> Iterator[list[LogMessage]]:
        self.asked.append((log_group, start_ms, streams))
        visible = [
            message
            for visible_from, message in self.events
            if visible_from <= self.polls
            and message.log_group == log_group
            and (message.timestamp or 0) >= start_ms
            and (streams is None or message.log_stream in streams)
        ]
        # two pages in the order the events were added (a test adds a late one after newer ones)
        half = len(visible) // 2
        for page in (visible[:half], visible[half:]):
            if page:
                yield page

    def sleep(self, seconds: float) -> None:
        self.polls += 1


def sequence_numbers(items: list[HsmEvent | None]) -> list[int | None]:
    return [item.sequence_no if item is not None else None for item in items]


def test_seen_ids_answer_false_for_a_repeat_and_forget_what_is_two_windows_old() -> None:
    seen = SeenIds(window_ms=1000)
    assert seen.add("a", BASE_MS)
    assert not seen.add("a", BASE_MS + 5)
    assert seen.add("b", BASE_MS + 1500)
    assert len(seen) == 2
    assert seen.newest_ms == BASE_MS + 1500
    # "a" is more than 2 windows behind the newest once "c" arrives: forgotten
    assert seen.add("c", BASE_MS + 2001)
    assert len(seen) == 2
    assert seen.add("a", BASE_MS + 2002)
    # an older timestamp does not move the newest back
    assert seen.add("d", BASE_MS)
    assert seen.newest_ms == BASE_MS + 2002


def test_one_poll_shows_every_event_once_oldest_first_without_a_poll_marker() -> None:
    logs = LateLogs()
    for sequence_no, timestamp in ((3, BASE_MS + 30), (1, BASE_MS + 10), (2, BASE_MS + 20)):
        logs.add(0, sequence_no, timestamp)
    shown = list(
        poll_cloudwatch(logs, [GROUP], start_ms=BASE_MS, follow=False, interval=2.0, lookback_ms=60_000)  # type: ignore[arg-type]
    )
    assert sequence_numbers(shown) == [1, 2, 3]
    assert {item.log_group for item in shown if item is not None} == {GROUP}
    assert logs.asked == [(GROUP, BASE_MS, None)]


def test_following_shows_late_events_once_and_marks_each_poll() -> None:
    # GIVEN two events at first, one late event (older than the newest) and one new event later
    logs = LateLogs()
    logs.add(0, 1, BASE_MS + 10_000)
    logs.add(0, 2, BASE_MS + 20_000)
    logs.add(1, 3, BASE_MS + 15_000)  # searchable only from the second poll, timestamp in the past
    logs.add(2, 4, BASE_MS + 90_000)
    # WHEN following for four polls with a 30 s lookback
    shown = list(
        poll_cloudwatch(
            logs,  # type: ignore[arg-type]
            [GROUP],
            start_ms=BASE_MS,
            follow=True,
            interval=2.0,
            lookback_ms=30_000,
            sleep=logs.sleep,
            polls=4,
        )
    )
    # THEN each event appears once, the late one in the poll that found it, a None between polls
    assert sequence_numbers(shown) == [1, 2, None, 3, None, 4, None]
    # and a poll starts a lookback before the newest event seen (never before the start)
    assert [start for _, start, _ in logs.asked] == [BASE_MS, BASE_MS, BASE_MS, BASE_MS + 60_000]


def test_polling_reads_every_group_and_passes_the_stream_filter() -> None:
    logs = LateLogs()
    logs.add(0, 1, BASE_MS + 10, stream="hsm-one")
    logs.add(0, 2, BASE_MS + 20, stream="hsm-two")
    other = LogMessage(login_record(9), OTHER_GROUP, "hsm-one", "id-other", BASE_MS + 5)
    logs.events.append((0, other))
    shown = list(
        poll_cloudwatch(
            logs,  # type: ignore[arg-type]
            [GROUP, OTHER_GROUP],
            start_ms=BASE_MS,
            follow=False,
            interval=1.0,
            lookback_ms=0,
            streams=["hsm-one"],
        )
    )
    assert [(item.log_group, item.sequence_no) for item in shown if item is not None] == [
        (GROUP, 1),
        (OTHER_GROUP, 9),
    ]
    assert [(group, streams) for group, _, streams in logs.asked] == [
        (GROUP, ["hsm-one"]),
        (OTHER_GROUP, ["hsm-one"]),
    ]


def test_a_group_behind_the_others_keeps_its_own_look_back() -> None:
    """One cluster an hour ahead of another must not move the other's window: its late event shows,
    and its old ones are not shown again once the first group's window has moved on."""
    logs = LateLogs()
    logs.add(0, 1, BASE_MS + 3_600_000)
    behind = [(0, 2, BASE_MS), (1, 3, BASE_MS + 10_000), (2, 4, BASE_MS + 20_000)]
    for visible_from, sequence_no, timestamp in behind:
        message = LogMessage(
            login_record(sequence_no), OTHER_GROUP, "hsm-one", f"id-{sequence_no}", timestamp
        )
        logs.events.append((visible_from, message))
    items = list(
        poll_cloudwatch(
            logs,  # type: ignore[arg-type]
            [GROUP, OTHER_GROUP],
            start_ms=BASE_MS - 60_000,
            follow=True,
            interval=0,
            lookback_ms=60_000,
            sleep=logs.sleep,
            polls=4,
        )
    )
    assert sequence_numbers(items) == [1, 2, None, 3, None, 4, None]
    assert [start for group, start, _ in logs.asked if group == OTHER_GROUP][1:] == [
        BASE_MS - 60_000,
        BASE_MS + 10_000 - 60_000,
        BASE_MS + 20_000 - 60_000,
    ]


def test_events_without_a_cloudwatch_id_are_told_apart_by_stream_time_and_text() -> None:
    logs = LateLogs()
    for sequence_no in (1, 2):
        message = LogMessage(login_record(sequence_no), GROUP, "hsm-abc123def45", None, BASE_MS)
        logs.events.append((0, message))
        logs.events.append((1, message))  # the same event found again by the next poll
    shown = list(
        poll_cloudwatch(
            logs,  # type: ignore[arg-type]
            [GROUP],
            start_ms=BASE_MS,
            follow=True,
            interval=1.0,
            lookback_ms=60_000,
            sleep=logs.sleep,
            polls=2,
        )
    )
    assert sorted(n for n in sequence_numbers(shown) if n is not None) == [1, 2]
    assert shown.count(None) == 1


def store_with(path: Path, events: list[HsmEvent]) -> Path:
    with EventStore(path) as store:
        store.add_events(events)
    return path


def test_the_store_shows_its_last_lines_and_stops_without_follow(tmp_path: Path) -> None:
    db = store_with(tmp_path / "s.sqlite", [event(n) for n in range(30)])
    shown = list(follow_store(db, lines=5, follow=False, interval=0.1, cluster_id=None))
    assert sequence_numbers(shown) == [25, 26, 27, 28, 29]
    assert list(follow_store(db, lines=0, follow=False, interval=0.1, cluster_id=None)) == []


def test_a_cluster_filter_finds_its_events_even_far_back_in_the_table(tmp_path: Path) -> None:
    # GIVEN the cluster's 3 events first, then 400 of another cluster: beyond 50 x lines back
    events = [event(n) for n in range(3)] + [event(100 + n, group=OTHER_GROUP) for n in range(400)]
    db = store_with(tmp_path / "s.sqlite", events)
    shown = list(follow_store(db, lines=2, follow=False, interval=0.1, cluster_id="cluster-abc123def45"))
    assert sequence_numbers(shown) == [1, 2]


def test_following_the_store_yields_rows_as_the_collector_writes_them(tmp_path: Path) -> None:
    db = store_with(tmp_path / "s.sqlite", [event(n) for n in range(3)])
    writes = iter([[event(10), event(11)], [], [event(12)]])
    slept: list[float] = []

    def sleep(seconds: float) -> None:
        # between polls, the collector stores what arrived meanwhile
        slept.append(seconds)
        store_with(db, next(writes))

    stream = follow_store(db, lines=2, follow=True, interval=0.5, cluster_id=None, sleep=sleep)
    shown = [next(stream) for _ in range(8)]
    stream.close()
    assert sequence_numbers(shown) == [1, 2, None, 10, 11, None, None, 12]
    assert slept == [0.5, 0.5, 0.5]


def test_a_missing_store_says_what_to_do(tmp_path: Path) -> None:
    missing = tmp_path / "none.sqlite"
    with pytest.raises(FileNotFoundError, match=r"no local store at .*none\.sqlite \(start 'hsmaudit serve'"):
        next(follow_store(missing, lines=5, follow=False, interval=0.1, cluster_id=None))
    assert not missing.exists()


def test_max_rowid_is_where_the_table_ends_and_zero_without_one(tmp_path: Path) -> None:
    db = store_with(tmp_path / "s.sqlite", [event(n) for n in range(7)])
    assert _max_rowid(db) == 7
    other = tmp_path / "other.sqlite"
    connection = sqlite3.connect(other)
    connection.execute("CREATE TABLE things (x)")
    connection.commit()
    connection.close()
    assert _max_rowid(other) == 0
