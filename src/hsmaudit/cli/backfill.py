"""`hsmaudit backfill`: flags -> `ops.backfill` -> progress bars, summary table or JSON, exit code.

The engine (reading CloudWatch Logs, checkpoints, batching, delivery) is `hsmaudit.ops.backfill`;
this module turns the options into a job and a destination, shows Rich progress on stderr, turns
Ctrl-C and SIGTERM into the engine's `StopFlag`, prints the summary, and picks the exit code:
0 done, 1 failed or spooled (not in Splunk), 2 bad options, 130 interrupted (the same command
resumes with no gap and no duplicate).
"""

from __future__ import annotations

import signal
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Final

import msgspec
import typer

from hsmaudit.cli.output import Column, Row, fail, fitted_table, self_command, stderr_console
from hsmaudit.cli.progress import stderr_is_terminal
from hsmaudit.ops.backfill import (
    Backfill,
    BackfillOptionError,
    BackfillSummary,
    NullProgress,
    StopFlag,
    plan_rows,
    resolve_job,
)
from hsmaudit.ops.destination import (
    Delivered,
    DeliveryError,
    DeliveryOptions,
    Destination,
    destination_key,
    destination_spool,
    spool_lines,
)
from hsmaudit.ops.timespec import format_ms
from hsmaudit.sources.checkpoint import BackfillJob, Checkpoint, CheckpointError

if TYPE_CHECKING:
    from rich.progress import Progress, Task, TaskID
    from rich.text import Text

    from hsmaudit.aws.logs import LogsReader

BACKFILL_HELP: Final = (
    "Load CloudHSM audit history from CloudWatch Logs into Splunk HEC, the local store or a file.\n\n"
    "Reads every HSM stream of each cluster's log group over [--since, --until) with GetLogEvents, "
    "paced below the CloudWatch Logs quota and slowing down whenever AWS throttles. Events go "
    "through the same HEC client and spool as the Lambda (or into --db / --out).\n\n"
    "After every batch that was kept (accepted by HEC, spooled, stored or written), a checkpoint "
    "records how far each stream got. If the run stops "
    "(Ctrl-C, a crash, a network failure), run the same command again: it resumes with no gap and "
    "no duplicate. Progress bars go to stderr; --json prints a summary on stdout."
)


# ------------------------------------------------------------------------------- progress (Rich)


class RichProgress(NullProgress):
    """One Rich progress bar per stream on stderr: window covered, events, events/s and ETA."""

    def __init__(self, progress: Progress) -> None:
        self._progress = progress
        self._tasks: dict[str, TaskID] = {}

    def start(self, key: str, total_ms: int) -> None:
        self._tasks[key] = self._progress.add_task(key, total=total_ms, events=0)

    def update(self, key: str, done_ms: int, events: int) -> None:
        self._progress.update(self._tasks[key], completed=done_ms, events=events)

    def finish(self, key: str) -> None:
        self._progress.stop_task(self._tasks[key])


def _rich_progress() -> Progress:
    from rich.progress import BarColumn, Progress, ProgressColumn, TextColumn, TimeRemainingColumn
    from rich.text import Text

    class EventsColumn(ProgressColumn):
        """Events delivered and events per second (the bar itself measures time covered)."""

        def render(self, task: Task) -> Text:
            events = int(task.fields.get("events", 0))
            elapsed = task.finished_time if task.finished else task.elapsed
            rate = events / elapsed if elapsed else 0.0
            return Text(f"{events:,} ev {rate:,.0f}/s", style="cyan")

    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(bar_width=24),
        TextColumn("{task.percentage:>5.1f}%"),
        EventsColumn(),
        TimeRemainingColumn(compact=True),
        console=stderr_console(),
        transient=False,
    )


# ------------------------------------------------------------------------------------ the command


@contextmanager
def graceful_stop(stop: StopFlag) -> Iterator[None]:
    """First Ctrl-C or SIGTERM: finish the page in flight and checkpoint; a second Ctrl-C aborts."""

    def handler(signum: int, frame: FrameType | None) -> None:
        if stop.requested and signum == signal.SIGINT:
            raise KeyboardInterrupt
        stop.request("interrupted")

    previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


SUMMARY_COLUMNS = (
    Column("log group", drop=3, wrap=False),
    Column("stream", wrap=False),
    Column("read", drop=2, wrap=False, justify="right"),
    Column("skipped", drop=4, wrap=False, justify="right"),
    Column("delivered", wrap=False, justify="right"),
    Column("spooled", wrap=False, justify="right"),
    Column("parse errors", drop=1, wrap=False, justify="right"),
    Column("done", wrap=False),
)
"""Stream, delivered, spooled and done always stay (the stream id names its cluster's HSM); at 80
columns skipped, the log group, read and parse errors go first, in that order."""

