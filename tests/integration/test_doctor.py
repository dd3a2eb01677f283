"""`hsmaudit doctor` on working and broken setups, through the real console script.

Broken setups are real: a closed port, a HEC with another token, HTTPS with a self-signed
certificate made here, a Splunk-like HEC whose token has acknowledgement off / a restricted index
/ is disabled, moto with IAM enforcement and a policy lacking one permission, a log group without
subscription filter. Each must be named in one line, and doctor must exit 1.
"""

from __future__ import annotations

import datetime
import json
import os
import pty
import re
import socket
import ssl
import subprocess
import threading
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Final

import boto3
import pytest

from .fault_hec import FaultHec
from .test_cli_harness import HSMAUDIT, Moto, clean_env, hec_sink, make_cluster, moto, run_cli

__all__ = ["hec_sink", "moto"]  # fixtures used by name

TOKEN = "test-token"


def doctor(*args: str, env: dict[str, str] | None = None) -> tuple[int, list[dict[str, Any]], str]:
    """Run `hsmaudit doctor --json`; returns exit code, the checks, and stderr."""
    result = run_cli("doctor", "--json", "--timeout", "3", *args, env=env)
    checks = [json.loads(line) for line in result.stdout.splitlines() if line.strip()]
    return result.returncode, checks, result.stderr


def by_check(checks: list[dict[str, Any]], name: str) -> list[dict[str, Any]]:
    return [c for c in checks if c["check"] == name]


def failed(checks: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [c for c in checks if c["status"] == "fail"]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


# ----------------------------------------------------------------------- a Splunk-like HEC


@dataclass
class SplunkLikeHec:
    """A loopback HEC that answers like Splunk for one token's settings (splunk-hec-and-app.md §1.8)."""

    token: str = TOKEN
    enabled: bool = True
    use_ack: bool = False
    allowed_indexes: tuple[str, ...] = ()
    received: list[dict[str, Any]] = field(default_factory=list)

    def __post_init__(self) -> None:
        hec = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                return

            def answer(self, status: int, payload: dict[str, Any]) -> None:
                body = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_GET(self) -> None:
                if self.path.startswith("/services/collector/health"):
                    self.answer(200, {"text": "HEC is healthy", "code": 17})
                else:
                    self.answer(404, {"text": "not found", "code": 404})

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                scheme, _, token = (self.headers.get("Authorization") or "").partition(" ")
                if not token:
                    return self.answer(401, {"text": "Token is required", "code": 2})
                if scheme != "Splunk" or token != hec.token:
                    return self.answer(403, {"text": "Invalid token", "code": 4})
                if not hec.enabled:
                    return self.answer(403, {"text": "Token disabled", "code": 1})
                channel = self.headers.get("X-Splunk-Request-Channel")
                if self.path.startswith("/services/collector/ack"):
                    if not hec.use_ack:
                        return self.answer(400, {"text": "ACK is disabled", "code": 14})
                    acks = json.loads(body or b"{}").get("acks", [])
                    return self.answer(200, {"acks": {str(a): False for a in acks}})
                if hec.use_ack and not channel:
                    return self.answer(400, {"text": "Data channel is missing", "code": 10})
                if not body.strip():
                    return self.answer(400, {"text": "No data", "code": 5})
                decoder = json.JSONDecoder()
                text, position, number = body.decode(), 0, 0
                while position < len(text):
                    event, position = decoder.raw_decode(text, position)
                    while position < len(text) and text[position].isspace():
                        position += 1
                    index = event.get("index")
                    if index is not None and hec.allowed_indexes and index not in hec.allowed_indexes:
                        return self.answer(
                            400, {"text": "Incorrect index", "code": 7, "invalid-event-number": number}
                        )
                    hec.received.append(event)
                    number += 1
                return self.answer(
                    200, {"text": "Success", "code": 0, **({"ackId": 0} if hec.use_ack else {})}
                )

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def splunk() -> Iterator[SplunkLikeHec]:
    hec = SplunkLikeHec()
    yield hec
    hec.stop()


# -------------------------------------------------------------------------- HTTPS with a self-signed cert


@dataclass
class TlsHec:
    url_by_name: str
    url_by_ip: str
    certificate: Path


def serve_tls(directory: Path, *, valid_for: datetime.timedelta) -> Iterator[TlsHec]:
    """Our HEC behind HTTPS with a self-signed certificate for `localhost` only.

    CN is Splunk's default `SplunkServerDefaultCert` (user-needs.md §1.6: the classic self-signed
    case). A negative `valid_for` makes a certificate that expired that long ago.
    """
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "SplunkServerDefaultCert")])
    now = datetime.datetime.now(datetime.UTC)
    not_after = now + valid_for
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(min(now, not_after) - datetime.timedelta(days=1))
        .not_valid_after(not_after)
        .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost")]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path = directory / "hec.pem"
    key_path = directory / "hec.key"
    cert_path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert_path, key_path)
    server = FaultHec(token=TOKEN, ssl_context=context)
    port = server.server.server_address[1]
    yield TlsHec(f"https://localhost:{port}", f"https://127.0.0.1:{port}", cert_path)
    server.stop()


