"""`hsmaudit replay`: flags -> `ops.replay` (our spool) or `ops.recover` (AWS's failure stores) -> output.

Prints one JSON line per batch as it goes (or a table), then the summary on stderr; exit 1 when
HEC did not take everything, 2 when the spool named is not there. What replay does with each
batch (and why nothing is deleted before HEC took all of it) is in `ops/replay.py`.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

from hsmaudit.cli.output import Column, OutputFormat, Row, fail, fitted_table, one_line_errors, stdout_console
from hsmaudit.cli.progress import WorkProgress, stop_on_ctrl_c
from hsmaudit.ops.replay import (
    BatchOutcome,
    SpoolLocationError,
    anything_left,
    check_spool_location,
    list_spool,
    replay_spool,
    summary_lines,
)

if TYPE_CHECKING:
    from rich.table import Table

    from hsmaudit.config import Settings


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
            try:
                check_spool_location(where)
            except SpoolLocationError as error:
                fail(str(error), 2)
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
    for line in summary_lines(outcomes, where, list_only=list_only, left=left):
        sys.stderr.write(f"hsmaudit: {line}\n" if not line.startswith(" ") else line + "\n")
    if exit_on_kept and not list_only and anything_left(outcomes):
        raise typer.Exit(1)
