"""The backfill engine (`ops.backfill.Backfill`) in-process against moto and our HEC on loopback.

No subprocess: each test builds the job with `resolve_job`, a `LogsReader` on moto's CloudWatch
Logs and a real destination, runs the engine, and checks what arrived (event ids, exact counts),
what the checkpoint file says for each stream, what the spool holds, and that a resumed run
delivers the rest exactly once. The same paths through the console script are in test_backfill.py.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import pytest

from hsmaudit.aws.logs import LogsReader
from hsmaudit.ops.backfill import Backfill, BackfillSummary, StopFlag, plan_rows, resolve_job
from hsmaudit.ops.destination import Delivered, DeliveryError, Destination, HecDestination, StoreDestination
from hsmaudit.ops.timespec import format_ms
from hsmaudit.records.event import HsmEvent
from hsmaudit.records.parse import parse_message
from hsmaudit.sinks.hec.client import HecClient
from hsmaudit.sinks.hec.policy import BatchPolicy, ConnectionPolicy, RetryPolicy
from hsmaudit.sinks.hec.token import StaticToken
from hsmaudit.sinks.spool import LocalSpool
from hsmaudit.sources.checkpoint import load_checkpoint
from hsmaudit.store.database import EventStore

from .fault_hec import TOKEN, FaultHec
from .test_cli_harness import Cluster, Moto, make_cluster, moto

__all__ = ["moto"]  # a fixture used by name


def stream_events(moto: Moto, cluster: Cluster, stream: str) -> list[tuple[int, str]]:
    """(CloudWatch timestamp, event_id) of every record of one stream, read straight from moto."""
    page = moto.client("logs").get_log_events(
        logGroupName=cluster.log_group, logStreamName=stream, startFromHead=True
    )
    return [
        (
            item["timestamp"],
            parse_message(item["message"], log_group=cluster.log_group, log_stream=stream).event_id or "",
        )
        for item in page["events"]
    ]


def all_ids(moto: Moto, cluster: Cluster) -> list[str]:
    ids = [event_id for stream in cluster.streams for _, event_id in stream_events(moto, cluster, stream)]
    assert len(ids) == cluster.total
    return sorted(ids)


def hec_ids(hec: FaultHec) -> list[str]:
    return [envelope["fields"]["event_id"] for envelope in hec.events()]


def hec(
    url: str, *, token: str = TOKEN, spool: LocalSpool | None = None, attempts: int = 3
) -> HecDestination:
    """HEC through the Lambda's client, 4 events per request."""
    client = HecClient(
        url,
        StaticToken(token),
        connection=ConnectionPolicy(timeout=1.0),
        retry=RetryPolicy(max_attempts=attempts, backoff_base=0.01, backoff_cap=0.02),
        batch=BatchPolicy(max_events=4),
    )
    return HecDestination(client, spool=spool)


def backfill(
    moto: Moto,
    cluster: Cluster,
    checkpoint: Path,
    destination: Destination,
    **options: object,
) -> tuple[Backfill, BackfillSummary]:
    """The engine for `--cluster <id> --since 2d --checkpoint <checkpoint>`, as the CLI builds it."""
    job, path, state = resolve_job(
        clusters=[cluster.cluster_id],
        log_groups=[],
        since="2d",
        until=None,
        checkpoint=checkpoint,
        destination="test destination",
    )
    reader = LogsReader(moto.client("logs"), rates={"GetLogEvents": 200.0}, backoff_base=0.01)
    summary = BackfillSummary(
        checkpoint=str(path),
        destination=destination.description,
        since=format_ms(job.since_ms),
        until=format_ms(job.until_ms),
    )
    runner = Backfill(reader, destination, job=job, checkpoint_path=path, checkpoint=state, **options)  # type: ignore[arg-type]
    return runner, summary


def run(
    moto: Moto, cluster: Cluster, checkpoint: Path, destination: Destination, **options: object
) -> BackfillSummary:
    runner, summary = backfill(moto, cluster, checkpoint, destination, **options)
    try:
        return runner.run(summary)
    finally:
        destination.close()


class StopAfterFirstDelivery:
    """A real destination whose first kept delivery asks the run to stop, as a Ctrl-C that lands
    between two HEC requests of one page does (the CLI's signal handler sets the same flag)."""

    def __init__(self, inner: Destination, stop: StopFlag) -> None:
        self.inner = inner
        self.stop = stop
        self.description = inner.description
        self.chunk_size = inner.chunk_size

    def deliver(self, events: Sequence[HsmEvent]) -> Delivered:
        delivered = self.inner.deliver(events)
        self.stop.request("interrupted")
        return delivered

    def close(self) -> None:
        self.inner.close()