@pytest.fixture(scope="module")
def tls_hec(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TlsHec]:
    """HTTPS HEC with a self-signed certificate valid for two more days."""
    yield from serve_tls(tmp_path_factory.mktemp("tls"), valid_for=datetime.timedelta(days=2))


# ------------------------------------------------------------------------------------------ HEC tests


def check_a_working_hec(hec: FaultHec | Any) -> None:
    code, checks, stderr = doctor("--skip-aws", "--hec-url", hec.url, env={"HSMAUDIT_HEC_TOKEN": TOKEN})
    assert code == 0, (checks, stderr)
    statuses = {c["check"]: c["status"] for c in checks}
    assert statuses["hec.reachable"] == statuses["hec.token"] == statuses["hec.index"] == "ok"
    assert statuses["hec.health"] == "ok"
    # the HEC reports every ackId as indexed, i.e. acknowledgement on; hsmaudit has it off: a warning
    assert statuses["hec.ack"] == "warn"
    assert hec.stats()["events"] == 1  # exactly one test event
    assert TOKEN not in json.dumps(checks) + stderr


def test_a_working_hec_passes_every_check(loopback_hec: FaultHec) -> None:
    check_a_working_hec(loopback_hec)


def test_the_independent_sink_passes_every_check(hec_sink: Any) -> None:
    """Cross-check: doctor's probes against an HEC written by another team (skips without it)."""
    check_a_working_hec(hec_sink)


def test_hec_down_is_named_in_one_line() -> None:
    code, checks, stderr = doctor(
        "--skip-aws", "--hec-url", f"http://127.0.0.1:{free_port()}", env={"HSMAUDIT_HEC_TOKEN": TOKEN}
    )
    assert code == 1
    (problem,) = failed(checks)
    assert problem["check"] == "hec.reachable"
    assert "HEC is down" in problem["summary"] and "refused the connection" in problem["summary"]
    assert {c["status"] for c in checks if c["check"] in ("hec.token", "hec.index")} == {"skip"}
    assert stderr.strip() == "hsmaudit: doctor found 1 problem (hec.reachable)"


def test_a_wrong_token_is_named_without_showing_it(loopback_hec: FaultHec) -> None:
    code, checks, stderr = doctor(
        "--skip-aws", "--hec-url", loopback_hec.url, env={"HSMAUDIT_HEC_TOKEN": "not-the-token-123"}
    )
    assert code == 1
    (problem,) = failed(checks)
    assert problem["check"] == "hec.token"
    assert "HEC does not accept the token (from HSMAUDIT_HEC_TOKEN)" in problem["summary"]
    assert "HEC code 4" in problem["summary"]
    assert "not-the-token-123" not in json.dumps(checks) + stderr


def test_a_disabled_token_is_named(splunk: SplunkLikeHec) -> None:
    splunk.enabled = False
    code, checks, _ = doctor("--skip-aws", "--hec-url", splunk.url, env={"HSMAUDIT_HEC_TOKEN": TOKEN})
    assert code == 1
    (problem,) = failed(checks)
    assert "disabled in Splunk (HEC code 1" in problem["summary"]


def test_ack_configured_but_off_on_the_token_is_named(splunk: SplunkLikeHec) -> None:
    code, checks, _ = doctor(
        "--skip-aws", "--hec-url", splunk.url, "--ack", env={"HSMAUDIT_HEC_TOKEN": TOKEN}
    )
    assert code == 1
    (problem,) = failed(checks)
    assert problem["check"] == "hec.ack"
    assert "HSMAUDIT_HEC_ACK is on but the token has indexer acknowledgement off" in problem["summary"]


def test_ack_on_both_sides_passes(splunk: SplunkLikeHec) -> None:
    splunk.use_ack = True
    code, checks, stderr = doctor(
        "--skip-aws", "--hec-url", splunk.url, env={"HSMAUDIT_HEC_TOKEN": TOKEN, "HSMAUDIT_HEC_ACK": "true"}
    )
    assert code == 0, (checks, stderr)
    assert by_check(checks, "hec.ack")[0]["status"] == "ok"


