"""ops/replay.py in-process, without HEC: listing a real local spool, the spool location check, the
summary and reason lines, and the shared quarantine of refused lines (HEC: integration/test_ops_replay.py)."""

from __future__ import annotations

import gzip
from pathlib import Path

import pytest

from hsmaudit.ops.replay import (
    BatchOutcome,
    SpoolLocationError,
    anything_left,
    check_spool_location,
    list_spool,
    quarantine_refused,
    reason_lines,
    split_failures,
    summary_lines,
)
from hsmaudit.sinks.hec.report import DeliveryReport, FailedBatch
from hsmaudit.sinks.spool import SPOOL_SUFFIX, LocalSpool, SpoolBatch, decode_batch


def line(n: int) -> bytes:
    return b'{"time":1.000000,"host":"hsm-a","source":"/aws/cloudhsm/c","event":{"n":%d}}' % n


def test_list_spool_names_each_batch_its_events_and_reason_and_the_quarantine(tmp_path: Path) -> None:
    # GIVEN two HEC batches, a raw payload, a tampered batch and one batch already quarantined
    spool = LocalSpool(tmp_path)
    first = SpoolBatch(lines=(line(1), line(2), line(3)), reason="HEC unavailable")
    payload = SpoolBatch(kind="payload", payload=b"%%% bad base64", reason="not valid base64")
    tampered = SpoolBatch(lines=(line(4),), reason="HEC unavailable")
    held = SpoolBatch(lines=(line(5),), reason="x")
    for batch in (first, payload, tampered, held):
        spool.put(batch)
    path = tmp_path / f"{tampered.batch_id}{SPOOL_SUFFIX}"
    path.write_bytes(gzip.compress(gzip.decompress(path.read_bytes()).replace(b'"n":4', b'"n":6')))
    spool.quarantine(held.batch_id, "HEC refused it")
    before = sorted(p.name for p in tmp_path.rglob("*") if p.is_file())
    # WHEN it is listed
    outcomes = {o.batch_id: o for o in list_spool(spool)}
    # THEN every batch is there with its count and reason, and nothing moved
    assert (outcomes[first.batch_id].status, outcomes[first.batch_id].events) == ("listed", 3)
    assert outcomes[first.batch_id].reason == "HEC unavailable"
    assert (outcomes[payload.batch_id].status, outcomes[payload.batch_id].reason) == (
        "listed",
        "not valid base64",
    )
    assert outcomes[tampered.batch_id].status == "unreadable"
    assert "digest" in outcomes[tampered.batch_id].reason
    assert (outcomes[held.batch_id].status, outcomes[held.batch_id].reason) == (
        "quarantined",
        "HEC refused it",
    )
    assert len(outcomes) == 4
    assert sorted(p.name for p in tmp_path.rglob("*") if p.is_file()) == before


def test_a_missing_directory_or_a_file_is_not_a_spool(tmp_path: Path) -> None:
    with pytest.raises(SpoolLocationError, match="the directory does not exist"):
        check_spool_location(str(tmp_path / "typo"))
    (tmp_path / "file").write_text("x")
    with pytest.raises(SpoolLocationError, match="it is a file, not a spool directory"):
        check_spool_location(str(tmp_path / "file"))
    check_spool_location(str(tmp_path))
    check_spool_location("s3://bucket/never/checked/")


