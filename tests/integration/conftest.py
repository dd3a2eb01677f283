"""Loopback servers for the integration tests.

- `FaultHec`: the HEC of our own every delivery test runs against. It answers as HEC does (token
  required, gzip, channels and acks, health) and makes the faults tests need: every Nth request
  or the first N fail, latency, 429 with Retry-After, slow answers past the client's timeout,
  connection resets, `invalid-event-number` mid-batch, acks that never or only later arrive. It
  records the exact bytes of every line it accepted, so tests count events and compare them byte
  for byte, and keeps the counters tests assert on (`stats()`);
- the independent HEC sink (`<repo>/../shared/tools/hec_sink.py`, optional: CI lays it beside
  the checkout), in-process on 127.0.0.1:0: a few tests cross-check against it and skip with one
  line when it is absent (`start_hec` runs a test against both);
- moto in server mode on 127.0.0.1:0 for S3, Secrets Manager and SSM, reached through
  `AWS_ENDPOINT_URL` with fake credentials;
- helpers to build CloudWatch subscription payloads and a fake Lambda context.
"""

from __future__ import annotations

import base64
import gzip
import importlib.util
import ipaddress
import json
import socket
import ssl
import struct
import sys
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from hsmaudit.records.event import HsmEvent
from hsmaudit.records.render import render_text_record

from ..conftest import require_hec_sink

LOG_GROUP = "/aws/cloudhsm/cluster-fwdtest1"
TOKEN = "tok-7c1f2b9e-SECRET-4d1a"
"""A token distinctive enough that any leak into logs or output is found by a substring search."""
OTHER_TOKEN = "tok-0a9b8c7d-ROTATED-5e6f"


def received_event(envelope: bytes | dict[str, Any]) -> HsmEvent:
    """What our collector makes of one HEC envelope, lean or json (its real decoding path)."""
    from hsmaudit.server.hec import decode_envelope, envelope_event

    text = envelope if isinstance(envelope, bytes) else json.dumps(envelope).encode()
    return envelope_event(decode_envelope(text, 0, max_event_size=10 * 1024 * 1024))


# ------------------------------------------------------------------------------ payloads


def record_text(sequence_no: int, *, hsm: int = 0, user_name: str = "admin") -> str:
    """A classic CloudHSM record; distinct per sequence number (so every event can be counted)."""
    failed = sequence_no % 5 == 4
    event = HsmEvent(
        usecs=1_700_000_000_000_000 + sequence_no * 1_013 + hsm,
        sequence_no=sequence_no,
        reboot_counter=0x107,
        command_type="CN_MGMT_CMD",
        command_type_code=0,
        opcode="CN_LOGIN",
        opcode_code=0xD,
        session_handle=f"0x{0x1004000 + sequence_no:x}",
        response_code=163 if failed else 0,
        response="RET_USER_LOGIN_FAILURE" if failed else "SUCCESS",
        success=not failed,
        log_type="MGMT_USER_DETAILS_LOG",
        log_type_code=2,
        user_name=user_name,
        user_type="CN_CRYPTO_OFFICER",
        user_type_code=2,
    )
    return render_text_record(event)


def subscription_document(
    messages: list[str], *, stream: str = "hsm-aaaa1111", group: str = LOG_GROUP, first_id: int = 0
) -> dict[str, Any]:
    """A decoded CloudWatch Logs DATA_MESSAGE document."""
    return {
        "messageType": "DATA_MESSAGE",
        "owner": "123456789012",
        "logGroup": group,
        "logStream": stream,
        "subscriptionFilters": ["hsmaudit"],
        "logEvents": [
            {
                "id": f"{37_000_000_000_000 + first_id + i:056d}",
                "timestamp": 1_700_000_000_000 + i,
                "message": m,
            }
            for i, m in enumerate(messages)
        ],
    }


def subscription_event(*documents: dict[str, Any]) -> dict[str, Any]:
    """`{"awslogs": {"data": base64(gzip(documents back to back))}}`."""
    body = b"".join(json.dumps(d, ensure_ascii=False).encode("utf-8") for d in documents)
    return {"awslogs": {"data": base64.b64encode(gzip.compress(body)).decode("ascii")}}


