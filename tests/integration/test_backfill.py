"""`hsmaudit backfill` through the real console script, against moto and our HEC on loopback
(and once more against the independent sink, when it is there).

Every test checks delivery by event id: each record of the cluster arrives exactly once.
"""

from __future__ import annotations

import json
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

from hsmaudit.records.parse import parse_message

from .fault_hec import FaultHec
from .test_cli_harness import (
    BASE_MS,
    HSMAUDIT,
    Cluster,
    Moto,
    ThrottlingProxy,
    clean_env,
    hec_sink,
    kept_events,
    make_cluster,
    moto,
    run_cli,
)

__all__ = ["hec_sink", "moto"]  # fixtures used by name


def expected_ids(moto: Moto, cluster: Cluster) -> list[str]:
    """The event ids of every record of the cluster, read straight from moto."""
    logs = moto.client("logs")
    ids = []
    for stream in cluster.streams:
        events = logs.get_log_events(logGroupName=cluster.log_group, logStreamName=stream, startFromHead=True)
        ids += [
            parse_message(e["message"], log_group=cluster.log_group, log_stream=stream).event_id or ""
            for e in events["events"]
        ]
    assert len(ids) == cluster.total
    return ids


def hec_env(moto: Moto, url: str, **extra: str) -> dict[str, str]:
    return {**moto.env, "HSMAUDIT_HEC_URL": url, "HSMAUDIT_HEC_TOKEN": "test-token", **extra}


def backfill_args(cluster: Cluster, checkpoint: Path, *more: str) -> list[str]:
    return [
        "backfill",
        "--cluster",
        cluster.cluster_id,
        "--since",
        "2d",
        "--checkpoint",
        str(checkpoint),
        "--json",
        "--no-progress",
        "--max-rps",
        "200",
        *more,
    ]


def summary_of(result: subprocess.CompletedProcess[str]) -> dict[str, Any]:
    return json.loads(result.stdout.strip().splitlines()[-1])


def delivered_ids(hec: FaultHec) -> list[str]:
    return [envelope["fields"]["event_id"] for envelope in hec.events()]


def backfill_a_cluster(moto: Moto, url: str, tmp_path: Path) -> tuple[Cluster, list[str]]:
    """Backfill a new 3-HSM cluster to the HEC at `url`; returns it and its expected event ids."""
    cluster = make_cluster(moto, hsms=3, records=20)
    result = run_cli(*backfill_args(cluster, tmp_path / "cp.json"), env=hec_env(moto, url))
    assert result.returncode == 0, result.stderr
    summary = summary_of(result)
    assert summary["complete"] is True
    assert summary["delivered"] == summary["accepted"] == cluster.total
    return cluster, sorted(expected_ids(moto, cluster))


def test_backfill_sends_every_record_of_every_hsm_to_hec_once(
    moto: Moto, loopback_hec: FaultHec, tmp_path: Path
) -> None:
    cluster, expected = backfill_a_cluster(moto, loopback_hec.url, tmp_path)
    assert sorted(delivered_ids(loopback_hec)) == expected
    envelopes = loopback_hec.events()
    # contracts.md §2: host is the HSM, source the log group, the default sourcetype
    assert {e["host"] for e in envelopes} == set(cluster.streams)
    assert {e["source"] for e in envelopes} == {cluster.log_group}
    assert {e["sourcetype"] for e in envelopes} == {"aws:cloudhsm:audit:text"}


def test_the_independent_sink_takes_what_backfill_delivers(moto: Moto, hec_sink: Any, tmp_path: Path) -> None:
    """Cross-check: an HEC written by another team accepts the same requests (skips without it)."""
    _, expected = backfill_a_cluster(moto, hec_sink.url, tmp_path)
    assert sorted(envelope["fields"]["event_id"] for envelope in kept_events(hec_sink)) == expected


