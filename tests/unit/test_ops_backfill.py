"""`ops.backfill` in-process, the parts that need no AWS: the job a command line means (and
keeps meaning on resume), the default checkpoint file, the summary and the stop flag.

The engine reading CloudWatch Logs (moto on loopback) is in `tests/integration/test_ops_backfill.py`.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from hsmaudit.ops.backfill import (
    DEFAULT_STATE_DIR,
    BackfillOptionError,
    BackfillSummary,
    StopFlag,
    StreamResult,
    default_checkpoint_path,
    resolve_job,
)
from hsmaudit.sources.checkpoint import CheckpointError, StreamPosition, load_checkpoint, save_checkpoint

DAY_MS = 86_400_000
NOW_MS = 1_750_000_000_000
GROUP = "/aws/cloudhsm/cluster-abc123def45"


def test_a_relative_window_is_resolved_once_and_kept_by_every_resume(tmp_path: Path) -> None:
    # GIVEN a first run of `--since 2d` with no --until, saved as its checkpoint
    path = tmp_path / "cp.json"
    job, found, state = resolve_job(
        clusters=["cluster-abc123def45"],
        log_groups=[],
        since="2d",
        until=None,
        checkpoint=path,
        now_ms=NOW_MS,
        destination="db /x.sqlite3",
    )
    assert found == path
    assert job.log_groups == (GROUP,)
    assert (job.since_ms, job.until_ms) == (NOW_MS - 2 * DAY_MS, NOW_MS)
    assert (state.anchor_ms, state.destination, state.streams) == (NOW_MS, "db /x.sqlite3", {})
    save_checkpoint(path, state.with_position(GROUP, "hsm-1", StreamPosition(timestamp=5, delivered=3)))
    # WHEN the same command runs again three hours later
    again, _, resumed = resolve_job(
        clusters=["cluster-abc123def45"],
        log_groups=[GROUP],  # the same group twice counts once
        since="2d",
        until=None,
        checkpoint=path,
        now_ms=NOW_MS + 3 * 3_600_000,
        destination="db /x.sqlite3",
    )
    # THEN it is the same window, and the positions come with it
    assert again == job
    assert resumed.position(GROUP, "hsm-1") == StreamPosition(timestamp=5, delivered=3)
    # AND --restart starts over from the new moment
    restarted, _, fresh = resolve_job(
        clusters=["cluster-abc123def45"],
        log_groups=[],
        since="2d",
        until=None,
        checkpoint=path,
        restart=True,
        now_ms=NOW_MS + DAY_MS,
    )
    assert restarted.until_ms == NOW_MS + DAY_MS
    assert fresh.streams == {}


def test_a_checkpoint_without_a_destination_takes_the_first_runs(tmp_path: Path) -> None:
    path = tmp_path / "cp.json"
    _, _, state = resolve_job(
        clusters=[], log_groups=[GROUP], since="1d", until=None, checkpoint=path, now_ms=NOW_MS
    )
    assert state.destination is None
    save_checkpoint(path, state)
    _, _, adopted = resolve_job(
        clusters=[], log_groups=[GROUP], since="1d", until=None, checkpoint=path, destination="out -"
    )
    assert adopted.destination == "out -"
    assert load_checkpoint(path) == state  # adopting is not written until the engine saves


def test_another_window_or_destination_for_a_checkpoint_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "cp.json"
    _, _, state = resolve_job(
        clusters=[],
        log_groups=[GROUP],
        since="1d",
        until=None,
        checkpoint=path,
        now_ms=NOW_MS,
        destination="a",
    )
    save_checkpoint(path, state)
    with pytest.raises(CheckpointError, match="belongs to another backfill"):
        resolve_job(clusters=[], log_groups=[GROUP], since="3d", until=None, checkpoint=path, destination="a")
    with pytest.raises(CheckpointError, match="records delivery to a, not to b"):
        resolve_job(clusters=[], log_groups=[GROUP], since="1d", until=None, checkpoint=path, destination="b")


@pytest.mark.parametrize(
    ("clusters", "since", "until", "message"),
    [
        ([], "1d", None, "give at least one --cluster or --log-group"),
        (["cluster-abc"], None, None, "say where history starts"),
        (["cluster-abc"], "yesterday-ish", None, "yesterday-ish"),
        (["cluster-abc"], "2024-01-02", "2024-01-01", r"--until \(2024-01-01T00:00:00.000Z\) must be after"),
    ],
)
def test_options_that_describe_no_backfill_say_what_is_missing(
    tmp_path: Path, clusters: list[str], since: str | None, until: str | None, message: str
) -> None:
    with pytest.raises(BackfillOptionError, match=message):
        resolve_job(
            clusters=clusters, log_groups=[], since=since, until=until, checkpoint=tmp_path / "cp.json"
        )
    assert not (tmp_path / "cp.json").exists()


def test_the_default_checkpoint_is_one_file_per_job_and_destination() -> None:
    one = default_checkpoint_path(["/aws/cloudhsm/b", "/aws/cloudhsm/a"], "90D ", "db /x")
    assert one.parent == DEFAULT_STATE_DIR
    assert one.name.startswith("backfill-")
    assert one.suffix == ".json"
    # the order of the groups and the spelling's case and spaces do not make another job
    assert default_checkpoint_path(["/aws/cloudhsm/a", "/aws/cloudhsm/b"], "90d", "db /x") == one
    # another destination or another start does
    assert default_checkpoint_path(["/aws/cloudhsm/a", "/aws/cloudhsm/b"], "90d", "out -") != one
    assert default_checkpoint_path(["/aws/cloudhsm/a", "/aws/cloudhsm/b"], "30d", "db /x") != one


def test_the_summary_totals_every_stream() -> None:
    summary = BackfillSummary(checkpoint="cp.json", destination="d", since="s", until="u", seconds=2.0)
    summary.streams = [
        StreamResult(GROUP, "hsm-1", read=10, skipped=2, delivered=8, accepted=8, pages=2, complete=True),
        StreamResult(GROUP, "hsm-2", read=5, delivered=5, spooled=5, parse_errors=1, pages=1),
    ]
    data = summary.to_json()
    assert summary.totals() == {
        "read": 15,
        "skipped": 2,
        "delivered": 13,
        "accepted": 8,
        "spooled": 5,
        "duplicates": 0,
        "parse_errors": 1,
        "pages": 3,
    }
    assert data["events_per_second"] == 6.5
    assert [stream["stream"] for stream in data["streams"]] == ["hsm-1", "hsm-2"]
    assert data["delivered"] == 13


def test_the_first_stop_reason_is_the_one_reported() -> None:
    stop = StopFlag()
    assert not stop.requested
    stop.request("interrupted")
    stop.request("stopped after 3 pages (--stop-after-pages)")
    assert (stop.requested, stop.reason) == (True, "interrupted")
