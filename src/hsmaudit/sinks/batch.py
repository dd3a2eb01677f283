"""Batching: HEC event lines -> requests capped by event count and uncompressed bytes.

Facts: `docs/reference/splunk.md` §1.4-§1.5 and §1.10. HEC takes envelopes back to
back in one body; its limits apply to the *decompressed* body, so batches are sized by their
uncompressed bytes (an OTel issue shows gzip'd batches slipping past client-side checks). Splunk's
own collectors cap requests at 1-2 MiB; we default to 1 MiB and 500 events (`hsmaudit.defaults`,
through `hec.policy.BatchPolicy`), never above 5 MiB.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Final

from hsmaudit import defaults

MAX_BYTES_LIMIT: Final = defaults.HEC_MAX_EVENT_BYTES
"""HEC's default `maxEventSize` (inputs.conf [http]); no request of ours is larger."""

LINE_SEPARATOR: Final = b"\n"


def batch_lines(lines: Iterable[bytes], *, max_events: int, max_bytes: int) -> Iterator[list[bytes]]:
    """Group lines into batches of at most `max_events` lines and `max_bytes` body bytes.

    The body of a batch is the lines joined by `\\n`, so a batch's size counts one separator per
    line. A single line larger than `max_bytes` becomes a batch on its own rather than being
    dropped: HEC decides whether it is too large, and the client spools it if so.

    >>> [len(b) for b in batch_lines([b"x" * 10] * 5, max_events=2, max_bytes=100)]
    [2, 2, 1]
    """
    if max_events < 1:
        raise ValueError("max_events must be at least 1")
    if max_bytes < 1:
        raise ValueError("max_bytes must be at least 1")
    batch: list[bytes] = []
    size = 0
    for line in lines:
        cost = len(line) + 1
        if batch and (len(batch) >= max_events or size + cost > max_bytes):
            yield batch
            batch, size = [], 0
        batch.append(line)
        size += cost
    if batch:
        yield batch


def join_lines(lines: list[bytes]) -> bytes:
    """The request body of a batch: envelopes separated by newlines (HEC allows whitespace)."""
    return LINE_SEPARATOR.join(lines)
