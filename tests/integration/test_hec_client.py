"""`HecClient` on loopback: transport details the fault matrix does not cover (TLS, keep-alive,
gzip, channel, 413 splitting, index refusal, deadlines) and the token never leaving the request."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from hsmaudit.sinks.hec import HecClient, StaticToken
from hsmaudit.sinks.spool import LocalSpool

from .conftest import TOKEN, FaultHec, SharedSink


@pytest.fixture(autouse=True)
def _no_token_leak(no_token_leak: None) -> Iterator[None]:
    yield


def lines(count: int, start: int = 0) -> list[bytes]:
    return [
        b'{"time":1.000000,"host":"h","event":{"n":%d,"s":"\xc3\xa9"}}' % n
        for n in range(start, start + count)
    ]


def client(url: str, **options: object) -> HecClient:
    defaults: dict[str, object] = {"timeout": 1.0, "backoff_base": 0.01, "backoff_cap": 0.02}
    return HecClient(url, StaticToken(TOKEN), **{**defaults, **options})  # type: ignore[arg-type]


def test_one_keep_alive_connection_gzip_and_one_channel_across_sends(start_sink: object) -> None:
    sink: SharedSink = start_sink()  # type: ignore[operator]
    hec = client(sink.url, max_events=10)
    for round_ in range(3):
        report = hec.send_lines(lines(25, round_ * 25), deadline=time.monotonic() + 5)
        assert report.accepted == 25 and report.requests == 3
        assert report.wire_bytes < report.body_bytes
    stats = sink.stats()
    assert (stats["requests"], stats["gzip_requests"], stats["connections"]) == (9, 9, 1)
    assert stats["events"] == 75 and stats["acks_issued"] == 9  # a channel on every request


def test_413_splits_the_batch_and_keeps_the_order(fault_hec: FaultHec) -> None:
    fault_hec.script = [("status", 413, {"text": "Request Entity Too Large"}, {})] * 2
    report = client(fault_hec.url).send_lines(lines(8), deadline=time.monotonic() + 5)
    assert (report.accepted, report.failed_events, report.requests) == (8, 0, 5)
    assert fault_hec.accepted == lines(8)


def test_incorrect_index_spools_the_rest_without_sending_more(fault_hec: FaultHec, tmp_path: Path) -> None:
    fault_hec.script = [
        ("status", 400, {"text": "Incorrect index", "code": 7, "invalid-event-number": 0}, {})
    ]
    report = client(fault_hec.url, max_events=5).send_lines(
        lines(20), deadline=time.monotonic() + 5, spool=LocalSpool(tmp_path)
    )
    assert (report.accepted, report.spooled_events, report.requests) == (0, 20, 1)
    assert report.blocked is not None and "index" in report.blocked


@pytest.mark.filterwarnings("ignore::urllib3.exceptions.InsecureRequestWarning")
def test_tls_is_verified_by_default_and_a_ca_bundle_makes_it_work(
    tls_hec: tuple[FaultHec, Path], caplog: pytest.LogCaptureFixture
) -> None:
    server, ca = tls_hec
    # GIVEN HEC with a certificate from a private CA (Splunk's default certificate is one)
    refused = client(server.url).send_lines(lines(3), deadline=time.monotonic() + 5)
    # THEN without the CA nothing is sent and the reason says what to do, without retrying
    assert (refused.accepted, refused.failed_events, refused.retries) == (0, 3, 0)
    assert "CA bundle" in refused.failed[0].reason
    # AND with the CA bundle it is delivered
    trusted = client(server.url, ca_bundle=str(ca)).send_lines(lines(3), deadline=time.monotonic() + 5)
    assert trusted.accepted == 3 and server.accepted == lines(3)
    # AND turning verification off works but says so
    caplog.set_level(logging.WARNING)
    insecure = client(server.url, verify=False).send_lines(lines(2, 3), deadline=time.monotonic() + 5)
    assert insecure.accepted == 2
    assert any("verification is OFF" in r.getMessage() for r in caplog.records)


def test_a_deadline_already_passed_spools_without_sending(fault_hec: FaultHec, tmp_path: Path) -> None:
    report = client(fault_hec.url).send_lines(
        lines(4), deadline=time.monotonic() - 1, spool=LocalSpool(tmp_path)
    )
    assert (report.accepted, report.spooled_events, report.requests) == (0, 4, 0)
    assert "time budget" in report.spooled[0].reason


def test_token_appears_only_in_the_authorization_header(fault_hec: FaultHec) -> None:
    hec = client(fault_hec.url)
    assert TOKEN not in repr(hec) and TOKEN not in repr(StaticToken(TOKEN))
    fault_hec.token = "something-else"
    report = hec.send_lines(lines(2), deadline=time.monotonic() + 5)
    assert report.failed_events == 2
    assert TOKEN not in report.failed[0].reason and TOKEN not in str(report.summary())


def test_empty_input_sends_nothing(fault_hec: FaultHec) -> None:
    report = client(fault_hec.url).send_lines([], deadline=time.monotonic() + 5)
    assert (report.lines_in, report.requests, report.complete) == (0, 0, True)