def test_a_backfill_stopped_half_way_resumes_with_no_gap_and_no_duplicate(
    moto: Moto, loopback_hec: FaultHec, tmp_path: Path
) -> None:
    # GIVEN pages of 5 records, where records 4|5, 9|10, ... share a millisecond across pages
    cluster = make_cluster(moto, hsms=2, records=23, same_ms_every=5)
    checkpoint = tmp_path / "cp.json"
    env = hec_env(moto, loopback_hec.url)
    # WHEN the run stops after 3 pages
    first = run_cli(
        *backfill_args(cluster, checkpoint, "--page-size", "5", "--stop-after-pages", "3"), env=env
    )
    assert first.returncode == 130, first.stderr
    assert "run the same command to resume" in first.stderr.splitlines()[-1]
    partial = delivered_ids(loopback_hec)
    assert 0 < len(partial) < cluster.total
    # THEN the same command delivers the rest, and every record arrived exactly once
    second = run_cli(*backfill_args(cluster, checkpoint, "--page-size", "5"), env=env)
    assert second.returncode == 0, second.stderr
    summary = summary_of(second)
    assert summary["complete"] is True
    assert summary["delivered"] == cluster.total - len(partial)
    assert summary["skipped"] > 0  # the boundary millisecond was read again and skipped
    assert sorted(delivered_ids(loopback_hec)) == sorted(expected_ids(moto, cluster))
    # AND a third run finds nothing left to do
    third = run_cli(*backfill_args(cluster, checkpoint, "--page-size", "5"), env=env)
    assert third.returncode == 0, third.stderr
    assert summary_of(third)["delivered"] == 0
    assert len(delivered_ids(loopback_hec)) == cluster.total


def test_plan_shows_each_streams_progress_without_reading_or_sending(
    moto: Moto, loopback_hec: FaultHec, tmp_path: Path
) -> None:
    cluster = make_cluster(moto, hsms=2, records=10)
    checkpoint = tmp_path / "cp.json"
    env = hec_env(moto, loopback_hec.url)
    stopped = run_cli(
        *backfill_args(cluster, checkpoint, "--page-size", "10", "--stop-after-pages", "1"), env=env
    )
    assert stopped.returncode == 130
    sent = len(delivered_ids(loopback_hec))
    plan = run_cli(*backfill_args(cluster, checkpoint, "--plan"), env=env)
    assert plan.returncode == 0, plan.stderr
    rows = [json.loads(line) for line in plan.stdout.splitlines()]
    assert sorted(row["stream"] for row in rows) == sorted(cluster.streams)
    assert sorted((row["delivered"], row["complete"]) for row in rows) == [(0, False), (10, False)]
    assert len(delivered_ids(loopback_hec)) == sent  # a plan sends nothing


def test_ctrl_c_finishes_the_page_in_flight_and_the_next_run_resumes(
    moto: Moto, loopback_hec: FaultHec, tmp_path: Path
) -> None:
    cluster = make_cluster(moto, hsms=2, records=40)
    checkpoint = tmp_path / "cp.json"
    env = hec_env(moto, loopback_hec.url)
    # GIVEN a slow backfill (2 pages a second) running in the background
    args = backfill_args(cluster, checkpoint, "--page-size", "4")
    args[args.index("--max-rps") + 1] = "2"
    process = subprocess.Popen(
        [HSMAUDIT, *args], env=clean_env(env), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    deadline = time.monotonic() + 30
    while not checkpoint.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert checkpoint.exists(), "the backfill never wrote a checkpoint"
    # WHEN it is interrupted as a person would (SIGINT, i.e. Ctrl-C)
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=30)
    assert process.returncode == 130, stderr
    assert "interrupted" in stderr.splitlines()[-1]
    assert 0 < len(delivered_ids(loopback_hec)) < cluster.total
    # THEN the same command delivers the rest exactly once
    again = run_cli(*backfill_args(cluster, checkpoint, "--page-size", "4"), env=env)
    assert again.returncode == 0, again.stderr
    assert sorted(delivered_ids(loopback_hec)) == sorted(expected_ids(moto, cluster))


