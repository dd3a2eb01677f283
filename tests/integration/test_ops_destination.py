"""`ops.destination.HecDestination` in-process against our HEC on loopback: every event is
accepted, spooled with its reason, or `DeliveryError` says it was not kept (no subprocess)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from hsmaudit.ops.destination import DeliveryError, HecDestination
from hsmaudit.records.event import HsmEvent
from hsmaudit.records.parse import parse_message
from hsmaudit.sinks.hec.client import HecClient
from hsmaudit.sinks.hec.policy import BatchPolicy, ConnectionPolicy, RetryPolicy
from hsmaudit.sinks.hec.token import StaticToken
from hsmaudit.sinks.spool import LocalSpool

from .fault_hec import TOKEN, FaultHec, closed_port_url
from .payloads import record_text

LOG_GROUP = "/aws/cloudhsm/cluster-abc123def45"
STREAM = "hsm-abc123def45"


def events(count: int, start: int = 0) -> list[HsmEvent]:
    return [
        parse_message(record_text(n), log_group=LOG_GROUP, log_stream=STREAM)
        for n in range(start, start + count)
    ]


def client(url: str, token: str = TOKEN, *, max_attempts: int = 3) -> HecClient:
    """The Lambda's client with short timeouts, 4 events per request."""
    return HecClient(
        url,
        StaticToken(token),
        connection=ConnectionPolicy(timeout=1.0),
        retry=RetryPolicy(max_attempts=max_attempts, backoff_base=0.01, backoff_cap=0.02),
        batch=BatchPolicy(max_events=4),
    )


def spooled_ids(spool: LocalSpool) -> tuple[list[str], set[str]]:
    """The event ids in the spool's batches and the batches' reasons."""
    ids: list[str] = []
    reasons: set[str] = set()
    for batch_id in spool.list():
        batch = spool.get(batch_id)
        reasons.add(batch.reason)
        ids += [json.loads(line)["fields"]["event_id"] for line in batch.lines]
    return ids, reasons


def test_hec_accepts_every_event_once_in_requests_of_chunk_size(fault_hec: FaultHec) -> None:
    destination = HecDestination(client(fault_hec.url), spool=None)
    sent = events(10)
    try:
        delivered = destination.deliver(sent)
    finally:
        destination.close()
    assert (delivered.events, delivered.accepted, delivered.spooled, delivered.reasons) == (10, 10, 0, {})
    assert [e["fields"]["event_id"] for e in fault_hec.events()] == [event.event_id for event in sent]
    assert fault_hec.stats()["requests"] == destination.requests == 3  # 4 + 4 + 2
    assert destination.blocked is None


def test_a_refused_token_spools_with_its_reason_and_blocks_the_rest_of_the_run(
    fault_hec: FaultHec, tmp_path: Path
) -> None:
    # GIVEN a wrong token and a spool
    spool = LocalSpool(tmp_path / "spool")
    told: list[str] = []
    destination = HecDestination(client(fault_hec.url, token="wrong"), spool=spool, on_block=told.append)
    first, second = events(6), events(5, start=6)
    try:
        # WHEN two deliveries run
        one = destination.deliver(first)
        requests_after_first = fault_hec.stats()["requests"]
        two = destination.deliver(second)
    finally:
        destination.close()
    # THEN both are kept in the spool, with the reason, and none reached HEC
    assert (one.events, one.accepted, one.spooled) == (6, 0, 6)
    assert (two.events, two.accepted, two.spooled) == (5, 0, 5)
    [reason] = one.reasons
    assert reason.startswith("HEC refused the token")
    assert two.reasons == {reason: 5}
    assert fault_hec.events() == []
    # AND the breaker opened once: the second delivery sent nothing, and the operator was told once
    assert fault_hec.stats()["requests"] == requests_after_first
    assert told == [destination.blocked]
    ids, reasons = spooled_ids(spool)
    assert sorted(ids) == sorted(event.event_id or "" for event in first + second)
    assert reasons == {reason}


def test_hec_down_without_a_spool_raises_and_says_what_to_do() -> None:
    destination = HecDestination(client(closed_port_url(), max_attempts=2), spool=None)
    try:
        with pytest.raises(DeliveryError, match=r"HEC did not take 3 of 3 events .*configure a spool"):
            destination.deliver(events(3))
    finally:
        destination.close()


def test_nothing_to_deliver_sends_nothing(fault_hec: FaultHec) -> None:
    destination = HecDestination(client(fault_hec.url), spool=None)
    assert destination.deliver([]).events == 0
    destination.close()
    assert fault_hec.stats()["requests"] == 0