def control_document() -> dict[str, Any]:
    """CloudWatch's health check (cloudhsm-audit-format.md §10.3)."""
    return {
        "messageType": "CONTROL_MESSAGE",
        "owner": "CloudwatchLogs",
        "logGroup": "",
        "logStream": "",
        "subscriptionFilters": [],
        "logEvents": [
            {"id": "", "timestamp": 1_700_000_000_000, "message": "CWL CONTROL MESSAGE: Checking health"}
        ],
    }


@dataclass
class FakeContext:
    """The parts of the Lambda context the handlers read."""

    remaining_ms: int = 30_000
    aws_request_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    function_name: str = "hsmaudit-forwarder"

    def get_remaining_time_in_millis(self) -> int:
        return self.remaining_ms


# ------------------------------------------------------------------------------ the shared sink


def load_hec_sink() -> ModuleType:
    """Import the independent sink by path (skips the test when it is absent)."""
    spec = importlib.util.spec_from_file_location("hec_sink", require_hec_sink())
    assert spec is not None and spec.loader is not None
    module = sys.modules.get("hec_sink")
    if module is None:
        module = importlib.util.module_from_spec(spec)
        sys.modules["hec_sink"] = module
        spec.loader.exec_module(module)
    return module


@dataclass
class SharedSink:
    """A running shared sink and the file of events it kept."""

    sink: Any
    kept: Path

    @property
    def url(self) -> str:
        return str(self.sink.url)

    def stats(self) -> dict[str, Any]:
        return dict(self.sink.stats())

    def events(self) -> list[dict[str, Any]]:
        if not self.kept.exists():
            return []
        return [json.loads(line) for line in self.kept.read_text(encoding="utf-8").splitlines() if line]


@pytest.fixture
def start_sink(tmp_path: Path) -> Iterator[Callable[..., SharedSink]]:
    """Start the shared HEC sink with fault options; all are stopped at teardown."""
    module = load_hec_sink()
    running: list[Any] = []
    # The sink writes an answer's headers and body in two sends; with Nagle on, the body waits
    # for the client's delayed ACK (~40 ms a request). TCP_NODELAY on its side only (a subclass,
    # the shared module is untouched) keeps the tests fast without changing what it answers.
    nodelay_handler = type("NoDelayHandler", (module.Handler,), {"disable_nagle_algorithm": True})

    def start(**options: Any) -> SharedSink:
        kept = tmp_path / f"sink-{len(running)}.jsonl"
        options.setdefault("token", TOKEN)
        args = module.build_parser().parse_args([])
        for key, value in {"port": 0, "keep_events": str(kept), **options}.items():
            setattr(args, key, value)
        server = module.SinkServer((args.host, args.port), nodelay_handler, args)
        # a short poll interval: shutdown() waits for it, and every test stops its sinks
        thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        thread.start()
        sink = module.RunningSink(server, thread)
        running.append(sink)
        return SharedSink(sink, kept)

    yield start
    for sink in running:
        sink.stop()


# ------------------------------------------------------------------------------ our fault server


Action = Any  # "ok" | "reset" | ("status", http, body, headers) | ("sleep", seconds)


