"""What `parse`, `detect` and `send` read: every event of files and stdin, in any input shape.

The sources (`sources/files.py`) unwrap each input into log messages or already-parsed events;
this is where they meet the parser, so the three commands read their inputs the same way. Blank
inputs are reported, not skipped in silence: an empty export is a mistake upstream (a redirect
that failed, the wrong file), not a success.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable, Iterator
from pathlib import Path

from hsmaudit.records.event import HsmEvent
from hsmaudit.sources.files import STDIN, read_bytes, read_paths
from hsmaudit.sources.message import LogMessage, parse_log_message

BLANK_CHECK_LIMIT = 1 << 20
"""A file that yielded no record is read to see whether it is blank only below this size."""


def read_events(
    paths: Iterable[str],
    *,
    log_group: str | None,
    log_stream: str | None,
    empty: list[str] | None = None,
) -> Iterator[HsmEvent]:
    """Every event of every input (`STDIN` is standard input), parsing messages and passing
    parsed events through.

    Blank inputs (nothing but whitespace) are appended to `empty` (when given). An input with
    content but no audit record (a CloudWatch health check, no matching events) is not blank.
    Raises `SourceError` for an input that cannot be read or unwrapped.
    """
    for path in paths:
        if path == STDIN:
            data = sys.stdin.buffer.read()
            items = read_bytes(data, name="<stdin>", log_group=log_group, log_stream=log_stream)
            if not data.strip() and empty is not None:
                empty.append("stdin")
        else:
            items = read_paths([path], log_group=log_group, log_stream=log_stream)
        found = False
        for item in items:
            found = True
            yield parse_log_message(item) if isinstance(item, LogMessage) else item
        if not found and path != STDIN and empty is not None and _blank(path):
            empty.append(path)


def _blank(path: str) -> bool:
    """Whether a file that yielded no record holds nothing but whitespace (read only then)."""
    try:
        file = Path(path)
        size = file.stat().st_size
        return size == 0 or (size < BLANK_CHECK_LIMIT and not file.read_bytes().strip())
    except OSError:
        return False
