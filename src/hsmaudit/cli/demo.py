"""`hsmaudit demo`: the whole system on one machine, no AWS and no Splunk needed (contracts.md §3).

What runs is what runs in production, end to end:

    simulator -> CloudWatch subscription payloads -> hsmaudit.aws.subscription.handler (the real
    Lambda entry point, configured by HSMAUDIT_* variables like in AWS) -> HecClient (gzip,
    channel, indexer acks) -> the local HEC collector -> SQLite store -> detections -> dashboard

`--headless` plays a finite set of scenarios, checks that the store holds every simulated record
once and that every expected alert fired, prints a summary and exits (0 when all of that holds).
Without it, the dashboard stays up until Ctrl-C.

This module is flags -> `ops.demo` (the simulation, the fresh store, the collector, the handler's
invocations, the verdict) -> output: it checks the flags and the port, shows progress and prints.
"""

from __future__ import annotations

import contextlib
import shlex
import signal
from pathlib import Path
from typing import TYPE_CHECKING

import typer

from hsmaudit import defaults
from hsmaudit.cli.output import fail, self_command, stderr_console, stdout_console
from hsmaudit.cli.serve import check_port_free, warn_if_exposed
from hsmaudit.cli.simulate import parse_start
from hsmaudit.config import HSMAUDIT_DB
from hsmaudit.ops.demo import (
    DEFAULT_DEMO_DB,
    DemoCollector,
    DemoStartError,
    DemoVerdict,
    alert_lines,
    fresh_store,
    plan_simulation,
    spooled_files,
    start_demo_collector,
)

if TYPE_CHECKING:
    from hsmaudit.simulate.scenarios import Simulation
    from hsmaudit.store.database import EventStore


def _quiet_logs() -> None:
    # The handler logs one JSON line per invocation for CloudWatch; a terminal wants the summary.
    import logging

    library = logging.getLogger("hsmaudit")
    library.addHandler(logging.NullHandler())
    library.propagate = False


def play_with_progress(
    collector: DemoCollector, simulation: Simulation, *, event_format: str, progress: bool
) -> dict[str, int]:
    """`DemoCollector.play`, with a transient progress bar on stderr for people."""
    if not progress:
        return collector.play(simulation, event_format=event_format)
    from rich.progress import Progress, TaskID

    with Progress(console=stderr_console(), transient=True) as bar:
        task: TaskID | None = None

        def advance(done: int, total: int) -> None:
            nonlocal task
            if task is None:
                task = bar.add_task("streaming through the Lambda handler", total=total)
            bar.update(task, completed=done)

        return collector.play(simulation, event_format=event_format, progress=advance)


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def register(app: typer.Typer) -> None:
    """Add `demo` to the app."""

    @app.command("demo")
    def demo(
        headless: bool = typer.Option(
            False, "--headless", help="Play the scenarios, check the result, print a summary and exit."
        ),
        db: Path = typer.Option(
            DEFAULT_DEMO_DB, "--db", envvar=HSMAUDIT_DB, help=f"SQLite store file. Env: {HSMAUDIT_DB}."
        ),
        reset: bool = typer.Option(
            False,
            "--reset",
            help="Replace a --db store that holds other events (the demo's own store is always "
            "replaced: every run starts empty, so it shows only its own alerts).",
        ),
        host: str = typer.Option("127.0.0.1", "--host", help="Address of the dashboard and collector."),
        port: int | None = typer.Option(
            None, "--port", min=0, max=65535, help="Port (default 8088; --headless: any free port)."
        ),
        scenario: list[str] = typer.Option(
            None,
            "--scenario",
            "-s",
            help="Scenario to play (repeatable; default: all; see 'hsmaudit simulate --list').",
        ),
        hsms: int = typer.Option(3, "--hsms", min=2, max=32, help="HSMs in the simulated cluster."),
        seed: int = typer.Option(1, "--seed", help="Random seed of the simulation."),
        start: str | None = typer.Option(
            None,
            "--start",
            help="Time of the first record (ISO-8601 UTC); default: so that the last one is now.",
        ),
        live: bool = typer.Option(
            True,
            "--live/--no-live",
            help="After the scenarios, keep simulating everyday work (not with --headless).",
        ),
        event_format: str = typer.Option(
            defaults.EVENT_FORMAT,
            "--event-format",
            help="HEC event format the handler sends: lean (the record text; default) or json.",
        ),
    ) -> None:
        """Run the whole pipeline locally: simulated CloudHSM cluster -> real Lambda handler -> HEC
        client -> local collector -> store -> detections -> dashboard."""
        _quiet_logs()
        # SIGTERM (a service manager, `kill`) stops the demo as cleanly as Ctrl-C does.
        signal.signal(signal.SIGTERM, _interrupt)
        warn_if_exposed(host)
        console = stderr_console()
        if event_format not in ("lean", "json"):
            fail(f"--event-format must be lean or json, not {event_format!r}", 2)
        start_usecs = parse_start(start)
        try:
            simulation = plan_simulation(scenario, seed=seed, hsms=hsms, start_usecs=start_usecs)
        except ValueError as error:
            fail(str(error), 2)
        listen_port = 0 if port is None and headless else (8088 if port is None else port)
        # before the store is replaced: 8088 is Splunk's HEC port too, often taken on a Splunk
        # machine (uvicorn logged a bind error and the reason was not in hsmaudit's own line)
        check_port_free(host, listen_port)
        refusal = fresh_store(db, cluster_id=simulation.simulator.cluster_id, reset=reset)
        if refusal:
            fail(refusal, 2)
        try:
            collector = start_demo_collector(db, host, listen_port)
        except DemoStartError as error:
            fail(str(error))
        try:
            if headless:
                # The server stops when the headless run ends: a URL would point at nothing.
                console.print(f"hsmaudit demo: fresh store {db}", highlight=False)
            else:
                console.print(
                    f"hsmaudit demo: dashboard {collector.url}/   fresh store {db}", highlight=False
                )
            sim = simulation.simulator
            console.print(
                f"hsmaudit demo: {len(simulation.records)} records from {len(sim.hsms)} HSMs "
                f"of {sim.cluster_id}: " + ", ".join(simulation.scenarios),
                highlight=False,
            )
            try:
                totals = play_with_progress(
                    collector, simulation, event_format=event_format, progress=not headless
                )
            except KeyboardInterrupt:
                fail("interrupted while streaming the scenarios", 130)
            verdict = collector.judge(simulation, totals)
            _report(collector.store, simulation, verdict, totals, collector.url, headless=headless, db=db)
            spooled = spooled_files(collector.spool_dir)
            if spooled:
                console.print(
                    f"hsmaudit demo: {len(spooled)} batch(es) were spooled in {collector.spool_dir}",
                    style="yellow",
                )
            if headless:
                if not verdict.ok:
                    fail("the demo did not end as expected (see above)")
                return
            console.print(
                f"hsmaudit demo: open {collector.url}/{'?refresh=5' if live else ''} ; "
                f"HEC token for your own events: {collector.token} ; Ctrl-C to stop",
                highlight=False,
            )
            collector.tailer.start()
            with contextlib.suppress(KeyboardInterrupt):
                collector.run_live(simulation, event_format=event_format, live=live)
        finally:
            collector.close()