PLAN_COLUMNS = (
    Column("log group", drop=3, wrap=False),
    Column("stream", wrap=False),
    Column("first event", drop=2, wrap=False),
    Column("last event", drop=1, wrap=False),
    Column("delivered", wrap=False, justify="right"),
    Column("delivered until", wrap=False),
    Column("done", wrap=False),
)
"""What a resume needs: which stream, how much went out and up to when; the stream's span and
its log group give way on a narrow terminal."""


def print_summary(summary: BackfillSummary) -> None:
    """A table of streams and a one-line verdict, on stderr (stdout stays for --json)."""
    console = stderr_console()
    rows: list[Row] = [
        (
            (
                result.log_group,
                result.stream,
                str(result.read),
                str(result.skipped),
                str(result.delivered),
                str(result.spooled),
                str(result.parse_errors),
                "yes" if result.complete else "no",
            ),
            "",
        )
        for result in summary.streams
    ]
    console.print(fitted_table(SUMMARY_COLUMNS, rows, width=console.width, title="backfill"))
    data = summary.to_json()
    verdict = "complete" if summary.complete else ("interrupted" if summary.interrupted else "incomplete")
    console.print(
        f"{verdict}: {data['delivered']} events delivered to {summary.destination} in {summary.seconds:.1f}s "
        f"({data['events_per_second']:.0f}/s); {summary.aws_requests} CloudWatch Logs requests, "
        f"{summary.throttled} throttled"
        + (f" (pace lowered to {summary.lowest_rps:g}/s)" if summary.lowest_rps < summary.max_rps else "")
        + f"; checkpoint {summary.checkpoint}",
        highlight=False,
    )
    earlier = sum(result.earlier for result in summary.streams)
    if earlier and summary.complete and not data["read"]:
        console.print(
            f"nothing new: earlier runs already delivered this window to {summary.destination} "
            f"({earlier} events, per the checkpoint); --restart sends it again",
            highlight=False,
            soft_wrap=True,
        )
    kept = Delivered(spooled=data["spooled"], reasons=summary.spooled_reasons)
    for line in spool_lines(kept, summary.spool, command=self_command()):
        console.print(line, style="yellow", highlight=False, soft_wrap=True)