def test_hec_failing_half_way_stops_the_backfill_and_the_resume_fills_the_rest_once(
    moto: Moto, loopback_hec: FaultHec, tmp_path: Path
) -> None:
    # GIVEN HEC requests of 4 events, pages of 10, and a HEC whose 3rd request fails (no retry)
    cluster = make_cluster(moto, hsms=2, records=20)
    checkpoint = tmp_path / "cp.json"
    env = hec_env(moto, loopback_hec.url, HSMAUDIT_BATCH_MAX_EVENTS="4", HSMAUDIT_HEC_MAX_ATTEMPTS="1")
    loopback_hec.fail_every = 3
    first = run_cli(*backfill_args(cluster, checkpoint, "--page-size", "10"), env=env)
    # THEN the run stops with one line that says where the progress is kept
    assert first.returncode == 1
    last = first.stderr.strip().splitlines()[-1]
    assert last.startswith("hsmaudit: HEC did not take 2 of 2 events")
    assert f"progress so far is in {checkpoint}" in last
    accepted = delivered_ids(loopback_hec)
    assert len(accepted) == 8  # two requests of 4 in the middle of the first page, each checkpointed
    # WHEN HEC is healthy again and the same command runs
    loopback_hec.fail_every = 0
    second = run_cli(*backfill_args(cluster, checkpoint, "--page-size", "10"), env=env)
    assert second.returncode == 0, second.stderr
    # THEN every record arrived exactly once
    assert sorted(delivered_ids(loopback_hec)) == sorted(expected_ids(moto, cluster))


def test_no_region_is_one_line_with_no_empty_table_and_no_checkpoint_it_never_wrote(tmp_path: Path) -> None:
    checkpoint = tmp_path / "cp.json"
    args = ["--since", "1d", "--db", str(tmp_path / "e.sqlite3"), "--checkpoint", str(checkpoint)]
    result = run_cli("backfill", "--cluster", "cluster-abc", *args, "--no-progress")
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        "hsmaudit: no AWS Region: give --region, or set AWS_REGION (or AWS_DEFAULT_REGION, "
        "or `region` in your AWS profile)"
    ]
    assert not checkpoint.exists()


def test_a_refused_token_spools_the_history_and_replay_delivers_it_once(
    moto: Moto, loopback_hec: FaultHec, tmp_path: Path
) -> None:
    # GIVEN a wrong token and a spool directory
    cluster = make_cluster(moto, hsms=2, records=10)
    spool = tmp_path / "spool"
    env = hec_env(moto, loopback_hec.url, HSMAUDIT_HEC_TOKEN="wrong-token", HSMAUDIT_SPOOL_DIR=str(spool))
    args = [a for a in backfill_args(cluster, tmp_path / "cp.json") if a != "--json"]  # summary on stderr
    result = run_cli(*args, env=env)
    # THEN the backfill reads everything into the spool, says why and what to do next, exit 1
    assert result.returncode == 1, result.stderr
    assert "20 spooled: HEC refused the token" in result.stderr
    assert f"hsmaudit replay {spool}" in result.stderr
    assert delivered_ids(loopback_hec) == []
    # AND replay with the right token delivers every record exactly once
    replay = run_cli("replay", str(spool), env=hec_env(moto, loopback_hec.url))
    assert replay.returncode == 0, replay.stderr
    assert sorted(delivered_ids(loopback_hec)) == sorted(expected_ids(moto, cluster))


def test_throttling_slows_the_backfill_down_and_loses_nothing(
    moto: Moto, loopback_hec: FaultHec, tmp_path: Path
) -> None:
    cluster = make_cluster(moto, hsms=2, records=30)
    # GIVEN CloudWatch Logs that throttles every third GetLogEvents call
    with ThrottlingProxy(moto.url, every=3) as proxy:
        env = hec_env(moto, loopback_hec.url, AWS_ENDPOINT_URL=proxy.url)
        result = run_cli(
            *backfill_args(cluster, tmp_path / "cp.json", "--page-size", "6", "--retry-base-delay", "0.02"),
            env=env,
        )
    assert result.returncode == 0, result.stderr
    summary = summary_of(result)
    # THEN every throttled call was retried after a pause, and no record was lost or doubled
    assert summary["throttled"] == proxy.throttled > 0
    assert summary["retries"] >= summary["throttled"]
    assert summary["backoff_seconds"] > 0
    assert summary["lowest_rps"] < summary["max_rps"] == 200  # the pace was lowered
    assert sorted(delivered_ids(loopback_hec)) == sorted(expected_ids(moto, cluster))


