"""One alert per cluster action, whatever order a cluster's streams are read in (issues 11 and 12).

Every HSM of a cluster records each login and user-management command (`ClusterSimulator` with
`replicate_management`), so one failed login on 3 HSMs is 3 records. They must raise one alert
naming all 3 `event_id`s, in the Python engine, over the SQLite store and in the generated SPL; and
the alerts must not depend on how the streams arrive: merged, one file after another
(`hsmaudit detect hsm-a.json hsm-b.json hsm-c.json`, in any order), or minutes apart in a live
collector. 4 failed attempts on a 3-HSM cluster (12 records) are 4 attempts, never a brute force.
Real engine, store, CLI and collector tailer; the collector's arrival clock is a fake one so
"minutes apart" takes no time.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from pathlib import Path

import pytest
from typer.testing import CliRunner

from hsmaudit.cli.app import app
from hsmaudit.detect.engine import DetectionConfig, DetectionEngine, detect_events
from hsmaudit.detect.sqlite import detect_store
from hsmaudit.ops.detection import time_ordered
from hsmaudit.records.alert import Alert, alert_from_json, alert_to_json
from hsmaudit.records.event import HsmEvent, event_to_json
from hsmaudit.server.detections import DetectionTailer
from hsmaudit.simulate.cluster import CO, CU, ClusterSimulator
from hsmaudit.simulate.emit import parsed_events
from hsmaudit.store.database import EventStore

from .test_detect_builder import SECOND, Cluster
from .test_rules_spl_semantics import SEARCHES, run_search

CONFIG = DetectionConfig(disabled=frozenset({"hsm-silent"}))


def cluster(seed: int = 7) -> ClusterSimulator:
    return ClusterSimulator(seed=seed, hsm_count=3, replicate_management=True)


def events_of(sim: ClusterSimulator) -> list[HsmEvent]:
    return list(parsed_events(sim.sorted_records()))


def by_stream(events: list[HsmEvent]) -> dict[str, list[HsmEvent]]:
    """Each HSM's stream in its own order (what a per-stream export holds)."""
    streams: dict[str, list[HsmEvent]] = {}
    for event in events:
        streams.setdefault(str(event.hsm_id), []).append(event)
    return streams


def normalised(alerts: list[Alert]) -> list[str]:
    return sorted(alert_to_json(alert).decode() for alert in alerts)


def attack(attempts: int) -> tuple[ClusterSimulator, list[HsmEvent]]:
    """`attempts` failed logins of one officer, 20 s apart, each recorded by all 3 HSMs."""
    sim = cluster()
    sim.login("app", CU)
    for _ in range(attempts):
        sim.failed_login("officer", CO)
        sim.advance(20)
    sim.login("app", CU)
    return sim, events_of(sim)


ORDERS = [(0, 1, 2), (2, 1, 0), (1, 2, 0)]


def concatenated(events: list[HsmEvent], order: tuple[int, ...]) -> list[HsmEvent]:
    streams = list(by_stream(events).values())
    return [event for index in order for event in streams[index]]


# --- one alert per cluster action -------------------------------------------------------------


def test_a_failed_login_recorded_by_3_hsms_is_one_failed_login_alert() -> None:
    sim = cluster()
    serving = sim.failed_login("carol", CU, serving=1)
    events = events_of(sim)
    assert len(events) == 3
    (alert,) = list(detect_events(events, CONFIG))
    assert alert.rule == "failed-login"
    assert sorted(alert.event_ids) == sorted(str(e.event_id) for e in events)
    assert alert.hsm_id == sim.hsms[serving].hsm_id  # the serving HSM's record comes first
    assert alert.details["copies"] == 3
    assert alert.details["hsms"] == sorted(h.hsm_id for h in sim.hsms)


def test_a_password_change_recorded_by_3_hsms_is_one_password_changed_alert() -> None:
    sim = cluster()
    sim.change_password(0, "officer1", CO)
    events = events_of(sim)
    (alert,) = list(detect_events(events, CONFIG))
    assert (alert.rule, alert.user_name, alert.severity) == ("password-changed", "officer1", "critical")
    assert sorted(alert.event_ids) == sorted(str(e.event_id) for e in events)


@pytest.mark.parametrize(
    ("act", "rule"),
    [
        (lambda s: s.failed_login("carol", CU, serving=2), "failed-login"),
        (lambda s: s.change_password(1, "officer1", CO), "password-changed"),
        (lambda s: s.create_user(0, "app9", CU), "user-created"),
        (lambda s: s.create_user(0, "officer9", CO), "crypto-officer-created"),
        (lambda s: s.delete_user(2, "app9", CU), "user-deleted"),
    ],
)
def test_each_cluster_action_is_one_alert_in_python_sqlite_and_spl(
    act: Callable[[ClusterSimulator], object], rule: str, tmp_path: Path
) -> None:
    sim = cluster()
    act(sim)
    sim.advance(90)
    act(sim)  # the same command again later: a second action, a second alert
    events = events_of(sim)
    assert len(events) == 6
    python = [a for a in detect_events(events, CONFIG) if a.rule == rule]
    assert len(python) == 2 and all(len(a.event_ids) == 3 for a in python)
    path = tmp_path / "store.db"
    with EventStore(path) as store:
        store.add_events(events)
    with sqlite3.connect(path) as connection:
        stored = [a for a in detect_store(connection, CONFIG) if a.rule == rule]
    assert normalised(stored) == normalised(python)
    rows = run_search(SEARCHES[rule], events)
    assert sorted(tuple(row["event_ids"]) for row in rows) == sorted(
        tuple(sorted(a.event_ids)) for a in python
    )
    assert [row["copies"] for row in rows] == [3, 3]


