"""The dashboard's JSON API and HTML over plain HTTP (contracts.md §5), and `hsmaudit serve`'s
command-line behaviour: token handling, loopback default, exposure warning."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import urllib3

from hsmaudit.cli.serve import resolve_token
from hsmaudit.detect.engine import detect_events
from hsmaudit.records.parse import parse_message
from hsmaudit.server.app import CollectorSettings, create_app
from hsmaudit.server.run import RunningServer, is_loopback, start_in_thread
from hsmaudit.simulate.emit import parsed_events
from hsmaudit.simulate.scenarios import run_scenarios
from hsmaudit.store.database import EventStore

HSMAUDIT = str(Path(sys.executable).with_name("hsmaudit"))
HOSTILE = "<img src=x onerror=alert(1)>"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    store = EventStore(tmp_path_factory.mktemp("api") / "api.sqlite3")
    events = list(parsed_events(run_scenarios(seed=12).records))
    store.add_events(events)
    store.add_alerts(detect_events(events))
    store.add_events(
        [parse_message(f"not a record {HOSTILE}", log_group="/aws/cloudhsm/cluster-x", log_stream=HOSTILE)]
    )
    running = start_in_thread(create_app(store, CollectorSettings(token="api-token")))
    yield running
    running.stop()
    store.close()


def get(server: RunningServer, path: str) -> tuple[int, Any, urllib3.BaseHTTPResponse]:
    response = urllib3.request("GET", server.url + path, timeout=10)
    body = (
        json.loads(response.data)
        if response.headers.get("content-type", "").startswith("application/json")
        else response.data.decode()
    )
    return response.status, body, response


def test_summary_has_the_contract_fields(server: RunningServer) -> None:
    status, summary, _ = get(server, "/api/summary")
    assert status == 200
    for field in (
        "total_events",
        "failed_logins",
        "key_generated",
        "key_deleted",
        "by_opcode",
        "by_log_type",
        "alerts",
        "last_event_time",
    ):
        assert field in summary
    assert "by_user_type" in summary["failed_logins"]
    assert summary["failed_logins"]["by_user_type"] == {"CU": 6}
    assert set(summary["alerts"]) == run_scenarios(seed=12).expected_rules
    assert summary["last_event_time"].endswith("Z")


def test_summary_filters_are_echoed_and_narrow_the_counts(server: RunningServer) -> None:
    _, everything, _ = get(server, "/api/summary")
    _, logins, _ = get(server, "/api/summary?opcode=CN_LOGIN&since=2026-01-05")
    assert logins["filters"] == {"opcode": "CN_LOGIN", "since": "2026-01-05T00:00:00.000000Z"}
    assert logins["total_events"] == everything["by_opcode"]["CN_LOGIN"]
    assert logins["by_opcode"] == {"CN_LOGIN": logins["total_events"]}


def test_bad_filter_is_400_with_a_reason(server: RunningServer) -> None:
    status, body, _ = get(server, "/api/summary?until=tomorrow")
    assert status == 400
    assert "until" in body["error"]


def test_events_api_is_newest_first_and_limited(server: RunningServer) -> None:
    status, events, _ = get(server, "/api/events?limit=7&opcode=CN_GENERATE_KEY")
    assert status == 200
    assert len(events) == 7
    assert {event["opcode"] for event in events} == {"CN_GENERATE_KEY"}
    times = [event["usecs"] for event in events]
    assert times == sorted(times, reverse=True)


def test_alerts_and_streams_apis(server: RunningServer) -> None:
    _, alerts, _ = get(server, "/api/alerts")
    assert {alert["rule"] for alert in alerts} == run_scenarios(seed=12).expected_rules
    _, streams, _ = get(server, "/api/streams")
    assert len(streams) == 3
    assert sorted(stream["missing"] for stream in streams) == [0, 0, 4]


def test_page_escapes_record_strings_and_sends_a_scriptless_csp(server: RunningServer) -> None:
    status, html, response = get(server, "/")
    assert status == 200
    assert HOSTILE not in html
    assert "&lt;img src=x onerror=alert(1)&gt;" in html
    assert "<script" not in html
    csp = response.headers["content-security-policy"]
    assert "default-src 'none'" in csp
    assert "script-src" not in csp
    assert response.headers["x-content-type-options"] == "nosniff"


def test_page_needs_nothing_from_the_internet(server: RunningServer) -> None:
    _, html, _ = get(server, "/")
    assert "http://" not in html.replace(server.url, "")
    assert "https://" not in html


# --- hsmaudit serve ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("127.0.0.1", True),
        ("127.9.9.9", True),
        ("::1", True),
        ("localhost", True),
        ("0.0.0.0", False),
        ("10.1.2.3", False),
        ("::", False),
    ],
)
def test_loopback_detection(host: str, loopback: bool) -> None:
    assert is_loopback(host) is loopback


def test_token_precedence_flag_then_environment_then_generated(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HSMAUDIT_HEC_TOKEN", "from-env")
    assert resolve_token("from-flag") == ("from-flag", False)
    assert resolve_token(None) == ("from-env", False)
    monkeypatch.delenv("HSMAUDIT_HEC_TOKEN")
    token, generated = resolve_token(None)
    assert generated
    assert len(token) == 36


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_serve_prints_a_generated_token_once_and_never_logs_tokens(tmp_path: Path) -> None:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("HSMAUDIT_")}
    process = subprocess.Popen(
        [HSMAUDIT, "serve", "--port", str(port), "--db", str(tmp_path / "s.sqlite3")],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 30
        while True:
            try:
                if urllib3.request("GET", url + "/services/collector/health", timeout=2).status == 200:
                    break
            except urllib3.exceptions.HTTPError:
                assert time.monotonic() < deadline
                time.sleep(0.05)
        # Requests that carry tokens, right and wrong, in the header and in the URL.
        for token in ("wrong-token-LEAK1", "another-LEAK2"):
            urllib3.request(
                "POST",
                url + "/services/collector/event",
                body=b'{"event":"x"}',
                headers={"Authorization": f"Splunk {token}"},
            )
        urllib3.request(
            "POST", url + "/services/collector/event?token=url-token-LEAK3", body=b'{"event":"x"}'
        )
    finally:
        process.terminate()
        out, err = process.communicate(timeout=30)
    lines = [line for line in err.splitlines() if "HEC token" in line]
    assert len(lines) == 1
    generated = lines[0].split()[3]
    assert len(generated) == 36
    assert (out + err).count(generated) == 1
    assert "LEAK" not in out + err
    assert "http://127.0.0.1:" in err


def test_empty_store_renders_zeros(tmp_path: Path) -> None:
    store = EventStore(tmp_path / "empty.sqlite3")
    running = start_in_thread(create_app(store, CollectorSettings(token="t")))
    try:
        status, html, _ = get(running, "/")
        assert status == 200
        assert 'id="total-events">0<' in html
        assert "no events match" in html
        _, summary, _ = get(running, "/api/summary")
        assert summary["total_events"] == 0
        assert summary["last_event_time"] is None
    finally:
        running.stop()
        store.close()


def test_detection_tailer_turns_posted_events_into_alerts_on_the_dashboard(tmp_path: Path) -> None:
    from hsmaudit.server.detections import DetectionTailer
    from hsmaudit.sinks.hec.client import HecClient
    from hsmaudit.sinks.hec.token import StaticToken

    store = EventStore(tmp_path / "live.sqlite3")
    running = start_in_thread(create_app(store, CollectorSettings(token="live-token")))
    tailer = DetectionTailer(store, interval=0.1, arrival_hold_seconds=0.5)  # copies arrive together
    tailer.start()
    try:
        simulation = run_scenarios(["failed-login-burst", "key-exported"], seed=3)
        client = HecClient(running.url, StaticToken("live-token"))
        try:
            report = client.send(parsed_events(simulation.records), deadline=time.monotonic() + 30)
        finally:
            client.close()
        assert report.accepted == len(simulation.records)
        deadline = time.monotonic() + 20
        while True:
            _, summary, _ = get(running, "/api/summary")
            if set(summary["alerts"]) >= {"failed-login", "login-brute-force", "key-exported"}:
                break
            assert time.monotonic() < deadline, summary["alerts"]
            time.sleep(0.1)
        assert summary["alerts"]["failed-login"] == 6
    finally:
        tailer.stop()
        running.stop()
        store.close()


def test_serve_on_a_taken_port_fails_with_one_line(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = subprocess.run(
            [HSMAUDIT, "serve", "--port", str(port), "--db", str(tmp_path / "x.sqlite3"), "--token", "t"],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    assert result.returncode == 1
    assert (
        result.stderr.strip()
        == f"hsmaudit: cannot listen on 127.0.0.1:{port}: Address already in use; choose another --port"
    )


def test_a_foreign_host_header_is_refused_dns_rebinding(server: RunningServer) -> None:
    for path in ("/", "/api/summary"):
        response = urllib3.request("GET", server.url + path, headers={"Host": "attacker.example"}, timeout=10)
        assert response.status == 400
    for host in (f"127.0.0.1:{server.port}", f"localhost:{server.port}"):
        assert (
            urllib3.request("GET", server.url + "/api/summary", headers={"Host": host}, timeout=10).status
            == 200
        )


@pytest.mark.parametrize(
    ("bind", "expected"),
    [
        ("127.0.0.1", ("127.0.0.1", "localhost", "[::1]")),
        ("127.0.0.2", ("127.0.0.1", "localhost", "[::1]", "127.0.0.2")),
        ("::1", ("127.0.0.1", "localhost", "[::1]")),
        ("0.0.0.0", ("*",)),
    ],
)
def test_allowed_hosts_follow_the_bind_address(bind: str, expected: tuple[str, ...]) -> None:
    from hsmaudit.server.app import allowed_hosts_for

    assert allowed_hosts_for(bind) == expected


def test_page_reloads_itself_only_at_an_offered_interval(server: RunningServer) -> None:
    _, html, _ = get(server, "/?refresh=10")
    assert '<meta http-equiv="refresh" content="10">' in html
    for bad in ("/?refresh=1", "/?refresh=abc", "/"):
        _, html, _ = get(server, bad)
        assert 'http-equiv="refresh"' not in html


# --- the dashboard's other views -----------------------------------------------------------


def test_alerts_api_follows_the_event_filters_and_equals_the_summary(server: RunningServer) -> None:
    for params in ("", "?opcode=CN_LOGIN", "?opcode=CN_GENERATE_KEY", "?log_type=MGMT_KEY_DETAILS_LOG"):
        _, summary, _ = get(server, "/api/summary" + params)
        _, alerts, _ = get(server, "/api/alerts" + params)
        assert len(alerts) == sum(summary["alerts"].values())
        counted: dict[str, int] = {}
        for alert in alerts:
            counted[alert["rule"]] = counted.get(alert["rule"], 0) + 1
        assert counted == summary["alerts"]
    _, logins, _ = get(server, "/api/alerts?opcode=CN_LOGIN")
    assert {alert["rule"] for alert in logins} >= {"failed-login"}
    assert "key-deleted" not in {alert["rule"] for alert in logins}
    _, page, _ = get(server, "/api/alerts?limit=2&offset=1")
    _, everything, _ = get(server, "/api/alerts")
    assert [a["alert_id"] for a in page] == [a["alert_id"] for a in everything[1:3]]


def test_event_and_alert_apis_link_each_other(server: RunningServer) -> None:
    _, alerts, _ = get(server, "/api/alerts")
    exported = next(alert for alert in alerts if alert["rule"] == "key-exported")
    status, detail, _ = get(server, f"/api/alerts/{exported['alert_id']}")
    assert status == 200
    event_id = detail["events"][0]["event_id"]
    assert event_id in exported["event_ids"]
    status, event, _ = get(server, f"/api/events/{event_id}")
    assert status == 200
    assert event["event"]["opcode"] == "CN_WRAP_KEY"
    assert exported["alert_id"] in {alert["alert_id"] for alert in event["alerts"]}
    current = [row for row in event["neighbours"] if row["current"]]
    assert [row["sequence_no"] for row in current] == [event["event"]["sequence_no"]]
    assert event["session_user"]
    status, missing, _ = get(server, "/api/events/nope")
    assert status == 404
    assert "error" in missing


def test_timeline_api_counts_every_timed_event_and_failed_login(server: RunningServer) -> None:
    _, summary, _ = get(server, "/api/summary?since=2000-01-01")
    _, timeline, _ = get(server, "/api/timeline")
    assert sum(sum(lane["events"]) for lane in timeline["lanes"]) == summary["total_events"]
    assert sum(sum(lane["failed_logins"]) for lane in timeline["lanes"]) == summary["failed_logins"]["total"]
    assert timeline["buckets"] <= 120
    assert all(len(lane["events"]) == timeline["buckets"] for lane in timeline["lanes"])


def test_keys_api_shows_each_key_handles_lifecycle(server: RunningServer) -> None:
    _, keys, _ = get(server, "/api/keys?limit=1000")
    assert keys["total"] == len(keys["keys"]) > 0
    deleted = [key for key in keys["keys"] if key["deleted"]]
    assert deleted
    assert all(key["deleted"]["time"] for key in deleted)
    assert any(key["generated"] and key["generated"]["user_name"] for key in keys["keys"])