def _report(
    store: EventStore,
    simulation: Simulation,
    verdict: DemoVerdict,
    totals: dict[str, int],
    url: str,
    *,
    headless: bool,
    db: Path,
) -> None:
    """Print what happened and whether it is what the simulation promised (`ops.demo.check_demo`).

    Plain words and numbers (no Python reprs), then one line per alert rule with its severity
    and count: the same lines on every run of the same scenarios (a test compares two runs).
    """
    from rich.table import Table

    summary = verdict.summary
    table = Table(title="hsmaudit demo", show_header=False, title_justify="left")
    table.add_column("what")
    table.add_column("value")
    if headless:
        table.add_row("store", str(db))
    else:
        table.add_row("dashboard", f"{url}/  (API: {url}/api/summary)")
    table.add_row("simulated records", str(len(simulation.records)))
    table.add_row(
        "handler invocations",
        f"{totals.get('invocations', 0)} ({totals.get('control_messages', 0)} CONTROL_MESSAGE skipped)",
    )
    table.add_row("sent via HEC, acked", f"{totals.get('accepted', 0)} (spooled {totals.get('spooled', 0)})")
    table.add_row(
        "CloudTrail calls (control plane), accepted",
        f"{totals.get('control_plane_accepted', 0)} of {totals.get('control_plane_sent', 0)}",
    )
    table.add_row("stored events (total in store)", str(summary.total_events))
    table.add_row("simulated events missing from store", str(verdict.missing_events))
    by_type = ", ".join(
        f"{kind} {count}" for kind, count in sorted(summary.failed_logins.by_user_type.items())
    )
    table.add_row("failed logins", f"{summary.failed_logins.total}" + (f" ({by_type})" if by_type else ""))
    table.add_row(
        "keys generated / deleted / exported",
        f"{summary.key_generated} / {summary.key_deleted} / {summary.key_exported}",
    )
    table.add_row("alerts", str(sum(summary.alerts.values())))
    table.add_row("expected alerts missing", ", ".join(sorted(verdict.missing_rules)) or "none")
    table.add_row("unexpected alerts", ", ".join(sorted(verdict.unexpected_rules)) or "none")
    console = stdout_console()
    console.print(table)
    for line in alert_lines(store):
        console.print(line, highlight=False, soft_wrap=True)
    if headless:
        console.print(
            f"to look at it on the dashboard: {self_command()} serve --db {shlex.quote(str(db))}",
            highlight=False,
            soft_wrap=True,
        )
