"""`hsmaudit parse`: read any input shape, print one normalised event per record."""

from __future__ import annotations

import sys
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

import typer

from hsmaudit.cli.output import (
    Column,
    OutputFormat,
    Row,
    fail,
    fitted_table,
    one_line_errors,
    severity_style,
    stdout_console,
    write_lines,
)
from hsmaudit.ops.inputs import read_events
from hsmaudit.records.event import HsmEvent, event_to_json
from hsmaudit.records.opcodes import USER_TYPE_ABBREVIATIONS
from hsmaudit.sources.errors import SourceError
from hsmaudit.sources.files import STDIN

if TYPE_CHECKING:
    from rich.table import Table

LOG_GROUP_OPTION: Any = typer.Option(
    None, "--log-group", help="Log group for inputs that do not carry one (gives cluster_id)."
)
LOG_STREAM_OPTION: Any = typer.Option(
    None, "--log-stream", help="Log stream for inputs that do not carry one (gives hsm_id)."
)
PATHS_HELP = (
    "Files to read; '-' (or nothing, with data piped in) reads stdin. Raw record text, certificate "
    "JSON, CloudWatch subscription envelopes or decoded documents, 'aws logs filter-log-events' / "
    "'get-log-events' output, JSON lines, hsmaudit events; gzip'd files too."
)


def input_paths(paths: list[str] | None) -> list[str]:
    """The paths to read, or stdin when none are given and something is piped in."""
    if paths:
        return paths
    if sys.stdin.isatty():
        fail("no input: give files, or '-' to read stdin (see 'hsmaudit parse --help')", 2)
    return [STDIN]


def fail_on_empty(empty: list[str]) -> None:
    """Exit 1 naming each input that held no records (after the others were processed)."""
    if not empty:
        return
    for name in empty[:-1]:
        sys.stderr.write(f"hsmaudit: no records in {name}\n")
    fail(f"no records in {empty[-1]}")


EVENT_COLUMNS = (
    Column("time", wrap=False),
    Column("hsm", drop=5, wrap=False),
    Column("seq", drop=3, wrap=False, justify="right"),
    Column("opcode", wrap=False),
    Column("user", drop=2, min_width=10),
    Column("key", drop=6, wrap=False, justify="right"),
    Column("response", min_width=10),
    Column("severity", drop=4, wrap=False),
)
"""Empty columns go first; at 80 columns then the key handle, the HSM, the severity (the row's
colour still shows it), the sequence number and the user; time, opcode and response always stay,
and neither a timestamp nor an opcode is ever broken."""


def events_table(events: Iterable[HsmEvent], *, width: int) -> Table:
    """A readable table of events for people (`--format table`), fitted to `width` columns."""
    rows: list[Row] = []
    for event in events:
        user = event.user_name or ""
        if event.user_type:
            # CO/CU as the dashboard says: "(CN_CRYPTO_OFFICER)" folded at 80 columns, leaving
            # a lone ")" on the next line
            user = f"{user} ({USER_TYPE_ABBREVIATIONS.get(event.user_type, event.user_type)})"
        handle = event.key_handle if event.key_handle is not None else event.object_handle
        response = event.response or ""
        if event.parse_error:
            response = f"PARSE ERROR: {event.parse_error}"
        cells = (
            event.time or "",
            event.hsm_id or "",
            "" if event.sequence_no is None else str(event.sequence_no),
            event.opcode or "",
            user,
            "" if handle is None else str(handle),
            response,
            event.severity or "",
        )
        rows.append((cells, severity_style(event.severity)))
    return fitted_table(EVENT_COLUMNS, rows, width=width)


def register(app: typer.Typer) -> None:
    """Add `parse` to the app."""

    @app.command("parse")
    def parse_command(
        paths: list[str] | None = typer.Argument(None, help=PATHS_HELP, show_default=False),
        output: OutputFormat = typer.Option(
            OutputFormat.jsonl, "--format", "-f", help="jsonl for machines, table for people."
        ),
        log_group: str | None = LOG_GROUP_OPTION,
        log_stream: str | None = LOG_STREAM_OPTION,
        raw: bool = typer.Option(True, "--raw/--no-raw", help="Include each record's raw text."),
    ) -> None:
        """Parse CloudHSM audit records into normalised events (JSON lines, one per record)."""
        empty: list[str] = []
        from hsmaudit.cli.progress import input_progress, tracked

        with one_line_errors(SourceError):
            sources = input_paths(paths)
            with input_progress("parse", sources) as bar:
                events = tracked(
                    read_events(sources, log_group=log_group, log_stream=log_stream, empty=empty), bar
                )
                if output is OutputFormat.table:
                    read = list(events)
                    bar.close()
                    console = stdout_console()
                    console.print(events_table(read, width=console.width))
                else:
                    write_lines(event_to_json(event, include_raw=raw) for event in events)
        fail_on_empty(empty)
