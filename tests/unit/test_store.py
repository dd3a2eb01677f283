"""The SQLite store: schema contract, idempotent durable writes, and exact summaries.

The summary uses hourly rollups plus edge scans; a property test checks it against a brute-force
count over the same events for arbitrary filters and time ranges.
"""

from __future__ import annotations

import sqlite3
import time
from collections import Counter
from pathlib import Path

import msgspec
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hsmaudit.records.alert import Alert
from hsmaudit.records.event import FIELD_NAMES, HsmEvent
from hsmaudit.records.opcodes import KEY_DELETION_OPCODES, KEY_GENERATION_OPCODES, USER_TYPE_ABBREVIATIONS
from hsmaudit.records.parse import parse_message
from hsmaudit.simulate.emit import parsed_events
from hsmaudit.simulate.scenarios import run_scenarios
from hsmaudit.store.database import EventStore
from hsmaudit.store.errors import StoreDataError, StoreSchemaError
from hsmaudit.store.query import EventFilter, FilterError, parse_time
from hsmaudit.store.schema import ROLLUP_BUCKET_USECS
from hsmaudit.store.writer import GroupCommitWriter

EVENTS = list(parsed_events(run_scenarios(seed=5).records))


def columns(db: Path, table: str) -> list[str]:
    with sqlite3.connect(db) as connection:
        return [row[1] for row in connection.execute(f"PRAGMA table_info({table})")]


def test_events_table_has_one_column_per_event_field_named_as_the_field(tmp_path: Path) -> None:
    EventStore(tmp_path / "s.db").close()
    assert columns(tmp_path / "s.db", "events") == list(FIELD_NAMES)


def test_alerts_table_has_the_contract_alert_fields(tmp_path: Path) -> None:
    EventStore(tmp_path / "s.db").close()
    assert set(Alert.__struct_fields__) <= set(columns(tmp_path / "s.db", "alerts"))


def test_store_file_is_in_wal_mode_with_unique_event_id(tmp_path: Path) -> None:
    EventStore(tmp_path / "s.db").close()
    with sqlite3.connect(tmp_path / "s.db") as connection:
        assert connection.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        indexes = connection.execute("PRAGMA index_list(events)").fetchall()
        unique = [row[1] for row in indexes if row[2] == 1]
        assert any(
            [info[2] for info in connection.execute(f"PRAGMA index_info({name})")] == ["event_id"]
            for name in unique
        )


def test_events_round_trip_exactly(tmp_path: Path) -> None:
    with EventStore(tmp_path / "s.db") as store:
        assert store.add_events(EVENTS) == len(EVENTS)
        assert [event for _, event in store.iter_events()] == EVENTS


def test_booleans_are_0_1_and_maps_are_json_text(tmp_path: Path) -> None:
    event = msgspec.structs.replace(
        EVENTS[0], extra={"Odd label": "x"}, attributes=["Label"], mfa_enabled=False
    )
    with EventStore(tmp_path / "s.db") as store:
        store.add_events([event])
    with sqlite3.connect(tmp_path / "s.db") as connection:
        success, mfa, extra, attributes = connection.execute(
            "SELECT success, mfa_enabled, extra, attributes FROM events"
        ).fetchone()
    assert (success, mfa, extra, attributes) == (1, 0, '{"Odd label":"x"}', '["Label"]')


def test_repeats_are_stored_once_and_counted_once(tmp_path: Path) -> None:
    with EventStore(tmp_path / "s.db") as store:
        assert store.add_events(EVENTS[:50]) == 50
        assert store.add_events(EVENTS[:80]) == 30
        assert store.add_events(EVENTS[:10] + EVENTS[:10]) == 0
        assert store.count_events() == 80
        assert store.summary().total_events == 80


def test_integers_beyond_64_bits_are_kept(tmp_path: Path) -> None:
    event = HsmEvent(object_handle=2**70 + 3, event_id="big", raw="x")
    with EventStore(tmp_path / "s.db") as store:
        store.add_events([event])
        [(_, back)] = list(store.iter_events())
    assert back.object_handle == 2**70 + 3


def test_event_without_id_gets_a_deterministic_one(tmp_path: Path) -> None:
    event = HsmEvent(raw="no id here", parse_error="x")
    with EventStore(tmp_path / "s.db") as store:
        assert store.add_events([event]) == 1
        assert store.add_events([event]) == 0