def test_an_index_the_token_may_not_write_is_named(splunk: SplunkLikeHec) -> None:
    splunk.allowed_indexes = ("main",)
    code, checks, _ = doctor(
        "--skip-aws", "--hec-url", splunk.url, "--index", "cloudhsm", env={"HSMAUDIT_HEC_TOKEN": TOKEN}
    )
    assert code == 1
    (problem,) = failed(checks)
    assert problem["check"] == "hec.index"
    assert "the token may not write to index cloudhsm (HEC code 7" in problem["summary"]
    # and an allowed index passes, with one test event outside the audit sourcetypes
    code, checks, _ = doctor(
        "--skip-aws", "--hec-url", splunk.url, "--index", "main", env={"HSMAUDIT_HEC_TOKEN": TOKEN}
    )
    assert code == 0
    assert [e["sourcetype"] for e in splunk.received] == ["hsmaudit:doctor"]


def test_no_test_event_sends_nothing(splunk: SplunkLikeHec) -> None:
    code, checks, _ = doctor(
        "--skip-aws", "--hec-url", splunk.url, "--no-test-event", env={"HSMAUDIT_HEC_TOKEN": TOKEN}
    )
    assert code == 0
    assert by_check(checks, "hec.index")[0]["status"] == "skip"
    assert splunk.received == []


def test_a_self_signed_certificate_is_named_with_the_ca_bundle_fix(tls_hec: TlsHec) -> None:
    code, checks, _ = doctor(
        "--skip-aws", "--hec-url", tls_hec.url_by_name, env={"HSMAUDIT_HEC_TOKEN": TOKEN}
    )
    assert code == 1
    (problem,) = failed(checks)
    assert problem["check"] == "hec.tls"
    assert "self-signed (CN=SplunkServerDefaultCert)" in problem["summary"]
    assert "HSMAUDIT_HEC_CA_BUNDLE" in (problem["fix"] or "")


def test_trusting_the_certificate_with_a_ca_bundle_fixes_tls(tls_hec: TlsHec) -> None:
    code, checks, stderr = doctor(
        "--skip-aws", "--hec-url", tls_hec.url_by_name, env={"HSMAUDIT_HEC_TOKEN": TOKEN,
        "HSMAUDIT_HEC_CA_BUNDLE": str(tls_hec.certificate)},
    )  # fmt: skip
    assert code == 0, (checks, stderr)
    assert by_check(checks, "hec.tls")[0]["status"] == "ok"
    assert by_check(checks, "hec.index")[0]["status"] == "ok"  # the test event went through HTTPS


def test_a_certificate_for_another_name_is_named(tls_hec: TlsHec) -> None:
    code, checks, _ = doctor(
        "--skip-aws", "--hec-url", tls_hec.url_by_ip, "--ca-bundle", str(tls_hec.certificate),
        env={"HSMAUDIT_HEC_TOKEN": TOKEN},
    )  # fmt: skip
    assert code == 1
    (problem,) = failed(checks)
    assert "valid for localhost, not for 127.0.0.1" in problem["summary"]


def test_verification_turned_off_is_a_warning_said_once(tls_hec: TlsHec) -> None:
    code, checks, stderr = doctor(
        "--skip-aws", "--hec-url", tls_hec.url_by_name,
        env={"HSMAUDIT_HEC_TOKEN": TOKEN, "HSMAUDIT_HEC_VERIFY": "false"},
    )  # fmt: skip
    assert code == 0, (checks, stderr)
    (tls,) = by_check(checks, "hec.tls")
    assert tls["status"] == "warn" and "verification is OFF" in tls["summary"]
    assert "HSMAUDIT_HEC_CA_BUNDLE" in (tls["fix"] or "")
    assert stderr == ""  # no per-request InsecureRequestWarning noise


def test_an_expired_certificate_is_named(tmp_path: Path) -> None:
    for server in serve_tls(tmp_path, valid_for=-datetime.timedelta(days=3)):
        code, checks, _ = doctor(
            "--skip-aws", "--hec-url", server.url_by_name, "--ca-bundle", str(server.certificate),
            env={"HSMAUDIT_HEC_TOKEN": TOKEN},
        )  # fmt: skip
        assert code == 1
        (problem,) = failed(checks)
        assert problem["check"] == "hec.tls"
        assert "has expired" in problem["summary"]


def test_no_hec_url_is_named(tmp_path: Path) -> None:
    code, checks, _ = doctor("--skip-aws")
    assert code == 1
    assert failed(checks)[0]["summary"] == "no HEC URL is configured"


def test_people_get_one_line_per_check() -> None:
    result = run_cli(
        "doctor",
        "--skip-aws",
        "--hec-url",
        f"http://127.0.0.1:{free_port()}",
        env={"HSMAUDIT_HEC_TOKEN": TOKEN},
    )
    assert result.returncode == 1
    lines = result.stdout.splitlines()
    assert len(lines) == 7
    assert lines[1].startswith("✘ hec.reachable")


