"""`ops.detection` in-process: the flag values `detect` turns into a detection config, alerts over
a real local store (read-only), the HSM streams merged by time, the summary line and the rule rows.
The command around them (`hsmaudit detect`, `rules list`) is in `tests/integration/test_detect_cli.py`.
"""

from __future__ import annotations

import sqlite3
import time
from collections import Counter
from pathlib import Path

import pytest

from hsmaudit.detect.engine import DetectionConfig, detect_events
from hsmaudit.detect.errors import DetectError, DetectStoreError
from hsmaudit.detect.ruleset import load_ruleset
from hsmaudit.errors import HsmauditError
from hsmaudit.ops.detection import (
    DetectOptionError,
    RuleRow,
    alerts_summary,
    detection_config,
    parse_duration_usecs,
    parse_now_usecs,
    rule_rows,
    store_alerts,
    time_ordered,
)
from hsmaudit.records.alert import Alert
from hsmaudit.records.event import HsmEvent
from hsmaudit.store.database import EventStore

from .test_detect_builder import SECOND, Cluster
from .test_detect_scenarios import brute_force


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("90", 90), ("90s", 90), ("30m", 1800), ("6h", 21_600), ("1d", 86_400), (" 2 h ", 7200)],
)
def test_durations_in_seconds_minutes_hours_days(text: str, seconds: int) -> None:
    assert parse_duration_usecs(text) == seconds * 1_000_000


@pytest.mark.parametrize("text", ["0", "0m", "-5m", "1w", "ten minutes", "", "1.5h"])
def test_a_bad_duration_says_how_to_write_one(text: str) -> None:
    with pytest.raises(ValueError, match=r"bad duration .*: use a positive number with s, m, h or d"):
        parse_duration_usecs(text)


def test_now_is_absent_the_wall_clock_or_an_iso_time() -> None:
    assert parse_now_usecs(None) is None
    before = time.time_ns() // 1000
    now = parse_now_usecs(" NOW ")
    assert now is not None
    assert before <= now <= time.time_ns() // 1000
    assert parse_now_usecs("2025-11-26T07:20:00Z") == 1_764_141_600_000_000
    # no zone: UTC; an offset is honoured
    assert parse_now_usecs("2025-11-26T07:20:00") == 1_764_141_600_000_000
    assert parse_now_usecs("2025-11-26T09:20:00.5+02:00") == 1_764_141_600_500_000


def test_a_bad_now_names_the_flag() -> None:
    with pytest.raises(ValueError, match=r"bad --now 'yesterday-ish': use 'now' or an ISO-8601 time"):
        parse_now_usecs("yesterday-ish")


def test_the_config_carries_the_silence_and_the_disabled_rules() -> None:
    config = detection_config("30m", ["hsm-silent", "failed-login"])
    assert config.silent_after_usecs == 1800 * 1_000_000
    assert config.disabled == frozenset({"hsm-silent", "failed-login"})
    assert detection_config("1h", None) == DetectionConfig(silent_after_usecs=3600 * 1_000_000)


def test_unknown_rule_ids_are_named_sorted_and_a_usage_error() -> None:
    with pytest.raises(DetectOptionError) as caught:
        detection_config("1h", ["zz-nope", "failed-login", "aa-nope"])
    assert str(caught.value) == "unknown rule id(s) aa-nope, zz-nope; see 'hsmaudit rules list'"
    assert isinstance(caught.value, HsmauditError)
    assert isinstance(caught.value, ValueError)


def test_a_bad_silence_is_a_usage_error_with_the_durations_message() -> None:
    with pytest.raises(DetectOptionError, match=r"^bad duration '0': use a positive number"):
        detection_config("0", None)


def rule_counts(alerts: list[Alert]) -> dict[str, int]:
    return dict(Counter(alert.rule for alert in alerts))


def test_the_store_gives_the_alerts_the_events_give_and_stays_unchanged(tmp_path: Path) -> None:
    events = brute_force().events
    path = tmp_path / "hsmaudit.sqlite"
    with EventStore(path) as store:
        store.add_events(events)
    before = path.read_bytes()
    config = detection_config("1h", None)
    alerts = store_alerts(path, config, None)
    assert rule_counts(alerts) == {"failed-login": 5, "login-brute-force": 1}
    assert rule_counts(alerts) == rule_counts(list(detect_events(events, config)))
    assert path.read_bytes() == before


def test_the_store_judges_silence_against_the_given_clock(tmp_path: Path) -> None:
    cluster = Cluster()
    cluster.login("app")
    path = tmp_path / "s.sqlite"
    with EventStore(path) as store:
        store.add_events(cluster.events)
    config = detection_config("30m", None)
    assert store_alerts(path, config, None) == []
    later = parse_now_usecs("now")
    assert rule_counts(store_alerts(path, config, later)) == {"hsm-silent": 3}


