"""`hsmaudit demo`: the whole system on one machine, no AWS and no Splunk needed (contracts.md §3).

What runs is what runs in production, end to end:

    simulator -> CloudWatch subscription payloads -> hsmaudit.aws.subscription.handler (the real
    Lambda entry point, configured by HSMAUDIT_* variables like in AWS) -> HecClient (gzip,
    channel, indexer acks) -> the local HEC collector -> SQLite store -> detections -> dashboard

`--headless` plays a finite set of scenarios, checks that the store holds every simulated record
once and that every expected alert fired, prints a summary and exits (0 when all of that holds).
Without it, the dashboard stays up until Ctrl-C.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shlex
import shutil
import signal
import tempfile
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

import typer

from hsmaudit import defaults
from hsmaudit.cli.output import fail, self_command, stderr_console, stdout_console
from hsmaudit.cli.serve import check_port_free, warn_if_exposed
from hsmaudit.cli.simulate import parse_start
from hsmaudit.config import (
    HSMAUDIT_DB,
    HSMAUDIT_EVENT_FORMAT,
    HSMAUDIT_HEC_ACK,
    HSMAUDIT_HEC_ACK_POLL_INTERVAL,
    HSMAUDIT_HEC_TOKEN,
    HSMAUDIT_HEC_URL,
    HSMAUDIT_HEC_VERIFY,
    HSMAUDIT_METRICS,
    HSMAUDIT_SPOOL_BUCKET,
    HSMAUDIT_SPOOL_DIR,
)

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

    from hsmaudit.simulate.scenarios import Simulation

DEFAULT_DEMO_DB: Final = Path(".hsmaudit") / "demo.sqlite3"


@dataclass
class LambdaContext:
    """The parts of the Lambda context object the handler reads (the demo's invocations)."""

    function_name: str = "hsmaudit-demo"
    aws_request_id: str = ""
    budget_seconds: float = 60.0

    def get_remaining_time_in_millis(self) -> int:
        """What AWS reports: the invocation's remaining time."""
        return int(self.budget_seconds * 1000)


@contextlib.contextmanager
def lambda_environment(
    url: str, token: str, spool_dir: Path, *, event_format: str = defaults.EVENT_FORMAT
) -> Iterator[None]:
    """Configure the real handler as the CloudFormation template would, then restore the environment.

    Indexer acks are on: the handler only counts an event as delivered once the collector says it
    is committed. The spool is a local directory, so nothing is lost if the collector refuses.
    `event_format` is the HEC event format the handler sends (the collector takes both).
    """
    values = {
        HSMAUDIT_EVENT_FORMAT: event_format,
        HSMAUDIT_HEC_URL: url,
        HSMAUDIT_HEC_TOKEN: token,
        HSMAUDIT_HEC_ACK: "true",
        # The local collector commits before it answers, so its acks are true at the first poll;
        # Splunk's 10 s cadence would only make the demo slow.
        HSMAUDIT_HEC_ACK_POLL_INTERVAL: "0.01",
        HSMAUDIT_HEC_VERIFY: "true",
        HSMAUDIT_SPOOL_DIR: str(spool_dir),
        HSMAUDIT_METRICS: "false",
    }
    saved = {name: os.environ.get(name) for name in [*values, HSMAUDIT_SPOOL_BUCKET]}
    os.environ.pop(HSMAUDIT_SPOOL_BUCKET, None)
    os.environ.update(values)
    from hsmaudit.aws.runtime import clear_runtime

    clear_runtime()
    try:
        yield
    finally:
        clear_runtime()
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def _quiet_logs() -> None:
    # The handler logs one JSON line per invocation for CloudWatch; a terminal wants the summary.
    import logging

    library = logging.getLogger("hsmaudit")
    library.addHandler(logging.NullHandler())
    library.propagate = False


def plan_simulation(scenarios: list[str] | None, *, seed: int, hsms: int, start: str | None) -> Simulation:
    """The simulation to play; without `--start` it is placed so that its last record is about now."""
    from hsmaudit.simulate.scenarios import DEMO_SCENARIOS, run_scenarios

    names = scenarios or list(DEMO_SCENARIOS)
    start_usecs = parse_start(start)
    if start_usecs is None:
        draft = run_scenarios(names, seed=seed, hsms=hsms)
        span = draft.records[-1].usecs - draft.records[0].usecs if draft.records else 0
        start_usecs = time.time_ns() // 1000 - span - 60_000_000
    return run_scenarios(names, seed=seed, hsms=hsms, start_usecs=start_usecs)


def stream_through_handler(simulation: Simulation, *, progress: bool) -> dict[str, int]:
    """Invoke the real subscription handler once per CloudWatch payload; returns summed counts."""
    from hsmaudit.aws.subscription import handler
    from hsmaudit.simulate.emit import control_message_event, subscription_events

    payloads: list[dict[str, Any]] = [control_message_event(), *subscription_events(simulation.records)]
    totals: Counter[str] = Counter()
    context = LambdaContext()
    if progress:
        from rich.progress import Progress

        with Progress(console=stderr_console(), transient=True) as bar:
            task = bar.add_task("streaming through the Lambda handler", total=len(payloads))
            for number, payload in enumerate(payloads):
                context.aws_request_id = f"demo-{number}"
                totals.update(_counts(handler(payload, context)))
                bar.advance(task)
    else:
        for number, payload in enumerate(payloads):
            context.aws_request_id = f"demo-{number}"
            totals.update(_counts(handler(payload, context)))
    totals["invocations"] = len(payloads)
    return dict(totals)


def deliver_control_plane(simulation: Simulation, url: str, token: str) -> int:
    """POST the cluster's CloudTrail calls to the collector as `aws:cloudtrail` HEC events (the
    shape EventBridge -> Firehose -> HEC delivers); returns how many HEC accepted."""
    import json

    import urllib3

    calls = simulation.api_calls
    if not calls:
        return 0
    body = "\n".join(
        json.dumps({"time": _epoch(call["eventTime"]), "sourcetype": "aws:cloudtrail", "event": call})
        for call in calls
    )
    answer = urllib3.PoolManager().request(
        "POST",
        f"{url}/services/collector/event",
        body=body.encode(),
        headers={"Authorization": f"Splunk {token}", "Content-Type": "application/json"},
        timeout=30.0,
    )
    return len(calls) if answer.status == 200 else 0


def _epoch(iso: str) -> float:
    from datetime import datetime

    return datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp()


LIVE_INTERVAL_SECONDS: Final = 5.0
DEMO_HOLD_SECONDS: Final = 10.0
"""How long the demo's collector holds login and user-management records for their copies."""


def stream_live_activity(simulation: Simulation, *, server_alive: Callable[[], bool]) -> None:
    """Everyday work on the same cluster, now, every few seconds, through the handler (until Ctrl-C).

    The HSM that went silent in the `hsm-silent` scenario stays silent, as it would.
    """
    from hsmaudit.aws.subscription import handler
    from hsmaudit.simulate.cluster import CU
    from hsmaudit.simulate.emit import subscription_events
    from hsmaudit.simulate.scenarios import APP_USERS

    sim = simulation.simulator
    context = LambdaContext()
    number = 0
    while server_alive():
        sim.clock = time.time_ns() // 1000  # HSM streams stay monotonic on their own
        first = len(sim.records)
        user = sim.rng.choice(APP_USERS)
        serving = sim.login(user, CU)
        if sim.rng.random() < 0.6:
            sim.generate_key(serving)
        else:
            sim.share_key(serving)
        sim.logout(user, CU, serving)
        for payload in subscription_events(sorted(sim.records[first:], key=lambda r: (r.usecs, r.hsm_id))):
            number += 1
            context.aws_request_id = f"demo-live-{number}"
            handler(payload, context)
        time.sleep(LIVE_INTERVAL_SECONDS)


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def _counts(result: dict[str, Any]) -> dict[str, int]:
    return {key: value for key, value in result.items() if isinstance(value, int)}


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
        from hsmaudit.server.app import CollectorSettings, allowed_hosts_for, create_app
        from hsmaudit.server.detections import DetectionTailer
        from hsmaudit.server.hec import new_token
        from hsmaudit.server.run import start_in_thread
        from hsmaudit.simulate.emit import parsed_events
        from hsmaudit.store.database import EventStore
        from hsmaudit.store.errors import StoreError

        _quiet_logs()
        # SIGTERM (a service manager, `kill`) stops the demo as cleanly as Ctrl-C does.
        signal.signal(signal.SIGTERM, _interrupt)
        warn_if_exposed(host)
        console = stderr_console()
        if event_format not in ("lean", "json"):
            fail(f"--event-format must be lean or json, not {event_format!r}", 2)
        try:
            simulation = plan_simulation(scenario, seed=seed, hsms=hsms, start=start)
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
            store = EventStore(db)
        except StoreError as error:
            fail(str(error))
        token = new_token() + secrets.token_hex(4)
        try:
            server = start_in_thread(
                create_app(store, CollectorSettings(token=token), allowed_hosts=allowed_hosts_for(host)),
                host,
                listen_port,
            )
        except (RuntimeError, OSError, SystemExit) as error:
            store.close()
            fail(f"cannot start the local server on {host}: {error}; try --port 0")
        spool_dir = Path(tempfile.mkdtemp(prefix="hsmaudit-demo-spool-"))
        # The simulated streams arrive together: a short hold keeps the dashboard's alerts prompt.
        tailer = DetectionTailer(store, arrival_hold_seconds=DEMO_HOLD_SECONDS)
        try:
            if headless:
                # The server stops when the headless run ends: a URL would point at nothing.
                console.print(f"hsmaudit demo: fresh store {db}", highlight=False)
            else:
                console.print(f"hsmaudit demo: dashboard {server.url}/   fresh store {db}", highlight=False)
            sim = simulation.simulator
            console.print(
                f"hsmaudit demo: {len(simulation.records)} records from {len(sim.hsms)} HSMs "
                f"of {sim.cluster_id}: " + ", ".join(simulation.scenarios),
                highlight=False,
            )
            try:
                with lambda_environment(server.url, token, spool_dir, event_format=event_format):
                    totals = stream_through_handler(simulation, progress=not headless)
                totals["control_plane_sent"] = len(simulation.api_calls)
                totals["control_plane_accepted"] = deliver_control_plane(simulation, server.url, token)
            except KeyboardInterrupt:
                fail("interrupted while streaming the scenarios", 130)
            tailer.run_once(finalize=True)
            expected_ids = {event.event_id for event in parsed_events(simulation.records)}
            ok = _report(store, simulation, expected_ids, totals, server.url, headless=headless, db=db)
            spooled = sorted(path.name for path in spool_dir.rglob("*") if path.is_file())
            if spooled:
                console.print(
                    f"hsmaudit demo: {len(spooled)} batch(es) were spooled in {spool_dir}", style="yellow"
                )
            if headless:
                if not ok:
                    fail("the demo did not end as expected (see above)")
                return
            console.print(
                f"hsmaudit demo: open {server.url}/{'?refresh=5' if live else ''} ; "
                f"HEC token for your own events: {token} ; Ctrl-C to stop",
                highlight=False,
            )
            tailer.start()
            with contextlib.suppress(KeyboardInterrupt):
                if live:
                    with lambda_environment(server.url, token, spool_dir, event_format=event_format):
                        stream_live_activity(simulation, server_alive=server.thread.is_alive)
                while server.thread.is_alive():
                    server.thread.join(0.5)
        finally:
            tailer.stop()
            server.stop()
            store.close()
            if not any(path.is_file() for path in spool_dir.rglob("*")):  # keep anything spooled
                shutil.rmtree(spool_dir, ignore_errors=True)


SEVERITY_ORDER: Final = {"critical": 0, "high": 1, "medium": 2, "info": 3}


def alert_lines(store: Any) -> list[str]:
    """`alert <severity> <rule> <count>` per rule, most severe first: what the demo raised."""
    counts: Counter[tuple[str, str]] = Counter(
        (alert.severity or "info", alert.rule) for alert in store.alerts(limit=1_000_000)
    )
    ordered = sorted(counts.items(), key=lambda item: (SEVERITY_ORDER.get(item[0][0], 9), item[0][1]))
    return [f"alert  {severity:<8}  {rule:<36}  {count}" for (severity, rule), count in ordered]


def fresh_store(db: Path, *, cluster_id: str | None, reset: bool) -> str | None:
    """Make way for an empty store at `db`; returns why not, when it must not be replaced.

    Every run starts from an empty store, so a second run shows the same alerts as the first: the
    records are placed at the current time, and the first run's copies would otherwise be read as
    replayed sequence numbers with other content (148 false `sequence-duplicate` alerts) and hide
    the real gap. The demo's own file (the default) is always replaced; another file only when it
    holds nothing but this demo's cluster, or with `--reset`, so pointing the demo at a real store
    (`HSMAUDIT_DB`) never wipes it.
    """
    if not db.exists():
        return None
    if not reset and db != DEFAULT_DEMO_DB and not _demo_store(db, cluster_id):
        return (
            f"{db} holds other events than this demo's cluster {cluster_id}; the demo starts from an "
            "empty store: give --reset to replace it, or another --db"
        )
    for suffix in ("", "-wal", "-shm"):
        Path(str(db) + suffix).unlink(missing_ok=True)
    return None


def _demo_store(db: Path, cluster_id: str | None) -> bool:
    """Whether the store at `db` is empty or holds only events of the demo's cluster."""
    import sqlite3

    try:
        with contextlib.closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True)) as connection:
            rows = connection.execute("SELECT DISTINCT cluster_id FROM events LIMIT 3").fetchall()
    except sqlite3.Error:
        return db.stat().st_size == 0
    return {row[0] for row in rows} <= {cluster_id, None}


