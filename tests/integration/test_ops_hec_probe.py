"""`hsmaudit.ops.hec_probe.HecProbe` in-process against real loopback servers (no console script).

The servers: our `FaultHec` (plain and TLS with a private CA, `tls_files()`), a port where nothing
listens, and from `test_doctor.py` the `SplunkLikeHec` (a token's settings: disabled, ack, indexes)
and the `Impostor` (answers a test sets). Every result is checked for its status and its words,
and no message may ever carry the token.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest

from hsmaudit.config import Settings
from hsmaudit.ops.hec_probe import DOCTOR_SOURCETYPE, HecProbe

from .fault_hec import OTHER_TOKEN, TOKEN, FaultHec, closed_port_url
from .test_doctor import Impostor, SplunkLikeHec

if TYPE_CHECKING:
    from pathlib import Path

    from hsmaudit.ops.checks import CheckResult

CHECKS = ("hec.config", "hec.reachable", "hec.tls", "hec.health", "hec.token", "hec.ack", "hec.index")


def probe(url: str, *, test_event: bool = True, **settings: object) -> dict[str, CheckResult]:
    """Run every HEC check against `url`; the results by check name, none carrying a token."""
    values: dict[str, object] = {"hec_url": url, "hec_token": TOKEN, **settings}
    hec = HecProbe(Settings(**values), timeout=3, test_event=test_event)  # type: ignore[arg-type]
    try:
        results = list(hec.run())
    finally:
        hec.close()
    assert [r.check for r in results] == list(CHECKS)
    for result in results:
        for text in (result.summary, result.fix or ""):
            assert TOKEN not in text and OTHER_TOKEN not in text, result
    return {r.check: r for r in results}


def statuses(results: dict[str, CheckResult]) -> dict[str, str]:
    return {name: result.status for name, result in results.items()}


@pytest.fixture
def splunk() -> Iterator[SplunkLikeHec]:
    hec = SplunkLikeHec(token=TOKEN)
    yield hec
    hec.stop()


@pytest.fixture
def impostor() -> Iterator[Impostor]:
    server = Impostor(default=(200, "application/json", b'{"text":"Success","code":0}'))
    yield server
    server.stop()


# --------------------------------------------------------------------------------- plain HTTP


@pytest.mark.usefixtures("no_token_leak")
def test_a_healthy_hec_passes_and_takes_exactly_one_test_event(fault_hec: FaultHec) -> None:
    results = probe(fault_hec.url)
    assert statuses(results) == {
        "hec.config": "ok",
        "hec.reachable": "ok",
        "hec.tls": "skip",
        "hec.health": "ok",
        "hec.token": "ok",
        # FaultHec reports every ackId as indexed (acknowledgement on); hsmaudit has it off
        "hec.ack": "warn",
        "hec.index": "ok",
    }
    port = fault_hec.url.rsplit(":", 1)[1]
    assert results["hec.config"].summary == (
        f"HEC URL http://127.0.0.1:{port}/services/collector/event (from default)"
    )
    assert results["hec.reachable"].summary == f"127.0.0.1:{port} accepts connections"
    assert results["hec.tls"].summary == "plain HTTP to a local collector (no TLS to check)"
    assert results["hec.health"].summary == "HEC reports itself healthy"
    assert results["hec.token"].summary == "the HEC token (from HSMAUDIT_HEC_TOKEN) is valid and enabled"
    assert results["hec.index"].summary == (
        f"HEC accepted a test event into the token's default index (sourcetype {DOCTOR_SOURCETYPE})"
    )
    (event,) = fault_hec.events()
    assert event["sourcetype"] == DOCTOR_SOURCETYPE


def test_no_test_event_skips_the_index_check_and_sends_nothing(fault_hec: FaultHec) -> None:
    results = probe(fault_hec.url, test_event=False)
    assert results["hec.index"].status == "skip"
    assert results["hec.index"].summary == "the token's default index not checked (--no-test-event)"
    assert fault_hec.events() == []


@pytest.mark.usefixtures("no_token_leak")
def test_a_wrong_token_fails_the_token_check_without_showing_either_token(fault_hec: FaultHec) -> None:
    results = probe(fault_hec.url, hec_token=OTHER_TOKEN)
    token = results["hec.token"]
    assert token.status == "fail"
    assert token.summary == (
        "HEC does not accept the token (from HSMAUDIT_HEC_TOKEN): HTTP 403, HEC code 4: Invalid token"
    )
    assert "Settings > Data inputs > HTTP Event Collector" in (token.fix or "")
    assert statuses(results)["hec.ack"] == statuses(results)["hec.index"] == "skip"
    assert results["hec.index"].summary == "not checked: hec.token failed"
    assert fault_hec.events() == []


def test_a_down_port_fails_reachable_and_skips_the_rest() -> None:
    url = closed_port_url()
    results = probe(url)
    reachable = results["hec.reachable"]
    assert reachable.status == "fail"
    assert reachable.summary == f"HEC is down: {url.removeprefix('http://')} refused the connection"
    assert "8088 by default" in (reachable.fix or "")
    assert [results[name].status for name in CHECKS[2:]] == ["skip"] * 5
    assert {results[name].summary for name in CHECKS[2:]} == {"not checked: hec.reachable failed"}


def test_no_url_fails_the_config_check() -> None:
    hec = HecProbe(Settings(hec_token=TOKEN), timeout=1, test_event=True)
    results = list(hec.run())
    assert (results[0].status, results[0].summary) == ("fail", "no HEC URL is configured")
    assert [r.status for r in results[1:]] == ["skip"] * 6


# --------------------------------------------------------------------------------------- TLS


def test_a_certificate_from_an_untrusted_ca_fails_tls_with_the_ca_bundle_fix(
    tls_hec: tuple[FaultHec, Path],
) -> None:
    server, _ = tls_hec
    tls = probe(server.url)["hec.tls"]
    assert tls.status == "fail"
    assert tls.summary == (
        "HEC's TLS certificate (CN=SplunkServerDefaultCert) is signed by a CA this machine does not trust"
    )
    assert "HSMAUDIT_HEC_CA_BUNDLE=/path/to/ca.pem" in (tls.fix or "")
    assert "do not turn verification off" in (tls.fix or "")
    assert server.events() == []


@pytest.mark.usefixtures("no_token_leak")
def test_the_right_ca_bundle_passes_tls_and_the_test_event_goes_through_https(
    tls_hec: tuple[FaultHec, Path],
) -> None:
    server, ca = tls_hec
    results = probe(server.url, hec_ca_bundle=str(ca))
    assert statuses(results)["hec.tls"] == "ok"
    assert results["hec.tls"].summary.startswith("TLS certificate valid for 127.0.0.1 (TLSv1.")
    assert results["hec.tls"].summary.endswith(f"trusted via the CA bundle {ca})")
    assert statuses(results)["hec.index"] == "ok"
    assert len(server.events()) == 1


def test_a_certificate_for_another_name_fails_tls_naming_what_it_is_valid_for(
    tls_hec: tuple[FaultHec, Path],
) -> None:
    # tls_files() makes a certificate for the address 127.0.0.1 only; "localhost" is another name
    server, ca = tls_hec
    url = server.url.replace("127.0.0.1", "localhost")
    tls = probe(url, hec_ca_bundle=str(ca))["hec.tls"]
    assert tls.status == "fail"
    assert tls.summary == "HEC's TLS certificate is valid for 127.0.0.1, not for localhost"
    assert "use a name the certificate covers" in (tls.fix or "")


def test_a_ca_bundle_that_is_not_pem_fails_tls(tls_hec: tuple[FaultHec, Path], tmp_path: Path) -> None:
    server, _ = tls_hec
    bundle = tmp_path / "not-a-bundle.pem"
    bundle.write_text("not a certificate\n")
    tls = probe(server.url, hec_ca_bundle=str(bundle))["hec.tls"]
    assert tls.status == "fail"
    assert tls.summary.startswith(f"the CA bundle {bundle} cannot be loaded")


def test_verification_off_is_a_warning_and_the_checks_go_on(tls_hec: tuple[FaultHec, Path]) -> None:
    server, _ = tls_hec
    results = probe(server.url, hec_verify=False)
    assert results["hec.tls"].status == "warn"
    assert results["hec.tls"].summary == "TLS certificate verification is OFF (HSMAUDIT_HEC_VERIFY=false)"
    assert statuses(results)["hec.token"] == statuses(results)["hec.index"] == "ok"


def test_plain_http_to_another_host_is_a_warning() -> None:
    hec = HecProbe(Settings(hec_url="http://hec.example.com:8088"), timeout=1, test_event=False)
    assert hec.config()[0].status == "ok"
    result, go_on = hec.tls()
    assert (result.status, go_on) == ("warn", True)
    assert "unencrypted" in result.summary


# ------------------------------------------------------------------------------ HEC's answers


def test_a_disabled_token_is_named_with_where_to_enable_it() -> None:
    splunk = SplunkLikeHec(token=TOKEN, enabled=False)
    try:
        token = probe(splunk.url)["hec.token"]
    finally:
        splunk.stop()
    assert token.status == "fail"
    assert token.summary == (
        "the HEC token (from HSMAUDIT_HEC_TOKEN) is disabled in Splunk (HEC code 1: Token disabled)"
    )
    assert token.fix == "enable it under Settings > Data inputs > HTTP Event Collector"


@pytest.mark.parametrize(
    ("answer", "status", "words"),
    [
        ((403, b'{"text":"Token disabled","code":22}'), "fail", "is disabled in Splunk (HEC code 22"),
        ((403, b'{"text":"Invalid token","code":21}'), "fail", "HTTP 403, HEC code 21: Invalid token"),
        ((400, b'{"text":"Event field is required","code":12}'), "ok", "is valid and enabled"),
        ((400, b'{"text":"Data channel is missing","code":10}'), "ok", "is valid and enabled"),
        ((400, b'{"text":"Something new","code":99}'), "warn", "unexpected answer to the token check"),
    ],
)
def test_each_answer_to_the_empty_post_says_what_it_means_for_the_token(
    impostor: Impostor, answer: tuple[int, bytes], status: str, words: str
) -> None:
    impostor.answers = {
        "GET health": (200, "application/json", b'{"text":"HEC is healthy","code":17}'),
        "POST empty": (answer[0], "application/json", answer[1]),
    }
    token = probe(impostor.url)["hec.token"]
    assert token.status == status
    assert words in token.summary


def test_an_unhealthy_hec_fails_health_with_its_code(impostor: Impostor) -> None:
    impostor.answers = {
        "GET health": (503, "application/json", b'{"text":"HEC is unhealthy, queues are full","code":18}')
    }
    results = probe(impostor.url)
    health = results["hec.health"]
    assert health.status == "fail"
    assert health.summary == "HEC is unhealthy (HEC code 18: HEC is unhealthy, queues are full)"
    assert health.fix == "Splunk's indexing queues are full or its ack service is down; check the indexers"
    assert statuses(results)["hec.token"] == "ok"  # health does not block the token check


def test_ack_wanted_but_off_on_the_token_fails_with_code_14(splunk: SplunkLikeHec) -> None:
    ack = probe(splunk.url, hec_ack=True)["hec.ack"]
    assert ack.status == "fail"
    assert ack.summary == (
        "HSMAUDIT_HEC_ACK is on but the token has indexer acknowledgement off (HEC code 14)"
    )
    assert ack.fix == "set HSMAUDIT_HEC_ACK=false, or enable 'Indexer acknowledgement' on the token"


def test_ack_off_on_both_sides_passes(splunk: SplunkLikeHec) -> None:
    results = probe(splunk.url)
    assert results["hec.ack"].status == "ok"
    assert results["hec.ack"].summary == "indexer acknowledgement is off on both the token and hsmaudit"
    assert statuses(results)["hec.index"] == "ok"


def test_ack_on_both_sides_passes() -> None:
    splunk = SplunkLikeHec(token=TOKEN, use_ack=True)
    try:
        results = probe(splunk.url, hec_ack=True)
    finally:
        splunk.stop()
    assert results["hec.ack"].summary == "indexer acknowledgement is on on both the token and hsmaudit"
    assert statuses(results)["hec.index"] == "ok"


def test_an_ack_answer_that_says_nothing_is_a_warning_naming_code_14(impostor: Impostor) -> None:
    impostor.answers = {"POST ack": (404, "text/plain", b"no")}
    ack = probe(impostor.url, hec_ack=True)["hec.ack"]
    assert ack.status == "warn"
    assert ack.summary == (
        "cannot tell whether the token uses indexer acknowledgement (HTTP 404, a text/plain that is not JSON)"
    )
    assert ack.fix == "HSMAUDIT_HEC_ACK is on: if sending fails with HEC code 14, turn it off"


def test_an_index_the_token_may_not_write_fails_with_code_7(splunk: SplunkLikeHec) -> None:
    splunk.allowed_indexes = ("main",)
    index = probe(splunk.url, hec_index="hsm_audit")["hec.index"]
    assert index.status == "fail"
    assert index.summary == "the token may not write to index hsm_audit (HEC code 7: Incorrect index)"
    assert index.fix == "add the index to the token's allowed indexes, or fix HSMAUDIT_HEC_INDEX"
    assert splunk.received == []


def test_a_test_event_refused_for_want_of_a_channel_names_code_10(fault_hec: FaultHec) -> None:
    fault_hec.script = [("status", 400, {"text": "Data channel is missing", "code": 10}, {})]
    index = probe(fault_hec.url)["hec.index"]
    assert index.status == "fail"
    assert index.summary == "HEC wants a channel (HEC code 10: the token has indexer acknowledgement on)"
    assert index.fix == "set HSMAUDIT_HEC_ACK=true"


def test_a_busy_hec_refusing_the_test_event_is_named_with_status_and_code(fault_hec: FaultHec) -> None:
    fault_hec.script = [("status", 503, {"text": "Server is busy", "code": 9}, {})]
    index = probe(fault_hec.url)["hec.index"]
    assert index.status == "fail"
    assert index.summary == "HEC refused the test event: HTTP 503, HEC code 9: Server is busy"
    assert fault_hec.events() == []


def test_a_success_without_hec_code_zero_is_not_taken_for_success(impostor: Impostor) -> None:
    impostor.answers = {
        "GET health": (200, "application/json", b'{"text":"HEC is healthy","code":17}'),
        "POST empty": (400, "application/json", b'{"text":"No data","code":5}'),
        "POST event": (200, "application/json", b'{"text":"Accepted","code":3}'),
    }
    index = probe(impostor.url)["hec.index"]
    assert index.status == "fail"
    assert index.summary == "HEC refused the test event: HTTP 200, HEC code 3: Accepted"