def test_every_record_of_every_stream_arrives_once_and_each_stream_is_checkpointed_complete(
    moto: Moto, fault_hec: FaultHec, tmp_path: Path
) -> None:
    cluster = make_cluster(moto, hsms=3, records=12)
    checkpoint = tmp_path / "cp.json"
    summary = run(moto, cluster, checkpoint, hec(fault_hec.url), page_size=5)
    # every record once, counted exactly
    assert sorted(hec_ids(fault_hec)) == all_ids(moto, cluster)
    totals = summary.totals()
    assert (totals["read"], totals["delivered"], totals["accepted"], totals["skipped"]) == (36, 36, 36, 0)
    assert (totals["spooled"], totals["pages"]) == (0, 9)  # 12 records in pages of 5: 3 pages a stream
    assert summary.complete is True
    assert summary.interrupted is False
    assert [result.stream for result in summary.streams] == sorted(cluster.streams)
    assert summary.aws_requests >= 3 * 3 + 1  # DescribeLogStreams and 3 pages a stream at least
    # each stream's position is its last record: timestamp, the ids at that millisecond, done
    state = load_checkpoint(checkpoint)
    assert state is not None
    assert state.delivered() == 36
    for stream in cluster.streams:
        records = stream_events(moto, cluster, stream)
        last = records[-1][0]
        position = state.position(cluster.log_group, stream)
        assert position.complete is True
        assert position.delivered == 12
        assert position.timestamp == last
        assert position.event_ids == tuple(event_id for stamp, event_id in records if stamp == last)


def test_a_run_stopped_after_three_pages_resumes_with_no_gap_and_no_duplicate(
    moto: Moto, fault_hec: FaultHec, tmp_path: Path
) -> None:
    # GIVEN pages of 5 records, where records 14|15 share a millisecond across a page boundary
    cluster = make_cluster(moto, hsms=2, records=23, same_ms_every=5)
    first_stream, second_stream = sorted(cluster.streams)
    records = stream_events(moto, cluster, first_stream)
    checkpoint = tmp_path / "cp.json"
    # WHEN the run stops after 3 pages
    first = run(moto, cluster, checkpoint, hec(fault_hec.url), page_size=5, stop_after_pages=3)
    assert first.interrupted is True
    assert first.complete is False
    assert first.totals()["delivered"] == 15
    # THEN the first 15 records of the first stream arrived, and the checkpoint says exactly that
    assert hec_ids(fault_hec) == [event_id for _, event_id in records[:15]]
    state = load_checkpoint(checkpoint)
    assert state is not None
    position = state.position(cluster.log_group, first_stream)
    assert (position.delivered, position.complete, position.timestamp) == (15, False, records[14][0])
    assert position.event_ids == (records[14][1],)
    assert state.position(cluster.log_group, second_stream).timestamp is None
    # WHEN the same job runs again
    second = run(moto, cluster, checkpoint, hec(fault_hec.url), page_size=5)
    # THEN it delivers the rest, skipping only the record at the boundary millisecond
    assert second.complete is True
    assert second.totals()["delivered"] == cluster.total - 15
    assert second.totals()["skipped"] == 1
    assert [result.earlier for result in second.streams] == [15, 0]
    assert sorted(hec_ids(fault_hec)) == all_ids(moto, cluster)
    # AND a third run reads nothing: both streams are complete
    third = run(moto, cluster, checkpoint, hec(fault_hec.url), page_size=5)
    assert third.complete is True
    assert (third.totals()["read"], third.totals()["delivered"]) == (0, 0)
    assert len(hec_ids(fault_hec)) == cluster.total


def test_a_stop_between_two_hec_requests_keeps_the_delivered_one_checkpointed(
    moto: Moto, fault_hec: FaultHec, tmp_path: Path
) -> None:
    # GIVEN pages of 10 records and HEC requests of 4
    cluster = make_cluster(moto, hsms=2, records=10, same_ms_every=0)
    first_stream = sorted(cluster.streams)[0]
    records = stream_events(moto, cluster, first_stream)
    checkpoint = tmp_path / "cp.json"
    stop = StopFlag()
    # WHEN a stop is requested as the first request is accepted
    first = run(
        moto, cluster, checkpoint, StopAfterFirstDelivery(hec(fault_hec.url), stop), page_size=10, stop=stop
    )
    # THEN the page in flight sends nothing more, and the 4 accepted events are checkpointed
    assert (first.interrupted, first.complete, stop.reason) == (True, False, "interrupted")
    assert hec_ids(fault_hec) == [event_id for _, event_id in records[:4]]
    state = load_checkpoint(checkpoint)
    assert state is not None
    position = state.position(cluster.log_group, first_stream)
    assert (position.delivered, position.timestamp, position.event_ids) == (
        4,
        records[3][0],
        (records[3][1],),
    )
    # AND the next run delivers the other 16 once
    second = run(moto, cluster, checkpoint, hec(fault_hec.url), page_size=10)
    assert second.complete is True
    assert second.totals()["delivered"] == 16
    assert sorted(hec_ids(fault_hec)) == all_ids(moto, cluster)