def test_a_write_that_fails_outside_sqlite_is_rolled_back_and_the_next_write_succeeds(
    tmp_path: Path,
) -> None:
    # GIVEN an event with a lone surrogate (sqlite3 raises UnicodeEncodeError while binding it,
    # not a sqlite3.Error) in the middle of a batch
    poison = HsmEvent(event_id="poison", raw="bad \ud800 text", parse_error="x")
    with EventStore(tmp_path / "s.db") as store:
        # WHEN it is written, THEN the store says so in its own terms and keeps none of the batch
        with pytest.raises(StoreDataError, match="UnicodeEncodeError"):
            store.add_events([EVENTS[0], poison, EVENTS[1]])
        assert store.count_events() == 0
        # AND the next innocent writes (events and alerts) are not poisoned by an open transaction
        assert store.add_events(EVENTS[:3]) == 3
        alert = Alert(rule="failed-login", title="t", severity="high", time=None, event_ids=["a"])
        assert store.add_alerts([alert]) == 1
        with pytest.raises(StoreDataError):
            store.add_alerts([Alert(rule="failed-login", title="\udfff", severity="high", time=None)])
        assert store.add_alerts([Alert(rule="user-created", title="t", severity="info", time=None)]) == 1
        assert store.count_events() == 3
        assert store.summary().total_events == 3
    with EventStore(tmp_path / "s.db") as reopened:
        assert reopened.count_events() == 3


def test_group_commit_keeps_the_good_requests_that_share_a_commit_with_a_poison_one(
    tmp_path: Path,
) -> None:
    poison = HsmEvent(event_id="poison", raw="\ud800", parse_error="x")
    with EventStore(tmp_path / "s.db") as store:
        writer = GroupCommitWriter(store)
        try:
            # GIVEN three requests queued while the writer is busy, so they share one commit
            with store._write_lock:
                busy = writer.submit(EVENTS[20:21])
                while writer._queue.qsize():  # the writer has taken `busy` and waits for the lock
                    time.sleep(0.001)
                futures = [
                    writer.submit(EVENTS[:5]),
                    writer.submit([poison]),
                    writer.submit(EVENTS[5:9]),
                ]
            assert busy.result(timeout=30) == 1
            # WHEN the merged commit fails on the poison row, THEN only that request fails
            outcomes = [f.exception(timeout=30) or f.result() for f in futures]
        finally:
            writer.close()
        assert outcomes[0] == 5
        assert isinstance(outcomes[1], StoreDataError)
        assert outcomes[2] == 4
        assert store.count_events() == 10


def test_a_foreign_sqlite_file_is_refused(tmp_path: Path) -> None:
    with sqlite3.connect(tmp_path / "other.db") as connection:
        connection.execute("CREATE TABLE t (x)")
    with pytest.raises(StoreSchemaError, match="not an hsmaudit store"):
        EventStore(tmp_path / "other.db")


def test_alerts_are_stored_once_per_rule_and_events(tmp_path: Path) -> None:
    alert = Alert(
        rule="key-deleted",
        title="t",
        severity="critical",
        time="2026-01-05T08:00:00.000000Z",
        event_ids=["a"],
    )
    with EventStore(tmp_path / "s.db") as store:
        assert store.add_alerts([alert, alert]) == 1
        assert store.add_alerts([alert]) == 0
        assert store.alerts() == [alert]
        assert store.summary().alerts == {"key-deleted": 1}


def test_stream_status_reports_the_gap_of_the_sequence_gap_scenario(tmp_path: Path) -> None:
    sim = run_scenarios(["sequence-gap"], seed=2)
    with EventStore(tmp_path / "s.db") as store:
        store.add_events(parsed_events(sim.records))
        streams = store.stream_status()
    victim = sim.simulator.hsms[1].hsm_id
    assert {s.hsm_id: s.missing for s in streams} == {
        hsm.hsm_id: 4 if hsm.hsm_id == victim else 0 for hsm in sim.simulator.hsms
    }


# --- summary exactness ----------------------------------------------------------------------