def register(app: typer.Typer) -> None:
    """Add `backfill` to the app."""
    from hsmaudit.cli import delivery_options as opts

    @app.command("backfill", help=BACKFILL_HELP)
    @opts.with_delivery_flags
    def backfill_command(
        clusters: list[str] = typer.Option(
            [],
            "--cluster",
            "-c",
            metavar="ID",
            help="CloudHSM cluster id (cluster-…); its log group is /aws/cloudhsm/<id>. Repeatable.",
        ),
        log_groups: list[str] = typer.Option(
            [], "--log-group", "-g", metavar="GROUP", help="A log group to read instead. Repeatable."
        ),
        streams: list[str] = typer.Option(
            [],
            "--stream",
            metavar="STREAM",
            help="Only these log streams (HSM ids); default: every stream. Repeatable.",
        ),
        since: str | None = typer.Option(
            None,
            "--since",
            metavar="TIME",
            help="Start of the window: ISO-8601 (2024-01-31, 2024-01-31T12:00:00Z), epoch ms, "
            "or an age (90d, 12h).",
        ),
        until: str | None = typer.Option(
            None,
            "--until",
            metavar="TIME",
            help="End of the window (exclusive), same spellings; default: now at the first run.",
        ),
        checkpoint: Path | None = typer.Option(
            None,
            "--checkpoint",
            help="Checkpoint file; default .hsmaudit/backfill-<digest of groups, --since and the "
            "destination>.json, so the same command resumes.",
        ),
        restart: bool = typer.Option(
            False, "--restart", help="Ignore an existing checkpoint and start the job again from --since."
        ),
        max_rps: float = typer.Option(
            10.0,
            "--max-rps",
            min=0.1,
            help="GetLogEvents requests per second at most (quota: 25 per account and Region).",
        ),
        page_size: int | None = typer.Option(
            None,
            "--page-size",
            min=1,
            max=10_000,
            help="Events per GetLogEvents page (default and maximum 10,000).",
        ),
        region: str | None = opts.REGION,
        profile: str | None = opts.PROFILE,
        delivery: DeliveryOptions = opts.DELIVERY,
        json_summary: bool = typer.Option(False, "--json", help="Print the summary as JSON on stdout."),
        plan: bool = typer.Option(
            False,
            "--plan",
            help="Only show the streams, their spans and the checkpoint's progress; read nothing.",
        ),
        no_progress: bool = typer.Option(
            False, "--no-progress", help="No progress bars (stderr stays quiet)."
        ),
        stop_after_pages: int | None = typer.Option(None, "--stop-after-pages", hidden=True),
        retry_base: float = typer.Option(0.5, "--retry-base-delay", hidden=True),
    ) -> None:
        """Load CloudHSM audit history from CloudWatch Logs (see BACKFILL_HELP)."""
        from hsmaudit.aws.logs import LogsError, LogsReader, logs_client

        opts.check_stdout(delivery.out, json_summary)
        with opts.delivery_errors():
            delivers_to = destination_key(delivery)
        try:
            job, checkpoint_path, state = resolve_job(
                clusters=clusters,
                log_groups=log_groups,
                since=since,
                until=until,
                checkpoint=checkpoint,
                restart=restart,
                destination=delivers_to,
            )
        except CheckpointError as error:
            fail(str(error))
        except BackfillOptionError as error:
            fail(str(error), 2)
        stop = StopFlag()
        summary = BackfillSummary(
            checkpoint=str(checkpoint_path),
            destination="",
            since=format_ms(job.since_ms),
            until=format_ms(job.until_ms),
        )
        if plan:
            from hsmaudit.cli.output import one_line_errors

            with one_line_errors(LogsError):
                reader = LogsReader(
                    logs_client(region=region, profile=profile), rates={"GetLogEvents": max_rps}
                )
                show_plan(job, checkpoint_path, state, reader, streams=streams, as_json=json_summary)
            return
        destination: Destination | None = None
        with opts.delivery_errors():
            destination = opts.open_destination(delivery)
            summary.destination = destination.description
            summary.spool = destination_spool(destination)
            try:
                reader = LogsReader(
                    logs_client(region=region, profile=profile),
                    rates={"GetLogEvents": max_rps},
                    backoff_base=retry_base,
                )
                progress_view = None if no_progress or not stderr_is_terminal() else _rich_progress()
                runner = Backfill(
                    reader,
                    destination,
                    job=job,
                    checkpoint_path=checkpoint_path,
                    checkpoint=state,
                    streams=streams,
                    page_size=page_size,
                    stop_after_pages=stop_after_pages,
                    progress=RichProgress(progress_view) if progress_view is not None else None,
                    stop=stop,
                )
                with graceful_stop(stop):
                    if progress_view is not None:
                        with progress_view:
                            runner.run(summary)
                    else:
                        runner.run(summary)
            except (LogsError, DeliveryError, CheckpointError) as error:
                if not checkpoint_path.exists() and not summary.totals()["delivered"]:
                    # Nothing was read or kept (no Region, no credentials, HEC down at the first
                    # request): the problem alone, not an empty table and a checkpoint file that
                    # was never written.
                    if json_summary:
                        _report(summary, json_summary)
                    fail(str(error))
                _report(summary, json_summary)
                fail(f"{error} (progress so far is in {checkpoint_path}; run the same command to resume)")
            finally:
                destination.close()
        _report(summary, json_summary)
        if summary.interrupted:
            fail(f"{stop.reason}; run the same command to resume from {checkpoint_path}", 130)
        if summary.totals()["spooled"]:
            # The window is done (the checkpoint says so) but not in Splunk: not a success.
            raise typer.Exit(1)


def show_plan(
    job: BackfillJob,
    checkpoint_path: Path,
    state: Checkpoint,
    reader: LogsReader,
    *,
    streams: Sequence[str],
    as_json: bool,
) -> None:
    """What a run would read (`ops.backfill.plan_rows`), as JSON lines or a table on stderr."""
    rows = plan_rows(job, checkpoint_path, state, reader, streams=streams)
    if as_json:
        for row in rows:
            sys.stdout.write(msgspec.json.encode(row).decode() + "\n")
        return
    table_rows: list[Row] = [
        (
            (
                *(str(row[key] if row[key] is not None else "-") for key in list(row)[:6]),
                "yes" if row["complete"] else "no",
            ),
            "",
        )
        for row in rows
    ]
    console = stderr_console()
    title = f"backfill plan {format_ms(job.since_ms)} .. {format_ms(job.until_ms)}"
    console.print(fitted_table(PLAN_COLUMNS, table_rows, width=console.width, title=title))
    console.print(f"checkpoint {checkpoint_path}", highlight=False)


def _report(summary: BackfillSummary, json_summary: bool) -> None:
    if json_summary:
        sys.stdout.write(msgspec.json.encode(summary.to_json()).decode() + "\n")
        sys.stdout.flush()
    else:
        print_summary(summary)