class FaultHec:
    """An HEC whose answers a test scripts request by request.

    `script` holds one action per event POST (then `default`): `"ok"`; `"reset"` (close the
    socket with RST, no answer); `("sleep", s)` (answer nothing for s seconds, then close);
    `("status", http, body, headers)`. `poison` makes the server behave as HEC does for a bad
    event: accept the events before it, answer 400 with `invalid-event-number`. `ack` is
    `"instant"`, `"never"` or an int (polls before an ackId is reported indexed).

    `fail_every`/`fail_first` answer every Nth or the first N event POSTs with `fail_status`
    (503: "Server is busy", code 9, retryable) after reading them, as a busy indexer does;
    `latency` delays every event POST's answer by that many seconds. The attributes may change
    while the server runs.
    """

    def __init__(
        self,
        *,
        token: str = TOKEN,
        ssl_context: ssl.SSLContext | None = None,
        fail_every: int = 0,
        fail_first: int = 0,
        fail_status: int = 503,
        latency: float = 0.0,
    ) -> None:
        self.token = token
        self.fail_every = fail_every
        self.fail_first = fail_first
        self.fail_status = fail_status
        self.latency = latency
        self.counters: Counter[str] = Counter()
        self.script: list[Action] = []
        self.default: Action = "ok"
        self.poison: Callable[[dict[str, Any]], bool] | None = None
        self.ack: str | int = "instant"
        self.lock = threading.Lock()
        self.accepted: list[bytes] = []
        self.requests = 0
        self.ack_polls = 0
        self.channels: set[str] = set()
        self._next_ack = 0
        self._ack_polls_seen: dict[int, int] = {}
        self._acked_pending: set[int] = set()
        fault = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True  # see start_sink: no 40 ms delayed-ACK stalls

            def setup(self) -> None:
                super().setup()
                with fault.lock:
                    fault.counters["connections"] += 1

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                if self.path.startswith("/services/collector/health"):
                    self._answer(200, {"text": "HEC is healthy", "code": 17})
                else:
                    self._answer(
                        404, {"text": "The requested URL was not found on this server.", "code": 404}
                    )

            def _answer(
                self, status: int, body: dict[str, Any], headers: dict[str, str] | None = None
            ) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                for key, value in (headers or {}).items():
                    self.send_header(key, value)
                self.end_headers()
                self.wfile.write(data)

            def do_POST(self) -> None:
                raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                is_ack = self.path.startswith("/services/collector/ack")
                if not is_ack:
                    with fault.lock:  # every event POST counts, refused ones too (as in the sink)
                        fault.requests += 1
                authorization = self.headers.get("Authorization")
                if not authorization:
                    self._answer(401, {"text": "Token is required", "code": 2})
                    return
                if authorization != f"Splunk {fault.token}":
                    with fault.lock:
                        fault.counters["auth_failures"] += 1
                    self._answer(403, {"text": "Invalid token", "code": 4})
                    return
                channel = self.headers.get("X-Splunk-Request-Channel")
                if is_ack:
                    self._answer(200, {"acks": fault._ack_answer(json.loads(raw)["acks"])})
                    return
                gzipped = self.headers.get("Content-Encoding") == "gzip"
                body = gzip.decompress(raw) if gzipped else raw
                if not body.strip():
                    self._answer(400, {"text": "No data", "code": 5})
                    return
                lines = body.split(b"\n")
                action = fault._next_action(channel, gzipped=gzipped)
                if fault.latency:
                    time.sleep(fault.latency)
                if action == "reset":
                    self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                    self.close_connection = True
                    self.connection.close()
                    return
                if isinstance(action, tuple) and action[0] == "sleep":
                    time.sleep(action[1])
                    self.close_connection = True
                    return
                if isinstance(action, tuple) and action[0] == "status":
                    _, status, answer, headers = action
                    self._answer(status, answer, headers)
                    return
                if fault.poison is not None:
                    for index, line in enumerate(lines):
                        if fault.poison(json.loads(line)):
                            with fault.lock:
                                fault.accepted.extend(lines[:index])
                            self._answer(
                                400, {"text": "Invalid data format", "code": 6, "invalid-event-number": index}
                            )
                            return
                problem = fault._invalid_event(lines)
                if problem is not None:
                    self._answer(400, problem)
                    return
                answer: dict[str, Any] = {"text": "Success", "code": 0}
                with fault.lock:
                    fault.accepted.extend(lines)
                    if channel:
                        answer["ackId"] = fault._next_ack
                        fault._next_ack += 1
                        fault.counters["acks_issued"] += 1
                self._answer(200, answer)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        scheme = "http"
        if ssl_context is not None:
            self.server.socket = ssl_context.wrap_socket(self.server.socket, server_side=True)
            scheme = "https"
        self.thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self.thread.start()
        self.url = f"{scheme}://127.0.0.1:{self.server.server_address[1]}"

    def _next_action(self, channel: str | None, *, gzipped: bool) -> Action:
        """The scripted answer to this event POST; an injected failure first when one is due."""
        with self.lock:
            self.counters["gzip_requests"] += gzipped
            if channel:
                self.channels.add(channel)
            action = self.script.pop(0) if self.script else self.default
            due = (self.fail_first and self.requests <= self.fail_first) or (
                self.fail_every and self.requests % self.fail_every == 0
            )
            if not due:
                return action
            self.counters["injected_failures"] += 1
        text, code = ("Server is busy", 9) if self.fail_status == 503 else ("Internal server error", 8)
        return ("status", self.fail_status, {"text": text, "code": code}, {})

    @staticmethod
    def _invalid_event(lines: list[bytes]) -> dict[str, Any] | None:
        """HEC's 400 answer for the first line that is not an event object, or None."""
        for index, line in enumerate(lines):
            try:
                event = json.loads(line)
            except ValueError:
                return {"text": "Invalid data format", "code": 6, "invalid-event-number": index}
            if not isinstance(event, dict) or "event" not in event:
                return {"text": "Event field is required", "code": 12, "invalid-event-number": index}
            if event["event"] in (None, ""):
                return {"text": "Event field cannot be blank", "code": 13, "invalid-event-number": index}
        return None

    def _ack_answer(self, ids: list[int]) -> dict[str, bool]:
        with self.lock:
            self.ack_polls += 1
            out = {}
            for ack_id in ids:
                seen = self._ack_polls_seen.get(ack_id, 0) + 1
                self._ack_polls_seen[ack_id] = seen
                if self.ack == "never":
                    out[str(ack_id)] = False
                elif self.ack == "instant":
                    out[str(ack_id)] = True
                else:
                    out[str(ack_id)] = seen > int(self.ack)
            return out

    def events(self) -> list[dict[str, Any]]:
        """Accepted envelopes, decoded."""
        with self.lock:
            return [json.loads(line) for line in self.accepted]

    def stats(self) -> dict[str, int]:
        """The counters tests assert on, named as the independent sink names them."""
        with self.lock:
            return {
                "connections": self.counters["connections"],
                "requests": self.requests,
                "events": len(self.accepted),
                "gzip_requests": self.counters["gzip_requests"],
                "injected_failures": self.counters["injected_failures"],
                "auth_failures": self.counters["auth_failures"],
                "acks_issued": self.counters["acks_issued"],
            }

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def fault_hec() -> Iterator[FaultHec]:
    """Our scriptable HEC on 127.0.0.1:0."""
    server = FaultHec()
    yield server
    server.stop()