def brute_force(events: list[HsmEvent], f: EventFilter) -> dict[str, object]:
    def keep(e: HsmEvent) -> bool:
        for name in ("cluster_id", "hsm_id", "log_type", "opcode"):
            if getattr(f, name) is not None and getattr(e, name) != getattr(f, name):
                return False
        if f.has_time_range and e.usecs is None:
            return False
        if f.since_usecs is not None and e.usecs is not None and e.usecs < f.since_usecs:
            return False
        return not (f.until_usecs is not None and e.usecs is not None and e.usecs >= f.until_usecs)

    kept = [e for e in events if keep(e)]
    failed = [e for e in kept if e.opcode == "CN_LOGIN" and e.success is False]
    return {
        "total": len(kept),
        "failed": len(failed),
        "failed_by_type": dict(
            Counter(USER_TYPE_ABBREVIATIONS.get(e.user_type or "", e.user_type or "unknown") for e in failed)
        ),
        "generated": sum(1 for e in kept if e.opcode in KEY_GENERATION_OPCODES and e.success),
        "deleted": sum(1 for e in kept if e.opcode in KEY_DELETION_OPCODES and e.success),
        "by_opcode": dict(Counter(e.opcode for e in kept if e.opcode)),
        "by_log_type": dict(Counter(e.log_type for e in kept if e.log_type)),
        "parse_errors": sum(1 for e in kept if e.parse_error is not None),
        "last": max((e.usecs for e in kept if e.usecs is not None), default=None),
    }


@pytest.fixture(scope="module")
def loaded_store(tmp_path_factory: pytest.TempPathFactory) -> EventStore:
    store = EventStore(tmp_path_factory.mktemp("store") / "s.db")
    store.add_events(EVENTS)
    store.add_events([parse_message("garbage line", log_group="/aws/cloudhsm/cluster-x", log_stream="hsm-y")])
    return store


FIRST = min(e.usecs for e in EVENTS if e.usecs is not None)
LAST = max(e.usecs for e in EVENTS if e.usecs is not None)
HSMS = sorted({e.hsm_id for e in EVENTS if e.hsm_id})
OPCODES = sorted({e.opcode for e in EVENTS if e.opcode})


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    since=st.one_of(st.none(), st.integers(FIRST - ROLLUP_BUCKET_USECS, LAST + ROLLUP_BUCKET_USECS)),
    length=st.one_of(st.none(), st.integers(0, 30 * ROLLUP_BUCKET_USECS)),
    hsm=st.one_of(st.none(), st.sampled_from(HSMS)),
    opcode=st.one_of(st.none(), st.sampled_from(OPCODES)),
    log_type=st.one_of(st.none(), st.sampled_from(["MGMT_USER_DETAILS_LOG", "MGMT_KEY_DETAILS_LOG"])),
)
def test_summary_equals_a_brute_force_count_for_any_filter(
    loaded_store: EventStore,
    since: int | None,
    length: int | None,
    hsm: str | None,
    opcode: str | None,
    log_type: str | None,
) -> None:
    until = None if length is None else (since if since is not None else FIRST) + length
    f = EventFilter(hsm_id=hsm, opcode=opcode, log_type=log_type, since_usecs=since, until_usecs=until)
    all_events = [event for _, event in loaded_store.iter_events()]
    expected = brute_force(all_events, f)
    summary = loaded_store.summary(f)
    assert summary.total_events == expected["total"]
    assert summary.failed_logins.total == expected["failed"]
    assert summary.failed_logins.by_user_type == expected["failed_by_type"]
    assert sum(row.count for row in summary.failed_logins.by_user) == expected["failed"]
    assert summary.key_generated == expected["generated"]
    assert summary.key_deleted == expected["deleted"]
    assert summary.by_opcode == expected["by_opcode"]
    assert summary.by_log_type == expected["by_log_type"]
    assert summary.parse_errors == expected["parse_errors"]
    last = expected["last"]
    assert (summary.last_event_time is None) == (last is None)


def test_unparsed_records_count_in_total_and_parse_errors(loaded_store: EventStore) -> None:
    summary = loaded_store.summary()
    assert summary.total_events == len(EVENTS) + 1
    assert summary.parse_errors == 1


def test_recent_events_are_newest_first_and_filtered(loaded_store: EventStore) -> None:
    rows = loaded_store.recent_events(EventFilter(opcode="CN_LOGIN"), limit=10)
    assert len(rows) == 10
    assert all(e.opcode == "CN_LOGIN" for e in rows)
    times = [e.usecs for e in rows]
    assert times == sorted(times, reverse=True)


