"""`hsmaudit tail`: a live view of a cluster's audit stream, parsed and coloured by severity.

Two sources:
- CloudWatch Logs: FilterLogEvents over the cluster's log group from a start time, polled every
  `--interval` seconds with `--follow`. CloudWatch makes events searchable a little after their
  timestamp, and not always in order, so each poll looks back `--lookback` seconds and skips
  event ids already shown (kept for that window only): late events appear, none twice.
- the local store (`--db`): the last `--lines` events, then (with `--follow`) new rows as the
  collector writes them.

Critical events stand out (white on red); with `--alerts` the detections run on what is shown and
their alerts appear inline. `--format jsonl` prints events (and alerts) as JSON lines instead.
The polling and the store's follow are `ops.follow`'s; this module renders what they yield.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Final

import typer

from hsmaudit.cli import delivery_options as opts
from hsmaudit.cli.output import OutputFormat, fail, one_line_errors, severity_style, stdout_console
from hsmaudit.ops.follow import follow_store, poll_cloudwatch
from hsmaudit.ops.timespec import TimeSpecError, parse_time_ms
from hsmaudit.records.alert import alert_to_json
from hsmaudit.records.event import HsmEvent, event_to_json

if TYPE_CHECKING:
    from rich.console import Console
    from rich.text import Text

    from hsmaudit.detect.engine import DetectionEngine
    from hsmaudit.records.alert import Alert

TAIL_HELP: Final = (
    "Watch a cluster's audit stream live: parsed, coloured by severity, critical events highlighted.\n\n"
    "Reads CloudWatch Logs (--cluster / --log-group; FilterLogEvents from --since, polled every "
    "--interval with --follow) or the local store (--db; the last --lines events, then new ones with "
    "--follow). --alerts runs the detections on what is shown and prints their alerts inline. "
    "--format jsonl prints JSON lines for machines. Ctrl-C stops."
)


def event_line(event: HsmEvent) -> Text:
    """One readable line per event; critical ones tagged so they stand out even without colour."""
    from rich.text import Text

    user = event.user_name or ""
    if event.user_type:
        user = f"{user}({event.user_type.removeprefix('CN_').lower()})"
    if event.target_user_name:
        user = f"{user}->{event.target_user_name}"
    handle = event.key_handle if event.key_handle is not None else event.object_handle
    parts = [
        event.time or "?",
        event.hsm_id or "-",
        f"#{event.sequence_no}" if event.sequence_no is not None else "#-",
        event.opcode or "?",
    ]
    if user:
        parts.append(user)
    if handle is not None:
        parts.append(f"key={handle}")
    parts.append(event.response or "")
    if event.parse_error:
        parts.append(f"UNPARSED: {event.parse_error}")
    severity = event.severity or "info"
    tag = {"critical": "CRITICAL", "high": "HIGH", "medium": "MEDIUM"}.get(severity, "")
    text = Text("  ".join(p for p in parts if p), style=severity_style(severity))
    if tag:
        text = Text.assemble((f"[{tag}] ", severity_style(severity) or "bold"), text)
    return text


def alert_line(alert: Alert) -> Text:
    """An alert, indented under the event that raised it."""
    from rich.text import Text

    where = " ".join(x for x in (alert.cluster_id, alert.hsm_id, alert.user_name) if x)
    return Text(
        f"   ALERT {alert.rule} ({alert.severity}): {alert.title} {where}".rstrip(), style="bold magenta"
    )


def show(
    events: Iterable[HsmEvent | None],
    *,
    output: OutputFormat,
    engine: DetectionEngine | None,
    console: Console,
    quiet_after: float = 0.0,
    clock: Callable[[], float] = time.time,
) -> int:
    """Print events (and alerts) as they come; returns how many events were shown.

    A None between polls is when silence is judged: the detections' `hsm-silent` check (with
    `--alerts`) and, for people, one dim line once nothing has arrived for `quiet_after` seconds
    (operator-needs.md §1.15: a source going quiet is news too).
    """
    shown = 0
    out = sys.stdout.buffer
    last_seen = clock()
    noted_quiet = False

    def emit_alerts(alerts: list[Alert]) -> None:
        for alert in alerts:
            if output is OutputFormat.jsonl:
                out.write(alert_to_json(alert) + b"\n")
            else:
                console.print(alert_line(alert), soft_wrap=True, highlight=False)
        out.flush()

    for event in events:
        if event is None:
            now = clock()
            if engine is not None:
                emit_alerts(engine.check_silence(int(now * 1_000_000)))
            if (
                quiet_after
                and not noted_quiet
                and now - last_seen >= quiet_after
                and output is OutputFormat.table
            ):
                since = time.strftime("%H:%M:%S", time.gmtime(last_seen))
                console.print(
                    f"-- no new audit records for {(now - last_seen) / 60:.0f} min (since {since} UTC)",
                    style="dim",
                )
                noted_quiet = True
            continue
        last_seen = clock()
        noted_quiet = False
        alerts = engine.process(event) if engine is not None else []
        if output is OutputFormat.jsonl:
            out.write(event_to_json(event) + b"\n")
            out.flush()
        else:
            console.print(event_line(event), soft_wrap=True, highlight=False)
        emit_alerts(alerts)
        shown += 1
    if engine is not None:
        emit_alerts(engine.finalize())
    return shown


def register(app: typer.Typer) -> None:
    """Add `tail` to the app."""

    @app.command("tail", help=TAIL_HELP)
    def tail_command(
        clusters: list[str] = typer.Option(
            [], "--cluster", "-c", metavar="ID", help="Cluster id to watch. Repeatable."
        ),
        log_groups: list[str] = typer.Option(
            [], "--log-group", "-g", metavar="GROUP", help="A log group to watch. Repeatable."
        ),
        streams: list[str] = typer.Option(
            [], "--stream", metavar="STREAM", help="Only these log streams (HSM ids). Repeatable."
        ),
        db: Path | None = typer.Option(
            None, "--db", help="Watch this local store instead of CloudWatch Logs."
        ),
        since: str = typer.Option(
            "10m",
            "--since",
            metavar="TIME",
            help="CloudWatch: start here (ISO-8601, epoch ms, or an age such as 10m, 2h).",
        ),
        lines: int = typer.Option(
            20, "--lines", "-n", min=0, help="--db: how many recent events to show first."
        ),
        follow: bool = typer.Option(False, "--follow", help="Keep watching for new events until Ctrl-C."),
        interval: float = typer.Option(
            2.0, "--interval", min=0.2, help="Seconds between polls with --follow."
        ),
        lookback: float = typer.Option(
            60.0,
            "--lookback",
            min=0,
            help="Seconds each poll looks back for late-arriving CloudWatch events.",
        ),
        alerts: bool = typer.Option(
            False, "--alerts", help="Run the detections and show their alerts inline."
        ),
        quiet_notice: float = typer.Option(
            10.0,
            "--quiet-notice",
            min=0,
            help="With --follow: say so once nothing arrived for this many minutes (0: never).",
        ),
        output: OutputFormat = typer.Option(
            OutputFormat.table,
            "--format",
            "-f",
            help="table (coloured lines) for people, jsonl for machines.",
        ),
        region: str | None = opts.REGION,
        profile: str | None = opts.PROFILE,
        max_rps: float = typer.Option(
            2.0,
            "--max-rps",
            min=0.1,
            help="FilterLogEvents requests per second at most (quota: 5 per account).",
        ),
        polls: int | None = typer.Option(None, "--polls", hidden=True),
    ) -> None:
        """Watch a cluster's audit stream (see TAIL_HELP)."""
        from hsmaudit.aws.logs import LogsError, LogsReader, log_group_for_cluster, logs_client
        from hsmaudit.store.errors import StoreError

        groups = list(dict.fromkeys([*(log_group_for_cluster(c) for c in clusters), *log_groups]))
        if db is None and not groups:
            fail("give --cluster or --log-group (CloudWatch Logs), or --db (the local store)", 2)
        if db is not None and groups and len(clusters) > 1:
            fail("--db shows one cluster at a time", 2)
        engine = None
        if alerts:
            from hsmaudit.detect.engine import DetectionEngine

            engine = DetectionEngine()
        console = stdout_console()
        with one_line_errors(LogsError, StoreError, FileNotFoundError):
            try:
                if db is not None:
                    events = follow_store(
                        db,
                        lines=lines,
                        follow=follow,
                        interval=interval,
                        cluster_id=clusters[0] if clusters else None,
                    )
                else:
                    try:
                        start_ms = parse_time_ms(since)
                    except TimeSpecError as error:
                        fail(str(error), 2)
                    reader = LogsReader(
                        logs_client(region=region, profile=profile), rates={"FilterLogEvents": max_rps}
                    )
                    events = poll_cloudwatch(
                        reader,
                        groups,
                        start_ms=start_ms,
                        follow=follow,
                        interval=interval,
                        lookback_ms=int(lookback * 1000),
                        streams=streams or None,
                        polls=polls,
                    )
                show(events, output=output, engine=engine, console=console, quiet_after=quiet_notice * 60)
            except KeyboardInterrupt:
                raise typer.Exit(0) from None
