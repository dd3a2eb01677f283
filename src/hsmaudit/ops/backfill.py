"""The backfill engine: CloudHSM audit history from CloudWatch Logs, resumably, within quota.

A subscription only sees what happens after it is created; auditors ask about last quarter
(operator-needs.md §1.14, gap 5: no existing tool backfills with checkpoints and quota-safe pacing).
`hsmaudit backfill` (cli/backfill.py) turns its flags into a job here and prints what comes back;
this module has no Typer, no Rich and never exits the process.

The flow, per cluster log group and per HSM stream (one at a time, oldest first):

1. `aws.logs.LogsReader.read_stream` pages GetLogEvents over [since, until), paced below the
   quota and backing off on ThrottlingException;
2. each message is parsed (`sources.message.parse_log_message`, the Lambda's parser);
3. events the checkpoint says were delivered are skipped (`sources.checkpoint.StreamPosition`);
4. the new events go to the destination (`ops.destination`: HEC via the Lambda's `HecClient` and
   spool, the local store, or a JSON-lines file) one HEC request's worth at a time; `deliver`
   returns only when every event of it is kept;
5. only then the checkpoint advances and is written atomically, so a HEC failure half-way through
   a page costs no duplicate on resume.

A `StopFlag` request (the CLI sets it on Ctrl-C or SIGTERM) finishes the page in flight and
leaves the checkpoint written; the same job resumes with no gap and no duplicate.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

import msgspec

from hsmaudit.errors import HsmauditError
from hsmaudit.ops.destination import Delivered, DeliveryError, Destination
from hsmaudit.ops.timespec import TimeSpecError, format_ms, parse_time_ms
from hsmaudit.records.context import cluster_id_from_log_group
from hsmaudit.sources.checkpoint import (
    BackfillJob,
    Checkpoint,
    StreamPosition,
    check_job,
    load_checkpoint,
    save_checkpoint,
)
from hsmaudit.sources.message import parse_log_message

if TYPE_CHECKING:
    from hsmaudit.aws.logs import LogsReader, LogStreamInfo
    from hsmaudit.records.event import HsmEvent

DEFAULT_STATE_DIR: Final = Path(".hsmaudit")

LAST_EVENT_SLACK_MS: Final = 24 * 3_600_000
"""DescribeLogStreams' `lastEventTimestamp` is eventually consistent ("typically updates in less
than an hour from ingestion, but in rare situations might take longer", CloudWatch Logs API
reference): a stream is skipped as too old only when it ended a day before the window."""


class BackfillOptionError(HsmauditError, ValueError):
    """The options do not describe a backfill (missing or contradictory)."""


@dataclass
class StreamResult:
    """What happened to one stream."""

    log_group: str
    stream: str
    read: int = 0
    skipped: int = 0
    delivered: int = 0
    accepted: int = 0
    spooled: int = 0
    duplicates: int = 0
    parse_errors: int = 0
    pages: int = 0
    complete: bool = False
    seconds: float = 0.0
    earlier: int = 0
    """Events the checkpoint says earlier runs delivered to this destination."""


@dataclass
class BackfillSummary:
    """The whole run, as printed by `--json`."""

    checkpoint: str
    destination: str
    since: str
    until: str
    streams: list[StreamResult] = field(default_factory=list)
    interrupted: bool = False
    complete: bool = False
    seconds: float = 0.0
    aws_requests: int = 0
    throttled: int = 0
    retries: int = 0
    backoff_seconds: float = 0.0
    max_rps: float = 0.0
    lowest_rps: float = 0.0  # the pace GetLogEvents was slowed down to after throttling
    spooled_reasons: dict[str, int] = field(default_factory=dict)
    """Why events went to the spool instead of HEC: reason -> events."""
    spool: str | None = None

    def totals(self) -> dict[str, int]:
        keys = ("read", "skipped", "delivered", "accepted", "spooled", "duplicates", "parse_errors", "pages")
        return {key: sum(getattr(result, key) for result in self.streams) for key in keys}

    def to_json(self) -> dict[str, Any]:
        totals = self.totals()
        rate = totals["delivered"] / self.seconds if self.seconds > 0 else 0.0
        return {
            **{key: value for key, value in asdict(self).items() if key != "streams"},
            **totals,
            "events_per_second": round(rate, 1),
            "streams": [asdict(result) for result in self.streams],
        }


class NullProgress:
    """Progress callbacks; this one does nothing (used with --no-progress and in tests)."""

    def start(self, key: str, total_ms: int) -> None:
        """A stream starts; its window spans `total_ms`."""

    def update(self, key: str, done_ms: int, events: int) -> None:
        """The stream is read up to `done_ms` into its window, with `events` delivered."""

    def finish(self, key: str) -> None:
        """The stream is done."""


class StopFlag:
    """Set by SIGINT/SIGTERM (or a page limit): stop after the page in flight."""

    def __init__(self) -> None:
        self.requested = False
        self.reason = ""

    def request(self, reason: str) -> None:
        self.requested = True
        self.reason = self.reason or reason


class Backfill:
    """Reads, delivers and checkpoints every stream of the job; see the module docstring."""

    def __init__(
        self,
        reader: LogsReader,
        destination: Destination,
        *,
        job: BackfillJob,
        checkpoint_path: Path,
        checkpoint: Checkpoint,
        streams: Sequence[str] = (),
        page_size: int | None = None,
        stop_after_pages: int | None = None,
        progress: NullProgress | None = None,
        stop: StopFlag | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.reader = reader
        self.destination = destination
        self.job = job
        self.checkpoint_path = checkpoint_path
        self.checkpoint = checkpoint
        self.only_streams = set(streams)
        self.page_size = page_size
        self.stop_after_pages = stop_after_pages
        self.progress = progress or NullProgress()
        self.stop = stop or StopFlag()
        self._clock = clock
        self._pages = 0
        self.reasons: dict[str, int] = {}

    def plan(self) -> list[tuple[str, LogStreamInfo]]:
        """Every (log group, stream) to read, skipping streams with no events in the window."""
        planned: list[tuple[str, LogStreamInfo]] = []
        for log_group in self.job.log_groups:
            for info in self.reader.describe_streams(log_group):
                if self.only_streams and info.name not in self.only_streams:
                    continue
                if (
                    info.last_event_ms is not None
                    and info.last_event_ms + LAST_EVENT_SLACK_MS < self.job.since_ms
                ):
                    continue
                if info.first_event_ms is not None and info.first_event_ms >= self.job.until_ms:
                    continue
                planned.append((log_group, info))
        return planned

    def run(self, summary: BackfillSummary) -> BackfillSummary:
        """Read and deliver every planned stream into `summary` (filled in even when one raises)."""
        started = self._clock()
        try:
            for log_group, info in self.plan():
                if self.stop.requested:
                    break
                summary.streams.append(self._stream(log_group, info))
        finally:
            summary.seconds = round(self._clock() - started, 3)
            stats = self.reader.stats
            summary.aws_requests = stats.requests
            summary.throttled = stats.throttled
            summary.retries = stats.retries
            summary.backoff_seconds = round(stats.backoff_seconds, 3)
            pace = self.reader.limiters.get("GetLogEvents")
            if pace is not None:
                summary.max_rps = pace.configured
                summary.lowest_rps = round(pace.lowest, 3)
        summary.spooled_reasons = dict(self.reasons)
        summary.interrupted = self.stop.requested
        summary.complete = not self.stop.requested and all(result.complete for result in summary.streams)
        return summary

    def _stream(self, log_group: str, info: LogStreamInfo) -> StreamResult:
        result = StreamResult(log_group=log_group, stream=info.name)
        position = self.checkpoint.position(log_group, info.name)
        key = f"{cluster_id_from_log_group(log_group) or log_group}/{info.name}"
        window_start = max(self.job.since_ms, info.first_event_ms or self.job.since_ms)
        window_end = min(self.job.until_ms, (info.last_event_ms or self.job.until_ms - 1) + 1)
        total = max(1, window_end - window_start)
        self.progress.start(key, total)
        result.earlier = position.delivered
        if position.complete:
            result.complete = True
            result.delivered = 0
            self.progress.update(key, total, position.delivered)
            self.progress.finish(key)
            return result
        start_ms = (
            self.job.since_ms if position.timestamp is None else max(self.job.since_ms, position.timestamp)
        )
        started = self._clock()
        delivered_total = position.delivered
        try:
            for page in self.reader.read_stream(
                log_group, info.name, start_ms=start_ms, end_ms=self.job.until_ms, page_size=self.page_size
            ):
                result.pages += 1
                result.read += len(page)
                fresh = []
                for message in page:
                    event = parse_log_message(message)
                    stamp = message.timestamp or 0
                    if position.delivered_already(stamp, event.event_id or ""):
                        result.skipped += 1
                        continue
                    if event.parse_error:
                        result.parse_errors += 1
                    fresh.append((stamp, event))
                # One HEC request's worth at a time, checkpointed after each: if HEC fails half-way
                # through a page, what it accepted is already recorded and is not sent again.
                size = self.destination.chunk_size or len(fresh) or 1
                for begin in range(0, len(fresh), size):
                    if self.stop.requested:
                        break  # Ctrl-C: what was kept is checkpointed; the rest is read again later
                    chunk = fresh[begin : begin + size]
                    delivered = self.destination.deliver([event for _, event in chunk])
                    self._count(result, delivered)
                    for reason, count in delivered.reasons.items():
                        self.reasons[reason] = self.reasons.get(reason, 0) + count
                    position = position.advance((stamp, event.event_id or "") for stamp, event in chunk)
                    self._save(log_group, info.name, position)
                    delivered_total = position.delivered
                last_stamp = page[-1].timestamp or window_start
                self.progress.update(key, min(total, max(0, last_stamp - window_start + 1)), delivered_total)
                self._pages += 1
                if self.stop_after_pages is not None and self._pages >= self.stop_after_pages:
                    self.stop.request(f"stopped after {self._pages} pages (--stop-after-pages)")
                if self.stop.requested:
                    return result
            position = position.completed()
            self._save(log_group, info.name, position)
            result.complete = True
            self.progress.update(key, total, position.delivered)
            return result
        finally:
            result.seconds = round(self._clock() - started, 3)
            self.progress.finish(key)

    @staticmethod
    def _count(result: StreamResult, delivered: Delivered) -> None:
        result.delivered += delivered.events
        result.accepted += delivered.accepted
        result.spooled += delivered.spooled
        result.duplicates += delivered.duplicates

    def _save(self, log_group: str, stream: str, position: StreamPosition) -> None:
        self.checkpoint = self.checkpoint.with_position(log_group, stream, position)
        save_checkpoint(self.checkpoint_path, self.checkpoint)


def default_checkpoint_path(log_groups: Sequence[str], since: str, destination: str = "") -> Path:
    """`.hsmaudit/backfill-<digest>.json`: the same command line finds its own checkpoint again.

    The destination is part of the digest: the same window backfilled into `--db` and then to
    HEC is two jobs, each with its own progress (one checkpoint for both reported the HEC run
    "complete: 0 events delivered" and history never reached Splunk).
    """
    key = "\n".join(sorted(log_groups)) + "\n" + since.strip().lower()
    if destination:
        key += "\n" + destination
    digest = hashlib.sha256(key.encode()).hexdigest()[:12]
    return DEFAULT_STATE_DIR / f"backfill-{digest}.json"


def resolve_job(
    *,
    clusters: Sequence[str],
    log_groups: Sequence[str],
    since: str | None,
    until: str | None,
    checkpoint: Path | None,
    restart: bool = False,
    now_ms: int | None = None,
    destination: str | None = None,
) -> tuple[BackfillJob, Path, Checkpoint]:
    """The job from the options and (when resuming) the checkpoint; raises on any conflict.

    Relative times (`--since 90d`) and a missing `--until` are resolved against the moment the
    job was first defined (kept in the checkpoint), so re-running the same command line resumes
    the same window instead of starting a slightly shifted one.
    """
    from hsmaudit.aws.logs import log_group_for_cluster

    groups = tuple(dict.fromkeys([*(log_group_for_cluster(c) for c in clusters), *log_groups]))
    if not groups:
        raise BackfillOptionError("give at least one --cluster or --log-group")
    if since is None:
        raise BackfillOptionError("say where history starts, e.g. --since 90d or --since 2024-01-01")
    path = checkpoint or default_checkpoint_path(groups, since, destination or "")
    existing = None if restart else load_checkpoint(path)
    anchor = int(time.time() * 1000) if now_ms is None else now_ms
    if existing is not None and existing.anchor_ms is not None:
        anchor = existing.anchor_ms
    try:
        since_ms = parse_time_ms(since, now_ms=anchor)
        until_ms = parse_time_ms(until, now_ms=anchor) if until is not None else None
    except TimeSpecError as error:
        raise BackfillOptionError(str(error)) from None
    if until_ms is None:
        until_ms = existing.job.until_ms if existing is not None else anchor
    if until_ms <= since_ms:
        raise BackfillOptionError(
            f"--until ({format_ms(until_ms)}) must be after --since ({format_ms(since_ms)})"
        )
    job = BackfillJob(log_groups=groups, since_ms=since_ms, until_ms=until_ms)
    if existing is None:
        return job, path, Checkpoint(job=job, anchor_ms=anchor, destination=destination)
    check_job(existing, job, path=path, destination=destination)
    if existing.destination is None and destination is not None:
        existing = msgspec.structs.replace(existing, destination=destination)
    return job, path, existing


def plan_rows(
    job: BackfillJob,
    checkpoint_path: Path,
    state: Checkpoint,
    reader: LogsReader,
    *,
    streams: Sequence[str] = (),
) -> list[dict[str, Any]]:
    """What a run would read: each stream's span in the window and how far the checkpoint got.

    One JSON-ready row per planned stream, in plan order; reads no events and delivers nothing.
    """
    runner = Backfill(
        reader, _NoDestination(), job=job, checkpoint_path=checkpoint_path, checkpoint=state, streams=streams
    )
    rows = []
    for log_group, info in runner.plan():
        position = state.position(log_group, info.name)
        rows.append(
            {
                "log_group": log_group,
                "stream": info.name,
                "first_event": format_ms(info.first_event_ms) if info.first_event_ms is not None else None,
                "last_event": format_ms(info.last_event_ms) if info.last_event_ms is not None else None,
                "delivered": position.delivered,
                "delivered_until": format_ms(position.timestamp) if position.timestamp is not None else None,
                "complete": position.complete,
            }
        )
    return rows


class _NoDestination:
    """Planning delivers nothing."""

    description = "nothing (plan only)"
    chunk_size: int | None = None

    def deliver(self, events: Sequence[HsmEvent]) -> Delivered:
        raise DeliveryError("a plan delivers nothing")

    def close(self) -> None:
        return
