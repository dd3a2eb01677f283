"""Loopback servers for the operator CLI's tests, and tests that they behave like the real thing.

- moto in server mode on 127.0.0.1 (CloudWatch Logs, IAM, STS, S3, ...), reached through
  `AWS_ENDPOINT_URL` with fake credentials, holding log groups and streams of realistic records
  rendered by `render_text_record`;
- `ThrottlingProxy`: a small HTTP proxy in front of moto that answers some requests with the
  `ThrottlingException` CloudWatch Logs sends when a quota is exceeded, and forwards the rest;
- the independent HEC sink (`../shared/tools/hec_sink.py`, optional), started in-process on port 0.

Other test modules import the fixtures from here (`from .test_cli_harness import ...`).
"""

from __future__ import annotations

import http.client
import importlib.util
import json
import os
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import ModuleType
from typing import Any

import boto3
import pytest
from moto.server import ThreadedMotoServer

from hsmaudit.records.event import HsmEvent
from hsmaudit.records.render import render_text_record

from ..conftest import require_hec_sink

HSMAUDIT = str(Path(sys.executable).with_name("hsmaudit"))
REGION = "us-east-1"
# The records' CloudWatch timestamps start a day ago, on a whole second (CloudWatch refuses events
# older than 14 days).
BASE_MS = (int(time.time()) - 86_400) * 1000


def run_cli(
    *args: str, env: dict[str, str] | None = None, stdin: bytes | None = None, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    """Run the real console script with a clean environment (plus `env`)."""
    return subprocess.run(
        [HSMAUDIT, *args],
        input=stdin.decode() if stdin is not None else None,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
        env=clean_env(env),
    )


def clean_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    """The environment of a CLI subprocess: no real AWS profile, no HSMAUDIT_* from the developer."""
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("AWS_", "HSMAUDIT_")) and key not in {"COLUMNS", "FORCE_COLOR"}
    }
    env.update(
        {
            "AWS_CONFIG_FILE": os.devnull,
            "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
            "NO_COLOR": "1",
            "COLUMNS": "120",
            # as with the virtualenv activated: the "what next" hints then say plain `hsmaudit`
            "PATH": os.pathsep.join([str(Path(HSMAUDIT).parent), os.environ.get("PATH", os.defpath)]),
        }
    )
    env.update(extra or {})
    return env


# --------------------------------------------------------------------------------------------- moto


@dataclass
class Moto:
    """A moto server on loopback and the environment that points boto3 at it."""

    url: str
    env: dict[str, str] = field(default_factory=dict)

    def client(self, service: str, **credentials: str) -> Any:
        return boto3.client(
            service,
            region_name=REGION,
            endpoint_url=self.url,
            aws_access_key_id=credentials.get("key", "testing"),
            aws_secret_access_key=credentials.get("secret", "testing"),
        )


@pytest.fixture(scope="session")
def moto() -> Iterator[Moto]:
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    url = f"http://{host}:{port}"
    env = {
        "AWS_ENDPOINT_URL": url,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": REGION,
        "AWS_REGION": REGION,
    }
    yield Moto(url=url, env=env)
    server.stop()


def record_text(hsm_index: int, sequence_no: int, usecs: int) -> str:
    """A realistic classic record: logins, key generation and a failed login now and then."""
    kind = sequence_no % 4
    common: dict[str, Any] = {
        "usecs": usecs,
        "sequence_no": sequence_no,
        "reboot_counter": 0x107 + hsm_index,
        "command_type": "CN_MGMT_CMD",
        "command_type_code": 0,
        "session_handle": f"0x{0x1004000 + sequence_no:x}",
    }
    if kind == 1:
        event = HsmEvent(
            **common,
            opcode="CN_GENERATE_KEY",
            opcode_code=0x1A,
            response_code=0,
            response="SUCCESS",
            success=True,
            log_type="MGMT_KEY_DETAILS_LOG",
            log_type_code=1,
            key_handle=262_000 + sequence_no,
        )
    elif kind == 3:
        event = HsmEvent(
            **common,
            opcode="CN_LOGIN",
            opcode_code=0xD,
            response_code=163,
            response="RET_USER_LOGIN_FAILURE",
            success=False,
            log_type="MGMT_USER_DETAILS_LOG",
            log_type_code=2,
            user_name="crypto_user",
            user_type="CN_CRYPTO_USER",
            user_type_code=1,
        )
    else:
        event = HsmEvent(
            **common,
            opcode="CN_LOGIN",
            opcode_code=0xD,
            response_code=0,
            response="SUCCESS",
            success=True,
            log_type="MGMT_USER_DETAILS_LOG",
            log_type_code=2,
            user_name="admin",
            user_type="CN_CRYPTO_OFFICER",
            user_type_code=2,
        )
    return render_text_record(event, separator=("space", "colon", "tabs")[hsm_index % 3])


@dataclass
class Cluster:
    """A CloudHSM cluster's log group in moto, with its HSM streams and record counts."""

    cluster_id: str
    log_group: str
    streams: dict[str, int]  # stream -> number of records

    @property
    def total(self) -> int:
        return sum(self.streams.values())


