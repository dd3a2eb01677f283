"""`hsmaudit replay`: send spooled batches to HEC, deleting each only after HEC accepted all of it.

The spool (a local directory or `s3://bucket/prefix`) holds HEC lines exactly as the forwarder
built them, so replay re-sends bytes, not re-parsed records: what reaches Splunk is what would
have reached it the first time. Per batch:

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
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import typer

from hsmaudit.cli.output import Column, OutputFormat, Row, fail, fitted_table, one_line_errors, stdout_console
from hsmaudit.cli.progress import WorkProgress, stop_on_ctrl_c

if TYPE_CHECKING:
    from rich.table import Table

    from hsmaudit.config import Settings
    from hsmaudit.sinks.hec import HecClient
    from hsmaudit.sinks.spool import Spool

Status = Literal["replayed", "partial", "kept", "payload", "listed", "quarantined", "unreadable"]


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
    poison = [failed for failed in report.failed if not failed.retryable]
    retry = [failed for failed in report.failed if failed.retryable]
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
    bad = 0
    for failed in poison:
        refused = SpoolBatch(lines=failed.lines, reason=failed.reason, metadata=metadata)
        spool.put(refused)
        spool.quarantine(refused.batch_id, failed.reason)
        bad += len(failed.lines)
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
    """A local spool that does not exist is a mistyped path (exit 2), not an empty spool.

    Otherwise replay would print "replayed 0 batches" and exit 0 while the real spool, one typo
    away, still holds everything.
    """
    if where.startswith("s3://"):
        return
    path = Path(where)
    if not path.exists():
        fail(
            f"no spool at {where}: the directory does not exist; give the directory that "
            "send/backfill spooled to (--spool-dir / HSMAUDIT_SPOOL_DIR)",
            2,
        )
    if not path.is_dir():
        fail(f"no spool at {where}: it is a file, not a spool directory", 2)


def _settings(flags: dict[str, Any], config: Path | None) -> Settings:
    from hsmaudit.config import load_settings

    return load_settings(flags, config_path=str(config) if config else None)


def register(app: typer.Typer) -> None:
    """Add `replay` to the app."""

    @app.command("replay")
    def replay_command(
        location: str | None = typer.Argument(
            None,
            help="What to replay: a spool directory or s3://bucket/prefix (default: "
            "HSMAUDIT_SPOOL_BUCKET/PREFIX, else HSMAUDIT_SPOOL_DIR); the on-failure queue "
            "(sqs://name or its URL); Firehose's s3://bucket/hsmaudit/firehose-failed/ or "
            "s3://bucket/hsmaudit/firehose-errors/.",
            show_default=False,
        ),
        hec_url: str | None = typer.Option(
            None, "--hec-url", help="HEC URL (env HSMAUDIT_HEC_URL). The token comes from the environment."
        ),
        ca_bundle: Path | None = typer.Option(
            None, "--ca-bundle", help="PEM file of CAs to trust for HEC (env HSMAUDIT_HEC_CA_BUNDLE)."
        ),
        insecure: bool = typer.Option(
            False, "--insecure", help="Do not verify HEC's TLS certificate (logged as a warning)."
        ),
        ack: bool | None = typer.Option(
            None, "--ack/--no-ack", help="Wait for indexer acknowledgement (env HSMAUDIT_HEC_ACK)."
        ),
        timeout: float | None = typer.Option(
            None, "--timeout", help="Seconds per HEC request (env HSMAUDIT_HEC_TIMEOUT)."
        ),
        budget: float = typer.Option(120.0, "--budget", help="Seconds allowed per batch, retries included."),
        limit: int | None = typer.Option(None, "--limit", help="Replay at most this many batches."),
        list_only: bool = typer.Option(
            False, "--list", "--dry-run", help="Only list what is there; send, delete or move nothing."
        ),
        quarantine: str | None = typer.Option(
            None,
            "--quarantine",
            help="Spool (directory or s3://) whose quarantine/ keeps what a queue or Firehose "
            "store holds that HEC refuses or that cannot be decoded (default: the configured spool).",
        ),
        output: OutputFormat = typer.Option(
            OutputFormat.jsonl, "--format", "-f", help="jsonl for machines, table for people."
        ),
        config: Path | None = typer.Option(
            None,
            "--config",
            help="Config file (TOML; default: HSMAUDIT_CONFIG, else config.toml in ~/.config/hsmaudit).",
        ),
    ) -> None:
        """Re-send spooled batches to Splunk HEC; each is deleted only once HEC accepted all of it.

        Prints one line per batch as it goes: replayed, partial, kept, quarantined, payload
        (or, with --list, listed, unreadable and quarantined).
        Batches that cannot be read, fail their digest, or hold events HEC refuses as they are
        are moved to the spool's quarantine/ with the reason, and replay goes on.
        Safe to run again; run one replay per spool at a time.
        Exits 1 if a batch stays spooled because HEC did not take it.
        Raw payloads that could not be decoded are listed and left for a person.

        The Lambda's on-failure queue (sqs://name or its URL) and Firehose's failure objects
        (s3://…/firehose-failed/, s3://…/firehose-errors/) replay the same way: each message or
        object is deleted only after HEC accepted all of it; what HEC refuses or cannot be decoded
        goes to the --quarantine spool's quarantine/. Exits 1 if anything is left in them.
        """
        from hsmaudit.config import ConfigError
        from hsmaudit.sinks.errors import SinkError

        with one_line_errors(ConfigError, SinkError, ValueError):
            flags: dict[str, Any] = {
                "hec_url": hec_url,
                "hec_ca_bundle": str(ca_bundle) if ca_bundle else None,
                "hec_verify": False if insecure else None,
                "hec_ack": ack,
                "hec_timeout": timeout,
            }
            settings = _settings(flags, config)
            where = location or settings.spool_location
            from hsmaudit.ops.recover import is_failure_store

            if where and is_failure_store(where):
                from hsmaudit.cli.recover import replay_failure_store

                replay_failure_store(
                    where,
                    settings,
                    list_only=list_only,
                    limit=limit,
                    budget=budget,
                    output=output,
                    quarantine=quarantine,
                )
                return
            if not where:
                fail("no spool: give a directory or s3://bucket/prefix, or set HSMAUDIT_SPOOL_DIR", 2)
            check_spool_location(where)
            from hsmaudit.aws.spools import open_spool

            spool = open_spool(where)

            def emit(outcome: BatchOutcome) -> None:
                sys.stdout.write(outcome.as_json() + "\n")
                sys.stdout.flush()

            live = emit if output is not OutputFormat.table else None
            interrupted = in_flight = False
            if list_only:
                outcomes = list_spool(spool)
                if live is not None:
                    for outcome in outcomes:
                        live(outcome)
            else:
                from hsmaudit.aws.runtime import build_client

                client = build_client(settings)
                batches = len(list(spool.list()))
                if limit is not None:
                    batches = min(batches, limit)
                outcomes = []

                def seen(outcome: BatchOutcome) -> None:
                    outcomes.append(outcome)
                    bar.advance(items=outcome.accepted, done=1)
                    if live is not None:
                        live(outcome)

                try:
                    with WorkProgress("replay", total=batches) as bar, stop_on_ctrl_c(bar) as stop:
                        replay_spool(
                            spool,
                            client,
                            budget=budget,
                            limit=limit,
                            progress=seen,
                            stop=lambda: stop.requested,
                        )
                        interrupted = stop.requested
                except KeyboardInterrupt:
                    interrupted = in_flight = True
                finally:
                    client.close()
            if output is OutputFormat.table:
                console = stdout_console()
                console.print(outcomes_table(outcomes, width=console.width))
            if interrupted:
                if outcomes:
                    _summarise(outcomes, where, list_only=False, exit_on_kept=False)
                waiting = len(list(spool.list()))
                flight = (
                    " (the batch in flight stays there: HEC may see its events twice)" if in_flight else ""
                )
                fail(
                    f"interrupted: {sum(o.accepted for o in outcomes)} events of {len(outcomes)} batches "
                    f"delivered; {waiting} batches are left in {where}{flight}: run replay again for them",
                    130,
                )
            left = None if list_only else sum(1 for _ in spool.list())
            _summarise(outcomes, where, list_only=list_only, left=left)


OUTCOME_COLUMNS = (
    Column("batch", wrap=False),
    Column("status", wrap=False),
    Column("events", drop=2, wrap=False, justify="right"),
    Column("accepted", drop=1, wrap=False, justify="right"),
    Column("reason", min_width=12),
)
"""A batch id is what people look for in the spool: never broken; the reason folds."""


def outcomes_table(outcomes: list[BatchOutcome], *, width: int) -> Table:
    """The outcomes as a table for people, fitted to `width` columns."""
    styles = {
        "replayed": "green",
        "partial": "yellow",
        "kept": "red",
        "payload": "magenta",
        "listed": "",
        "quarantined": "red",
        "unreadable": "red",
    }
    rows: list[Row] = [
        (
            (outcome.batch_id, outcome.status, str(outcome.events), str(outcome.accepted), outcome.reason),
            styles[outcome.status],
        )
        for outcome in outcomes
    ]
    return fitted_table(OUTCOME_COLUMNS, rows, width=width)


def _summarise(
    outcomes: list[BatchOutcome],
    where: str,
    *,
    list_only: bool,
    left: int | None = None,
    exit_on_kept: bool = True,
) -> None:
    if not outcomes and not list_only:
        sys.stderr.write(f"hsmaudit: nothing to replay: {where} holds no spooled batches\n")
        return
    counts: dict[str, int] = {}
    for outcome in outcomes:
        counts[outcome.status] = counts.get(outcome.status, 0) + 1
    events = sum(o.accepted for o in outcomes)
    if list_only:
        waiting = len(outcomes) - counts.get("quarantined", 0)
        sys.stderr.write(
            f"hsmaudit: {waiting} batches in {where} ({counts.get('unreadable', 0)} unreadable); "
            f"{counts.get('quarantined', 0)} in quarantine\n"
        )
        return
    held = sum(o.quarantined for o in outcomes)
    sys.stderr.write(
        f"hsmaudit: replayed {counts.get('replayed', 0)} batches ({events} events accepted) from {where}; "
        f"partial {counts.get('partial', 0)}, kept {counts.get('kept', 0)}, "
        f"quarantined {counts.get('quarantined', 0)} ({held} items moved to quarantine), "
        f"raw payloads left {counts.get('payload', 0)}\n"
    )
    for line in reason_lines(outcomes):
        sys.stderr.write(line + "\n")
    if left:
        # Replay stops at the first batch HEC refuses for the run (down, token): say how many are
        # still waiting, not only the one that was tried.
        sys.stderr.write(
            f"hsmaudit: {left} batches still waiting in {where}; nothing was lost: fix what HEC "
            "answered above ('hsmaudit doctor' checks the URL, TLS and token), then run the same "
            "replay again\n"
        )
    if exit_on_kept and (counts.get("kept", 0) or counts.get("partial", 0) or held):
        raise typer.Exit(1)


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
