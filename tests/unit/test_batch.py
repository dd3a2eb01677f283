"""Batching HEC lines by count and uncompressed bytes."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hsmaudit.sinks.batch import batch_lines, join_lines


def test_batches_respect_the_event_cap() -> None:
    assert [len(b) for b in batch_lines([b"x"] * 1001, max_events=500, max_bytes=10**6)] == [500, 500, 1]


def test_batches_respect_the_byte_cap_counting_separators() -> None:
    batches = list(batch_lines([b"a" * 9] * 10, max_events=100, max_bytes=30))
    assert [len(b) for b in batches] == [3, 3, 3, 1]
    assert all(len(join_lines(b)) + 1 <= 30 for b in batches)


def test_a_line_larger_than_the_cap_travels_alone_rather_than_being_dropped() -> None:
    big = b"x" * 100
    assert list(batch_lines([b"a", big, b"b"], max_events=10, max_bytes=50)) == [[b"a"], [big], [b"b"]]


def test_nothing_in_nothing_out() -> None:
    assert list(batch_lines([], max_events=1, max_bytes=1)) == []


@pytest.mark.parametrize(("events", "size"), [(0, 10), (1, 0)])
def test_caps_must_be_positive(events: int, size: int) -> None:
    with pytest.raises(ValueError, match="at least 1"):
        list(batch_lines([b"x"], max_events=events, max_bytes=size))


@given(
    lines=st.lists(st.binary(min_size=1, max_size=60).filter(lambda b: b"\n" not in b), max_size=200),
    max_events=st.integers(min_value=1, max_value=50),
    max_bytes=st.integers(min_value=1, max_value=400),
)
def test_batching_keeps_every_line_in_order_within_the_caps(
    lines: list[bytes], max_events: int, max_bytes: int
) -> None:
    batches = list(batch_lines(lines, max_events=max_events, max_bytes=max_bytes))
    assert [line for batch in batches for line in batch] == lines
    for batch in batches:
        assert 1 <= len(batch) <= max_events
        assert len(batch) == 1 or sum(len(line) + 1 for line in batch) <= max_bytes
