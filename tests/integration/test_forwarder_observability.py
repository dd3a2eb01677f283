"""What the handler tells operators: EMF metrics with the counts, structured log lines with counts
and ids — and never a record, a payload or the token, on any path."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from hsmaudit.aws.subscription import handler

from .fault_hec import OTHER_TOKEN, TOKEN, FaultHec, closed_port_url
from .payloads import FakeContext, control_document, record_text, subscription_document, subscription_event

MARKER = "payload-marker-5b1e"
"""A user name that appears only inside records: it must never reach a log line or a metric."""


def emf_documents(out: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in out.splitlines() if line.startswith('{"_aws"')]


def value(document: dict[str, Any], name: str) -> float:
    raw = document[name]
    return float(sum(raw)) if isinstance(raw, list) else float(raw)


def test_metrics_count_what_happened(
    fault_hec: FaultHec, lambda_env: Callable[..., None], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    fault_hec.script = [("status", 503, {"text": "Server is busy", "code": 9}, {})]
    lambda_env(
        HSMAUDIT_HEC_URL=fault_hec.url,
        HSMAUDIT_HEC_TOKEN=TOKEN,
        HSMAUDIT_SPOOL_DIR=str(tmp_path),
        HSMAUDIT_METRICS="true",
        HSMAUDIT_METRICS_NAMESPACE="hsmaudit-test",
    )
    messages = [record_text(n) for n in range(7)] + ["not a CloudHSM record at all"]
    handler(subscription_event(control_document(), subscription_document(messages)), FakeContext())
    (emf,) = emf_documents(capsys.readouterr().out)
    directive = emf["_aws"]["CloudWatchMetrics"][0]
    assert directive["Namespace"] == "hsmaudit-test" and emf["service"] == "subscription"
    counts = {name: value(emf, name) for name in ("EventsIn", "EventsSent", "EventsSpooled", "Retries")}
    assert counts == {"EventsIn": 8, "EventsSent": 8, "EventsSpooled": 0, "Retries": 1}
    assert (value(emf, "ParseErrors"), value(emf, "ControlMessages"), value(emf, "HecRequests")) == (1, 1, 2)
    units = {m["Name"]: m["Unit"] for m in directive["Metrics"]}
    assert units["HecLatency"] == "Milliseconds" and units["BatchBytes"] == "Bytes"
    assert len(emf["HecLatency"]) == 2


@pytest.mark.parametrize("fault", ["none", "hec-down", "bad-token", "bad-payload"])
def test_logs_carry_counts_and_ids_never_records_or_tokens(
    fault_hec: FaultHec,
    lambda_env: Callable[..., None],
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    capfd: pytest.CaptureFixture[str],
    fault: str,
) -> None:
    caplog.set_level(logging.DEBUG)
    url = closed_port_url() if fault == "hec-down" else fault_hec.url
    token = OTHER_TOKEN if fault == "bad-token" else TOKEN
    lambda_env(
        HSMAUDIT_HEC_URL=url,
        HSMAUDIT_HEC_TOKEN=token,
        HSMAUDIT_SPOOL_DIR=str(tmp_path),
        HSMAUDIT_METRICS="true",
    )
    context = FakeContext()
    event: dict[str, Any] = subscription_event(
        subscription_document([record_text(n, user_name=MARKER) for n in range(5)])
    )
    if fault == "bad-payload":
        event = {"awslogs": {"data": MARKER}}
    result = handler(event, context)
    out, err = capfd.readouterr()
    everything = caplog.text + out + err
    assert MARKER not in everything
    assert TOKEN not in everything and OTHER_TOKEN not in everything
    summary = [json.loads(r.getMessage()) for r in caplog.records if r.getMessage().startswith('{"message"')]
    assert len(summary) == 1
    assert summary[0]["aws_request_id"] == context.aws_request_id
    assert {k: summary[0][k] for k in ("accepted", "spooled", "bad_payloads")} == {
        k: result[k] for k in ("accepted", "spooled", "bad_payloads")
    }


def test_a_metrics_failure_never_fails_a_delivered_invocation(
    fault_hec: FaultHec,
    lambda_env: Callable[..., None],
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import hsmaudit.aws.metrics as metrics_module

    def broken(*args: Any, **kwargs: Any) -> None:
        raise RuntimeError("EMF sink unavailable")

    monkeypatch.setattr(metrics_module, "_emit", broken)
    lambda_env(
        HSMAUDIT_HEC_URL=fault_hec.url,
        HSMAUDIT_HEC_TOKEN=TOKEN,
        HSMAUDIT_SPOOL_DIR=str(tmp_path),
        HSMAUDIT_METRICS="true",
    )
    result = handler(subscription_event(subscription_document([record_text(1)])), FakeContext())
    assert result["accepted"] == 1
    assert "metrics not emitted (RuntimeError" in caplog.text


def test_sequence_gaps_inside_a_delivery_are_counted(
    fault_hec: FaultHec, lambda_env: Callable[..., None], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    lambda_env(
        HSMAUDIT_HEC_URL=fault_hec.url,
        HSMAUDIT_HEC_TOKEN=TOKEN,
        HSMAUDIT_SPOOL_DIR=str(tmp_path),
        HSMAUDIT_METRICS="true",
        HSMAUDIT_METRICS_NAMESPACE="hsmaudit-test",
    )
    # GIVEN one stream's records 0-2, 6 and 9 (3 + 2 missing), and a second document starting at 20
    first = subscription_document([record_text(n) for n in (0, 1, 2, 6, 9)])
    second = subscription_document([record_text(n) for n in (20, 21)])
    handler(subscription_event(first, second), FakeContext())
    (emf,) = emf_documents(capsys.readouterr().out)
    # THEN five records are missing; the jump between documents is not counted (no shared order)
    assert value(emf, "SequenceGaps") == 5
    assert value(emf, "EventsSent") == 7
