"""ops/demo.py in-process: the handler's environment, the plan, the fresh store, the alert lines and
the verdict, on real stores and real simulations (no collector: that is integration/test_ops_demo.py)."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from hsmaudit.config import HSMAUDIT_HEC_TOKEN, HSMAUDIT_HEC_URL, HSMAUDIT_SPOOL_BUCKET, HSMAUDIT_SPOOL_DIR
from hsmaudit.ops.demo import (
    DEFAULT_DEMO_DB,
    LambdaContext,
    alert_lines,
    check_demo,
    fresh_store,
    lambda_environment,
    plan_simulation,
    spooled_files,
)
from hsmaudit.records.alert import Alert
from hsmaudit.simulate.emit import parsed_events
from hsmaudit.simulate.scenarios import run_scenarios
from hsmaudit.store.database import EventStore

START = 1_767_600_000_000_000  # 2026-01-05T08:00:00Z


def test_lambda_context_reports_its_budget_in_milliseconds() -> None:
    assert LambdaContext(budget_seconds=2.5).get_remaining_time_in_millis() == 2500
    assert LambdaContext().function_name == "hsmaudit-demo"


def test_lambda_environment_configures_the_handler_and_restores_everything(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN an S3 spool configured and a URL set, a token absent
    monkeypatch.setenv(HSMAUDIT_SPOOL_BUCKET, "a-bucket")
    monkeypatch.setenv(HSMAUDIT_HEC_URL, "https://splunk.example:8088")
    monkeypatch.delenv(HSMAUDIT_HEC_TOKEN, raising=False)
    monkeypatch.delenv(HSMAUDIT_SPOOL_DIR, raising=False)
    # WHEN the demo's environment is in force
    with lambda_environment("http://127.0.0.1:1", "demo-token", tmp_path, event_format="json"):
        # THEN the handler sees the local collector, the local spool and no S3 bucket
        assert os.environ[HSMAUDIT_HEC_URL] == "http://127.0.0.1:1"
        assert os.environ[HSMAUDIT_HEC_TOKEN] == "demo-token"
        assert os.environ[HSMAUDIT_SPOOL_DIR] == str(tmp_path)
        assert os.environ["HSMAUDIT_EVENT_FORMAT"] == "json"
        assert os.environ["HSMAUDIT_HEC_ACK"] == "true"
        assert HSMAUDIT_SPOOL_BUCKET not in os.environ
    # AND afterwards everything is as it was
    assert os.environ[HSMAUDIT_SPOOL_BUCKET] == "a-bucket"
    assert os.environ[HSMAUDIT_HEC_URL] == "https://splunk.example:8088"
    assert HSMAUDIT_HEC_TOKEN not in os.environ
    assert HSMAUDIT_SPOOL_DIR not in os.environ


def test_plan_with_a_start_begins_there_and_without_one_ends_about_a_minute_ago() -> None:
    placed = plan_simulation(["seed"], seed=3, hsms=2, start_usecs=START)
    assert placed.records[0].usecs >= START
    assert placed.scenarios == run_scenarios(["seed"], seed=3, hsms=2, start_usecs=START).scenarios
    assert [r.message for r in placed.records] == [
        r.message for r in run_scenarios(["seed"], seed=3, hsms=2, start_usecs=START).records
    ]
    now = time.time_ns() // 1000
    recent = plan_simulation(["seed"], seed=3, hsms=2, start_usecs=None)
    assert now - 120_000_000 < recent.records[-1].usecs <= now


def test_plan_of_an_unknown_scenario_raises_value_error() -> None:
    with pytest.raises(ValueError, match="unknown scenario"):
        plan_simulation(["no-such-scenario"], seed=1, hsms=3, start_usecs=START)


def _store_with(db: Path, cluster_id: str | None) -> None:
    simulation = run_scenarios(["seed"], seed=1, hsms=2, start_usecs=START, cluster_id=cluster_id)
    store = EventStore(db)
    store.add_events(parsed_events(simulation.records))
    store.close()


def test_fresh_store_leaves_a_store_of_other_events_alone_unless_reset(tmp_path: Path) -> None:
    db = tmp_path / "real.sqlite3"
    _store_with(db, "cluster-realone")
    refusal = fresh_store(db, cluster_id="cluster-demo", reset=False)
    assert refusal == (
        f"{db} holds other events than this demo's cluster cluster-demo; the demo starts from an "
        "empty store: give --reset to replace it, or another --db"
    )
    assert db.exists() and EventStore(db).count_events() > 0
    assert fresh_store(db, cluster_id="cluster-demo", reset=True) is None
    assert not db.exists() and not Path(f"{db}-wal").exists() and not Path(f"{db}-shm").exists()


def test_fresh_store_replaces_a_store_of_the_demo_cluster_only_and_an_empty_file(tmp_path: Path) -> None:
    db = tmp_path / "demo-before.sqlite3"
    _store_with(db, "cluster-demo")
    assert fresh_store(db, cluster_id="cluster-demo", reset=False) is None
    assert not db.exists()
    empty = tmp_path / "empty.sqlite3"
    empty.touch()
    assert fresh_store(empty, cluster_id="cluster-demo", reset=False) is None
    assert not empty.exists()
    assert fresh_store(tmp_path / "absent.sqlite3", cluster_id="cluster-demo", reset=False) is None


def test_fresh_store_always_replaces_the_demo_own_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    DEFAULT_DEMO_DB.parent.mkdir()
    _store_with(DEFAULT_DEMO_DB, "cluster-realone")
    assert fresh_store(DEFAULT_DEMO_DB, cluster_id="cluster-demo", reset=False) is None
    assert not DEFAULT_DEMO_DB.exists()


def test_alert_lines_count_per_rule_most_severe_first(tmp_path: Path) -> None:
    store = EventStore(tmp_path / "alerts.sqlite3")
    alerts = [
        Alert(rule="key-deleted", title="k", severity="medium", event_ids=["e1"]),
        Alert(rule="failed-login", title="f", severity="high", event_ids=["e2"]),
        Alert(rule="failed-login", title="f", severity="high", event_ids=["e3"]),
        Alert(rule="crypto-officer-created", title="c", severity="critical", event_ids=["e4"]),
    ]
    store.add_alerts(alerts)
    assert alert_lines(store) == [
        f"alert  {'critical':<8}  {'crypto-officer-created':<36}  1",
        f"alert  {'high':<8}  {'failed-login':<36}  2",
        f"alert  {'medium':<8}  {'key-deleted':<36}  1",
    ]
    store.close()


def test_verdict_counts_missing_events_rules_unexpected_alerts_spool_and_lost_calls(tmp_path: Path) -> None:
    # GIVEN the seed scenario (expects key-deleted) with one record missing from the store
    simulation = run_scenarios(["seed"], seed=1, hsms=2, start_usecs=START)
    events = list(parsed_events(simulation.records))
    store = EventStore(tmp_path / "verdict.sqlite3")
    store.add_events(events[1:])
    store.add_alerts([Alert(rule="failed-login", title="f", severity="high", event_ids=["x"])])
    # WHEN it is judged with one batch spooled and one CloudTrail call lost
    totals = {"spooled": 1, "control_plane_sent": 3, "control_plane_accepted": 2}
    verdict = check_demo(store, simulation, totals)
    # THEN every shortfall is named
    assert verdict.missing_events == 1
    assert verdict.missing_rules == frozenset({"key-deleted"})
    assert verdict.unexpected_rules == frozenset({"failed-login"})
    assert (verdict.spooled, verdict.control_plane_lost) == (1, 1)
    assert verdict.summary.total_events == len(events) - 1
    assert not verdict.ok
    # AND with everything there, only the expected alert and nothing spooled, it passes
    whole = EventStore(tmp_path / "whole.sqlite3")
    whole.add_events(events)
    whole.add_alerts([Alert(rule="key-deleted", title="k", severity="medium", event_ids=["y"])])
    passed = check_demo(whole, simulation, {"spooled": 0})
    assert passed.ok
    assert (passed.missing_events, passed.missing_rules, passed.unexpected_rules) == (
        0,
        frozenset(),
        frozenset(),
    )
    store.close()
    whole.close()


def test_spooled_files_names_every_batch_below_the_spool(tmp_path: Path) -> None:
    assert spooled_files(tmp_path) == []
    (tmp_path / "2026" / "01").mkdir(parents=True)
    (tmp_path / "2026" / "01" / "b.batch").write_bytes(b"x")
    (tmp_path / "a.batch").write_bytes(b"x")
    assert spooled_files(tmp_path) == ["a.batch", "b.batch"]
