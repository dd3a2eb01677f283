"""`hsmaudit detect` (events -> alerts) and `hsmaudit rules` (list, compile the Sigma rules).

contracts.md §3: `detect` reads the same inputs as `parse`, or the local store with `--db`, and
prints one alert (§4) per line; it exits 0 whether or not alerts fired. `rules compile` is the one
command that regenerates the rule set, the SQLite queries and the Splunk `savedsearches.conf`.
"""

from __future__ import annotations

import sqlite3
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING

import msgspec
import typer

from hsmaudit.cli.output import (
    Column,
    OutputFormat,
    Row,
    fail,
    fitted_table,
    one_line_errors,
    severity_style,
    stderr_console,
    stdout_console,
    write_lines,
)
from hsmaudit.cli.parse import (
    LOG_GROUP_OPTION,
    LOG_STREAM_OPTION,
    PATHS_HELP,
    fail_on_empty,
    input_paths,
)
from hsmaudit.detect.errors import DetectError, DetectStoreError
from hsmaudit.ops.detection import (
    DetectOptionError,
    alerts_summary,
    detection_config,
    parse_now_usecs,
    rule_rows,
    store_alerts,
    time_ordered,
)
from hsmaudit.ops.inputs import read_events
from hsmaudit.records.alert import Alert, alert_to_json
from hsmaudit.records.event import HsmEvent
from hsmaudit.sources.errors import SourceError

if TYPE_CHECKING:
    from rich.table import Table

ALERT_COLUMNS = (
    Column("time", wrap=False),
    Column("severity", drop=3, wrap=False),
    Column("rule", wrap=False),
    Column("cluster", drop=4, wrap=False),
    Column("hsm", drop=2, wrap=False),
    Column("user", drop=1, min_width=10),
    Column("details", drop=5, min_width=12),
)
"""At 80 columns the details go first, then the cluster, the severity (the row's colour shows
it), the HSM and the user; time and rule id always stay, never broken."""

RULE_COLUMNS = (
    Column("rule", wrap=False),
    Column("severity", wrap=False),
    Column("kind", drop=2, wrap=False),
    Column("runs in", drop=1, min_width=10),
    Column("title", min_width=16),
)
"""A rule id is what `--disable` takes: never broken. The title folds; kind and where it runs go
first when the terminal is too narrow."""


def alerts_table(alerts: Iterable[Alert], *, width: int) -> Table:
    """A readable table of alerts for people (`--format table`), fitted to `width` columns."""
    rows: list[Row] = []
    for alert in alerts:
        details = ", ".join(f"{key}={value}" for key, value in alert.details.items() if key != "response")
        cells = (
            alert.time or "",
            alert.severity,
            alert.rule,
            alert.cluster_id or "",
            alert.hsm_id or "",
            alert.user_name or "",
            details,
        )
        rows.append((cells, severity_style(alert.severity)))
    return fitted_table(ALERT_COLUMNS, rows, width=width)


def _summary(alerts: list[Alert], events: int | None) -> None:
    stderr_console().print(alerts_summary(alerts, events), highlight=False)


