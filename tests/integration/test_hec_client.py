"""`HecClient` on loopback: transport details the fault matrix does not cover (TLS, keep-alive,
gzip, channel, 413 splitting, index refusal, deadlines) and the token never leaving the request."""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from msgspec.structs import replace

from hsmaudit.sinks.hec.client import HecClient
from hsmaudit.sinks.hec.policy import BatchPolicy, ConnectionPolicy, RetryPolicy
from hsmaudit.sinks.hec.token import StaticToken
from hsmaudit.sinks.spool import LocalSpool

from .fault_hec import TOKEN, FaultHec, closed_port_url
from .shared_sink import HecServer


@pytest.fixture(autouse=True)
def _no_token_leak(no_token_leak: None) -> Iterator[None]:
    yield


def lines(count: int, start: int = 0) -> list[bytes]:
    return [
        b'{"time":1.000000,"host":"h","event":{"n":%d,"s":"\xc3\xa9"}}' % n
        for n in range(start, start + count)
    ]


CONNECTION = ConnectionPolicy(timeout=1.0)
RETRY = RetryPolicy(backoff_base=0.01, backoff_cap=0.02)


def client(
    url: str,
    *,
    connection: ConnectionPolicy = CONNECTION,
    retry: RetryPolicy = RETRY,
    batch: BatchPolicy | None = None,
) -> HecClient:
    return HecClient(url, StaticToken(TOKEN), connection=connection, retry=retry, batch=batch)


def test_one_keep_alive_connection_gzip_and_one_channel_across_sends(
    start_hec: Callable[..., HecServer],
) -> None:
    sink = start_hec()
    hec = client(sink.url, batch=BatchPolicy(max_events=10))
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
    report = client(fault_hec.url, batch=BatchPolicy(max_events=5)).send_lines(
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
    trusted = client(server.url, connection=replace(CONNECTION, ca_bundle=str(ca))).send_lines(
        lines(3), deadline=time.monotonic() + 5
    )
    assert trusted.accepted == 3 and server.accepted == lines(3)
    # AND turning verification off works but says so
    caplog.set_level(logging.WARNING)
    insecure = client(server.url, connection=replace(CONNECTION, verify=False)).send_lines(
        lines(2, 3), deadline=time.monotonic() + 5
    )
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


class ConnectProxy:
    """A minimal HTTP CONNECT proxy on 127.0.0.1 that requires basic auth and counts tunnels."""

    def __init__(self, user: str, password: str) -> None:
        import base64
        import socket
        import threading

        self.expected = "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()
        self.tunnels: list[str] = []
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.url_host = f"127.0.0.1:{self.listener.getsockname()[1]}"
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        import socket
        import threading

        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            threading.Thread(target=self._tunnel, args=(client, socket), daemon=True).start()

    def _tunnel(self, client: Any, socket: Any) -> None:
        import threading

        head = b""
        while b"\r\n\r\n" not in head:
            chunk = client.recv(4096)
            if not chunk:
                client.close()
                return
            head += chunk
        lines = head.decode("latin-1").split("\r\n")
        method, target, _ = lines[0].split(" ", 2)
        headers = {k.lower(): v for k, v in (line.split(": ", 1) for line in lines[1:] if ": " in line)}
        if method != "CONNECT" or headers.get("proxy-authorization") != self.expected:
            client.sendall(b"HTTP/1.1 407 Proxy Authentication Required\r\nContent-Length: 0\r\n\r\n")
            client.close()
            return
        self.tunnels.append(target)
        host, port = target.rsplit(":", 1)
        upstream = socket.create_connection((host, int(port)))
        client.sendall(b"HTTP/1.1 200 Connection established\r\n\r\n")

        def pipe(source: Any, sink: Any) -> None:
            try:
                while data := source.recv(65536):
                    sink.sendall(data)
            except OSError:
                pass
            finally:
                for end in (source, sink):
                    with contextlib.suppress(OSError):
                        end.shutdown(socket.SHUT_RDWR)

        threading.Thread(target=pipe, args=(client, upstream), daemon=True).start()
        pipe(upstream, client)

    def close(self) -> None:
        self.listener.close()


def test_https_hec_through_an_authenticating_connect_proxy(tls_hec: tuple[FaultHec, Path]) -> None:
    server, ca = tls_hec
    proxy = ConnectProxy("svc", "p@ss:word")
    try:
        hec = client(
            server.url,
            connection=replace(
                CONNECTION, ca_bundle=str(ca), proxy=f"http://svc:p%40ss%3Aword@{proxy.url_host}"
            ),
        )
        report = hec.send_lines(lines(6), deadline=time.monotonic() + 5)
        assert report.accepted == 6 and server.accepted == lines(6)
        assert proxy.tunnels == [server.url.removeprefix("https://")]  # one tunnel, TLS end to end
        assert "p@ss" not in repr(hec)
        refused = client(
            server.url,
            connection=replace(CONNECTION, ca_bundle=str(ca), proxy=f"http://svc:wrong@{proxy.url_host}"),
        )
        report = refused.send_lines(lines(2), deadline=time.monotonic() + 5)
        assert (report.accepted, report.failed_events, report.retries) == (0, 2, 0)
        assert "407" in report.failed[0].reason and "wrong" not in report.failed[0].reason
    finally:
        proxy.close()


def test_a_blocked_run_spools_in_bounded_pieces(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import hsmaudit.sinks.hec.client as hec_module

    monkeypatch.setattr(hec_module, "HELD_BYTES_LIMIT", 2000)
    hec = client(closed_port_url(), batch=BatchPolicy(max_events=10), retry=replace(RETRY, max_attempts=1))
    spool = LocalSpool(tmp_path)
    report = hec.send_lines(lines(100), deadline=time.monotonic() + 5, spool=spool)
    assert (report.accepted, report.spooled_events, report.requests) == (0, 100, 1)
    sizes = [spool.get(b).count for b in spool.list()]
    assert sum(sizes) == 100 and 1 < len(sizes) < 10  # a few pieces, not one per batch
    assert sorted(line for b in spool.list() for line in spool.get(b).lines) == sorted(lines(100))


def test_credentials_in_the_hec_url_never_reach_a_reason_a_log_or_the_repr(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # GIVEN a HEC URL with a user name and password (plain http, not loopback by name: a warning)
    password = "pw-0f9e8d-SECRET"
    url = closed_port_url().replace("http://127.0.0.1", f"http://admin:{password}@127.0.0.1")
    with caplog.at_level("DEBUG"):
        hec = client(url, batch=BatchPolicy(max_events=10), retry=replace(RETRY, max_attempts=1))
        report = hec.send_lines(lines(5), deadline=time.monotonic() + 5, spool=LocalSpool(tmp_path))
    # THEN the delivery fails over to the spool, and the password is in no reason, log or repr
    assert report.spooled_events == 5
    shown = " ".join([repr(hec), str(report.summary()), *(b.reason for b in report.spooled), caplog.text])
    assert "refused by ***@127.0.0.1" in shown
    assert password not in shown and "admin" not in shown