def test_summary_of_a_run_counts_statuses_events_and_quarantined_lines_and_what_is_left() -> None:
    outcomes = [
        BatchOutcome("a", "replayed", 10, 10, ""),
        BatchOutcome("b", "partial", 10, 4, "HEC busy", new_batch_id="c"),
        BatchOutcome("d", "quarantined", 5, 4, "rejected this event", quarantined=1),
        BatchOutcome("e", "kept", 7, 0, "HEC busy"),
        BatchOutcome("f", "payload", 1, 0, "not valid base64"),
    ]
    assert summary_lines(outcomes, "/spool", list_only=False, left=2) == [
        "replayed 1 batches (18 events accepted) from /spool; partial 1, kept 1, "
        "quarantined 1 (1 items moved to quarantine), raw payloads left 1",
        "  1 batches (7 events) kept: HEC busy",
        "  1 batches (6 events) partly kept: HEC busy",
        "  1 batches (1 events) quarantined: rejected this event",
        "2 batches still waiting in /spool; nothing was lost: fix what HEC answered above "
        "('hsmaudit doctor' checks the URL, TLS and token), then run the same replay again",
    ]
    assert summary_lines(outcomes, "/spool", list_only=False)[-1].startswith("  1 batches (1 events)")
    assert reason_lines(outcomes) == [
        "  1 batches (7 events) kept: HEC busy",
        "  1 batches (6 events) partly kept: HEC busy",
        "  1 batches (1 events) quarantined: rejected this event",
    ]
    assert anything_left(outcomes)


def test_summary_of_nothing_and_of_a_listing() -> None:
    assert summary_lines([], "/spool", list_only=False) == [
        "nothing to replay: /spool holds no spooled batches"
    ]
    listed = [
        BatchOutcome("a", "listed", 3, 0, "x"),
        BatchOutcome("b", "unreadable", 0, 0, "digest"),
        BatchOutcome("c", "quarantined", 0, 0, "refused"),
    ]
    assert summary_lines(listed, "/spool", list_only=True) == [
        "2 batches in /spool (1 unreadable); 1 in quarantine"
    ]
    assert summary_lines([], "/spool", list_only=True) == [
        "0 batches in /spool (0 unreadable); 0 in quarantine"
    ]


def test_only_kept_partial_or_quarantined_lines_leave_something_for_another_run() -> None:
    assert not anything_left([])
    assert not anything_left(
        [BatchOutcome("a", "replayed", 3, 3, ""), BatchOutcome("p", "payload", 1, 0, "x")]
    )
    # an unreadable batch moved to the quarantine counts: a person has to look at it
    assert anything_left([BatchOutcome("q", "quarantined", 0, 0, "digest", quarantined=1)])
    assert anything_left([BatchOutcome("k", "kept", 3, 0, "down")])


def test_refused_lines_are_split_from_retryable_ones_and_kept_in_the_quarantine(tmp_path: Path) -> None:
    # GIVEN a report with one retryable failure and two groups HEC refused as they are
    busy = FailedBatch(lines=(line(1), line(2)), reason="HEC busy")
    bad = FailedBatch(lines=(line(3),), reason="rejected this event", retryable=False)
    huge = FailedBatch(lines=(line(4), line(5)), reason="too large", retryable=False)
    report = DeliveryReport(
        lines_in=6,
        accepted=1,
        spooled=(),
        failed=(busy, bad, huge),
        requests=3,
        retries=0,
        wire_bytes=0,
        body_bytes=0,
        latencies_ms=(),
    )
    retry, poison = split_failures(report)
    assert (retry, poison) == ([busy], [bad, huge])
    # WHEN the refused ones are quarantined
    spool = LocalSpool(tmp_path)
    held = quarantine_refused(spool, poison, {"replayed_from": "orig"})
    # THEN each group is a quarantined batch with its lines, reason and origin; none is waiting
    assert held == 3
    assert list(spool.list()) == []
    quarantined = dict(spool.quarantined())
    assert sorted(quarantined.values()) == ["rejected this event", "too large"]
    kept = {
        decode_batch((tmp_path / "quarantine" / f"{b}{SPOOL_SUFFIX}").read_bytes(), name=b).lines: b
        for b in quarantined
    }
    assert set(kept) == {(line(3),), (line(4), line(5))}
    batch = decode_batch(
        (tmp_path / "quarantine" / f"{kept[(line(3),)]}{SPOOL_SUFFIX}").read_bytes(), name="q"
    )
    assert batch.metadata["replayed_from"] == "orig"
