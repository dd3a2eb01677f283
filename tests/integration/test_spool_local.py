"""`LocalSpool` on a real directory: durable, atomic, readable back exactly, safe to delete twice."""

from __future__ import annotations

import gzip
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hsmaudit.aws.spools import SPOOLS, open_spool
from hsmaudit.sinks.errors import SpoolError
from hsmaudit.sinks.spool import LocalSpool, SpoolBatch, decode_batch, encode_batch


def test_round_trip_keeps_lines_reason_and_metadata(tmp_path: Path) -> None:
    spool = LocalSpool(tmp_path / "spool")
    batch = SpoolBatch(
        lines=(b'{"event":"\xe6\x97\xa5\\u0000"}', b"{}"),
        reason="HEC busy",
        metadata={"aws_request_id": "r-1"},
    )
    where = spool.put(batch)
    assert Path(where).is_file() and Path(where).parent == tmp_path / "spool"
    assert list(spool.list()) == [batch.batch_id]
    assert spool.get(batch.batch_id) == batch
    assert [p.name for p in (tmp_path / "spool").iterdir()] == [Path(where).name]  # no temp files left


def test_listing_is_oldest_first_and_a_missing_directory_is_empty(tmp_path: Path) -> None:
    spool = LocalSpool(tmp_path / "absent")
    assert list(spool.list()) == []
    ids = [spool.put(SpoolBatch(lines=(b"{}",), reason=str(i))) and None for i in range(3)]
    assert len(ids) == 3
    listed = list(spool.list())
    assert listed == sorted(listed) and [spool.get(b).reason for b in listed] == ["0", "1", "2"]


def test_delete_is_idempotent(tmp_path: Path) -> None:
    spool = LocalSpool(tmp_path)
    batch = SpoolBatch(lines=(b"{}",), reason="x")
    spool.put(batch)
    spool.delete(batch.batch_id)
    spool.delete(batch.batch_id)
    assert list(spool.list()) == []


def test_a_corrupt_or_foreign_file_raises_spool_error_naming_it(tmp_path: Path) -> None:
    spool = LocalSpool(tmp_path)
    (tmp_path / "20260101T000000000000Z-aaaaaaaaaaaa.hsmspool.gz").write_bytes(b"not gzip")
    (tmp_path / "20260101T000000000001Z-bbbbbbbbbbbb.hsmspool.gz").write_bytes(
        gzip.compress(
            b'{"format":"other/9","batch_id":"x","kind":"hec","reason":"","created":"","count":0}\n'
        )
    )
    first, second = spool.list()
    with pytest.raises(SpoolError, match=f"{first} is not readable"):
        spool.get(first)
    with pytest.raises(SpoolError, match="unknown format"):
        spool.get(second)


@pytest.mark.parametrize("batch_id", ["../escape", "a/b", "", ".hidden"])
def test_batch_ids_cannot_leave_the_directory(tmp_path: Path, batch_id: str) -> None:
    with pytest.raises(SpoolError, match="not a spool batch id"):
        LocalSpool(tmp_path).get(batch_id)


def test_a_line_with_a_newline_is_refused_rather_than_split_later() -> None:
    with pytest.raises(ValueError, match="one line"):
        encode_batch(SpoolBatch(lines=(b"{\n}",), reason="x"))


def test_unwritable_directory_raises_spool_error(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("x")
    with pytest.raises(SpoolError, match="cannot write spool file"):
        LocalSpool(tmp_path / "file" / "spool").put(SpoolBatch(lines=(b"{}",), reason="x"))


def test_open_spool_picks_the_back_end_by_location(tmp_path: Path) -> None:
    assert isinstance(open_spool(str(tmp_path)), LocalSpool)
    assert set(SPOOLS) == {"local", "s3"}


@settings(max_examples=50)
@given(
    lines=st.lists(st.binary(max_size=80).filter(lambda b: b"\n" not in b), min_size=1, max_size=20),
    reason=st.text(max_size=60),
    payload=st.binary(max_size=200),
)
def test_encoding_round_trips_any_batch(lines: list[bytes], reason: str, payload: bytes) -> None:
    hec = SpoolBatch(lines=tuple(lines), reason=reason)
    raw = SpoolBatch(kind="payload", payload=payload, reason=reason)
    assert decode_batch(encode_batch(hec), name="t") == hec
    assert decode_batch(encode_batch(raw), name="t") == raw
