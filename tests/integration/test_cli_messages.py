"""Failure messages name the real cause and the fix, through the real console script.

Each test breaks one thing for real (a missing CA file, a host that does not resolve, a
self-signed HEC, an event over HEC's per-event limit, an empty export, a mistyped spool path, no
token) against loopback servers, and reads what `hsmaudit` says and how it exits.
"""

from __future__ import annotations

import time
from pathlib import Path

from .fault_hec import TOKEN, FaultHec
from .payloads import record_text
from .test_cli_harness import run_cli

LOG_GROUP = "/aws/cloudhsm/cluster-msgtest1"


def records_file(tmp_path: Path, count: int = 3, *, name: str = "records.txt") -> Path:
    path = tmp_path / name
    path.write_text("\n".join(record_text(seq) for seq in range(count)) + "\n")
    return path


def send(*args: str, env: dict[str, str] | None = None) -> tuple[int, str, str]:
    result = run_cli(
        "send", "--log-group", LOG_GROUP, *args, env={"HSMAUDIT_HEC_TOKEN": TOKEN, **(env or {})}
    )
    assert TOKEN not in result.stdout + result.stderr
    return result.returncode, result.stdout, result.stderr


def test_no_token_names_the_variable_and_the_secret_stores(tmp_path: Path, fault_hec: FaultHec) -> None:
    result = run_cli("send", str(records_file(tmp_path)), "--hec-url", fault_hec.url)
    assert result.returncode == 1
    line = result.stderr.strip()
    assert line.startswith("hsmaudit: no HEC token configured")
    for name in ("HSMAUDIT_HEC_TOKEN", "HSMAUDIT_HEC_TOKEN_SECRET_ARN", "HSMAUDIT_HEC_TOKEN_SSM_PARAMETER"):
        assert name in line
    assert fault_hec.requests == 0


def test_a_missing_ca_bundle_is_a_configuration_error_at_once(tmp_path: Path, fault_hec: FaultHec) -> None:
    missing = tmp_path / "nope" / "ca.pem"
    started = time.monotonic()
    code, _, stderr = send(
        str(records_file(tmp_path)), "--hec-url", fault_hec.url, "--ca-bundle", str(missing)
    )
    assert time.monotonic() - started < 10  # not five TLS retries per batch
    assert code == 1
    assert stderr.strip().splitlines() == [
        f"hsmaudit: the HEC CA bundle {missing} does not exist: give the PEM file of the CA that signed "
        "HEC's certificate (--ca-bundle / HSMAUDIT_HEC_CA_BUNDLE)"
    ]
    assert fault_hec.requests == 0


def test_a_ca_bundle_without_certificates_is_named(tmp_path: Path, fault_hec: FaultHec) -> None:
    bogus = tmp_path / "ca.pem"
    bogus.write_text("not a certificate\n")
    code, _, stderr = send(str(records_file(tmp_path)), "--hec-url", fault_hec.url, "--ca-bundle", str(bogus))
    assert code == 1
    assert f"the HEC CA bundle {bogus} holds no usable certificate" in stderr


def test_an_unresolvable_host_is_not_called_connection_refused(tmp_path: Path) -> None:
    code, _, stderr = send(
        str(records_file(tmp_path)), "--hec-url", "http://no-such-host.invalid:8088",
        env={"HSMAUDIT_HEC_MAX_ATTEMPTS": "1"},
    )  # fmt: skip
    assert code == 1
    assert "cannot resolve host no-such-host.invalid" in stderr
    assert "refused" not in stderr


def test_a_dead_port_is_called_connection_refused(tmp_path: Path) -> None:
    from .fault_hec import closed_port_url

    url = closed_port_url()
    code, _, stderr = send(
        str(records_file(tmp_path)), "--hec-url", url, env={"HSMAUDIT_HEC_MAX_ATTEMPTS": "1"}
    )
    assert code == 1
    assert f"connection refused by {url.removeprefix('http://')}" in stderr


def test_a_self_signed_hec_names_the_ca_bundle_fix(tmp_path: Path, tls_hec: tuple[FaultHec, Path]) -> None:
    server, ca = tls_hec
    records = records_file(tmp_path)
    code, _, stderr = send(str(records), "--hec-url", server.url)
    assert code == 1
    assert "TLS certificate verification failed" in stderr and "--ca-bundle" in stderr
    assert "HSMAUDIT_HEC_CA_BUNDLE" in stderr
    # and the fix it names works
    code, _, stderr = send(str(records), "--hec-url", server.url, "--ca-bundle", str(ca))
    assert code == 0, stderr
    assert len(server.accepted) == 3


def test_an_event_over_hecs_per_event_limit_is_named_and_spooled_not_sent(
    tmp_path: Path, fault_hec: FaultHec
) -> None:
    # GIVEN one ordinary record and one whose text is 6 MiB (HEC's maxEventSize is 5 MB)
    huge = record_text(7).replace("User Name : admin", "User Name : " + "x" * (6 * 1024 * 1024))
    path = tmp_path / "big.txt"
    path.write_text(record_text(1) + "\n" + huge + "\n")
    spool = tmp_path / "spool"
    code, _, stderr = send(str(path), "--hec-url", fault_hec.url, "--spool-dir", str(spool))
    # THEN the small one is accepted, the big one is kept in the spool with the reason, exit 1
    assert code == 1
    assert "exceeds HEC's per-event limit of 5 MiB" in stderr
    assert len(fault_hec.accepted) == 1
    assert len(list(spool.iterdir())) == 1


def test_an_empty_input_says_so_and_exits_1(tmp_path: Path, fault_hec: FaultHec) -> None:
    empty = tmp_path / "export.json"
    empty.write_text("")
    code, _, stderr = send(str(empty), "--hec-url", fault_hec.url)
    assert code == 1
    assert stderr.strip().splitlines()[-1] == f"hsmaudit: no records in {empty}"
    for command in ("parse", "detect"):
        result = run_cli(command, str(empty))
        assert result.returncode == 1, command
        assert result.stderr.strip() == f"hsmaudit: no records in {empty}"
    # with other inputs, those are still sent and the empty one is named
    code, _, stderr = send(str(records_file(tmp_path)), str(empty), "--hec-url", fault_hec.url)
    assert code == 1 and len(fault_hec.accepted) == 3
    assert f"hsmaudit: no records in {empty}" in stderr


def test_simulate_accepts_every_hsm_count_it_offers() -> None:
    one = run_cli("simulate", "--hsms", "1", "--format", "events")
    assert one.returncode == 0, one.stderr
    assert one.stdout.count("\n") > 50
    assert "hsm-silent left out (it needs at least 2 HSMs)" in one.stderr
    asked = run_cli("simulate", "--hsms", "1", "--scenario", "hsm-silent")
    assert asked.returncode == 2
    assert "hsm-silent needs a cluster of at least 2 HSMs: give --hsms 2 or more" in asked.stderr


def test_replay_of_a_mistyped_spool_path_is_an_error(tmp_path: Path, fault_hec: FaultHec) -> None:
    typo = tmp_path / "spoool"
    result = run_cli("replay", str(typo), "--hec-url", fault_hec.url, env={"HSMAUDIT_HEC_TOKEN": TOKEN})
    assert result.returncode == 2
    assert result.stderr.strip().startswith(f"hsmaudit: no spool at {typo}: the directory does not exist")
    a_file = records_file(tmp_path)
    result = run_cli("replay", str(a_file), "--hec-url", fault_hec.url, env={"HSMAUDIT_HEC_TOKEN": TOKEN})
    assert result.returncode == 2 and "it is a file, not a spool directory" in result.stderr