def test_backfill_into_the_local_store_counts_each_record_once(moto: Moto, tmp_path: Path) -> None:
    from hsmaudit.store.database import EventStore

    cluster = make_cluster(moto, hsms=2, records=15)
    db = tmp_path / "events.sqlite3"
    first = run_cli(*backfill_args(cluster, tmp_path / "cp.json", "--db", str(db)), env=moto.env)
    assert first.returncode == 0, first.stderr
    # a new checkpoint re-reads everything: the store's UNIQUE event_id keeps one copy
    second = run_cli(*backfill_args(cluster, tmp_path / "cp2.json", "--db", str(db)), env=moto.env)
    assert second.returncode == 0, second.stderr
    assert summary_of(second)["duplicates"] == cluster.total
    with EventStore(db) as store:
        assert store.count_events() == cluster.total


def test_backfill_to_a_jsonl_file_and_only_the_named_streams(moto: Moto, tmp_path: Path) -> None:
    cluster = make_cluster(moto, hsms=2, records=6)
    stream = sorted(cluster.streams)[0]
    out = tmp_path / "events.jsonl"
    result = run_cli(
        *backfill_args(cluster, tmp_path / "cp.json", "--out", str(out), "--stream", stream), env=moto.env
    )
    assert result.returncode == 0, result.stderr
    events = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(events) == 6
    assert {e["hsm_id"] for e in events} == {stream}
    assert [e["sequence_no"] for e in events] == list(range(6))


def test_the_clusters_certificate_stream_is_backfilled_with_the_hsm_streams(
    moto: Moto, samples_dir: Path, tmp_path: Path
) -> None:
    # GIVEN a cluster whose log group also holds its certificate-storage stream (named after the
    # cluster, JSON records: user-needs.md §2.1)
    cluster = make_cluster(moto, hsms=1, records=3)
    logs = moto.client("logs")
    logs.create_log_stream(logGroupName=cluster.log_group, logStreamName=cluster.cluster_id)
    records = [
        (samples_dir / name).read_text().strip()
        for name in sorted(p.name for p in samples_dir.glob("aws-certstore-*.txt"))
    ]
    logs.put_log_events(
        logGroupName=cluster.log_group,
        logStreamName=cluster.cluster_id,
        logEvents=[{"timestamp": BASE_MS + 500 + i, "message": text} for i, text in enumerate(records)],
    )
    out = tmp_path / "events.jsonl"
    result = run_cli(*backfill_args(cluster, tmp_path / "cp.json", "--out", str(out)), env=moto.env)
    assert result.returncode == 0, result.stderr
    events = [json.loads(line) for line in out.read_text().splitlines()]
    certificates = [e for e in events if e["record_format"] == "certificate"]
    assert len(events) == 3 + len(records)
    assert len(certificates) == len(records)
    assert all(e.get("hsm_id") is None and e["cluster_id"] == cluster.cluster_id for e in certificates)
    assert all(e.get("parse_error") is None for e in events)


def test_a_missing_cluster_is_named_in_one_line(moto: Moto, tmp_path: Path) -> None:
    result = run_cli(
        "backfill", "--cluster", "cluster-doesnotexist", "--since", "1d", "--out", str(tmp_path / "x"),
        "--checkpoint", str(tmp_path / "cp.json"), "--no-progress", env=moto.env,
    )  # fmt: skip
    assert result.returncode == 1
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("hsmaudit: ")
    assert "/aws/cloudhsm/cluster-doesnotexist does not exist" in last
    assert "Traceback" not in result.stderr


