"""Backfill checkpoints: positions skip exactly what was delivered; files are written atomically."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hsmaudit.sources.checkpoint import (
    BackfillJob,
    Checkpoint,
    CheckpointError,
    StreamPosition,
    check_job,
    load_checkpoint,
    save_checkpoint,
)

JOB = BackfillJob(log_groups=("/aws/cloudhsm/cluster-abc",), since_ms=1_000, until_ms=9_000)

# A stream: events in timestamp order, several may share a millisecond; ids unique.
streams = st.lists(st.integers(min_value=1_000, max_value=1_020), max_size=60).map(
    lambda stamps: [(stamp, f"id-{index}") for index, stamp in enumerate(sorted(stamps))]
)


@given(stream=streams, cuts=st.lists(st.integers(min_value=0, max_value=60), max_size=6))
def test_resuming_from_any_batch_boundary_delivers_the_rest_exactly_once(
    stream: list[tuple[int, str]], cuts: list[int]
) -> None:
    # GIVEN a stream delivered in batches, interrupted after any batch
    boundaries = sorted({min(cut, len(stream)) for cut in cuts} | {0, len(stream)})
    for stop in boundaries:
        position = StreamPosition()
        start = 0
        for end in [b for b in boundaries if b <= stop][1:]:
            position = position.advance(stream[start:end])
            start = end
        # WHEN a resumed reader re-reads from the position's timestamp (inclusive, like startTime)
        since = position.timestamp if position.timestamp is not None else 0
        reread = [(t, i) for t, i in stream if t >= since]
        remaining = [(t, i) for t, i in reread if not position.delivered_already(t, i)]
        # THEN delivered + remaining is the stream, once each, in order
        assert stream[:stop] + remaining == stream
        assert position.delivered == stop


def test_events_sharing_the_last_millisecond_are_remembered_by_id() -> None:
    position = StreamPosition().advance([(5, "a"), (7, "b"), (7, "c")])
    assert position.timestamp == 7
    assert position.event_ids == ("b", "c")
    assert position.delivered_already(7, "b")
    assert not position.delivered_already(7, "d")
    assert position.delivered_already(6, "anything")
    assert not position.delivered_already(8, "b")


def test_advancing_backwards_in_time_is_refused() -> None:
    position = StreamPosition().advance([(10, "a")])
    with pytest.raises(CheckpointError, match="out of order"):
        position.advance([(9, "b")])


def test_a_saved_checkpoint_loads_back_equal(tmp_path: Path) -> None:
    path = tmp_path / "sub" / "backfill.json"
    checkpoint = Checkpoint(job=JOB).with_position(
        "/aws/cloudhsm/cluster-abc", "hsm-1", StreamPosition().advance([(1_500, "x")]).completed()
    )
    save_checkpoint(path, checkpoint)
    assert load_checkpoint(path) == checkpoint
    assert json.loads(path.read_text())["streams"]["/aws/cloudhsm/cluster-abc"]["hsm-1"]["complete"] is True
    # no temporary file is left next to it
    assert [p.name for p in path.parent.iterdir()] == ["backfill.json"]


def test_a_missing_checkpoint_loads_as_none(tmp_path: Path) -> None:
    assert load_checkpoint(tmp_path / "none.json") is None


def test_a_torn_or_foreign_file_is_an_error_naming_the_file(tmp_path: Path) -> None:
    path = tmp_path / "cp.json"
    path.write_text('{"job": {"log_groups": [')
    with pytest.raises(CheckpointError, match=r"cp\.json is not a valid checkpoint"):
        load_checkpoint(path)


def test_a_failed_rename_raises_and_leaves_no_temporary_file(tmp_path: Path) -> None:
    # GIVEN a checkpoint path that cannot be replaced (a non-empty directory sits there)
    path = tmp_path / "cp.json"
    path.mkdir()
    (path / "keep").write_text("x")
    # WHEN saving THEN a one-line error names the file, and no temporary file is left behind
    with pytest.raises(CheckpointError, match=r"cp\.json: cannot write"):
        save_checkpoint(path, Checkpoint(job=JOB))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cp.json"]


def test_an_unwritable_directory_is_an_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(CheckpointError, match="cannot write"):
        save_checkpoint(blocker / "cp.json", Checkpoint(job=JOB))


def test_a_checkpoint_of_another_window_is_refused() -> None:
    other = BackfillJob(log_groups=JOB.log_groups, since_ms=JOB.since_ms, until_ms=JOB.until_ms + 1)
    with pytest.raises(CheckpointError, match=r"belongs to another backfill.*window"):
        check_job(Checkpoint(job=JOB), other, path="cp.json")
    check_job(Checkpoint(job=JOB), JOB, path="cp.json")


def test_delivered_counts_every_stream() -> None:
    checkpoint = (
        Checkpoint(job=JOB)
        .with_position("g", "a", StreamPosition().advance([(1, "x"), (2, "y")]))
        .with_position("g", "b", StreamPosition().advance([(1, "z")]))
    )
    assert checkpoint.delivered() == 3
    assert checkpoint.position("g", "missing") == StreamPosition()
