"""`hsmaudit detect` and `hsmaudit rules` through the real console script.

Inputs are the same shapes `parse` reads (here: hsmaudit events as JSON lines, and raw record
text on stdin) or a real SQLite store file; output is one alert per line, exit 0 either way.
"""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from hsmaudit.detect.ruleset import load_ruleset
from hsmaudit.detect.sqlite import events_table_sql, insert_events
from hsmaudit.records.event import HsmEvent, event_to_json

from ..unit.test_detect_builder import Cluster
from ..unit.test_detect_scenarios import brute_force, normal_day, sequence_gap

HSMAUDIT = str(Path(sys.executable).with_name("hsmaudit"))


def run(*args: str, stdin: bytes | None = None) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run([HSMAUDIT, *args], input=stdin, capture_output=True, timeout=120, check=False)


def alerts_of(result: subprocess.CompletedProcess[bytes]) -> list[dict[str, object]]:
    assert result.returncode == 0, result.stderr.decode()
    return [json.loads(line) for line in result.stdout.splitlines()]


def jsonl(path: Path, events: list[HsmEvent]) -> Path:
    path.write_bytes(b"".join(event_to_json(event) + b"\n" for event in events))
    return path


def store(path: Path, events: list[HsmEvent]) -> Path:
    connection = sqlite3.connect(path)
    connection.execute(events_table_sql())
    insert_events(connection, events)
    connection.commit()
    connection.close()
    return path


def rule_counts(alerts: list[dict[str, object]]) -> Counter[str]:
    return Counter(str(alert["rule"]) for alert in alerts)


def test_detect_prints_one_alert_per_line_and_exits_zero(tmp_path: Path) -> None:
    alerts = alerts_of(run("detect", str(jsonl(tmp_path / "events.jsonl", brute_force().events))))
    assert rule_counts(alerts) == {"failed-login": 5, "login-brute-force": 1}
    (brute,) = [a for a in alerts if a["rule"] == "login-brute-force"]
    assert set(brute) >= {
        "rule",
        "title",
        "severity",
        "time",
        "cluster_id",
        "user_name",
        "event_ids",
        "details",
    }
    assert brute["user_name"] == "mallory"


def test_detect_exits_zero_with_no_output_when_nothing_fires(tmp_path: Path) -> None:
    result = run("detect", str(jsonl(tmp_path / "day.jsonl", normal_day().events)))
    assert alerts_of(result) == []


def test_detect_reads_raw_record_text_on_stdin_with_context_flags() -> None:
    scenario = sequence_gap()
    text = "\n".join(event.raw or "" for event in scenario.events).encode()
    result = run("detect", "-", "--log-group", "/aws/cloudhsm/cluster-x", "--log-stream", "hsm-y", stdin=text)
    alerts = alerts_of(result)
    assert [(a["rule"], a["cluster_id"], a["hsm_id"]) for a in alerts] == [
        ("sequence-gap", "cluster-x", "hsm-y")
    ]
    assert alerts[0]["details"]["missing"] == 2  # type: ignore[index]


def test_detect_over_a_store_gives_the_same_alerts_as_over_the_file(tmp_path: Path) -> None:
    # HSM ids are unique across clusters (the sequence check keys streams on them)
    other = Cluster(cluster_id="cluster-second0001", hsms=("hsm-dddd4444", "hsm-eeee5555", "hsm-ffff6666"))
    for skip in (False, False, True, False):
        if skip:
            other.next_sequence(other.hsms[1])
        other.record(other.hsms[1], "CN_TOMBSTONE_OBJECT", key=77)
    events = brute_force().events + other.events
    from_file = alerts_of(run("detect", str(jsonl(tmp_path / "e.jsonl", events))))
    from_store = alerts_of(run("detect", "--db", str(store(tmp_path / "store.sqlite", events))))
    key = lambda a: (a["rule"], tuple(a["event_ids"]))  # noqa: E731
    assert sorted(map(key, from_store)) == sorted(map(key, from_file))


def test_detect_over_the_collectors_own_store(tmp_path: Path) -> None:
    database = pytest.importorskip("hsmaudit.store.database")
    path = tmp_path / "hsmaudit.sqlite"
    with database.EventStore(path) as event_store:
        event_store.add_events(brute_force().events)
    alerts = alerts_of(run("detect", "--db", str(path)))
    assert rule_counts(alerts) == {"failed-login": 5, "login-brute-force": 1}