def make_cluster(
    moto: Moto, *, hsms: int = 2, records: int = 30, same_ms_every: int = 5, start_ms: int = BASE_MS
) -> Cluster:
    """Create `/aws/cloudhsm/cluster-<random>` with `hsms` streams of `records` records each.

    Every `same_ms_every`-th record shares its CloudWatch timestamp with the one before, as busy
    HSMs do, so checkpoints must tell records in one millisecond apart.
    """
    logs = moto.client("logs")
    cluster_id = f"cluster-{uuid.uuid4().hex[:11]}"
    log_group = f"/aws/cloudhsm/{cluster_id}"
    logs.create_log_group(logGroupName=log_group)
    streams: dict[str, int] = {}
    for hsm_index in range(hsms):
        stream = f"hsm-{uuid.uuid4().hex[:11]}"
        logs.create_log_stream(logGroupName=log_group, logStreamName=stream)
        events = []
        stamp = start_ms + hsm_index
        for sequence_no in range(records):
            if same_ms_every <= 0 or sequence_no % same_ms_every != 0:
                stamp += 1000
            usecs = stamp * 1000 + sequence_no
            events.append({"timestamp": stamp, "message": record_text(hsm_index, sequence_no, usecs)})
        for begin in range(0, len(events), 500):
            logs.put_log_events(
                logGroupName=log_group, logStreamName=stream, logEvents=events[begin : begin + 500]
            )
        streams[stream] = records
    return Cluster(cluster_id=cluster_id, log_group=log_group, streams=streams)


# ------------------------------------------------------------------------------- throttling proxy


class ThrottlingProxy:
    """Forwards AWS JSON requests to moto, answering every `every`-th matching one with throttling.

    CloudWatch Logs answers an exceeded quota with HTTP 400 and
    `{"__type": "ThrottlingException", "message": "Rate exceeded"}` (AWS JSON 1.1 protocol).
    """

    def __init__(
        self, upstream: str, *, every: int = 3, operations: tuple[str, ...] = ("GetLogEvents",)
    ) -> None:
        self.upstream = upstream.removeprefix("http://")
        self.every = every
        self.operations = operations
        self.lock = threading.Lock()
        self.seen: dict[str, int] = {}
        self.throttled = 0
        self.forwarded = 0
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                return

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                operation = (self.headers.get("X-Amz-Target") or "").rpartition(".")[2]
                with proxy.lock:
                    count = proxy.seen[operation] = proxy.seen.get(operation, 0) + 1
                    throttle = operation in proxy.operations and count % proxy.every == 0
                    if throttle:
                        proxy.throttled += 1
                    else:
                        proxy.forwarded += 1
                if throttle:
                    payload = json.dumps(
                        {"__type": "ThrottlingException", "message": "Rate exceeded"}
                    ).encode()
                    self.send_response(400)
                    self.send_header("Content-Type", "application/x-amz-json-1.1")
                    self.send_header("Content-Length", str(len(payload)))
                    self.end_headers()
                    self.wfile.write(payload)
                    return
                connection = http.client.HTTPConnection(proxy.upstream, timeout=30)
                headers = {k: v for k, v in self.headers.items() if k.lower() not in {"host", "connection"}}
                connection.request("POST", self.path, body=body, headers=headers)
                answer = connection.getresponse()
                data = answer.read()
                self.send_response(answer.status)
                for key, value in answer.getheaders():
                    if key.lower() not in {
                        "content-length",
                        "transfer-encoding",
                        "connection",
                        "server",
                        "date",
                    }:
                        self.send_header(key, value)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)
                connection.close()

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host!s}:{port}"

    def __enter__(self) -> ThrottlingProxy:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


# --------------------------------------------------------------------------------------- HEC sink


def _load_hec_sink() -> ModuleType:
    spec = importlib.util.spec_from_file_location("hec_sink", require_hec_sink())
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("hec_sink", module)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def hec_sink(tmp_path: Path) -> Iterator[Any]:
    """The shared HEC sink on 127.0.0.1:0 with token `test-token`, keeping every event in a file."""
    module = _load_hec_sink()
    kept = tmp_path / "hec-events.jsonl"
    sink = module.start_sink(port=0, token="test-token", keep_events=str(kept))
    sink.kept = kept
    yield sink
    sink.stop()


def kept_events(sink: Any) -> list[dict[str, Any]]:
    """Every HEC envelope the sink accepted, in order."""
    path: Path = sink.kept
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


# ------------------------------------------------------------------------------ harness self-tests


def test_moto_holds_a_cluster_with_records_the_parser_reads(moto: Moto) -> None:
    from hsmaudit.records.parse import parse_message

    cluster = make_cluster(moto, hsms=1, records=5)
    logs = moto.client("logs")
    (stream,) = cluster.streams
    events = logs.get_log_events(logGroupName=cluster.log_group, logStreamName=stream, startFromHead=True)[
        "events"
    ]
    parsed = [parse_message(e["message"], log_group=cluster.log_group, log_stream=stream) for e in events]
    assert len(parsed) == 5
    assert all(p.parse_error is None for p in parsed)
    assert [p.sequence_no for p in parsed] == [0, 1, 2, 3, 4]
    assert {p.cluster_id for p in parsed} == {cluster.cluster_id}


def test_the_proxy_answers_throttling_as_cloudwatch_logs_does(moto: Moto) -> None:
    from botocore.config import Config
    from botocore.exceptions import ClientError

    cluster = make_cluster(moto, hsms=1, records=2)
    (stream,) = cluster.streams
    with ThrottlingProxy(moto.url, every=2) as proxy:
        logs = boto3.client(
            "logs",
            region_name=REGION,
            endpoint_url=proxy.url,
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
            config=Config(retries={"total_max_attempts": 1}),
        )
        logs.get_log_events(logGroupName=cluster.log_group, logStreamName=stream)
        with pytest.raises(ClientError) as raised:
            logs.get_log_events(logGroupName=cluster.log_group, logStreamName=stream)
    assert raised.value.response["Error"]["Code"] == "ThrottlingException"
    assert (proxy.throttled, proxy.forwarded) == (1, 1)
