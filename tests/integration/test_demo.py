"""`hsmaudit demo --headless` end to end, through the real console script in a subprocess.

The demo drives the real subscription handler and HEC client into the local collector; afterwards
the store must hold exactly the simulated events (by event_id, each once) and the alerts the
scenarios declare.
"""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

from hsmaudit.records.cloudtrail import cloudtrail_event
from hsmaudit.simulate.emit import parsed_events
from hsmaudit.simulate.scenarios import run_scenarios
from hsmaudit.store.query import parse_time

HSMAUDIT = str(Path(sys.executable).with_name("hsmaudit"))
START = "2026-01-05T08:00:00Z"
SEED = 7


def run_demo(db: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HSMAUDIT_", "AWS_"))}
    env.update({"COLUMNS": "200", "NO_COLOR": "1"})
    return subprocess.run(
        [HSMAUDIT, "demo", "--headless", "--db", str(db), "--start", START, "--seed", str(SEED), *extra],
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
        env=env,
        cwd=db.parent,
    )


def test_headless_demo_stores_exactly_the_simulated_events_and_expected_alerts(tmp_path: Path) -> None:
    # GIVEN the simulation the demo will play (deterministic for a seed and start)
    simulation = run_scenarios(seed=SEED, hsms=3, start_usecs=parse_time(START, name="start"))
    calls = [cloudtrail_event(call) for call in simulation.api_calls]
    expected_ids = sorted(str(event.event_id) for event in [*parsed_events(simulation.records), *calls])
    db = tmp_path / "demo.sqlite3"

    # WHEN the demo runs headless through the console script
    result = run_demo(db)

    # THEN it exits 0 with a summary, and the store holds exactly those events and alerts
    assert result.returncode == 0, result.stderr + result.stdout
    assert "hsmaudit serve --db" in result.stdout  # headless: the store, not a stopped server's URL
    assert "expected alerts missing" in result.stdout
    with sqlite3.connect(db) as connection:
        stored_ids = sorted(row[0] for row in connection.execute("SELECT event_id FROM events"))
        rules = {row[0] for row in connection.execute("SELECT DISTINCT rule FROM alerts")}
        parse_errors = connection.execute(
            "SELECT count(*) FROM events WHERE parse_error IS NOT NULL"
        ).fetchone()[0]
    assert stored_ids == expected_ids
    assert rules == simulation.expected_rules | simulation.control_plane_rules
    assert {"hsm-or-cluster-deleted", "backup-deleted-or-retention-changed"} <= rules  # CloudTrail's
    assert parse_errors == 0

    # AND running it again (same seed and start) adds nothing: ids are deterministic
    again = run_demo(db)
    assert again.returncode == 0, again.stderr + again.stdout
    with sqlite3.connect(db) as connection:
        assert connection.execute("SELECT count(*) FROM events").fetchone()[0] == len(expected_ids)
        alert_count = connection.execute("SELECT count(*) FROM alerts").fetchone()[0]
        distinct = connection.execute("SELECT count(DISTINCT alert_id) FROM alerts").fetchone()[0]
    assert alert_count == distinct


def test_headless_demo_with_one_scenario_reports_its_alert(tmp_path: Path) -> None:
    result = run_demo(tmp_path / "one.sqlite3", "--scenario", "key-exported")
    assert result.returncode == 0, result.stderr + result.stdout
    assert "key-exported" in result.stdout


def test_unknown_scenario_fails_with_one_line(tmp_path: Path) -> None:
    result = run_demo(tmp_path / "bad.sqlite3", "--scenario", "nope")
    assert result.returncode == 2
    assert result.stderr.strip().startswith("hsmaudit: unknown scenario")
    assert len(result.stderr.strip().splitlines()) == 1


def test_a_taken_port_fails_with_one_line_naming_it_and_keeps_the_store(tmp_path: Path) -> None:
    """8088 is Splunk's HEC port too: on a Splunk machine the dashboard's port is often taken."""
    import socket

    db = tmp_path / "kept.sqlite3"
    assert run_demo(db, "--scenario", "seed").returncode == 0
    before = db.read_bytes()
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = run_demo(db, "--scenario", "seed", "--port", str(port))
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        f"hsmaudit: cannot listen on 127.0.0.1:{port}: Address already in use; choose another --port"
    ]
    assert db.read_bytes() == before


def test_interactive_demo_keeps_streaming_and_stops_cleanly_on_sigterm(tmp_path: Path) -> None:
    import re
    import signal
    import time

    import urllib3

    db = tmp_path / "live.sqlite3"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HSMAUDIT_", "AWS_"))}
    env.update({"COLUMNS": "200", "NO_COLOR": "1"})
    process = subprocess.Popen(
        [HSMAUDIT, "demo", "--db", str(db), "--port", "0", "--scenario", "seed", "--seed", "3"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        cwd=tmp_path,
    )
    try:
        assert process.stderr is not None
        url = None
        deadline = time.monotonic() + 90
        # The URL comes first; "Ctrl-C to stop" once the scenarios are streamed and checked.
        while time.monotonic() < deadline:
            line = process.stderr.readline()
            match = re.search(r"dashboard (http://127\.0\.0\.1:\d+)/", line)
            url = url or (match.group(1) if match else None)
            if "Ctrl-C to stop" in line or not line:
                break
        assert url is not None, "the demo printed no dashboard URL"

        def total() -> int:
            response = urllib3.request("GET", url + "/api/summary", timeout=10)
            return int(json.loads(response.data)["total_events"])

        first = 0
        while time.monotonic() < deadline and first == 0:
            first = total()
            time.sleep(0.2)
        while time.monotonic() < deadline and total() <= first:
            time.sleep(0.5)
        assert total() > first, "no live activity after the scenarios"
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=60)
    assert process.returncode == 0
    with sqlite3.connect(db) as connection:
        stored = connection.execute("SELECT count(*) FROM events").fetchone()[0]
        errors = connection.execute("SELECT count(*) FROM events WHERE parse_error IS NOT NULL").fetchone()[0]
    assert stored > first
    assert errors == 0
