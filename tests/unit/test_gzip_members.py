"""`sources.gzip_members`: the one bounded inflater both gzip readers (Lambda, collector) use."""

from __future__ import annotations

import gzip

import pytest

from hsmaudit.sources.gzip_members import InflateError, InflateLimitError, inflate_members


def test_every_member_is_inflated_in_order_within_the_step() -> None:
    parts = [b"a" * 300_000, b"", b"bc" * 10]
    data = b"".join(gzip.compress(part, mtime=0) for part in parts)
    chunks = list(inflate_members(data, limit=1 << 20, in_step=4096, out_step=65536))
    assert b"".join(chunks) == b"".join(parts)
    assert max(len(chunk) for chunk in chunks) <= 65536


def test_past_the_limit_it_stops_before_producing_much_more() -> None:
    bomb = gzip.compress(b"\0" * (8 << 20), mtime=0)
    produced = 0
    with pytest.raises(InflateLimitError) as caught:
        for chunk in inflate_members(bomb, limit=1 << 20, out_step=256 * 1024):
            produced += len(chunk)
    assert produced <= 1 << 20
    assert caught.value.limit == 1 << 20 and caught.value.produced <= (1 << 20) + 1


def test_broken_and_truncated_data_are_one_error_each() -> None:
    with pytest.raises(InflateError) as broken:
        list(inflate_members(b"not gzip at all", limit=1000))
    assert broken.value.reason != "truncated"
    with pytest.raises(InflateError) as truncated:
        list(inflate_members(gzip.compress(b"x" * 100, mtime=0)[:-5], limit=1000))
    assert truncated.value.reason == "truncated"


def test_nul_padding_between_members_is_skipped_only_when_asked() -> None:
    data = gzip.compress(b"one", mtime=0) + b"\0" * 512 + gzip.compress(b"two", mtime=0)
    assert b"".join(inflate_members(data, limit=100, skip_nul_padding=True)) == b"onetwo"
    with pytest.raises(InflateError):
        list(inflate_members(data, limit=100))