# --- order independence ------------------------------------------------------------------------


@pytest.mark.parametrize("attempts", [4, 5])
def test_streams_read_in_any_order_give_the_merged_alerts(attempts: int) -> None:
    _, events = attack(attempts)
    merged = normalised(list(detect_events(events, CONFIG)))
    rules = sorted(alert_from_json(a).rule for a in merged)
    assert rules.count("failed-login") == attempts  # one per attempt, not one per copy
    assert rules.count("login-brute-force") == (1 if attempts >= 5 else 0)
    for order in ORDERS:
        assert normalised(list(detect_events(time_ordered(concatenated(events, order)), CONFIG))) == merged


def test_without_sorting_streams_read_one_after_another_would_count_copies_as_attempts() -> None:
    # Why the CLI sorts: the engine alone holds records 30 s of HSM time, and one stream read after
    # another has already moved minutes on when the next stream's copies arrive.
    _, events = attack(4)
    rules = [a.rule for a in detect_events(concatenated(events, (0, 1, 2)), CONFIG)]
    assert "login-brute-force" in rules


def test_sqlite_gives_the_same_alerts_whatever_order_the_store_received_the_streams(tmp_path: Path) -> None:
    _, events = attack(5)
    expected = normalised(list(detect_events(events, CONFIG)))
    for index, order in enumerate([(0, 1, 2), *ORDERS]):
        path = tmp_path / f"store-{index}.db"
        with EventStore(path) as store:
            store.add_events(concatenated(events, order) if index else events)
        with sqlite3.connect(path) as connection:
            assert normalised(detect_store(connection, CONFIG)) == expected, order


def test_hsmaudit_detect_on_per_stream_files_in_any_order_matches_the_merged_file(tmp_path: Path) -> None:
    _, events = attack(4)
    files = []
    for hsm, stream in by_stream(events).items():
        path = tmp_path / f"{hsm}.json"
        path.write_bytes(b"".join(event_to_json(event) + b"\n" for event in stream))
        files.append(str(path))
    merged = tmp_path / "merged.json"
    merged.write_bytes(b"".join(event_to_json(event) + b"\n" for event in events))
    runner = CliRunner()

    def detect(*paths: str) -> list[str]:
        result = runner.invoke(app, ["detect", "--disable", "hsm-silent", *paths])
        assert result.exit_code == 0, result.output
        return sorted(line for line in result.stdout.splitlines() if line)

    expected = detect(str(merged))
    assert len(expected) == 4 and all('"rule":"failed-login"' in line for line in expected)
    for order in ORDERS:
        assert detect(*(files[i] for i in order)) == expected


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.mark.parametrize("attempts", [4, 5])
def test_a_live_collector_with_streams_minutes_apart_gives_the_merged_alerts(
    attempts: int, tmp_path: Path
) -> None:
    # GIVEN the streams of one cluster reaching the collector 2 minutes apart (each stream whole:
    # its HSM time runs ahead of the streams still in flight)
    _, events = attack(attempts)
    expected = normalised(list(detect_events(events, CONFIG)))
    for order in ORDERS:
        clock = FakeClock()
        with EventStore(tmp_path / f"live-{order}.db") as store:
            tailer = DetectionTailer(store, engine=DetectionEngine(CONFIG, clock=clock))
            streams = list(by_stream(events).values())
            for index in order:
                store.add_events(streams[index])
                tailer.run_once()
                clock.now += 120
            # WHEN the hold (5 minutes after the last arrival) has passed, at the next pass
            clock.now += 300
            tailer.run_once()
            # THEN the stored alerts are those of the merged input: one per attempt, no brute
            # force for 4 attempts
            stored = store.alerts(limit=1000)
        assert normalised(stored) == expected, order


def test_a_live_collector_releases_a_lone_failed_login_after_the_hold_without_more_traffic(
    tmp_path: Path,
) -> None:
    sim = cluster()
    sim.failed_login("carol", CU)
    clock = FakeClock()
    with EventStore(tmp_path / "idle.db") as store:
        tailer = DetectionTailer(store, engine=DetectionEngine(CONFIG, clock=clock))
        store.add_events(events_of(sim))
        assert tailer.run_once() == 0  # held for copies still in flight
        clock.now += 301
        assert tailer.run_once() == 1
        (alert,) = store.alerts()
    assert alert.rule == "failed-login" and len(alert.event_ids) == 3


def test_merging_keeps_each_streams_own_order_when_an_hsm_clock_steps_back() -> None:
    # Sorting every record by time would put sequence 2 (clock stepped back 5 s) before 1: a false
    # gap and reset. The merge interleaves streams by time but never reorders one.
    paper = Cluster()
    hsm, other = paper.hsms[0], paper.hsms[1]
    paper.record(hsm, "CN_LOGOUT", user="u")
    paper.record(other, "CN_LOGOUT", user="v", at=paper.clock + 7 * SECOND)
    paper.record(hsm, "CN_LOGOUT", user="u", at=paper.clock + 10 * SECOND)
    paper.record(hsm, "CN_LOGOUT", user="u", at=paper.clock + 5 * SECOND)  # the clock stepped back
    merged = list(time_ordered(paper.events))
    assert [e.sequence_no for e in merged if e.hsm_id == hsm] == [0, 1, 2]
    assert [e.hsm_id for e in merged] == [hsm, other, hsm, hsm]
    assert list(detect_events(merged, CONFIG)) == []
