"""`hsmaudit report`: the auditor's report of a period (HTML or JSON), and `--check` against an
earlier one. The engine is `hsmaudit.ops.report`; this module is flags -> engine -> output."""

from __future__ import annotations

import json
import sys
from enum import StrEnum
from pathlib import Path

import typer

from hsmaudit.cli.output import fail, stderr_console
from hsmaudit.ops.timespec import TimeSpecError, parse_time_ms


class ReportFormat(StrEnum):
    """What `--format` accepts."""

    html = "html"
    json = "json"


def _say_what_the_store_holds(db: Path) -> None:
    """An empty period over a store that has events is usually the wrong dates (the demo's
    events are placed around now): say so on stderr, the report itself stays as asked."""
    from hsmaudit.store.database import EventStore

    with EventStore(db) as store:
        held = store.count_events()
    if held:
        stderr_console().print(
            f"hsmaudit report: no event of {db} is in the period; it holds {held} events at other "
            "times (without --since/--until the report covers them all)",
            highlight=False,
            soft_wrap=True,
        )


def register(app: typer.Typer) -> None:
    """Add `report` to the app."""

    @app.command("report")
    def report_command(
        db: Path | None = typer.Option(
            None, "--db", help="The local store to report on (what 'hsmaudit serve' and 'demo' write)."
        ),
        splunk_export: list[Path] = typer.Option(
            None,
            "--splunk-export",
            help="A Splunk search export (JSON lines, JSON array or CSV; repeatable) instead of --db.",
        ),
        since: str | None = typer.Option(
            None, "--since", help="Start of the period, inclusive (ISO-8601 UTC, epoch ms, or 90d)."
        ),
        until: str | None = typer.Option(
            None, "--until", help="End of the period, exclusive (same spellings as --since)."
        ),
        output_format: ReportFormat = typer.Option(
            ReportFormat.html, "--format", "-f", help="html (printable, no scripts) or json."
        ),
        out: Path | None = typer.Option(None, "--out", "-o", help="Write the report here (default: stdout)."),
        check: Path | None = typer.Option(
            None,
            "--check",
            help="An earlier JSON report of the same period: exit 1 when the data or report changed.",
        ),
        silent_after: int = typer.Option(
            60, "--silent-after-minutes", min=1, help="Silent periods shorter than this are not listed."
        ),
    ) -> None:
        """Write an auditor-ready report of a period (HTML or JSON), tied to PCI DSS v4.

        Per HSM the sequence ranges, every gap, reset, duplicate and silent period, reboots,
        activity by day, CloudTrail control-plane calls, alerts and retention, each section tied
        to its PCI DSS v4 requirement, with digests of the report and of the data it covers."""
        from hsmaudit.ops.report import (
            Period,
            ReportInputError,
            build_report,
            compare_digests,
            events_from_splunk_export,
            events_from_store,
            render_html,
            render_json,
        )

        if (db is None) == (not splunk_export):
            fail("give exactly one source: --db PATH or --splunk-export FILE (repeatable)", 2)
        try:
            period = Period(
                since_usecs=parse_time_ms(since) * 1000 if since else None,
                until_usecs=parse_time_ms(until) * 1000 if until else None,
            )
        except TimeSpecError as error:
            fail(f"bad --since/--until: {error}", 2)
        try:
            if db is not None:
                if not db.is_file():
                    fail(f"no store at {db} (run 'hsmaudit serve' or 'hsmaudit demo' first)", 2)
                events = events_from_store(db, period)
                if not events and (since or until):
                    _say_what_the_store_holds(db)
            else:
                events = []
                for path in splunk_export:
                    events += events_from_splunk_export(path, period)
        except (OSError, ReportInputError) as error:
            fail(f"cannot read the input: {error}")
        report = build_report(events, period, silent_after_usecs=silent_after * 60_000_000)
        text = render_json(report) if output_format is ReportFormat.json else render_html(report)
        if out is None:
            sys.stdout.write(text)
        else:
            out.write_text(text, encoding="utf-8")
        console = stderr_console()
        digests = report["digests"]
        console.print(
            f"hsmaudit report: {digests['events']} events, {len(report['alerts']['list'])} alerts; "
            f"data {digests['data']}; report {digests['report']}"
            + (f"; written to {out}" if out is not None else ""),
            highlight=False,
            soft_wrap=True,
        )
        if check is not None:
            try:
                previous = json.loads(check.read_text(encoding="utf-8"))
            except (OSError, ValueError) as error:
                fail(f"cannot read the earlier report {check}: {error}", 2)
            changes = compare_digests(previous, report)
            if changes:
                fail("changed since the earlier report: " + "; ".join(changes))
            console.print(f"hsmaudit report: unchanged since {check}", highlight=False)