def test_on_an_80_column_terminal_each_finding_wraps_under_itself() -> None:
    """A terminal broke the long lines at its margin, mid-word, under the check names; piped
    output (above) stays one line per check."""
    leader, follower = pty.openpty()
    env = clean_env({"HSMAUDIT_HEC_TOKEN": TOKEN, "COLUMNS": "80"})
    argv = [HSMAUDIT, "doctor", "--skip-aws", "--hec-url", f"http://127.0.0.1:{free_port()}"]
    process = subprocess.Popen(
        argv, stdin=subprocess.DEVNULL, stdout=follower, stderr=subprocess.PIPE, env=env
    )
    os.close(follower)
    seen = bytearray()
    while True:
        try:
            chunk = os.read(leader, 65536)
        except OSError:  # EIO: the child closed its end
            break
        if not chunk:
            break
        seen += chunk
    assert process.wait(timeout=60) == 1
    os.close(leader)
    lines = re.sub(r"\x1b\[[0-9;]*m", "", seen.decode()).replace("\r", "").splitlines()
    assert lines[0].startswith("✔ hec.config       HEC URL http://127.0.0.1:")
    assert max(len(line) for line in lines) <= 80
    start = next(i for i, line in enumerate(lines) if line.startswith("✘ hec.reachable    HEC is down:"))
    reachable = lines[start : next(i for i, line in enumerate(lines) if line.startswith("- hec.tls"))]
    assert len(reachable) > 1 and all(line.startswith(" " * 19) for line in reachable[1:])
    assert "Settings > Data inputs > HTTP Event Collector" in " ".join(" ".join(reachable).split())
    assert TOKEN not in seen.decode()


# ------------------------------------------------------------------------------------------ AWS tests


def subscribe(moto: Moto, log_group: str) -> str:
    kinesis = moto.client("kinesis")
    name = log_group.rsplit("/", 1)[-1]
    kinesis.create_stream(StreamName=name, ShardCount=1)
    arn: str = kinesis.describe_stream(StreamName=name)["StreamDescription"]["StreamARN"]
    moto.client("logs").put_subscription_filter(
        logGroupName=log_group,
        filterName="hsmaudit",
        filterPattern="",
        destinationArn=arn,
        roleArn="arn:aws:iam::123456789012:role/cwl-to-kinesis",
    )
    return arn


def test_aws_setup_with_a_subscription_passes(moto: Moto) -> None:
    cluster = make_cluster(moto, hsms=1, records=2)
    arn = subscribe(moto, cluster.log_group)
    code, checks, stderr = doctor("--skip-hec", "--cluster", cluster.cluster_id, env=moto.env)
    assert code == 0, (checks, stderr)
    assert by_check(checks, "aws.credentials")[0]["status"] == "ok"
    permissions = by_check(checks, "aws.permissions")
    assert {p["status"] for p in permissions} == {"ok"}
    assert any("logs:GetLogEvents allowed" in p["summary"] for p in permissions)
    (subscription,) = by_check(checks, "aws.subscription")
    assert subscription["status"] == "ok"
    assert arn in subscription["summary"]
    assert by_check(checks, "aws.retention")[0]["summary"].endswith("keeps records forever")


def test_a_retention_shorter_than_a_year_is_a_warning(moto: Moto) -> None:
    cluster = make_cluster(moto, hsms=1, records=1)
    subscribe(moto, cluster.log_group)
    moto.client("logs").put_retention_policy(logGroupName=cluster.log_group, retentionInDays=90)
    code, checks, _ = doctor("--skip-hec", "--cluster", cluster.cluster_id, env=moto.env)
    assert code == 0  # Splunk may be where the year is kept: a warning, not a failure
    (retention,) = by_check(checks, "aws.retention")
    assert retention["status"] == "warn"
    assert "keeps records 90 days only" in retention["summary"]
    assert "PCI DSS v4 10.5.1" in (retention["fix"] or "")


def test_the_token_secret_and_the_s3_spool_are_checked_like_the_pipeline_uses_them(
    moto: Moto, loopback_hec: FaultHec
) -> None:
    # GIVEN the token in Secrets Manager and an S3 spool, as the deployed pipeline has them
    cluster = make_cluster(moto, hsms=1, records=1)
    subscribe(moto, cluster.log_group)
    secret = moto.client("secretsmanager").create_secret(
        Name=f"hec-{cluster.cluster_id}", SecretString=json.dumps({"token": TOKEN})
    )["ARN"]
    bucket = f"spool-{cluster.cluster_id}"
    moto.client("s3").create_bucket(Bucket=bucket)
    env = {
        **moto.env,
        "HSMAUDIT_HEC_URL": loopback_hec.url,
        "HSMAUDIT_HEC_TOKEN_SECRET_ARN": secret,
        "HSMAUDIT_SPOOL_BUCKET": bucket,
    }
    code, checks, stderr = doctor("--cluster", cluster.cluster_id, env=env)
    # THEN the token read from the secret is valid, and every permission was exercised
    assert code == 0, (checks, stderr)
    assert "(from Secrets Manager)" in by_check(checks, "hec.token")[0]["summary"]
    allowed = {c["summary"].split()[0] for c in by_check(checks, "aws.permissions") if c["status"] == "ok"}
    assert {"secretsmanager:GetSecretValue", "s3:PutObject", "s3:GetObject", "s3:DeleteObject"} <= allowed
    # AND the write probe left nothing behind in the spool
    assert moto.client("s3").list_objects_v2(Bucket=bucket).get("KeyCount", 0) == 0
    assert TOKEN not in json.dumps(checks) + stderr


