"""Concatenated gzip members inflated as a bounded stream: the one place a compression bomb stops.

CloudWatch Logs and Firehose deliver gzip; a hostile writer sends bombs and floods of empty
members. Both readers of gzip (the Lambda's `sources.cloudwatch.gunzip` and the local collector's
request bodies) use this generator, so the defence is written once:

- input goes to zlib in `in_step` slices of a memoryview, so a member's leftover input is at most
  one slice and thousands of tiny members cost linear time (no copy of the rest per member);
- at most `out_step` bytes come out per zlib call, and `InflateLimitError` is raised as soon as
  the total passes `limit`, before more is produced;
- broken or truncated data is one `InflateError`, never a zlib exception.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterator
from typing import Final

from hsmaudit.errors import HsmauditError

GZIP_MAGIC: Final = b"\x1f\x8b"
"""The first two bytes of every gzip member (RFC 1952): how an input says it is compressed."""
_GZIP_WBITS: Final = 16 + zlib.MAX_WBITS


class InflateError(HsmauditError, ValueError):
    """The data is not valid gzip; `reason` says why (zlib's message, or "truncated")."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class InflateLimitError(HsmauditError, ValueError):
    """The members inflate to more than `limit` bytes (`produced` is how far it got)."""

    def __init__(self, produced: int, limit: int) -> None:
        super().__init__(f"inflates to more than {limit} bytes")
        self.produced = produced
        self.limit = limit


def inflate_members(
    data: bytes | bytearray | memoryview,
    *,
    limit: int,
    in_step: int = 64 * 1024,
    out_step: int | None = None,
    skip_nul_padding: bool = False,
) -> Iterator[bytes]:
    """The inflated bytes of every gzip member of `data`, in chunks; raises past `limit`.

    `out_step` caps one chunk (None: up to what is left of `limit`); `skip_nul_padding` skips NUL
    bytes between members, as tape-block writers leave them.
    """
    view = memoryview(data)
    position, size, produced = 0, len(view), 0
    inflater = zlib.decompressobj(_GZIP_WBITS)
    pending: bytes | memoryview = b""
    in_member = False
    try:
        while True:
            if not pending:
                if position >= size:
                    break
                pending = view[position : position + in_step]
                position += len(pending)
            if skip_nul_padding and not in_member and pending[:1] == b"\0":
                pending = bytes(pending).lstrip(b"\0")
                if not pending:
                    continue
            in_member = True
            room = limit + 1 - produced
            chunk = inflater.decompress(pending, room if out_step is None else min(out_step, room))
            produced += len(chunk)
            if produced > limit:
                raise InflateLimitError(produced, limit)
            if chunk:
                yield chunk
            if inflater.eof:
                pending = inflater.unused_data  # at most one slice
                inflater = zlib.decompressobj(_GZIP_WBITS)
                in_member = False
            else:
                pending = inflater.unconsumed_tail
    except zlib.error as error:
        raise InflateError(str(error)) from None
    if in_member:
        raise InflateError("truncated")