@pytest.mark.parametrize(
    ("text", "usecs"),
    [
        ("2026-01-05T08:00:00Z", 1_767_600_000_000_000),
        ("2026-01-05T08:00:00.5+00:00", 1_767_600_000_500_000),
        ("2026-01-05T09:00:00+01:00", 1_767_600_000_000_000),
        ("2026-01-05", 1_767_571_200_000_000),
        ("1767600000", 1_767_600_000_000_000),
    ],
)
def test_filter_times_accept_iso_and_epoch(text: str, usecs: int) -> None:
    assert parse_time(text, name="since") == usecs


def test_unreadable_filter_time_is_a_filter_error() -> None:
    with pytest.raises(FilterError, match="since"):
        EventFilter.from_params({"since": "yesterday-ish"})


def test_hostile_times_and_sequence_numbers_do_not_break_the_rollups(tmp_path: Path) -> None:
    odd = [
        HsmEvent(
            event_id="huge",
            usecs=2**70,
            sequence_no=2**70,
            reboot_counter=1,
            hsm_id="hsm-a",
            opcode="CN_LOGIN",
        ),
        HsmEvent(
            event_id="negative",
            usecs=-5_000_000_000,
            sequence_no=3,
            reboot_counter=1,
            hsm_id="hsm-a",
            opcode="CN_LOGIN",
        ),
        HsmEvent(event_id="none", opcode="CN_LOGIN"),
    ]
    with EventStore(tmp_path / "s.db") as store:
        assert store.add_events(odd) == 3
        summary = store.summary()
        assert summary.total_events == 3
        assert summary.by_opcode == {"CN_LOGIN": 3}
        assert store.summary(EventFilter(until_usecs=0)).total_events == 1
        assert [s.records for s in store.stream_status()] == [1]
        assert {e.event_id: e.usecs for _, e in store.iter_events()} == {
            "huge": 2**70,
            "negative": -5_000_000_000,
            "none": None,
        }


def test_a_store_made_before_a_field_was_added_gains_its_column(tmp_path: Path) -> None:
    db = tmp_path / "old.db"
    EventStore(db).close()
    with sqlite3.connect(db) as connection:
        connection.execute("ALTER TABLE events DROP COLUMN mechanism")  # as if made before the field existed
    with EventStore(db) as store:
        assert store.add_events(EVENTS[:5]) == 5
        assert [event for _, event in store.iter_events()] == EVENTS[:5]
    assert columns(db, "events")[-1] == "mechanism"


@pytest.mark.parametrize("since", [None, "hour"])
def test_timeline_puts_cloudtrail_calls_on_a_control_plane_lane(tmp_path: Path, since: str | None) -> None:
    from hsmaudit.records.cloudtrail import cloudtrail_event
    from hsmaudit.store.query import CONTROL_PLANE_LANE

    simulation = run_scenarios(["control-plane", "hsm-silent"], seed=6)
    calls = [cloudtrail_event(call) for call in simulation.api_calls]
    records = list(parsed_events(simulation.records))
    store = EventStore(tmp_path / "s.sqlite3")
    store.add_events(records + calls)
    filters = EventFilter()
    if since == "hour":  # whole-hour range: the rollup path
        times = [e.usecs for e in records + calls if e.usecs is not None]
        low = min(times) - min(times) % ROLLUP_BUCKET_USECS
        high = max(times) - max(times) % ROLLUP_BUCKET_USECS + ROLLUP_BUCKET_USECS
        filters = EventFilter(since_usecs=low, until_usecs=high)
    timeline = store.timeline(filters)
    store.close()
    assert timeline is not None
    lanes = {lane.hsm_id: lane for lane in timeline.lanes}
    assert sum(lanes[CONTROL_PLANE_LANE].events) == len(calls) > 0
    assert timeline.lanes[-1].hsm_id == CONTROL_PLANE_LANE
    # The DeleteHsm call names an HSM; it is counted once, on the control-plane lane only.
    per_hsm = Counter(e.hsm_id or "" for e in records)
    for hsm, count in per_hsm.items():
        assert sum(lanes[hsm].events) == count, hsm
    assert all(min(lane.events) >= 0 for lane in timeline.lanes)