def test_a_log_group_without_subscription_filter_is_named(moto: Moto) -> None:
    cluster = make_cluster(moto, hsms=1, records=1)
    code, checks, _ = doctor("--skip-hec", "--cluster", cluster.cluster_id, env=moto.env)
    assert code == 1
    (problem,) = failed(checks)
    assert problem["check"] == "aws.subscription"
    assert f"log group {cluster.log_group} has no subscription filter" in problem["summary"]


def test_a_subscription_to_something_else_is_named(moto: Moto) -> None:
    cluster = make_cluster(moto, hsms=1, records=1)
    subscribe(moto, cluster.log_group)
    code, checks, _ = doctor(
        "--skip-hec", "--cluster", cluster.cluster_id, "--destination", "hsmaudit-forwarder", env=moto.env
    )
    assert code == 1
    assert "not to hsmaudit-forwarder" in failed(checks)[0]["summary"]


def test_a_missing_permission_is_named_with_the_principal(moto: Moto) -> None:
    # GIVEN an operator user whose policy lacks logs:GetLogEvents, and IAM enforced by moto
    cluster = make_cluster(moto, hsms=1, records=2)
    subscribe(moto, cluster.log_group)
    iam = moto.client("iam")
    user = f"operator-{cluster.cluster_id}"
    iam.create_user(UserName=user)
    allowed = [
        "sts:GetCallerIdentity",
        "logs:DescribeLogGroups",
        "logs:DescribeLogStreams",
        "logs:FilterLogEvents",
        "logs:DescribeSubscriptionFilters",
    ]
    policy = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": allowed, "Resource": "*"}]}
    iam.put_user_policy(UserName=user, PolicyName="operator", PolicyDocument=json.dumps(policy))
    key = iam.create_access_key(UserName=user)["AccessKey"]
    env = {
        **moto.env,
        "AWS_ACCESS_KEY_ID": key["AccessKeyId"],
        "AWS_SECRET_ACCESS_KEY": key["SecretAccessKey"],
    }
    set_moto_auth(moto, "0")
    try:
        code, checks, stderr = doctor("--skip-hec", "--cluster", cluster.cluster_id, env=env)
    finally:
        set_moto_auth(moto, "inf")
    # THEN doctor names the one missing permission, the resource and whose policy to change
    assert code == 1, (checks, stderr)
    (problem,) = failed(checks)
    assert problem["check"] == "aws.permissions"
    assert problem["summary"].startswith("missing permission logs:GetLogEvents on ")
    assert cluster.log_group in problem["summary"]
    assert problem["fix"] == f"allow it in the policy of arn:aws:iam::123456789012:user/{user}"
    assert stderr.strip() == "hsmaudit: doctor found 1 problem (aws.permissions)"


def create_forwarder(moto: Moto, name: str, environment: dict[str, str]) -> str:
    """A Lambda function in moto standing for the deployed forwarder; returns its ARN."""
    import io
    import zipfile

    role = moto.client("iam").create_role(
        RoleName=f"{name}-role",
        AssumeRolePolicyDocument=json.dumps({"Version": "2012-10-17", "Statement": []}),
    )["Role"]["Arn"]
    code = io.BytesIO()
    with zipfile.ZipFile(code, "w") as archive:
        archive.writestr("hsmaudit/__init__.py", "")
    function = moto.client("lambda").create_function(
        FunctionName=name,
        Runtime="python3.12",
        Role=role,
        Handler="hsmaudit.aws.subscription.handler",
        Code={"ZipFile": code.getvalue()},
        Environment={"Variables": environment},
    )
    arn: str = function["FunctionArn"]
    return arn


