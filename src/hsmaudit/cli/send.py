"""`hsmaudit send`: files or stdin (every input shape of `parse`) to Splunk HEC or the local store.

For records that never went through the Lambda: exported logs, an auditor's extract, the output
of `aws logs filter-log-events`, or `hsmaudit parse` output edited by hand. The events go through
the Lambda's own HEC client and spool (`ops.destination`), in chunks, so memory stays flat on
large inputs.
"""

from __future__ import annotations

import itertools
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
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
    iter_events,
)
from hsmaudit.cli.progress import WorkProgress, input_bytes, stop_on_ctrl_c, tracked
from hsmaudit.ops.destination import Delivered, DeliveryError, destination_spool, spool_lines
from hsmaudit.records.event import HsmEvent
from hsmaudit.sources.errors import SourceError
from hsmaudit.sources.files import STDIN

CHUNK_EVENTS: Final = 5000
"""Events handed to the destination at a time (HecClient splits them into HEC-sized batches);
for HEC at most ten requests' worth, so Ctrl-C, which lets the chunk in flight finish (and the
summary then knows exactly what HEC took), waits for ten requests at most."""

HEC_REQUESTS_PER_CHUNK: Final = 10

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


def chunks(events: Iterator[HsmEvent], size: int) -> Iterator[list[HsmEvent]]:
    """Lists of at most `size` events, in order."""
    while chunk := list(itertools.islice(events, size)):
        yield chunk


def register(app: typer.Typer) -> None:
    """Add `send` to the app."""

    @app.command("send", help=SEND_HELP)
    def send_command(
        paths: list[str] | None = typer.Argument(None, help=PATHS_HELP, show_default=False),
        log_group: str | None = LOG_GROUP_OPTION,
        log_stream: str | None = LOG_STREAM_OPTION,
        db: Path | None = opts.DB,
        out: str | None = opts.OUT,
        hec_url: str | None = opts.HEC_URL,
        index: str | None = opts.INDEX,
        event_format: str | None = opts.EVENT_FORMAT,
        sourcetype: str | None = opts.SOURCETYPE,
        ack: bool | None = opts.ACK,
        ca_bundle: Path | None = opts.CA_BUNDLE,
        spool_dir: Path | None = opts.SPOOL_DIR,
        raw: bool | None = opts.RAW,
        config: Path | None = opts.CONFIG,
        json_summary: bool = typer.Option(False, "--json", help="Print the summary as JSON on stdout."),
    ) -> None:
        """Send audit records to Splunk HEC or the local store (see SEND_HELP)."""
        if out == "-" and json_summary:
            fail("--out - and --json both want stdout; write the events to a file", 2)
        options = opts.DeliveryOptions(
            db=db,
            out=out,
            hec_url=hec_url,
            index=index,
            event_format=event_format,
            sourcetype=sourcetype,
            ack=ack,
            ca_bundle=ca_bundle,
            spool_dir=spool_dir,
            raw=raw,
            config=config,
        )
        sources = input_paths(paths)
        total = Delivered()
        parse_errors = 0
        empty: list[str] = []
        stopped: Stopped | None = None
        started = time.monotonic()
        with opts.delivery_errors():
            destination = opts.open_destination(options)
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
                                iter_events(
                                    [source], log_group=log_group, log_stream=log_stream, empty=empty
                                ),
                                bar,
                                count=False,
                            )
                            bar.reach(input_bytes(sources[: position + 1]) or 0)

                    for chunk in chunks(every_event(), chunk_events(destination.chunk_size)):
                        parse_errors += sum(1 for event in chunk if event.parse_error)
                        total.add(destination.deliver(chunk))
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
        spool_location = destination_spool(destination)
        summary = {
            "destination": destination.description,
            "events": total.events,
            "accepted": total.accepted,
            "spooled": total.spooled,
            "spooled_reasons": [{"reason": r, "events": n} for r, n in total.reasons.items()],
            "spool": spool_location,
            "duplicates": total.duplicates,
            "hec_requests": getattr(destination, "requests", 0),
            "parse_errors": parse_errors,
            "empty_inputs": empty,
            "seconds": round(seconds, 3),
        }
        if json_summary:
            sys.stdout.write(msgspec.json.encode(summary).decode() + "\n")
            sys.stdout.flush()
        else:
            console = stderr_console()
            console.print(
                summary_line(total, destination.description, seconds, parse_errors),
                highlight=False,
                soft_wrap=True,
            )
            for line in spool_lines(total, spool_location, command=self_command()):
                console.print(line, highlight=False, soft_wrap=True, style="yellow")
        if stopped is not None:
            fail(stopped.message(total), 130)
        fail_on_empty(empty)
        if total.spooled:
            # Kept, not delivered: a script must not take this run for a success.
            raise typer.Exit(1)


def chunk_events(per_request: int | None) -> int:
    """Events per delivery: CHUNK_EVENTS, or ten HEC requests' worth when that is less."""
    if per_request is None:
        return CHUNK_EVENTS
    return min(CHUNK_EVENTS, HEC_REQUESTS_PER_CHUNK * per_request)


@dataclass(slots=True)
class Reading:
    """Which input `send` is reading (its index in the list of inputs)."""

    position: int = 0


@dataclass(frozen=True, slots=True)
class Stopped:
    """Where Ctrl-C stopped `send`: in which input, how many inputs were not read at all."""

    source: str | None
    unread: int
    in_flight: bool

    def message(self, total: Delivered) -> str:
        """One line: what was delivered, what was not, what to do."""
        kept = f"{total.accepted} events accepted by HEC" if total.accepted or not total.duplicates else ""
        if total.spooled:
            kept += f", {total.spooled} spooled for 'hsmaudit replay'"
        if self.in_flight:
            rest = "the delivery in flight may or may not have arrived, and the rest was not sent"
        else:
            where = "stdin" if self.source == STDIN else self.source
            rest = f"the rest of {where}"
            rest += f" and {self.unread} more inputs were not sent" if self.unread else " was not sent"
        return (
            f"interrupted: {kept or f'{total.events} events kept'}; {rest}. Send the same input "
            "again for the rest (repeats carry the same event_id: the store keeps one, "
            "Splunk's hsmaudit_dedup drops them)"
        )


def summary_line(total: Delivered, description: str, seconds: float, parse_errors: int) -> str:
    """`sent N events to X in Ys: A accepted`, or, when not all arrived, how many did and how many wait."""
    counts = f"{total.accepted} accepted"
    counts += f", {total.spooled} spooled" if total.spooled else ""
    counts += f", {total.duplicates} already stored" if total.duplicates else ""
    counts += f", {parse_errors} unparsed (sent with parse_error set)" if parse_errors else ""
    if total.spooled:
        return f"{total.events} events for {description}, in {seconds:.1f}s: {counts}"
    return f"sent {total.events} events to {description} in {seconds:.1f}s: {counts}"