def _report(
    store: Any,
    simulation: Simulation,
    expected_ids: set[str | None],
    totals: dict[str, int],
    url: str,
    *,
    headless: bool,
    db: Path,
) -> bool:
    """Print what happened and whether it is what the simulation promised.

    Plain words and numbers (no Python reprs), then one line per alert rule with its severity
    and count: the same lines on every run of the same scenarios (a test compares two runs).
    """
    from rich.table import Table

    stored_ids = {event.event_id for _, event in store.iter_events()}
    missing = expected_ids - stored_ids
    summary = store.summary()
    fired = set(summary.alerts)
    expected_rules = simulation.expected_rules | simulation.control_plane_rules
    missing_rules = expected_rules - fired
    # An alert no scenario asked for is a false alert (or a bug): the demo must not pass with one.
    unexpected_rules = fired - expected_rules
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
    table.add_row("simulated events missing from store", str(len(missing)))
    by_type = ", ".join(
        f"{kind} {count}" for kind, count in sorted(summary.failed_logins.by_user_type.items())
    )
    table.add_row("failed logins", f"{summary.failed_logins.total}" + (f" ({by_type})" if by_type else ""))
    table.add_row(
        "keys generated / deleted / exported",
        f"{summary.key_generated} / {summary.key_deleted} / {summary.key_exported}",
    )
    table.add_row("alerts", str(sum(summary.alerts.values())))
    table.add_row("expected alerts missing", ", ".join(sorted(missing_rules)) or "none")
    table.add_row("unexpected alerts", ", ".join(sorted(unexpected_rules)) or "none")
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
    control_plane_lost = totals.get("control_plane_sent", 0) - totals.get("control_plane_accepted", 0)
    return (
        not missing
        and not missing_rules
        and not unexpected_rules
        and totals.get("spooled", 0) == 0
        and not control_plane_lost
    )