def test_doctor_checks_the_deployed_forwarder_with_its_own_settings(
    moto: Moto, loopback_hec: FaultHec
) -> None:
    # GIVEN a forwarder whose environment names the HEC (and, badly, holds the token itself),
    # subscribed to the cluster's log group; locally, no HEC settings at all
    name = f"hsmaudit-forwarder-{free_port()}"
    arn = create_forwarder(moto, name, {"HSMAUDIT_HEC_URL": loopback_hec.url, "HSMAUDIT_HEC_TOKEN": TOKEN})
    cluster = make_cluster(moto, hsms=1, records=1)
    moto.client("logs").put_subscription_filter(
        logGroupName=cluster.log_group, filterName="hsmaudit", filterPattern="", destinationArn=arn
    )
    code, checks, stderr = doctor("--function", name, "--cluster", cluster.cluster_id, env=moto.env)
    # THEN HEC is checked with the function's settings, the plain token is flagged, the role's
    # permissions cannot be simulated by moto (skipped, with why), and the subscription matches
    assert code == 0, (checks, stderr)
    functions = by_check(checks, "aws.function")
    assert functions[0]["status"] == "ok" and f"{name}-role" in functions[0]["summary"]
    assert any("plain environment variable" in c["summary"] for c in functions if c["status"] == "warn")
    assert f"the environment of {name}" in by_check(checks, "hec.config")[0]["summary"]
    assert by_check(checks, "hec.token")[0]["status"] == "ok"
    assert by_check(checks, "aws.permissions")[0]["status"] == "skip"
    assert by_check(checks, "aws.subscription")[0]["status"] == "ok"
    # AND a cluster subscribed to something else is named
    other = make_cluster(moto, hsms=1, records=1)
    subscribe(moto, other.log_group)
    code, checks, _ = doctor("--function", name, "--cluster", other.cluster_id, "--skip-hec", env=moto.env)
    assert code == 1
    assert f"not to {arn}" in failed(checks)[0]["summary"]


def test_a_missing_forwarder_function_is_named(moto: Moto) -> None:
    code, checks, _ = doctor("--function", "no-such-function", "--skip-hec", "--skip-aws", env=moto.env)
    assert code == 1
    assert failed(checks)[0]["summary"] == "no Lambda function no-such-function in us-east-1"


def set_moto_auth(moto: Moto, count: str) -> None:
    """moto's switch for IAM enforcement (`/moto-api/reset-auth`): 0 enforces it from now on."""
    request = urllib.request.Request(
        f"{moto.url}/moto-api/reset-auth",
        data=count.encode(),
        method="POST",
        headers={"Content-Type": "text/plain"},
    )
    with urllib.request.urlopen(request, timeout=10) as answer:
        assert answer.status == 200


def test_credentials_aws_rejects_are_named(moto: Moto) -> None:
    set_moto_auth(moto, "0")
    try:
        code, checks, _ = doctor("--skip-hec", env={**moto.env, "AWS_ACCESS_KEY_ID": "AKIAUNKNOWN0000000000"})
    finally:
        set_moto_auth(moto, "inf")
    assert code == 1
    (problem,) = failed(checks)
    assert problem["check"] == "aws.credentials"
    assert "AWS rejected the credentials" in problem["summary"]


def test_no_aws_region_is_named() -> None:
    code, checks, _ = doctor("--skip-hec", env={"AWS_ACCESS_KEY_ID": "x", "AWS_SECRET_ACCESS_KEY": "y"})
    assert code == 1
    assert failed(checks)[0]["summary"] == "no AWS Region is configured"


@pytest.mark.parametrize(
    ("url", "status"),
    [
        ("https://http-inputs-acme.splunkcloud.com:443", "ok"),
        ("https://http-inputs-acme.splunkcloud.com", "ok"),
        ("https://acme.splunkcloud.com:8088", "warn"),
        ("https://http-inputs-acme.splunkcloud.com:8088", "warn"),
        ("https://splunk.internal.example.com:8088", "ok"),
    ],
)
def test_a_splunk_cloud_url_of_the_wrong_shape_is_pointed_out(url: str, status: str) -> None:
    from hsmaudit.config import Settings
    from hsmaudit.ops.hec_probe import HecProbe

    result, go_on = HecProbe(Settings(hec_url=url), timeout=1, test_event=False).config()
    assert (result.status, go_on) == (status, True)
    if status == "warn":
        assert "http-inputs-<stack>.splunkcloud.com:443" in (result.fix or "")


# ------------------------------------------------------------------ something that is not a HEC


@dataclass
class Impostor:
    """A loopback server answering HTTP 200 with whatever it is told: a web page, a web app's JSON.

    `answers` maps "GET health", "POST empty" (the token check's empty POST) and "POST event" (a
    body) to (status, content type, body); anything not listed is answered with `default`.
    """

    default: tuple[int, str, bytes]
    answers: dict[str, tuple[int, str, bytes]] = field(default_factory=dict)
    requests: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        impostor = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                return

            def reply(self, key: str) -> None:
                impostor.requests.append(key)
                status, content_type, body = impostor.answers.get(key, impostor.default)
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_GET(self) -> None:
                self.reply("GET health" if "/health" in self.path else "GET other")

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                if "/ack" in self.path:
                    return self.reply("POST ack")
                return self.reply("POST event" if body.strip() else "POST empty")

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


