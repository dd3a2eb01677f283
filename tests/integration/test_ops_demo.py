"""ops/demo.py in-process on 127.0.0.1: the demo's own collector (`start_demo_collector`, what the
command starts) gets the simulation from the real subscription handler, the detections run over
the store and the verdict holds; with the collector down (the collector of tests/support/collector.py
for the store, a closed port for HEC), every record is spooled and the verdict says so."""

from __future__ import annotations

import socket
import threading
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import pytest

from hsmaudit.ops.demo import (
    DemoStartError,
    check_demo,
    lambda_environment,
    plan_simulation,
    spooled_files,
    start_demo_collector,
    stream_live_activity,
    stream_through_handler,
)
from hsmaudit.simulate.emit import parsed_events, subscription_events

from ..support.collector import TOKEN, Collector
from .fault_hec import closed_port_url

START = 1_767_600_000_000_000  # 2026-01-05T08:00:00Z
SCENARIOS = ["seed", "failed-login-burst", "control-plane"]


def test_simulation_through_the_handler_lands_once_in_the_store_and_fires_the_expected_alerts(
    tmp_path: Path, lambda_env: Callable[..., None]
) -> None:
    # GIVEN the demo's collector over a fresh store and a planned simulation
    lambda_env()
    collector = start_demo_collector(tmp_path / "demo.sqlite3", "127.0.0.1", 0)
    spool_dir = collector.spool_dir
    try:
        simulation = plan_simulation(SCENARIOS, seed=5, hsms=3, start_usecs=START)
        payloads = 1 + len(list(subscription_events(simulation.records)))
        seen: list[tuple[int, int]] = []
        # WHEN it is played through the handler (and the CloudTrail calls posted) and judged
        totals = collector.play(simulation, progress=lambda done, total: seen.append((done, total)))
        verdict = collector.judge(simulation, totals)
        # THEN every record was acked, one invocation per payload, the CONTROL_MESSAGE skipped
        assert totals["invocations"] == payloads
        assert totals["control_messages"] == 1
        assert totals["accepted"] == len(simulation.records)
        assert totals.get("spooled", 0) == 0
        assert seen == [(done, payloads) for done in range(payloads + 1)]
        assert (
            totals["control_plane_accepted"] == totals["control_plane_sent"] == len(simulation.api_calls) > 0
        )
        # AND the store holds each simulated event once, plus the CloudTrail calls
        stored = [event.event_id for _, event in collector.store.iter_events()]
        expected = {event.event_id for event in parsed_events(simulation.records)}
        assert expected <= set(stored)
        assert len(stored) == len(simulation.records) + len(simulation.api_calls)
        # AND exactly the alerts the scenarios promise fired: the verdict passes
        assert verdict.missing_events == 0
        assert verdict.missing_rules == frozenset()
        assert verdict.unexpected_rules == frozenset()
        assert set(verdict.summary.alerts) == simulation.expected_rules | simulation.control_plane_rules
        assert verdict.ok
        assert spooled_files(spool_dir) == []
    finally:
        collector.close()
    # AND closing stops the server and removes the empty spool directory
    assert not collector.server.thread.is_alive()
    assert not spool_dir.exists()


def test_the_dashboard_stays_up_until_the_server_stops(tmp_path: Path) -> None:
    collector = start_demo_collector(tmp_path / "demo.sqlite3", "127.0.0.1", 0)
    try:
        simulation = plan_simulation(["seed"], seed=5, hsms=2, start_usecs=START)
        threading.Timer(0.3, collector.server.stop).start()
        collector.run_live(simulation, event_format="lean", live=False)
        assert not collector.server.thread.is_alive()
    finally:
        collector.close()


# uvicorn's thread ends with SystemExit when it cannot bind (start_in_thread then raises)
@pytest.mark.filterwarnings("ignore::pytest.PytestUnhandledThreadExceptionWarning")
def test_a_taken_port_or_a_store_that_cannot_open_is_a_demo_start_error(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(
            DemoStartError, match=r"^cannot start the local server on 127\.0\.0\.1: .*; try --port 0$"
        ):
            start_demo_collector(tmp_path / "demo.sqlite3", "127.0.0.1", port)
    (tmp_path / "a-directory").mkdir()
    with pytest.raises(DemoStartError):
        start_demo_collector(tmp_path / "a-directory", "127.0.0.1", 0)


def test_with_the_collector_down_every_record_is_spooled_and_the_verdict_fails(
    collector: Collector, tmp_path: Path, lambda_env: Callable[..., None]
) -> None:
    lambda_env()
    simulation = plan_simulation(["seed"], seed=5, hsms=2, start_usecs=START)
    spool = tmp_path / "spool"
    spool.mkdir()
    with lambda_environment(closed_port_url(), TOKEN, spool):
        totals = stream_through_handler(simulation)
    assert totals.get("accepted", 0) == 0
    assert totals["spooled"] == len(simulation.records)
    assert len(spooled_files(spool)) == len(list(subscription_events(simulation.records)))
    assert collector.count() == 0
    verdict = check_demo(collector.store, simulation, totals)
    assert verdict.missing_events == len({e.event_id for e in parsed_events(simulation.records)})
    assert verdict.spooled == len(simulation.records)
    assert not verdict.ok


def test_live_activity_delivers_everyday_work_while_the_server_is_alive(
    collector: Collector, tmp_path: Path, lambda_env: Callable[..., None]
) -> None:
    # GIVEN the scenarios delivered, and a server that stays alive for two rounds
    lambda_env()
    simulation = plan_simulation(["seed"], seed=5, hsms=2, start_usecs=None)
    spool = tmp_path / "spool"
    spool.mkdir()
    with lambda_environment(collector.url, TOKEN, spool):
        stream_through_handler(simulation)
        played = len(simulation.simulator.records)
        assert collector.count() == played
        rounds = iter([True, True, False])
        # WHEN the live activity runs
        stream_live_activity(simulation, server_alive=lambda: next(rounds), interval=0)
    # THEN two rounds of new records (each a login, a key made or shared, a logout, on every HSM
    # that records them), placed now, are all in the store, and nothing was spooled
    added = simulation.simulator.records[played:]
    logins = [r for r in added if "CN_LOGIN" in r.message and "CN_LOGOUT" not in r.message]
    assert sorted(Counter(r.hsm_id for r in logins).values()) == [2, 2]
    assert collector.count() == played + len(added)
    assert min(r.usecs for r in added) > simulation.records[-1].usecs
    assert spooled_files(spool) == []