CLI_TOKEN = "test-token"
"""The token the CLI tests' HEC accepts (not a secret; tests assert it is never printed)."""


@pytest.fixture
def loopback_hec() -> Iterator[FaultHec]:
    """Our HEC on 127.0.0.1:0 accepting `test-token`: the HEC the CLI tests deliver to."""
    server = FaultHec(token=CLI_TOKEN)
    yield server
    server.stop()


HecServer = FaultHec | SharedSink
"""Either HEC: both have `url`, `stats()` (same counter names) and `events()`."""


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


def tls_files(directory: Path) -> tuple[Path, Path, Path]:
    """A throwaway CA and a server certificate for 127.0.0.1 signed by it: (ca.pem, cert.pem, key.pem)."""
    import datetime

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    now = datetime.datetime.now(datetime.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "hsmaudit test CA")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True, key_cert_sign=True, crl_sign=True, content_commitment=False,
                key_encipherment=False, data_encipherment=False, key_agreement=False,
                encipher_only=False, decipher_only=False,
            ),
            critical=True,
        )
        .sign(ca_key, hashes.SHA256())
    )  # fmt: skip
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "SplunkServerDefaultCert")]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False
        )
        .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    paths = (directory / "ca.pem", directory / "cert.pem", directory / "key.pem")
    paths[0].write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    paths[1].write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    paths[2].write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    return paths


@pytest.fixture
def tls_hec(tmp_path: Path) -> Iterator[tuple[FaultHec, Path]]:
    """Our HEC over TLS with a certificate from a private CA; yields (server, ca.pem)."""
    ca, cert, key = tls_files(tmp_path)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    server = FaultHec(ssl_context=context)
    yield server, ca
    server.stop()


def closed_port_url() -> str:
    """An http URL on 127.0.0.1 where nothing listens (HEC down)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return f"http://127.0.0.1:{port}"


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
    for key in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_url)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_REGION", "us-east-1")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("AWS_CONFIG_FILE", "/dev/null")
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", "/dev/null")
    return moto_url


# ------------------------------------------------------------------------------ the Lambda environment


FAST_SETTINGS = {
    "HSMAUDIT_HEC_TIMEOUT": "0.5",
    "HSMAUDIT_HEC_BACKOFF_BASE": "0.01",
    "HSMAUDIT_HEC_BACKOFF_CAP": "0.05",
    "HSMAUDIT_HEC_MAX_ATTEMPTS": "4",
    "HSMAUDIT_HEC_ACK_TIMEOUT": "0.3",
    "HSMAUDIT_HEC_ACK_POLL_INTERVAL": "0.05",
    "HSMAUDIT_TIME_RESERVE": "0.5",
    "HSMAUDIT_METRICS": "false",
}
"""Short timeouts and backoffs so the whole fault matrix runs in seconds."""


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
