"""`ops.follow.poll_cloudwatch` in-process with the real `LogsReader` on moto's CloudWatch Logs.

No subprocess: what `hsmaudit tail --cluster` shows comes from this generator (the command's
rendering is in test_tail.py). Late arrival is in `tests/unit/test_ops_follow.py`; here the real
FilterLogEvents paging, stream filter, and records put between two polls.
"""

from __future__ import annotations

from hsmaudit.aws.logs import LogsReader
from hsmaudit.ops.follow import poll_cloudwatch
from hsmaudit.records.event import HsmEvent

from .test_cli_harness import BASE_MS, Moto, make_cluster, moto, record_text

__all__ = ["moto"]  # a fixture used by name


def reader(moto: Moto) -> LogsReader:
    return LogsReader(moto.client("logs"), rates={"FilterLogEvents": 200.0}, backoff_base=0.01)


def test_one_poll_shows_every_record_of_the_cluster_once_parsed(moto: Moto) -> None:
    cluster = make_cluster(moto, hsms=2, records=12)
    shown = list(
        poll_cloudwatch(
            reader(moto),
            [cluster.log_group],
            start_ms=BASE_MS,
            follow=False,
            interval=0.1,
            lookback_ms=60_000,
        )
    )
    events = [event for event in shown if event is not None]
    assert len(shown) == len(events) == cluster.total
    assert len({event.event_id for event in events}) == cluster.total
    assert {event.cluster_id for event in events} == {cluster.cluster_id}
    assert {event.hsm_id for event in events} == set(cluster.streams)
    assert all(event.parse_error is None for event in events)
    # oldest first within the poll
    stamps = [event.cwl_timestamp or 0 for event in events]
    assert stamps == sorted(stamps)


def test_the_stream_filter_shows_one_hsm_only(moto: Moto) -> None:
    cluster = make_cluster(moto, hsms=3, records=5)
    wanted = sorted(cluster.streams)[1]
    shown = list(
        poll_cloudwatch(
            reader(moto),
            [cluster.log_group],
            start_ms=BASE_MS,
            follow=False,
            interval=0.1,
            lookback_ms=60_000,
            streams=[wanted],
        )
    )
    assert [event.hsm_id for event in shown if event is not None] == [wanted] * 5


def test_following_shows_what_arrives_between_polls_and_nothing_twice(moto: Moto) -> None:
    # GIVEN a cluster with 2 x 4 records
    cluster = make_cluster(moto, hsms=2, records=4)
    stream = sorted(cluster.streams)[0]
    newest = max(
        item["timestamp"]
        for item in moto.client("logs").filter_log_events(logGroupName=cluster.log_group)["events"]
    )
    added: list[int] = []

    def sleep(seconds: float) -> None:
        # between the first and second poll, the HSM writes two more records
        if not added:
            stamps = [newest + 1000, newest + 2000]
            moto.client("logs").put_log_events(
                logGroupName=cluster.log_group,
                logStreamName=stream,
                logEvents=[
                    {"timestamp": stamp, "message": record_text(0, 100 + index, stamp * 1000)}
                    for index, stamp in enumerate(stamps)
                ],
            )
            added.extend(stamps)

    # WHEN following for three polls (the look back covers every earlier record)
    shown: list[HsmEvent | None] = list(
        poll_cloudwatch(
            reader(moto),
            [cluster.log_group],
            start_ms=BASE_MS,
            follow=True,
            interval=0.1,
            lookback_ms=3_600_000,
            sleep=sleep,
            polls=3,
        )
    )
    # THEN the first poll shows the 8, the second only the 2 new ones, the third nothing
    marks = [index for index, item in enumerate(shown) if item is None]
    assert marks == [8, 11]
    assert len(shown) == 12
    new = [event for event in shown[9:11] if event is not None]
    assert [event.sequence_no for event in new] == [100, 101]
    assert {event.hsm_id for event in new} == {stream}
    events = [event for event in shown if event is not None]
    assert len({event.event_id for event in events}) == 10