LOGIN_PAGE: Final = (
    200,
    "text/html; charset=utf-8",
    b"<!doctype html><html><head><title>Sign in [bold]\x1b[31m</title></head><body>Login</body></html>",
)
WEB_APP_JSON: Final = (200, "application/json", b'{"status": "ok", "version": "2.1"}')
SPLUNK_HEALTH: Final = (200, "application/json", b'{"text":"HEC is healthy","code":17}')
SPLUNK_NO_DATA: Final = (400, "application/json", b'{"text":"No data","code":5}')


@pytest.fixture
def impostor() -> Iterator[Impostor]:
    server = Impostor(default=LOGIN_PAGE)
    yield server
    server.stop()


def test_an_html_page_answering_200_fails_health_and_token_with_the_reason(impostor: Impostor) -> None:
    # GIVEN a web server answering every request with a 200 login page
    code, checks, stderr = doctor("--skip-aws", "--hec-url", impostor.url, env={"HSMAUDIT_HEC_TOKEN": TOKEN})
    # THEN doctor is not green: health and token fail and say what answered instead
    assert code == 1, checks
    health, token = by_check(checks, "hec.health")[0], by_check(checks, "hec.token")[0]
    assert health["status"] == token["status"] == "fail"
    for check in (health, token):
        assert "HTTP 200 from /services/collector/" in check["summary"]
        assert "is not a HEC answer (an HTML page" in check["summary"]
        assert "Sign in" in check["summary"] and "\x1b" not in check["summary"]
        assert "HSMAUDIT_HEC_URL" in check["fix"]
    # AND nothing after the token check pretends to know more
    assert {c["status"] for c in checks if c["check"] in ("hec.ack", "hec.index")} == {"skip"}
    assert "hec.health, hec.token" in stderr


def test_json_that_is_not_a_hec_reply_fails_health_and_token(impostor: Impostor) -> None:
    impostor.default = WEB_APP_JSON
    code, checks, _ = doctor("--skip-aws", "--hec-url", impostor.url, env={"HSMAUDIT_HEC_TOKEN": TOKEN})
    assert code == 1
    for name in ("hec.health", "hec.token"):
        (check,) = by_check(checks, name)
        assert check["status"] == "fail"
        assert "a JSON object without HEC's code and text (status, version)" in check["summary"]


def test_a_test_event_answered_by_something_else_fails_the_index_check(impostor: Impostor) -> None:
    # GIVEN health and the empty POST answered as Splunk does, but the test event by a web page
    impostor.answers = {"GET health": SPLUNK_HEALTH, "POST empty": SPLUNK_NO_DATA}
    code, checks, _ = doctor("--skip-aws", "--hec-url", impostor.url, env={"HSMAUDIT_HEC_TOKEN": TOKEN})
    assert code == 1
    statuses = {c["check"]: c["status"] for c in checks}
    assert statuses["hec.health"] == statuses["hec.token"] == "ok"
    (index,) = by_check(checks, "hec.index")
    assert index["status"] == "fail"
    assert "HTTP 200 from /services/collector/event is not a HEC answer (an HTML page" in index["summary"]
    assert "POST event" in impostor.requests


def test_people_see_the_other_sides_text_literally_not_as_markup(impostor: Impostor) -> None:
    result = run_cli(
        "doctor", "--skip-aws", "--hec-url", impostor.url, "--timeout", "3", env={"HSMAUDIT_HEC_TOKEN": TOKEN}
    )
    assert result.returncode == 1
    assert "Sign in [bold]?" in result.stdout  # the bracket text kept, the escape character replaced
    assert "\x1b[31m" not in result.stdout


CREDENTIALS = "s3cret-Passw0rd"


def test_credentials_in_the_hec_url_are_never_printed(loopback_hec: FaultHec) -> None:
    # GIVEN a HEC URL with a user name and password in it (and a token in the query string)
    port = loopback_hec.url.rsplit(":", 1)[1]
    url = f"http://admin:{CREDENTIALS}@127.0.0.1:{port}/services/collector/event?token={CREDENTIALS}"
    # WHEN doctor runs, as JSON lines, for people, from the flag and from the environment
    code, checks, stderr = doctor("--skip-aws", "--hec-url", url, env={"HSMAUDIT_HEC_TOKEN": TOKEN})
    people = run_cli(
        "doctor", "--skip-aws", "--timeout", "3", env={"HSMAUDIT_HEC_TOKEN": TOKEN, "HSMAUDIT_HEC_URL": url}
    )
    # THEN the checks still run against the host, and the secret appears nowhere
    assert code == 0, checks
    (config,) = by_check(checks, "hec.config")
    assert config["status"] == "warn"
    assert f"HEC URL http://***@127.0.0.1:{port}/services/collector/event (from flag)" in config["summary"]
    assert "carries a user name or password" in config["summary"]
    assert by_check(checks, "hec.index")[0]["status"] == "ok"
    for text in (json.dumps(checks), stderr, people.stdout, people.stderr):
        assert CREDENTIALS not in text and "admin" not in text
    assert "***@127.0.0.1" in people.stdout


