"""ops/replay.py in-process on `FaultHec`: which batches are deleted, kept, split or quarantined, and
why, with a real `HecClient` and a real local spool (the console script: test_replay_cli.py)."""

from __future__ import annotations

import gzip
from collections.abc import Iterator
from pathlib import Path

import pytest

from hsmaudit.ops.replay import BatchOutcome, anything_left, replay_batch, replay_spool
from hsmaudit.sinks.hec.client import HecClient
from hsmaudit.sinks.hec.policy import BatchPolicy, ConnectionPolicy, RetryPolicy
from hsmaudit.sinks.hec.token import StaticToken
from hsmaudit.sinks.spool import SPOOL_SUFFIX, LocalSpool, SpoolBatch, decode_batch

from .fault_hec import OTHER_TOKEN, TOKEN, FaultHec, closed_port_url

BUSY = ("status", 503, {"text": "Server is busy", "code": 9}, {})


def line(n: int) -> bytes:
    return b'{"time":1.000000,"host":"hsm-a","source":"/aws/cloudhsm/c","event":{"n":%d}}' % n


def batch_of(*numbers: int, reason: str = "HEC unavailable") -> SpoolBatch:
    return SpoolBatch(lines=tuple(line(n) for n in numbers), reason=reason, metadata={"log_group": "/aws/x"})


def client_for(url: str, *, token: str = TOKEN, events_per_request: int = 100) -> HecClient:
    return HecClient(
        url,
        StaticToken(token),
        connection=ConnectionPolicy(timeout=2.0),
        retry=RetryPolicy(max_attempts=2, backoff_base=0.01, backoff_cap=0.02),
        batch=BatchPolicy(max_events=events_per_request),
    )


@pytest.fixture
def client(fault_hec: FaultHec) -> Iterator[HecClient]:
    hec = client_for(fault_hec.url)
    yield hec
    hec.close()


def quarantined_lines(spool_dir: Path, batch_id: str) -> tuple[bytes, ...]:
    return decode_batch(
        (spool_dir / "quarantine" / f"{batch_id}{SPOOL_SUFFIX}").read_bytes(), name=batch_id
    ).lines


def test_every_batch_accepted_is_deleted_and_a_second_run_finds_nothing(
    fault_hec: FaultHec, client: HecClient, tmp_path: Path
) -> None:
    spool = LocalSpool(tmp_path)
    batches = [batch_of(*range(start, start + 4)) for start in (0, 10, 20)]
    for batch in batches:
        spool.put(batch)
    seen: list[BatchOutcome] = []
    outcomes = replay_spool(spool, client, progress=seen.append)
    assert outcomes == seen
    assert [(o.status, o.events, o.accepted, o.reason) for o in outcomes] == [("replayed", 4, 4, "")] * 3
    assert sorted(fault_hec.accepted) == sorted(line for b in batches for line in b.lines)
    assert list(spool.list()) == [] and not anything_left(outcomes)
    assert replay_spool(spool, client) == []
    assert len(fault_hec.accepted) == 12


def test_hec_down_keeps_the_first_batch_whole_and_stops_before_the_rest(tmp_path: Path) -> None:
    spool = LocalSpool(tmp_path)
    for start in (0, 10, 20):
        spool.put(batch_of(start, start + 1))
    before = list(spool.list())
    down = client_for(closed_port_url())
    try:
        outcomes = replay_spool(spool, down)
    finally:
        down.close()
    ((outcome),) = outcomes
    assert (outcome.batch_id, outcome.status, outcome.events, outcome.accepted) == (before[0], "kept", 2, 0)
    assert outcome.reason
    assert list(spool.list()) == before
    assert anything_left(outcomes)


def test_a_refused_token_keeps_everything(fault_hec: FaultHec, tmp_path: Path) -> None:
    spool = LocalSpool(tmp_path)
    spool.put(batch_of(1, 2))
    spool.put(batch_of(3))
    before = list(spool.list())
    wrong = client_for(fault_hec.url, token=OTHER_TOKEN)
    try:
        outcomes = replay_spool(spool, wrong)
    finally:
        wrong.close()
    assert [(o.status, o.accepted) for o in outcomes] == [("kept", 0)]
    assert list(spool.list()) == before and fault_hec.accepted == []