def register(app: typer.Typer) -> None:
    """Add `detect` and the `rules` group to the app."""

    @app.command("detect")
    def detect_command(
        paths: list[str] | None = typer.Argument(None, help=PATHS_HELP, show_default=False),
        db: Path | None = typer.Option(
            None, "--db", help="Run the detections over a local hsmaudit SQLite store instead of files."
        ),
        output: OutputFormat = typer.Option(
            OutputFormat.jsonl, "--format", "-f", help="jsonl for machines, table for people."
        ),
        log_group: str | None = LOG_GROUP_OPTION,
        log_stream: str | None = LOG_STREAM_OPTION,
        silent_after: str = typer.Option(
            "1h", "--silent-after", help="hsm-silent: how long an HSM may go without a record (30m, 6h, 1d)."
        ),
        now: str | None = typer.Option(
            None,
            "--now",
            help="hsm-silent clock: 'now', an ISO-8601 time, or (default) each cluster's newest record.",
        ),
        disable: list[str] | None = typer.Option(
            None, "--disable", help="Skip a rule id (repeatable); see 'hsmaudit rules list'."
        ),
        summary: bool = typer.Option(False, "--summary", help="Print alert counts per rule on stderr."),
        stream: bool = typer.Option(
            False,
            "--stream",
            help="Detect in input order with flat memory (for time-ordered input, e.g. a pipe); "
            "by default every input is read and the HSM streams merged by HSM time first.",
        ),
    ) -> None:
        """Run every detection over CloudHSM audit events and print one alert per line.

        Reads the same inputs as 'hsmaudit parse' (or the local store with --db). The HSM streams of
        all inputs are merged by HSM time before detection (each stream in its own order), so a
        cluster's streams given one file after another give the same alerts as one merged file.
        Exits 0 whether or not alerts fired; non-zero only when the input cannot be read.
        """
        try:
            config = detection_config(silent_after, disable)
        except DetectOptionError as error:
            fail(str(error), 2)
        try:
            now_usecs = parse_now_usecs(now)
        except ValueError as error:
            fail(str(error), 2)
        empty: list[str] = []
        from hsmaudit.cli.progress import WorkProgress, input_progress, tracked

        expected = (SourceError, DetectError, DetectStoreError, msgspec.ValidationError, sqlite3.Error)
        with one_line_errors(*expected):
            events_seen: int | None = None
            bar = WorkProgress("detect", total=None, enabled=False)
            if db is not None:
                if paths:
                    fail("give either input paths or --db, not both", 2)
                try:
                    alerts: Iterable[Alert] = store_alerts(db, config, now_usecs)
                except DetectOptionError as error:
                    fail(str(error), 2)
            else:
                from hsmaudit.detect.engine import DetectionEngine, detect_events

                engine = DetectionEngine(config)
                sources = input_paths(paths)
                bar = input_progress("detect", sources)
                events: Iterable[HsmEvent] = tracked(
                    read_events(sources, log_group=log_group, log_stream=log_stream, empty=empty), bar
                )
                if not stream:
                    with bar:
                        events = time_ordered(events)
                alerts = detect_events(events, now_usecs=now_usecs, engine=engine)
            with bar:  # --stream: the bar runs while detection reads the input
                if output is OutputFormat.table or summary:
                    alerts = list(alerts)
                    if db is None:
                        events_seen = engine.stats.events
                if output is OutputFormat.table:
                    bar.close()
                    console = stdout_console()
                    console.print(alerts_table(alerts, width=console.width))
                else:
                    write_lines(alert_to_json(alert) for alert in alerts)
            if summary:
                assert isinstance(alerts, list)
                _summary(alerts, events_seen)
        fail_on_empty(empty)

    rules_app = typer.Typer(
        name="rules",
        help="The detection rules: list them, or regenerate SQLite queries and Splunk searches from Sigma.",
        no_args_is_help=True,
    )
    app.add_typer(rules_app)

    @rules_app.command("list")
    def rules_list(
        output: OutputFormat = typer.Option(
            OutputFormat.table, "--format", "-f", help="jsonl for machines, table for people."
        ),
    ) -> None:
        """List every rule id with its level and where it runs."""
        from hsmaudit.detect.ruleset import load_ruleset

        with one_line_errors(DetectError):
            rows = rule_rows(load_ruleset().metadata)
            if output is OutputFormat.jsonl:
                write_lines(msgspec.json.encode(row) for row in rows)
                return
            table_rows: list[Row] = [
                (
                    (row.rule, row.severity, row.kind, ", ".join(row.runs_in), row.title),
                    severity_style(row.severity),
                )
                for row in rows
            ]
            console = stdout_console()
            console.print(fitted_table(RULE_COLUMNS, table_rows, width=console.width))

    @rules_app.command("compile")
    def rules_compile(
        check: bool = typer.Option(
            False, "--check", help="Only check that the generated files are current (exit 1 if stale)."
        ),
    ) -> None:
        """Regenerate rules.json, the SQLite queries and savedsearches.conf from the Sigma rules.

        Needs the 'sigma' extra (pySigma and its Splunk and SQLite backends).
        """
        try:
            from hsmaudit.ops.compiled_rules import stale_files, write_generated
        except ImportError as error:
            fail(f"pySigma is not installed ({error.name}): pip install 'hsmaudit[sigma]'")
        with one_line_errors(DetectError):
            if check:
                stale = stale_files()
                if stale:
                    fail(f"generated files are stale: {', '.join(stale)}; run 'hsmaudit rules compile'")
                sys.stdout.write("generated files are current\n")
                return
            changed = write_generated()
            sys.stdout.write(
                "".join(f"wrote src/hsmaudit/{path}\n" for path in changed) or "generated files are current\n"
            )
