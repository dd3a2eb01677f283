"""`hsmaudit detect` (events -> alerts) and `hsmaudit rules` (list, compile the Sigma rules).

contracts.md §3: `detect` reads the same inputs as `parse`, or the local store with `--db`, and
prints one alert (§4) per line; it exits 0 whether or not alerts fired. `rules compile` is the one
command that regenerates the rule set, the SQLite queries and the Splunk `savedsearches.conf`.
"""

from __future__ import annotations

import heapq
import re
import sqlite3
import sys
import time
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

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
    iter_events,
)
from hsmaudit.detect.errors import DetectError
from hsmaudit.records.alert import Alert, alert_to_json
from hsmaudit.records.event import HsmEvent
from hsmaudit.sources.errors import SourceError

if TYPE_CHECKING:
    from rich.table import Table

    from hsmaudit.detect.engine import DetectionConfig

_DURATION: Final = re.compile(r"^\s*(\d+)\s*([smhd]?)\s*$")
_UNIT_SECONDS: Final[dict[str, int]] = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_duration_usecs(text: str) -> int:
    """`90`, `90s`, `30m`, `6h`, `1d` -> microseconds (raises ValueError)."""
    match = _DURATION.match(text)
    if match is None or int(match.group(1)) == 0:
        raise ValueError(f"bad duration {text!r}: use a positive number with s, m, h or d (e.g. 30m)")
    return int(match.group(1)) * _UNIT_SECONDS[match.group(2)] * 1_000_000


def parse_now_usecs(text: str | None) -> int | None:
    """`--now`: absent = each cluster's newest record; `now` = wall clock; or an ISO-8601 time."""
    if text is None:
        return None
    if text.strip().lower() == "now":
        return time.time_ns() // 1000
    try:
        moment = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError as error:
        raise ValueError(f"bad --now {text!r}: use 'now' or an ISO-8601 time") from error
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return int(moment.timestamp() * 1_000_000)


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


def _config(silent_after: str, disabled: list[str] | None) -> DetectionConfig:
    from hsmaudit.detect.engine import DetectionConfig
    from hsmaudit.detect.ruleset import load_ruleset

    known = set(load_ruleset().rule_ids)
    unknown = sorted(set(disabled or ()) - known)
    if unknown:
        fail(f"unknown rule id(s) {', '.join(unknown)}; see 'hsmaudit rules list'", 2)
    try:
        silent_usecs = parse_duration_usecs(silent_after)
    except ValueError as error:
        fail(str(error), 2)
    return DetectionConfig(silent_after_usecs=silent_usecs, disabled=frozenset(disabled or ()))


def _store_alerts(db: Path, config: DetectionConfig, now_usecs: int | None) -> list[Alert]:
    from hsmaudit.detect.sqlite import detect_store

    if not db.is_file():
        fail(f"no store at {db}: give the path of an hsmaudit SQLite store", 2)
    try:
        # Read-only: detection never changes the store (its temporary view lives in `temp`).
        connection = sqlite3.connect(db.resolve().as_uri() + "?mode=ro", uri=True)
    except sqlite3.Error as error:
        fail(f"cannot open {db}: {error}")
    try:
        return detect_store(connection, config, now_usecs=now_usecs)
    finally:
        connection.close()


def time_ordered(events: Iterable[HsmEvent]) -> Iterator[HsmEvent]:
    """Every event, the HSM streams merged by HSM time, each stream in its own (input) order.

    Reading one HSM's stream after another would otherwise release its records before the other
    HSMs' copies of the same logins arrive. Within a stream the input order is kept (it is the
    sequence order; an HSM clock stepped back must not reorder the stream into a false gap).
    Ties go by stream name, so the result does not depend on the order the inputs were given.
    Memory is proportional to the input (about 1 KB per event); `--stream` keeps it flat for
    input that is already in time order.
    """
    streams: dict[str, list[HsmEvent]] = {}
    for event in events:
        stream = event.hsm_id or f"{event.log_group or ''}|{event.log_stream or ''}"
        streams.setdefault(stream, []).append(event)
    keyed = (
        [(event.usecs or 0, index, position, event) for position, event in enumerate(streams[name])]
        for index, name in enumerate(sorted(streams))
    )
    return (item[3] for item in heapq.merge(*keyed, key=lambda item: item[:3]))


def _summary(alerts: list[Alert], events: int | None) -> None:
    counts: dict[str, int] = {}
    for alert in alerts:
        counts[alert.rule] = counts.get(alert.rule, 0) + 1
    parts = ", ".join(f"{rule} {count}" for rule, count in sorted(counts.items())) or "none"
    seen = "" if events is None else f"{events} events, "
    stderr_console().print(f"{seen}{len(alerts)} alerts: {parts}", highlight=False)


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
        config = _config(silent_after, disable)
        try:
            now_usecs = parse_now_usecs(now)
        except ValueError as error:
            fail(str(error), 2)
        empty: list[str] = []
        from hsmaudit.cli.progress import WorkProgress, input_progress, tracked

        with one_line_errors(SourceError, DetectError, msgspec.ValidationError, sqlite3.Error):
            events_seen: int | None = None
            bar = WorkProgress("detect", total=None, enabled=False)
            if db is not None:
                if paths:
                    fail("give either input paths or --db, not both", 2)
                alerts: Iterable[Alert] = _store_alerts(db, config, now_usecs)
            else:
                from hsmaudit.detect.engine import DetectionEngine, detect_events

                engine = DetectionEngine(config)
                sources = input_paths(paths)
                bar = input_progress("detect", sources)
                events: Iterable[HsmEvent] = tracked(
                    iter_events(sources, log_group=log_group, log_stream=log_stream, empty=empty), bar
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
            rows = _rule_rows(load_ruleset().metadata)
            if output is OutputFormat.jsonl:
                write_lines(msgspec.json.encode(row) for row in rows)
                return
            rule_rows: list[Row] = [
                (
                    (row.rule, row.severity, row.kind, ", ".join(row.runs_in), row.title),
                    severity_style(row.severity),
                )
                for row in rows
            ]
            console = stdout_console()
            console.print(fitted_table(RULE_COLUMNS, rule_rows, width=console.width))

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


class RuleRow(msgspec.Struct, frozen=True):
    """One line of `hsmaudit rules list`."""

    rule: str
    severity: str
    kind: str
    runs_in: list[str]
    title: str


def _rule_rows(metadata: dict[str, dict[str, Any]]) -> list[RuleRow]:
    rows = []
    for rule_id, entry in sorted(metadata.items()):
        if "condition" in entry:
            kind, runs_in = "single-event", ["python", "sqlite", "splunk"]
        elif "timespan_seconds" in entry:
            kind, runs_in = "correlation", ["python", "sqlite", "splunk"]
        else:
            kind, runs_in = "stateful", ["python", "splunk"]
        rows.append(RuleRow(rule_id, str(entry["severity"]), kind, runs_in, str(entry["title"])))
    return rows