def test_a_missing_store_is_a_usage_error(tmp_path: Path) -> None:
    missing = tmp_path / "none.sqlite"
    with pytest.raises(DetectOptionError, match=r"^no store at .*none\.sqlite: give the path of an hsmaudit"):
        store_alerts(missing, DetectionConfig(), None)
    with pytest.raises(DetectOptionError, match=r"^no store at"):
        store_alerts(tmp_path, DetectionConfig(), None)  # a folder is not a store
    assert not missing.exists()


def test_a_database_that_is_not_a_store_raises_the_detections_error(tmp_path: Path) -> None:
    path = tmp_path / "other.sqlite"
    connection = sqlite3.connect(path)
    connection.execute("CREATE TABLE things (x)")
    connection.commit()
    connection.close()
    with pytest.raises(DetectError, match=r"^no readable events table"):
        store_alerts(path, DetectionConfig(), None)


def test_a_store_sqlite_cannot_open_raises_the_detections_store_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # One class for "the store cannot be read for detection": an `except DetectStoreError` from
    # detect.errors catches the open failure too, not only the detections' own.
    path = tmp_path / "events.sqlite"
    path.write_bytes(b"")

    def refuse(*args: object, **kwargs: object) -> sqlite3.Connection:
        raise sqlite3.OperationalError("unable to open database file")

    monkeypatch.setattr(sqlite3, "connect", refuse)
    with pytest.raises(
        DetectStoreError, match=r"^cannot open .*events\.sqlite: unable to open database file$"
    ):
        store_alerts(path, DetectionConfig(), None)


def test_streams_merge_by_hsm_time_and_each_keeps_its_own_order() -> None:
    cluster = Cluster()
    a, b = cluster.hsms[0], cluster.hsms[1]
    a1 = cluster.make(a, "CN_LOGOUT", at=10 * SECOND, user="u")
    a2 = cluster.make(a, "CN_LOGOUT", at=5 * SECOND, user="u")  # a's clock stepped back: stays after a1
    a3 = cluster.make(a, "CN_LOGOUT", at=30 * SECOND, user="u")
    b1 = cluster.make(b, "CN_LOGOUT", at=10 * SECOND, user="u")  # a tie with a1: stream name decides
    b2 = cluster.make(b, "CN_LOGOUT", at=20 * SECOND, user="u")
    merged = list(time_ordered([a1, a2, a3, b1, b2]))
    assert merged == [a1, a2, b1, b2, a3]
    # the order the inputs came in does not matter
    assert list(time_ordered([b1, b2, a1, a2, a3])) == merged


def test_events_without_an_hsm_are_a_stream_of_their_log_group_and_stream() -> None:
    first = HsmEvent(usecs=2, log_group="/g", log_stream="s", sequence_no=1)
    second = HsmEvent(usecs=1, log_group="/g", log_stream="s", sequence_no=2)
    other = HsmEvent(usecs=1, log_group="/g", log_stream="t", sequence_no=3)
    # t's record (time 1) goes before s's first (time 2); s keeps its own order after that
    assert [e.sequence_no for e in time_ordered([first, second, other])] == [3, 1, 2]
    assert list(time_ordered([])) == []


def alert(rule: str) -> Alert:
    return Alert(rule=rule, title=rule, severity="high", time=None)


def test_the_summary_counts_alerts_per_rule_by_rule_id() -> None:
    alerts = [alert("login-brute-force"), alert("failed-login"), alert("failed-login")]
    assert alerts_summary(alerts, 12) == "12 events, 3 alerts: failed-login 2, login-brute-force 1"
    assert alerts_summary(alerts, None) == "3 alerts: failed-login 2, login-brute-force 1"
    assert alerts_summary([], 0) == "0 events, 0 alerts: none"


def test_rule_rows_say_each_rules_kind_and_where_it_runs() -> None:
    metadata = {
        "zz-state": {"severity": "medium", "title": "Stateful"},
        "aa-single": {"severity": "high", "title": "One event", "condition": "x"},
        "mm-corr": {"severity": "critical", "title": "Correlated", "timespan_seconds": 600},
    }
    assert rule_rows(metadata) == [
        RuleRow("aa-single", "high", "single-event", ["python", "sqlite", "splunk"], "One event"),
        RuleRow("mm-corr", "critical", "correlation", ["python", "sqlite", "splunk"], "Correlated"),
        RuleRow("zz-state", "medium", "stateful", ["python", "splunk"], "Stateful"),
    ]


def test_every_shipped_rule_has_a_row() -> None:
    ruleset = load_ruleset()
    rows = rule_rows(ruleset.metadata)
    assert [row.rule for row in rows] == sorted(ruleset.rule_ids)
    assert {row.kind for row in rows} == {"single-event", "correlation", "stateful"}
    assert all(row.title and row.severity in {"critical", "high", "medium", "info", "low"} for row in rows)
