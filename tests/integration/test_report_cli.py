"""`hsmaudit report` through the console script: a store in, HTML and JSON out, digests that
prove a later run saw the same data, and clear errors for wrong input."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from hsmaudit.records.cloudtrail import cloudtrail_event
from hsmaudit.simulate.emit import parsed_events
from hsmaudit.simulate.scenarios import run_scenarios
from hsmaudit.store.database import EventStore

HSMAUDIT = str(Path(sys.executable).with_name("hsmaudit"))


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([HSMAUDIT, *args], capture_output=True, text=True, timeout=120, check=False)


def make_store(path: Path) -> int:
    simulation = run_scenarios(seed=8)
    events = [*parsed_events(simulation.records), *(cloudtrail_event(c) for c in simulation.api_calls)]
    store = EventStore(path)
    try:
        store.add_events(events)
    finally:
        store.close()
    return len(events)


def test_report_json_then_check_passes_and_fails_after_a_change(tmp_path: Path) -> None:
    db = tmp_path / "store.sqlite3"
    count = make_store(db)
    first = run("report", "--db", str(db), "--format", "json", "--out", str(tmp_path / "r.json"))
    assert first.returncode == 0, first.stderr
    report = json.loads((tmp_path / "r.json").read_text())
    assert report["digests"]["events"] == count
    assert report["digests"]["data"] in first.stderr and report["digests"]["report"] in first.stderr
    assert {"hsm-silent", "sequence-gap", "hsm-or-cluster-deleted"} <= set(report["alerts"]["by_rule"])

    html = run("report", "--db", str(db), "--check", str(tmp_path / "r.json"))
    assert html.returncode == 0, html.stderr
    assert html.stdout.startswith("<!doctype html>") and "<script" not in html.stdout
    assert "unchanged since" in html.stderr

    later = run_scenarios(["key-exported"], seed=9, start_usecs=1_800_000_000_000_000)
    store = EventStore(db)
    store.add_events(list(parsed_events(later.records)))
    store.close()
    changed = run("report", "--db", str(db), "--format", "json", "--check", str(tmp_path / "r.json"))
    assert changed.returncode == 1
    assert "data changed" in changed.stderr


def test_a_period_limits_the_report(tmp_path: Path) -> None:
    db = tmp_path / "store.sqlite3"
    make_store(db)
    result = run("report", "--db", str(db), "--format", "json", "--since", "2030-01-01")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["digests"]["events"] == 0
    assert report["period"]["since"] == "2030-01-01T00:00:00.000000Z"


def test_wrong_input_is_a_clear_error(tmp_path: Path) -> None:
    missing = run("report", "--db", str(tmp_path / "nope.sqlite3"))
    assert missing.returncode == 2 and "no store at" in missing.stderr
    neither = run("report")
    assert neither.returncode == 2 and "exactly one source" in neither.stderr
    bad = tmp_path / "export.json"
    bad.write_text('{"result": {"_raw": "x"}}\n{not json\n')
    broken = run("report", "--splunk-export", str(bad))
    assert broken.returncode == 1 and "export.json:2" in broken.stderr
    when = run("report", "--db", str(tmp_path / "x"), "--since", "yesterday-ish")
    assert when.returncode == 2 and "--since" in when.stderr


def test_a_period_with_none_of_the_stores_events_says_what_it_holds(tmp_path: Path) -> None:
    """docs/report.md's quarter over the demo's store (its events are placed around now) gave an
    empty report and no word why."""
    db = tmp_path / "store.sqlite3"
    count = make_store(db)  # the simulator's default start: January 2026
    empty = run("report", "--db", str(db), "--since", "2025-07-01", "--until", "2025-10-01", "-f", "json")
    assert empty.returncode == 0, empty.stderr  # an empty period is an answer, not a failure
    assert json.loads(empty.stdout)["digests"]["events"] == 0
    assert (
        f"hsmaudit report: no event of {db} is in the period; it holds {count} events at other times "
        "(without --since/--until the report covers them all)"
    ) in empty.stderr
    whole = run("report", "--db", str(db), "-f", "json")
    assert "no event of" not in whole.stderr
