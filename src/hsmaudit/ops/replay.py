"""Replay of our own spool: send spooled batches to HEC, deleting each only after HEC accepted all of it.

`hsmaudit replay` (cli/replay.py) opens the spool (a local directory or `s3://bucket/prefix`) and
prints what comes back; the AWS failure stores (SQS on-failure queue, Firehose's objects) are
`ops/recover.py`, which shares this module's handling of lines HEC refuses (`split_failures`,
`quarantine_refused`). No Typer, no Rich, and it never exits the process.

The spool holds HEC lines exactly as the forwarder built them, so replay re-sends bytes, not
re-parsed records: what reaches Splunk is what would have reached it the first time. Per batch:

- all lines accepted -> the batch is deleted;
- some accepted, some refused -> the refused ones are written as a new batch (with the reason)
  *before* the original is deleted, so a crash in between can duplicate but never lose;
- none accepted -> the batch stays as it is; if HEC is down or refuses the token, replay stops;
- lines HEC refused as they are (a bad event, one event too large) cannot succeed on a retry:
  they are written as a batch of their own and moved to the quarantine with HEC's reason;
- a batch that cannot be read or fails its digest (truncated, altered) is quarantined unsent;
- raw payloads (`kind: payload`, inputs that could not be decoded) are listed and left alone.

Running it again is safe: a deleted batch is gone from the listing, and deleting twice is fine.
Unlike the Datadog Forwarder (which deletes a stored object once *any* batch built from it
succeeds), nothing is deleted before HEC took every line of it.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from hsmaudit.errors import HsmauditError

if TYPE_CHECKING:
    from hsmaudit.sinks.hec.client import HecClient
    from hsmaudit.sinks.hec.report import DeliveryReport, FailedBatch
    from hsmaudit.sinks.spool import Spool

Status = Literal["replayed", "partial", "kept", "payload", "listed", "quarantined", "unreadable"]


class SpoolLocationError(HsmauditError):
    """The spool named is not there (a mistyped path, or a file): the CLI exits 2."""


@dataclass(frozen=True, slots=True)
class BatchOutcome:
    """What replay did with one spooled batch (JSON line on stdout)."""

    batch_id: str
    status: Status
    events: int
    accepted: int
    reason: str
    new_batch_id: str | None = None
    quarantined: int = 0
    """Lines (or, for an unreadable batch, 1) moved to the quarantine."""

    def as_json(self) -> str:
        """One JSON line, counts and ids only."""
        return json.dumps(
            {
                "batch_id": self.batch_id,
                "status": self.status,
                "events": self.events,
                "accepted": self.accepted,
                "reason": self.reason,
                "new_batch_id": self.new_batch_id,
                "quarantined": self.quarantined,
            },
            ensure_ascii=False,
        )


def split_failures(report: DeliveryReport) -> tuple[list[FailedBatch], list[FailedBatch]]:
    """(retryable, refused as they are): what may succeed on another run, and what never will."""
    retry = [failed for failed in report.failed if failed.retryable]
    poison = [failed for failed in report.failed if not failed.retryable]
    return retry, poison


def quarantine_refused(quarantine: Spool, refused: Sequence[FailedBatch], metadata: Mapping[str, str]) -> int:
    """Keep each group of lines HEC refused as they are in the quarantine, with HEC's reason.

    Each group is written as a batch, then moved to the quarantine (a spool write that fails
    raises, so the caller never deletes the original). Returns how many lines were kept.
    """
    from hsmaudit.sinks.spool import SpoolBatch

    held = 0
    for failed in refused:
        batch = SpoolBatch(lines=failed.lines, reason=failed.reason, metadata=metadata)
        quarantine.put(batch)
        quarantine.quarantine(batch.batch_id, failed.reason)
        held += len(failed.lines)
    return held


def replay_batch(
    batch_id: str, *, spool: Spool, client: HecClient, budget: float
) -> tuple[BatchOutcome, bool]:
    """Replay one batch; returns its outcome and whether replay should go on to the next."""
    from hsmaudit.sinks.errors import SpoolCorruptError
    from hsmaudit.sinks.spool import SpoolBatch

    try:
        batch = spool.get(batch_id)
    except SpoolCorruptError as error:
        spool.quarantine(batch_id, str(error))
        return BatchOutcome(batch_id, "quarantined", 0, 0, str(error), quarantined=1), True
    if batch.kind != "hec":
        return BatchOutcome(batch_id, "payload", 1, 0, batch.reason), True
    report = client.send_lines(
        batch.lines, deadline=time.monotonic() + budget, spool=None, metadata=batch.metadata
    )
    if not report.failed:
        spool.delete(batch_id)
        # The reason it was spooled is history now: a replayed row carries no failure reason.
        return BatchOutcome(batch_id, "replayed", len(batch.lines), report.accepted, ""), True
    go_on = report.blocked is None
    retry, poison = split_failures(report)
    reason = (retry or poison)[0].reason
    if not poison and report.accepted == 0 and report.failed_events == len(batch.lines):
        return BatchOutcome(batch_id, "kept", len(batch.lines), 0, reason), go_on
    metadata = {**batch.metadata, "replayed_from": batch_id}
    # First keep what is left (retryable lines in the spool, refused ones in the quarantine),
    # then drop the original: a crash in between can duplicate, never lose.
    new_id = None
    if retry:
        rest = tuple(line for failed in retry for line in failed.lines)
        remainder = SpoolBatch(lines=rest, reason=reason, metadata=metadata)
        spool.put(remainder)
        new_id = remainder.batch_id
    bad = quarantine_refused(spool, poison, metadata)
    spool.delete(batch_id)
    status: Status = "partial" if retry else "quarantined"
    outcome = BatchOutcome(
        batch_id, status, len(batch.lines), report.accepted, reason, new_id, quarantined=bad
    )
    return outcome, go_on


def replay_spool(
    spool: Spool,
    client: HecClient,
    *,
    budget: float = 120.0,
    limit: int | None = None,
    progress: Callable[[BatchOutcome], None] | None = None,
    stop: Callable[[], bool] | None = None,
) -> list[BatchOutcome]:
    """Replay every batch (oldest first), stopping when HEC is down or refuses the token.

    `progress` sees each outcome as soon as it is known (the CLI prints it then, not at the end).
    `stop` is asked before each batch (Ctrl-C): the batch in flight is finished, not cut.
    """
    outcomes: list[BatchOutcome] = []
    for batch_id in spool.list():
        if limit is not None and len(outcomes) >= limit:
            break
        if stop is not None and stop():
            break
        outcome, go_on = replay_batch(batch_id, spool=spool, client=client, budget=budget)
        outcomes.append(outcome)
        if progress is not None:
            progress(outcome)
        if not go_on:
            break
    return outcomes


def list_spool(spool: Spool) -> list[BatchOutcome]:
    """What is in the spool (and its quarantine), without sending or moving anything."""
    from hsmaudit.sinks.errors import SpoolCorruptError

    outcomes = []
    for batch_id in spool.list():
        try:
            batch = spool.get(batch_id)
        except SpoolCorruptError as error:
            outcomes.append(BatchOutcome(batch_id, "unreadable", 0, 0, str(error)))
            continue
        outcomes.append(BatchOutcome(batch_id, "listed", batch.count, 0, batch.reason))
    for batch_id, reason in spool.quarantined():
        outcomes.append(BatchOutcome(batch_id, "quarantined", 0, 0, reason))
    return outcomes


def check_spool_location(where: str) -> None:
    """A local spool that does not exist is a mistyped path, not an empty spool.

    Otherwise replay would print "replayed 0 batches" and exit 0 while the real spool, one typo
    away, still holds everything. Raises `SpoolLocationError`; an `s3://` spool is not checked.
    """
    if where.startswith("s3://"):
        return
    path = Path(where)
    if not path.exists():
        raise SpoolLocationError(
            f"no spool at {where}: the directory does not exist; give the directory that "
            "send/backfill spooled to (--spool-dir / HSMAUDIT_SPOOL_DIR)"
        )
    if not path.is_dir():
        raise SpoolLocationError(f"no spool at {where}: it is a file, not a spool directory")


def summary_lines(
    outcomes: list[BatchOutcome], where: str, *, list_only: bool, left: int | None = None
) -> list[str]:
    """The run's summary for people: counts per status, then the reasons (indented lines), then,
    when `left` batches are still waiting, what to do about them."""
    if not outcomes and not list_only:
        return [f"nothing to replay: {where} holds no spooled batches"]
    counts: dict[str, int] = {}
    for outcome in outcomes:
        counts[outcome.status] = counts.get(outcome.status, 0) + 1
    if list_only:
        waiting = len(outcomes) - counts.get("quarantined", 0)
        return [
            f"{waiting} batches in {where} ({counts.get('unreadable', 0)} unreadable); "
            f"{counts.get('quarantined', 0)} in quarantine"
        ]
    events = sum(o.accepted for o in outcomes)
    held = sum(o.quarantined for o in outcomes)
    lines = [
        f"replayed {counts.get('replayed', 0)} batches ({events} events accepted) from {where}; "
        f"partial {counts.get('partial', 0)}, kept {counts.get('kept', 0)}, "
        f"quarantined {counts.get('quarantined', 0)} ({held} items moved to quarantine), "
        f"raw payloads left {counts.get('payload', 0)}",
        *reason_lines(outcomes),
    ]
    if left:
        # Replay stops at the first batch HEC refuses for the run (down, token): say how many are
        # still waiting, not only the one that was tried.
        lines.append(
            f"{left} batches still waiting in {where}; nothing was lost: fix what HEC "
            "answered above ('hsmaudit doctor' checks the URL, TLS and token), then run the same "
            "replay again"
        )
    return lines


def reason_lines(outcomes: list[BatchOutcome]) -> list[str]:
    """One line per (what happened, why) for batches HEC did not take whole, largest first."""
    groups: dict[tuple[str, str], list[int]] = {}
    for outcome in outcomes:
        if outcome.status not in ("kept", "partial", "quarantined"):
            continue
        verb = {"kept": "kept", "partial": "partly kept", "quarantined": "quarantined"}[outcome.status]
        left = outcome.events - outcome.accepted
        batches_events = groups.setdefault((verb, outcome.reason), [0, 0])
        batches_events[0] += 1
        batches_events[1] += left
    ordered = sorted(groups.items(), key=lambda item: -item[1][1])
    return [
        f"  {batches} batches ({events} events) {verb}: {reason}"
        for (verb, reason), (batches, events) in ordered
    ]


def anything_left(outcomes: list[BatchOutcome]) -> bool:
    """Whether HEC did not take everything: a batch kept or partly kept, or lines quarantined
    (the CLI exits 1)."""
    return any(o.status in ("kept", "partial") for o in outcomes) or any(o.quarantined for o in outcomes)