def test_resuming_a_checkpoint_with_another_window_is_refused(moto: Moto, tmp_path: Path) -> None:
    cluster = make_cluster(moto, hsms=1, records=3)
    checkpoint = tmp_path / "cp.json"
    first = run_cli(*backfill_args(cluster, checkpoint, "--out", str(tmp_path / "a.jsonl")), env=moto.env)
    assert first.returncode == 0, first.stderr
    args = backfill_args(cluster, checkpoint, "--out", str(tmp_path / "a.jsonl"), "--until", "1h")
    result = run_cli(*args, env=moto.env)
    assert result.returncode == 1
    assert "belongs to another backfill" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_backfill_without_a_cluster_or_window_explains_what_is_missing(tmp_path: Path) -> None:
    no_cluster = run_cli("backfill", "--since", "1d")
    assert no_cluster.returncode == 2
    assert no_cluster.stderr.strip() == "hsmaudit: give at least one --cluster or --log-group"
    no_since = run_cli("backfill", "--cluster", "cluster-x", "--checkpoint", str(tmp_path / "c.json"))
    assert no_since.returncode == 2
    assert "--since 90d" in no_since.stderr
    bad_time = run_cli("backfill", "--cluster", "cluster-x", "--since", "yesterday-ish")
    assert bad_time.returncode == 2
    assert "is not a time" in bad_time.stderr


def test_backfill_without_hec_settings_says_how_to_set_them(moto: Moto, tmp_path: Path) -> None:
    cluster = make_cluster(moto, hsms=1, records=1)
    result = run_cli(*backfill_args(cluster, tmp_path / "cp.json"), env=moto.env)
    assert result.returncode == 1
    assert "no HEC URL" in result.stderr
    assert "HSMAUDIT_HEC_URL" in result.stderr


def test_several_clusters_in_one_job_each_arrive_once(
    moto: Moto, loopback_hec: FaultHec, tmp_path: Path
) -> None:
    first, second = make_cluster(moto, hsms=1, records=8), make_cluster(moto, hsms=2, records=5)
    args = backfill_args(first, tmp_path / "cp.json", "--cluster", second.cluster_id, "--page-size", "3")
    env = hec_env(moto, loopback_hec.url)
    stopped = run_cli(*args, "--stop-after-pages", "4", env=env)
    assert stopped.returncode == 130, stopped.stderr
    resumed = run_cli(*args, env=env)
    assert resumed.returncode == 0, resumed.stderr
    assert {s["log_group"] for s in summary_of(resumed)["streams"]} == {first.log_group, second.log_group}
    expected = expected_ids(moto, first) + expected_ids(moto, second)
    assert sorted(delivered_ids(loopback_hec)) == sorted(expected)


def test_cloudwatch_unreachable_is_retried_then_named_in_one_line(tmp_path: Path) -> None:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    env = {
        "AWS_ENDPOINT_URL": f"http://127.0.0.1:{port}",
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
    }
    result = run_cli(
        "backfill", "--cluster", "cluster-unreachable", "--since", "1d", "--out", str(tmp_path / "o.jsonl"),
        "--checkpoint", str(tmp_path / "cp.json"), "--no-progress", "--retry-base-delay", "0.01", env=env,
    )  # fmt: skip
    assert result.returncode == 1
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("hsmaudit: DescribeLogStreams: cannot reach CloudWatch Logs")
    assert "Traceback" not in result.stderr


def test_a_killed_backfill_into_the_store_resumes_with_every_record_once(moto: Moto, tmp_path: Path) -> None:
    from hsmaudit.store.database import EventStore

    # GIVEN a slow backfill into the local store, killed hard (SIGKILL: no chance to clean up)
    cluster = make_cluster(moto, hsms=2, records=30)
    checkpoint, db = tmp_path / "cp.json", tmp_path / "events.sqlite3"
    args = backfill_args(cluster, checkpoint, "--db", str(db), "--page-size", "4")
    args[args.index("--max-rps") + 1] = "3"
    process = subprocess.Popen(
        [HSMAUDIT, *args], env=clean_env(moto.env), stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    deadline = time.monotonic() + 30
    while not checkpoint.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(0.5)
    process.kill()
    process.communicate(timeout=30)
    with EventStore(db) as store:
        assert 0 < store.count_events() < cluster.total
    # WHEN the same command runs again THEN the store holds every record exactly once
    again = run_cli(*backfill_args(cluster, checkpoint, "--db", str(db), "--page-size", "4"), env=moto.env)
    assert again.returncode == 0, again.stderr
    with EventStore(db) as store:
        ids = sorted(event.event_id or "" for _, event in store.iter_events())
    assert ids == sorted(expected_ids(moto, cluster))