@pytest.mark.parametrize(
    "url",
    [
        f"ftp://admin:{CREDENTIALS}@127.0.0.1:8088",  # unusable scheme: the error quotes the URL
        f"http://admin:{CREDENTIALS}@127.0.0.1:99999",  # unusable port
        f"http://admin:{CREDENTIALS}@127.0.0.1:{{free}}",  # nothing listening
    ],
)
def test_credentials_are_masked_when_the_url_is_wrong_too(url: str) -> None:
    url = url.replace("{free}", str(free_port()))
    code, checks, stderr = doctor("--skip-aws", "--hec-url", url, env={"HSMAUDIT_HEC_TOKEN": TOKEN})
    assert code == 1
    assert CREDENTIALS not in json.dumps(checks) + stderr


def test_all_clusters_names_every_group_unsubscribed_elsewhere_patterned_short_lived(moto: Moto) -> None:
    # GIVEN, in a Region of its own (the moto server is shared), five cluster log groups: one as it
    # should be, one without a filter, one sending elsewhere, one with a pattern, one kept 30 days
    region = "eu-west-3"
    logs = boto3.client(
        "logs", region_name=region, endpoint_url=moto.url, aws_access_key_id="t", aws_secret_access_key="t"
    )
    kinesis = boto3.client(
        "kinesis", region_name=region, endpoint_url=moto.url, aws_access_key_id="t", aws_secret_access_key="t"
    )
    arns = []
    for name in ("hsmaudit-forwarder", "someone-else"):
        kinesis.create_stream(StreamName=name, ShardCount=1)
        arns.append(kinesis.describe_stream(StreamName=name)["StreamDescription"]["StreamARN"])
    forwarder, other = arns

    def group(name: str, *, target: str | None = None, pattern: str = "", days: int | None = None) -> str:
        log_group = f"/aws/cloudhsm/{name}"
        logs.create_log_group(logGroupName=log_group)
        if target is not None:
            logs.put_subscription_filter(
                logGroupName=log_group,
                filterName="f",
                filterPattern=pattern,
                destinationArn=target,
                roleArn="arn:aws:iam::123456789012:role/cwl-to-kinesis",
            )
        if days is not None:
            logs.put_retention_policy(logGroupName=log_group, retentionInDays=days)
        return log_group

    good = group("cluster-good", target=forwarder)
    bare = group("cluster-bare")
    elsewhere = group("cluster-else", target=other)
    patterned = group("cluster-pattern", target=forwarder, pattern="CN_LOGIN")
    short = group("cluster-short", target=forwarder, days=30)
    logs.create_log_group(logGroupName="/aws/lambda/not-a-cluster")
    env = {**moto.env, "AWS_REGION": region, "AWS_DEFAULT_REGION": region}
    # WHEN
    code, checks, _ = doctor("--skip-hec", "--all-clusters", "--destination", "hsmaudit-forwarder", env=env)
    # THEN one line per cluster group, problems named, and the total; exit 1 (two fail)
    assert code == 1
    lines = {c["summary"].split(" ", 1)[0]: c for c in by_check(checks, "aws.cluster")}
    assert set(lines) == {good, bare, elsewhere, patterned, short}
    assert lines[good]["status"] == "ok"
    assert lines[bare]["status"] == "fail" and "no subscription filter" in lines[bare]["summary"]
    assert "hsmaudit backfill --cluster cluster-bare --since " in lines[bare]["fix"]
    assert lines[elsewhere]["status"] == "fail" and other in lines[elsewhere]["summary"]
    assert lines[patterned]["status"] == "warn" and "'CN_LOGIN'" in lines[patterned]["summary"]
    assert lines[short]["status"] == "warn" and "30 days only" in lines[short]["summary"]
    assert "--retention-in-days 400" in lines[short]["fix"]
    (total,) = by_check(checks, "aws.clusters")
    assert total["summary"].startswith(
        f"5 CloudHSM log groups in {region}: 1 subscribed and kept 12 months, "
    )
    assert (
        "1 not subscribed, 1 sending elsewhere, 1 with a filter pattern, 1 kept below 12 months"
        in total["summary"]
    )
    # AND --cluster with --all-clusters is a usage error
    assert doctor("--skip-hec", "--all-clusters", "--cluster", "cluster-good", env=env)[0] == 2
