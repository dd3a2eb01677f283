"""Hostile records and payloads: the parser and the decoders are total and bounded.

An attacker who can write to a log group controls record text; every such input must come back as
an event (flagged with `parse_error`, `raw` kept) or, for a payload, as one `SourceDecodeError`,
never another exception, and it must encode to JSON afterwards.
"""

from __future__ import annotations

import gzip
import zlib

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hsmaudit.records.parse import SURROGATES_ESCAPED, parse_message
from hsmaudit.sources.cloudwatch import MAX_DECOMPRESSED_BYTES, decode_documents, gunzip
from hsmaudit.sources.errors import SourceDecodeError

GOOD = (
    "Time: 12/19/17 21:01:17.140812, usecs:1513717277140812\n"
    "Sequence No : 0x3\n"
    "Reboot counter : 0xe8\n"
    "Command Type(hex) : CN_MGMT_CMD (0x0)\n"
    "Opcode : CN_LOGIN (0xd)\n"
    "Session Handle : 0x1004001\n"
    "Response : 0:HSM Return: SUCCESS\n"
    "Log type : MGMT_USER_DETAILS_LOG (2)\n"
    "User Name : admin\n"
    "User Type : CN_CRYPTO_OFFICER (2)"
)
GROUP, STREAM = "/aws/cloudhsm/cluster-abc123", "hsm-def456"


def _parse(message: str) -> msgspec.Struct:
    event = parse_message(message, log_group=GROUP, log_stream=STREAM)
    msgspec.json.encode(event)  # every event must be encodable (JSON lines, HEC, SQLite)
    return event


def test_certificate_json_nested_deeper_than_any_decoder_allows_is_a_flagged_event() -> None:
    message = '{"op_code": ' + "[" * 100_000 + "]" * 100_000 + "}"
    event = _parse(message)
    assert event.parse_error is not None
    assert event.raw == message


def test_usecs_past_the_int_digit_limit_falls_back_to_the_line_path_and_names_the_value() -> None:
    huge = "9" * 5000
    message = GOOD.replace("usecs:1513717277140812", f"usecs:{huge}")
    event = _parse(message)
    assert event.parse_error is not None
    assert event.raw == message
    assert event.opcode == "CN_LOGIN"  # everything else that could be read is still there


def test_lone_surrogates_are_kept_as_escapes_and_flagged() -> None:
    message = GOOD.replace("admin", "ad\udc80min\ud800")
    event = _parse(message)
    assert event.parse_error is not None and SURROGATES_ESCAPED in event.parse_error
    assert event.raw is not None and "\\udc80" in event.raw and "\\ud800" in event.raw
    assert event.user_name == "ad\\udc80min\\ud800"
    assert event.opcode == "CN_LOGIN"


@pytest.mark.parametrize("size", [64 * 1024, 1024 * 1024])
def test_a_megabyte_of_whitespace_in_a_line_parses_in_linear_time(size: int) -> None:
    # The old line regex backtracked quadratically here (64 KB took 23 s); a stall fails the suite.
    message = GOOD.replace("Opcode : CN_LOGIN (0xd)", "Opcode : CN_LOGIN (0xd)" + " " * size + "x")
    event = _parse(message)
    assert event.raw == message
    no_colon = GOOD + "\n" + " \t" * (size // 2) + "junk"
    assert _parse(no_colon).parse_error is not None


NASTY_TEXT = st.one_of(
    st.text(),
    st.text(alphabet=st.sampled_from(' \t\r\n:{}[]"0123456789abcdefx\ud800\udfff')),
    st.builds(lambda n, d: "[" * n + "1" + "]" * d, st.integers(0, 5000), st.integers(0, 5000)),
    st.builds(lambda s: '{"op_code": "X", "timestamp": ' + s + "}", st.text("0123456789e.-+", max_size=6000)),
)


@settings(max_examples=300, deadline=None)
@given(line=NASTY_TEXT, position=st.integers(0, 9))
def test_any_text_inside_a_record_becomes_an_encodable_event(line: str, position: int) -> None:
    lines = GOOD.split("\n")
    lines.insert(position, line)
    message = "\n".join(lines)
    event = _parse(message)
    assert event.raw is not None  # raw kept (escaped only where it had no UTF-8 form)


@settings(max_examples=300, deadline=None)
@given(message=NASTY_TEXT)
def test_any_message_becomes_an_encodable_event(message: str) -> None:
    event = _parse(message)
    assert event.raw is not None


@settings(max_examples=100, deadline=None)
@given(parts=st.lists(st.binary(max_size=200), max_size=30))
def test_gunzip_reads_every_member(parts: list[bytes]) -> None:
    assert gunzip(b"".join(gzip.compress(p) for p in parts)) == b"".join(parts)


def test_many_empty_gzip_members_are_linear() -> None:
    member = gzip.compress(b"")
    payload = member * 200_000  # ~4 MiB of empty members: froze the old member loop
    assert gunzip(payload + gzip.compress(b"end")) == b"end"


def test_a_compression_bomb_is_refused_without_decompressing_it_all() -> None:
    compressor = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    chunk = bytes(1024 * 1024)
    bomb = b"".join(compressor.compress(chunk) for _ in range(200)) + compressor.flush()
    assert len(bomb) < 300_000  # a CloudWatch-sized payload holding 200 MiB
    with pytest.raises(SourceDecodeError, match="compression bomb"):
        gunzip(bomb)
    assert len(gunzip(bomb, limit=300 * 1024 * 1024)) == 200 * 1024 * 1024
    assert MAX_DECOMPRESSED_BYTES < 256 * 1024 * 1024  # under half the function's 512 MB


@pytest.mark.parametrize(
    "data",
    [b"\x1f\x8b\x08\x00garbage", gzip.compress(b"x", mtime=0)[:-3], b"not gzip"],
    ids=["bad-header", "truncated", "not-gzip"],
)
def test_broken_gzip_is_one_decode_error(data: bytes) -> None:
    with pytest.raises(SourceDecodeError, match="not valid gzip"):
        gunzip(data)


@pytest.mark.parametrize(
    "payload",
    [
        b"[" * 100_000 + b"]" * 100_000,
        b'{"messageType": "DATA_MESSAGE"} ' + b"[" * 100_000,
        b'{"a": 1} {"logEvents": ' + b"9" * 5000 + b"}",
        b'{"a": 1} \xff\xfe',
    ],
)
def test_hostile_documents_are_one_decode_error(payload: bytes) -> None:
    with pytest.raises(SourceDecodeError):
        decode_documents(payload)
