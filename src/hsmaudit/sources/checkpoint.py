"""Backfill checkpoints: per log stream, how far delivery has got, written atomically.

A checkpoint is a source's read position (where to read CloudWatch Logs from again), so it sits
in `sources/` beside the transports; `ops/backfill.py` advances it after each kept batch.

`hsmaudit backfill` reads each HSM's log stream in CloudWatch timestamp order and, after every
batch HEC accepted (or the spool or store kept), records here the timestamp (ms) of the last
delivered log event and the `event_id`s delivered *at that timestamp*. A resumed backfill reads
the stream again from that timestamp (GetLogEvents' `startTime` is inclusive) and skips what the
position says was already delivered:

    an event (t, id) was delivered  <=>  t < position.timestamp
                                         or (t == position.timestamp and id in position.event_ids)

so an interruption between two batches leaves no gap and sends no duplicate. (A crash between HEC
accepting a batch and the checkpoint write can repeat that one batch; `event_id` makes it
harmless to Splunk's dedupe search and to the store, whose `event_id` is UNIQUE.) Continuation
tokens are deliberately not stored: they expire, timestamps do not.

A checkpoint belongs to one backfill job (log groups and time window) delivered to one
destination (HEC URL and index, a store file, a JSON-lines file): resuming it with another window
would silently skip or repeat data, and a window delivered into `--db` is not delivered to HEC,
so `check_job` refuses both with a clear message.

The file is JSON, rewritten whole through a temporary file, `fsync` and `os.replace`, so a crash
mid-write leaves either the old or the new checkpoint, never a torn one.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterable
from pathlib import Path
from typing import Final

import msgspec

from hsmaudit.sources.errors import SourceError

CHECKPOINT_VERSION: Final = 1


class CheckpointError(SourceError):
    """The checkpoint file cannot be read, written, or does not belong to this job."""


class StreamPosition(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """How far one log stream has been delivered.

    `timestamp` is the CloudWatch timestamp (ms) of the last delivered log event; `event_ids`
    the ids delivered at exactly that timestamp (several records can share a millisecond).
    `complete` is set once the whole window of the job was read and delivered.
    """

    timestamp: int | None = None
    event_ids: tuple[str, ...] = ()
    delivered: int = 0
    complete: bool = False

    def delivered_already(self, timestamp: int, event_id: str) -> bool:
        """Whether the event at `timestamp` with `event_id` was delivered before this position."""
        if self.timestamp is None:
            return False
        return timestamp < self.timestamp or (timestamp == self.timestamp and event_id in self.event_ids)

    def advance(self, delivered: Iterable[tuple[int, str]]) -> StreamPosition:
        """The position after delivering `(timestamp, event_id)` pairs, in stream order."""
        timestamp = self.timestamp
        ids = list(self.event_ids)
        count = self.delivered
        for event_timestamp, event_id in delivered:
            if timestamp is not None and event_timestamp < timestamp:
                raise CheckpointError(
                    f"events out of order: {event_timestamp} after {timestamp}; "
                    "a stream must be read in time order"
                )
            if event_timestamp != timestamp:
                timestamp = event_timestamp
                ids = []
            if event_id not in ids:
                ids.append(event_id)
            count += 1
        return StreamPosition(
            timestamp=timestamp, event_ids=tuple(ids), delivered=count, complete=self.complete
        )

    def completed(self) -> StreamPosition:
        """The same position, marked as having read the job's whole window."""
        return msgspec.structs.replace(self, complete=True)


class BackfillJob(msgspec.Struct, frozen=True, kw_only=True):
    """What a checkpoint is for: the log groups and the window [since_ms, until_ms)."""

    log_groups: tuple[str, ...]
    since_ms: int
    until_ms: int


