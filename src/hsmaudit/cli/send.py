"""`hsmaudit send`: files or stdin (every input shape of `parse`) to Splunk HEC or the local store.

For records that never went through the Lambda: exported logs, an auditor's extract, the output
of `aws logs filter-log-events`, or `hsmaudit parse` output edited by hand. The events go through
the Lambda's own HEC client and spool (`ops.destination`), in chunks, so memory stays flat on
large inputs (`ops.send`: the chunks, the counts, the summary; this module reads and prints).
"""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator
from typing import Final

import msgspec
import typer

from hsmaudit.cli import delivery_options as opts
from hsmaudit.cli.output import fail, self_command, stderr_console
from hsmaudit.cli.parse import (
    LOG_GROUP_OPTION,
    LOG_STREAM_OPTION,
    PATHS_HELP,
    fail_on_empty,
    input_paths,
)
from hsmaudit.cli.progress import WorkProgress, input_bytes, stop_on_ctrl_c, tracked
from hsmaudit.ops.destination import DeliveryError, DeliveryOptions, destination_spool, spool_lines
from hsmaudit.ops.inputs import read_events
from hsmaudit.ops.send import Reading, Sending, Stopped
from hsmaudit.records.event import HsmEvent
from hsmaudit.sources.errors import SourceError

SEND_HELP: Final = (
    "Send audit records from files or stdin to Splunk HEC, the local store (--db) or a file (--out).\n\n"
    "Takes every input `hsmaudit parse` takes: raw record text, certificate JSON, CloudWatch "
    "subscription envelopes, 'aws logs filter-log-events' output, JSON lines of events. Delivery uses "
    "the same HEC client, batching, retries and spool as the Lambda; settings come from flags, then "
    "HSMAUDIT_* variables, then the config file. Once HEC is down or refuses the token, the rest "
    "goes to the spool at once. Prints a summary (JSON with --json): accepted, spooled and why. "
    "Exits 1 unless HEC accepted (or --db/--out kept) every event: when any was spooled, not "
    "taken, or an input held no records."
)


def register(app: typer.Typer) -> None:
    """Add `send` to the app."""

    @app.command("send", help=SEND_HELP)
    @opts.with_delivery_flags
    def send_command(
        paths: list[str] | None = typer.Argument(None, help=PATHS_HELP, show_default=False),
        log_group: str | None = LOG_GROUP_OPTION,
        log_stream: str | None = LOG_STREAM_OPTION,
        options: DeliveryOptions = opts.DELIVERY,
        json_summary: bool = typer.Option(False, "--json", help="Print the summary as JSON on stdout."),
    ) -> None:
        """Send audit records to Splunk HEC or the local store (see SEND_HELP)."""
        opts.check_stdout(options.out, json_summary)
        sources = input_paths(paths)
        empty: list[str] = []
        stopped: Stopped | None = None
        started = time.monotonic()
        with opts.delivery_errors():
            destination = opts.open_destination(options)
            sending = Sending(destination)
            total = sending.total
            try:
                with (
                    WorkProgress("send", total=input_bytes(sources)) as bar,
                    stop_on_ctrl_c(bar) as stop,
                ):
                    reading = Reading()

                    def every_event() -> Iterator[HsmEvent]:
                        # one stream over all inputs (chunks span files: one spool batch, not one
                        # per file), noting which input it is in for the bar and for Ctrl-C
                        for position, source in enumerate(sources):
                            reading.position = position
                            yield from tracked(
                                read_events(
                                    [source], log_group=log_group, log_stream=log_stream, empty=empty
                                ),
                                bar,
                                count=False,
                            )
                            bar.reach(input_bytes(sources[: position + 1]) or 0)

                    for chunk in sending.chunks(every_event()):
                        sending.deliver(chunk)
                        bar.advance(items=len(chunk))  # delivered; the bar's share is what was read
                        if stop.requested:
                            at = reading.position
                            stopped = Stopped(sources[at], len(sources) - at - 1, in_flight=False)
                            break
            except KeyboardInterrupt:
                # a second Ctrl-C, in the middle of a delivery: its events may or may not be in
                stopped = Stopped(None, 0, in_flight=True)
            except (DeliveryError, SourceError) as error:
                fail(f"{error} ({total.events} events were delivered before this)")
            finally:
                destination.close()
        seconds = time.monotonic() - started
        if json_summary:
            summary = sending.summary(seconds=seconds, empty_inputs=empty)
            sys.stdout.write(msgspec.json.encode(summary).decode() + "\n")
            sys.stdout.flush()
        else:
            console = stderr_console()
            console.print(sending.summary_line(seconds), highlight=False, soft_wrap=True)
            spool_location = destination_spool(destination)
            for line in spool_lines(total, spool_location, command=self_command()):
                console.print(line, highlight=False, soft_wrap=True, style="yellow")
        if stopped is not None:
            fail(stopped.message(total), 130)
        fail_on_empty(empty)
        if total.spooled:
            # Kept, not delivered: a script must not take this run for a success.
            raise typer.Exit(1)