def test_hec_failing_half_way_raises_with_the_accepted_requests_checkpointed(
    moto: Moto, fault_hec: FaultHec, tmp_path: Path
) -> None:
    # GIVEN HEC requests of 4, pages of 10, no spool, and a HEC whose every 3rd request fails
    cluster = make_cluster(moto, hsms=2, records=20)
    first_stream = sorted(cluster.streams)[0]
    checkpoint = tmp_path / "cp.json"
    fault_hec.fail_every = 3
    runner, summary = backfill(moto, cluster, checkpoint, hec(fault_hec.url, attempts=1), page_size=10)
    # WHEN the engine runs THEN it raises, and the summary still holds what happened
    with pytest.raises(DeliveryError, match="HEC did not take 2 of 2 events"):
        runner.run(summary)
    runner.destination.close()
    assert summary.aws_requests > 0
    assert len(hec_ids(fault_hec)) == 8  # the first two requests of the first page
    state = load_checkpoint(checkpoint)
    assert state is not None
    assert state.position(cluster.log_group, first_stream).delivered == 8
    # WHEN HEC is healthy again, the same job fills in the rest exactly once
    fault_hec.fail_every = 0
    again = run(moto, cluster, checkpoint, hec(fault_hec.url), page_size=10)
    assert again.complete is True
    assert again.totals()["delivered"] == cluster.total - 8
    assert sorted(hec_ids(fault_hec)) == all_ids(moto, cluster)


def test_a_refused_token_spools_the_window_with_its_reason_and_the_job_is_done(
    moto: Moto, fault_hec: FaultHec, tmp_path: Path
) -> None:
    cluster = make_cluster(moto, hsms=2, records=10)
    spool = LocalSpool(tmp_path / "spool")
    checkpoint = tmp_path / "cp.json"
    summary = run(moto, cluster, checkpoint, hec(fault_hec.url, token="wrong", spool=spool))
    # every event is kept in the spool, none reached HEC, and the summary says why
    assert hec_ids(fault_hec) == []
    totals = summary.totals()
    assert (totals["delivered"], totals["accepted"], totals["spooled"]) == (20, 0, 20)
    [(reason, count)] = summary.spooled_reasons.items()
    assert reason.startswith("HEC refused the token")
    assert count == 20
    assert summary.complete is True  # the window was read and kept: the spool holds the rest
    batches = [spool.get(batch_id) for batch_id in spool.list()]
    assert {batch.reason for batch in batches} == {reason}
    spooled = sorted(json.loads(line)["fields"]["event_id"] for batch in batches for line in batch.lines)
    assert spooled == all_ids(moto, cluster)
    state = load_checkpoint(checkpoint)
    assert state is not None
    assert all(state.position(cluster.log_group, s).complete for s in cluster.streams)
    assert state.delivered() == 20


def test_a_second_job_into_the_store_counts_every_record_as_a_duplicate(moto: Moto, tmp_path: Path) -> None:
    cluster = make_cluster(moto, hsms=2, records=7)
    db = tmp_path / "events.sqlite3"
    first = run(moto, cluster, tmp_path / "cp1.json", StoreDestination(EventStore(db), str(db)))
    second = run(moto, cluster, tmp_path / "cp2.json", StoreDestination(EventStore(db), str(db)))
    assert (first.totals()["accepted"], first.totals()["duplicates"]) == (14, 0)
    assert (second.totals()["accepted"], second.totals()["duplicates"]) == (0, 14)
    with EventStore(db) as store:
        assert store.count_events() == cluster.total


def test_the_plan_lists_the_chosen_streams_with_the_checkpoints_progress_and_reads_nothing(
    moto: Moto, tmp_path: Path
) -> None:
    cluster = make_cluster(moto, hsms=2, records=8, same_ms_every=0)
    first_stream, second_stream = sorted(cluster.streams)
    records = stream_events(moto, cluster, first_stream)
    checkpoint = tmp_path / "cp.json"
    db = tmp_path / "events.sqlite3"
    # GIVEN a run that stopped after its first page of 5
    run(moto, cluster, checkpoint, StoreDestination(EventStore(db), str(db)), page_size=5, stop_after_pages=1)
    job, path, state = resolve_job(
        clusters=[cluster.cluster_id], log_groups=[], since="2d", until=None, checkpoint=checkpoint
    )
    reader = LogsReader(moto.client("logs"), rates={"GetLogEvents": 200.0})
    # WHEN the plan is asked for
    rows = plan_rows(job, path, state, reader)
    only = plan_rows(job, path, state, reader, streams=[second_stream])
    # THEN each stream shows its span and how far delivery got, and no event was read
    assert [row["stream"] for row in rows] == [first_stream, second_stream]
    assert rows[0] == {
        "log_group": cluster.log_group,
        "stream": first_stream,
        "first_event": format_ms(records[0][0]),
        "last_event": format_ms(records[-1][0]),
        "delivered": 5,
        "delivered_until": format_ms(records[4][0]),
        "complete": False,
    }
    assert (rows[1]["delivered"], rows[1]["delivered_until"], rows[1]["complete"]) == (0, None, False)
    assert [row["stream"] for row in only] == [second_stream]
    assert "GetLogEvents" not in reader.stats.by_operation