class Checkpoint(msgspec.Struct, frozen=True, kw_only=True):
    """A backfill job and the position of each of its streams (`streams[log_group][stream]`).

    `anchor_ms` is when the job was first defined: relative times on the command line (`--since
    90d`) are resolved against it on every resume, so the same command means the same window.
    """

    job: BackfillJob
    streams: dict[str, dict[str, StreamPosition]] = msgspec.field(default_factory=dict)
    anchor_ms: int | None = None
    version: int = CHECKPOINT_VERSION
    destination: str | None = None
    """Where the events went (`hec <url> index=<index>`, `db <path>`, `out <path>`); None in a
    checkpoint written before destinations were recorded (it then takes the first run's)."""

    def position(self, log_group: str, stream: str) -> StreamPosition:
        """The stream's position (the start, when it has none yet)."""
        return self.streams.get(log_group, {}).get(stream, StreamPosition())

    def with_position(self, log_group: str, stream: str, position: StreamPosition) -> Checkpoint:
        """A new checkpoint with one stream's position replaced."""
        streams = {group: dict(positions) for group, positions in self.streams.items()}
        streams.setdefault(log_group, {})[stream] = position
        return msgspec.structs.replace(self, streams=streams)

    def delivered(self) -> int:
        """Events delivered over all streams so far."""
        return sum(
            position.delivered for positions in self.streams.values() for position in positions.values()
        )


def check_job(
    checkpoint: Checkpoint, job: BackfillJob, *, path: Path | str, destination: str | None = None
) -> None:
    """Refuse to resume a checkpoint written for another job (it would skip or repeat data) or
    for another destination (what reached one has not reached the other)."""
    if destination is not None and checkpoint.destination not in (None, destination):
        raise CheckpointError(
            f"checkpoint {path} records delivery to {checkpoint.destination}, not to {destination}: "
            "what reached one has not reached the other; leave out --checkpoint (the default file "
            "is per destination) or give a new one"
        )
    if checkpoint.job == job:
        return
    old, new = checkpoint.job, job
    if sorted(old.log_groups) != sorted(new.log_groups):
        what = f"log groups {', '.join(old.log_groups)}"
    else:
        what = f"window {old.since_ms}..{old.until_ms} ms (asked: {new.since_ms}..{new.until_ms} ms)"
    raise CheckpointError(
        f"checkpoint {path} belongs to another backfill ({what}); "
        "resume it with the same options, or give a new --checkpoint file"
    )


_DECODER: Final = msgspec.json.Decoder(Checkpoint)


def load_checkpoint(path: Path | str) -> Checkpoint | None:
    """The checkpoint stored at `path`, or None when there is no file yet."""
    file = Path(path)
    try:
        data = file.read_bytes()
    except FileNotFoundError:
        return None
    except OSError as error:
        raise CheckpointError(f"checkpoint {file}: cannot read ({error.strerror or error})") from None
    try:
        checkpoint = _DECODER.decode(data)
    except msgspec.DecodeError as error:
        raise CheckpointError(
            f"checkpoint {file} is not a valid checkpoint ({error}); move it away"
        ) from None
    if checkpoint.version != CHECKPOINT_VERSION:
        raise CheckpointError(
            f"checkpoint {file} has version {checkpoint.version}; expected {CHECKPOINT_VERSION}"
        )
    return checkpoint


def save_checkpoint(path: Path | str, checkpoint: Checkpoint) -> None:
    """Write `checkpoint` to `path` atomically (temporary file in the same directory, fsync, rename)."""
    file = Path(path)
    data = msgspec.json.format(msgspec.json.encode(checkpoint), indent=1)
    directory = file.parent if str(file.parent) else Path()
    try:
        directory.mkdir(parents=True, exist_ok=True)
        fd, temporary = tempfile.mkstemp(prefix=f".{file.name}.", suffix=".tmp", dir=directory)
    except OSError as error:
        raise CheckpointError(f"checkpoint {file}: cannot write ({error.strerror or error})") from None
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.write(b"\n")
            handle.flush()
            os.fsync(handle.fileno())
        Path(temporary).replace(file)
    except OSError as error:
        with contextlib.suppress(OSError):
            Path(temporary).unlink()
        raise CheckpointError(f"checkpoint {file}: cannot write ({error.strerror or error})") from None
    _fsync_directory(directory)


def _fsync_directory(directory: Path) -> None:
    # The rename is durable only once the directory entry is (POSIX; not possible on Windows).
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