def test_table_format_and_summary_are_for_people(tmp_path: Path) -> None:
    path = jsonl(tmp_path / "e.jsonl", brute_force().events)
    result = run("detect", str(path), "--format", "table", "--summary")
    assert result.returncode == 0, result.stderr.decode()
    assert "login-brute-force" in result.stdout.decode()
    assert "alerts: failed-login 5, login-brute-force 1" in " ".join(result.stderr.decode().split())


def test_now_flag_judges_silence_against_the_given_clock(tmp_path: Path) -> None:
    cluster = Cluster()
    cluster.login("app")
    path = jsonl(tmp_path / "e.jsonl", cluster.events)
    assert alerts_of(run("detect", str(path))) == []
    silent = alerts_of(run("detect", str(path), "--now", "now", "--silent-after", "30m"))
    assert rule_counts(silent) == {"hsm-silent": 3}
    assert alerts_of(run("detect", str(path), "--now", "2025-11-26T07:20:00Z", "--silent-after", "30m")) == []


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--silent-after", "0"), "bad duration"),
        (("--disable", "no-such-rule"), "unknown rule id"),
        (("--now", "yesterday-ish"), "bad --now"),
        (("--db", "/nonexistent/store.sqlite"), "no store at"),
    ],
)
def test_bad_options_fail_with_one_line_and_exit_2(args: tuple[str, ...], message: str) -> None:
    result = run("detect", *args, stdin=b"")
    assert result.returncode == 2
    lines = result.stderr.decode().strip().splitlines()
    assert len(lines) == 1
    assert message in lines[0]


def test_a_database_that_is_not_a_store_fails_with_one_line(tmp_path: Path) -> None:
    path = tmp_path / "other.sqlite"
    connection = sqlite3.connect(path)
    connection.execute("CREATE TABLE things (x)")
    connection.commit()
    connection.close()
    result = run("detect", "--db", str(path))
    assert result.returncode == 1
    assert result.stderr.decode().startswith("hsmaudit: no readable events table")


def test_rules_list_and_compile_check() -> None:
    listed = [json.loads(line) for line in run("rules", "list", "--format", "jsonl").stdout.splitlines()]
    assert [row["rule"] for row in listed] == sorted(load_ruleset().rule_ids)
    assert {row["kind"] for row in listed} == {"single-event", "correlation", "stateful"}
    check = run("rules", "compile", "--check")
    assert check.returncode == 0, check.stderr.decode()
    assert check.stdout.decode().strip() == "generated files are current"


@pytest.mark.parametrize("command", [("detect",), ("rules",), ("rules", "compile"), ("rules", "list")])
def test_every_command_explains_itself(command: tuple[str, ...]) -> None:
    result = run(*command, "--help")
    assert result.returncode == 0
    assert len(result.stdout.decode()) > 200


def test_store_path_with_uri_characters_is_opened_read_only(tmp_path: Path) -> None:
    folder = tmp_path / "odd ?#% name"
    folder.mkdir()
    path = store(folder / "s.sqlite", brute_force().events)
    before = path.read_bytes()
    alerts = alerts_of(run("detect", "--db", str(path)))
    assert rule_counts(alerts)["login-brute-force"] == 1
    assert path.read_bytes() == before


def test_a_file_that_is_not_sqlite_fails_with_one_line(tmp_path: Path) -> None:
    path = tmp_path / "notes.sqlite"
    path.write_text("not a database at all, just text\n" * 100)
    result = run("detect", "--db", str(path))
    assert result.returncode == 1
    assert len(result.stderr.decode().strip().splitlines()) == 1


@pytest.mark.parametrize("output", ["cloudwatch", "events"])
def test_simulated_cluster_piped_into_detect_fires_the_expected_rules(output: str) -> None:
    from hsmaudit.simulate.scenarios import run_scenarios

    simulated = run("simulate", "--seed", "4", "--format", output)
    assert simulated.returncode == 0, simulated.stderr.decode()
    alerts = alerts_of(run("detect", "-", stdin=simulated.stdout))
    assert set(rule_counts(alerts)) == run_scenarios(seed=4).expected_rules


def test_cloudwatch_samples_non_audit_messages_alert_and_control_messages_do_not(samples_dir: Path) -> None:
    envelope = alerts_of(run("detect", str(samples_dir / "cwl-aws-sample-envelope.json")))
    assert envelope
    assert {alert["rule"] for alert in envelope} == {"unparsed-record"}
    assert alerts_of(run("detect", str(samples_dir / "cwl-control-message-decoded.json"))) == []
