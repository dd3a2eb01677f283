"""Fixtures of the integration tests: each starts a loopback server or sets an environment from
one of the support modules beside it, and stops or restores it at teardown.

- `fault_hec.py`: `FaultHec`, our scriptable HEC, its tokens and `closed_port_url()` (HEC down);
- `shared_sink.py`: the optional independent HEC sink, for cross-checks;
- `tls.py`: a private CA and a certificate for 127.0.0.1;
- `aws_env.py`: the Lambda's fast settings and moto's endpoint with fake credentials;
- `payloads.py`: record text, CloudWatch subscription payloads, a fake Lambda context, simulated
  events and their envelopes;
- `../support/collector.py` (shared with the browser tier): the real collector over a store.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from .aws_env import CLEARED_AWS_VARIABLES, FAST_SETTINGS, moto_environment
from .fault_hec import CLI_TOKEN, OTHER_TOKEN, TOKEN, FaultHec
from .shared_sink import HecServer, SharedSink, load_hec_sink, start_shared_sink
from .tls import server_context, tls_files

if TYPE_CHECKING:
    from ..support.collector import Collector

# ------------------------------------------------------------------------------ HEC


@pytest.fixture
def fault_hec() -> Iterator[FaultHec]:
    """Our scriptable HEC on 127.0.0.1:0."""
    server = FaultHec()
    yield server
    server.stop()


@pytest.fixture
def loopback_hec() -> Iterator[FaultHec]:
    """Our HEC on 127.0.0.1:0 accepting `test-token`: the HEC the CLI tests deliver to."""
    server = FaultHec(token=CLI_TOKEN)
    yield server
    server.stop()


@pytest.fixture
def start_sink(tmp_path: Path) -> Iterator[Callable[..., SharedSink]]:
    """Start the shared HEC sink with fault options; all are stopped at teardown."""
    load_hec_sink()  # skips here, at setup, when the sink is absent
    running: list[SharedSink] = []

    def start(**options: Any) -> SharedSink:
        sink = start_shared_sink(tmp_path / f"sink-{len(running)}.jsonl", **options)
        running.append(sink)
        return sink

    yield start
    for sink in running:
        sink.sink.stop()


@pytest.fixture(params=["loopback", "independent"])
def start_hec(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Callable[..., HecServer]]:
    """Start an HEC with fault options (`fail_every`, `fail_first`, `fail_status`, `token`):
    our `FaultHec`, then once more the independent sink as a cross-check (skipped when absent)."""
    if request.param == "independent":
        yield request.getfixturevalue("start_sink")
        return
    running: list[FaultHec] = []

    def start(**options: Any) -> FaultHec:
        server = FaultHec(**options)
        running.append(server)
        return server

    yield start
    for server in running:
        server.stop()


@pytest.fixture
def tls_hec(tmp_path: Path) -> Iterator[tuple[FaultHec, Path]]:
    """Our HEC over TLS with a certificate from a private CA; yields (server, ca.pem)."""
    ca, cert, key = tls_files(tmp_path)
    server = FaultHec(ssl_context=server_context(cert, key))
    yield server, ca
    server.stop()


# ------------------------------------------------------------------------------ our collector


@pytest.fixture
def collector(tmp_path: Path) -> Iterator[Collector]:
    """The real collector over a fresh store on 127.0.0.1:0, accepting `support.collector.TOKEN`."""
    from ..support.collector import start_collector

    running = start_collector(tmp_path)
    yield running
    running.server.stop()
    running.store.close()


# ------------------------------------------------------------------------------ moto


@pytest.fixture(scope="session")
def moto_url() -> Iterator[str]:
    """moto in server mode on 127.0.0.1 (S3, Secrets Manager, SSM, …)."""
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


@pytest.fixture
def aws_env(moto_url: str, monkeypatch: pytest.MonkeyPatch) -> str:
    """Point boto3 at moto with fake credentials; returns the endpoint URL."""
    for key in CLEARED_AWS_VARIABLES:
        monkeypatch.delenv(key, raising=False)
    for key, value in moto_environment(moto_url).items():
        monkeypatch.setenv(key, value)
    return moto_url


# ------------------------------------------------------------------------------ the Lambda environment


@pytest.fixture
def lambda_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[..., None]]:
    """Set the handler's environment (fast settings + the given ones); caches reset around each test."""
    import os

    from hsmaudit.aws.runtime import clear_runtime

    for key in list(os.environ):
        if key.startswith("HSMAUDIT_"):
            monkeypatch.delenv(key)
    monkeypatch.delenv("HOME", raising=False)  # no default config file in "Lambda"
    clear_runtime()

    def configure(**values: str) -> None:
        clear_runtime()
        for key, value in {**FAST_SETTINGS, **values}.items():
            monkeypatch.setenv(key, value)

    yield configure
    clear_runtime()


@pytest.fixture
def no_token_leak(caplog: pytest.LogCaptureFixture, capfd: pytest.CaptureFixture[str]) -> Iterator[None]:
    """Fail the test if a token appears in any log record or in stdout/stderr."""
    import logging

    caplog.set_level(logging.DEBUG)
    yield
    out, err = capfd.readouterr()
    for text in (caplog.text, out, err):
        assert TOKEN not in text
        assert OTHER_TOKEN not in text