def test_the_line_hec_refuses_is_quarantined_and_the_rest_delivered(
    fault_hec: FaultHec, client: HecClient, tmp_path: Path
) -> None:
    # GIVEN a batch whose third line HEC refuses as it is
    spool = LocalSpool(tmp_path)
    original = batch_of(0, 1, 2, 3, 4)
    spool.put(original)
    fault_hec.poison = lambda envelope: envelope["event"]["n"] == 2
    # WHEN it is replayed
    outcome, go_on = replay_batch(original.batch_id, spool=spool, client=client, budget=10.0)
    # THEN four lines reached HEC, the refused one is in the quarantine with HEC's reason and the
    # original's origin, and the original is gone; the run goes on
    assert go_on
    assert (outcome.status, outcome.events, outcome.accepted, outcome.quarantined) == ("quarantined", 5, 4, 1)
    assert outcome.new_batch_id is None
    assert fault_hec.accepted == [line(0), line(1), line(3), line(4)]
    assert list(spool.list()) == []
    ((held, reason),) = spool.quarantined()
    assert "rejected this event" in reason and reason == outcome.reason
    assert quarantined_lines(tmp_path, held) == (line(2),)
    kept = decode_batch((tmp_path / "quarantine" / f"{held}{SPOOL_SUFFIX}").read_bytes(), name=held)
    assert kept.metadata == {"log_group": "/aws/x", "replayed_from": original.batch_id}


def test_what_hec_did_not_take_after_a_partial_delivery_becomes_a_new_batch(
    fault_hec: FaultHec, tmp_path: Path
) -> None:
    # GIVEN a batch of 6 lines sent 2 per request, and HEC busy after the first request
    spool = LocalSpool(tmp_path)
    original = batch_of(0, 1, 2, 3, 4, 5)
    spool.put(original)
    fault_hec.script = ["ok"]
    fault_hec.default = BUSY
    small = client_for(fault_hec.url, events_per_request=2)
    try:
        outcome, _go_on = replay_batch(original.batch_id, spool=spool, client=small, budget=10.0)
    finally:
        small.close()
    # THEN the first two lines were delivered, the other four wait in one new batch (with the
    # reason and the original's id), and the original is deleted
    assert fault_hec.accepted == [line(0), line(1)]
    assert (outcome.status, outcome.events, outcome.accepted, outcome.quarantined) == ("partial", 6, 2, 0)
    assert outcome.new_batch_id is not None
    assert list(spool.list()) == [outcome.new_batch_id]
    remainder = spool.get(outcome.new_batch_id)
    assert remainder.lines == tuple(line(n) for n in (2, 3, 4, 5))
    assert remainder.reason == outcome.reason and "busy" in outcome.reason.lower()
    assert remainder.metadata["replayed_from"] == original.batch_id
    assert list(spool.quarantined()) == []
    # AND once HEC is back, replaying again delivers exactly the rest
    fault_hec.default = "ok"
    again = client_for(fault_hec.url)
    try:
        (second,) = replay_spool(spool, again)
    finally:
        again.close()
    assert (second.batch_id, second.status, second.accepted) == (outcome.new_batch_id, "replayed", 4)
    assert fault_hec.accepted == [line(n) for n in range(6)]
    assert list(spool.list()) == []


def test_unreadable_batches_are_quarantined_unsent_and_raw_payloads_left_alone(
    fault_hec: FaultHec, client: HecClient, tmp_path: Path
) -> None:
    spool = LocalSpool(tmp_path)
    tampered = batch_of(300)
    payload = SpoolBatch(kind="payload", payload=b"%%% bad base64", reason="not valid base64")
    spool.put(tampered)
    spool.put(payload)
    path = tmp_path / f"{tampered.batch_id}{SPOOL_SUFFIX}"
    path.write_bytes(gzip.compress(gzip.decompress(path.read_bytes()).replace(b'"n":300', b'"n":301')))
    outcomes = {o.batch_id: o for o in replay_spool(spool, client)}
    assert (outcomes[tampered.batch_id].status, outcomes[tampered.batch_id].quarantined) == ("quarantined", 1)
    assert "digest" in outcomes[tampered.batch_id].reason
    assert (outcomes[payload.batch_id].status, outcomes[payload.batch_id].reason) == (
        "payload",
        "not valid base64",
    )
    assert fault_hec.requests == 0
    assert list(spool.list()) == [payload.batch_id]
    assert [b for b, _ in spool.quarantined()] == [tampered.batch_id]


def test_limit_and_stop_end_the_run_between_batches(
    fault_hec: FaultHec, client: HecClient, tmp_path: Path
) -> None:
    spool = LocalSpool(tmp_path)
    for start in (0, 10, 20, 30):
        spool.put(batch_of(start))
    order = list(spool.list())
    assert [o.batch_id for o in replay_spool(spool, client, limit=1)] == order[:1]
    asked = iter([False, True])
    assert [o.batch_id for o in replay_spool(spool, client, stop=lambda: next(asked))] == order[1:2]
    assert list(spool.list()) == order[2:]
    assert fault_hec.accepted == [line(0), line(10)]
