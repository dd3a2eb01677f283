"""The demo engine: simulated cluster activity through the real Lambda handler into a local store.

What `hsmaudit demo` (cli/demo.py) runs is what runs in production, end to end:

    simulator -> CloudWatch subscription payloads -> hsmaudit.aws.subscription.handler (the real
    Lambda entry point, configured by HSMAUDIT_* variables like in AWS) -> HecClient (gzip,
    channel, indexer acks) -> the local HEC collector -> SQLite store -> detections -> dashboard

This module plans the simulation, makes way for a fresh store, starts the collector over it
(`start_demo_collector`), configures and invokes the handler, delivers the CloudTrail calls and
judges the outcome (`check_demo`); the command turns flags into calls, shows progress and prints.
No Typer, no Rich, and it never exits the process.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import tempfile
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from hsmaudit import defaults
from hsmaudit.config import (
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
from hsmaudit.errors import HsmauditError

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

    from hsmaudit.server.detections import DetectionTailer
    from hsmaudit.server.run import RunningServer
    from hsmaudit.simulate.scenarios import Simulation
    from hsmaudit.store.database import EventStore
    from hsmaudit.store.query import Summary

DEFAULT_DEMO_DB: Final = Path(".hsmaudit") / "demo.sqlite3"
"""The demo's own store (relative to the working directory): always replaced by a new run."""

LIVE_INTERVAL_SECONDS: Final = 5.0
DEMO_HOLD_SECONDS: Final = 10.0
"""How long the demo's collector holds login and user-management records for their copies."""

SEVERITY_ORDER: Final = {"critical": 0, "high": 1, "medium": 2, "info": 3}


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


def plan_simulation(
    scenarios: list[str] | None, *, seed: int, hsms: int, start_usecs: int | None
) -> Simulation:
    """The simulation to play; without a start it is placed so that its last record is about now.

    Unknown scenario names (or `hsm-silent` with one HSM) raise `ValueError` (`run_scenarios`).
    """
    from hsmaudit.simulate.scenarios import DEMO_SCENARIOS, run_scenarios

    names = scenarios or list(DEMO_SCENARIOS)
    if start_usecs is None:
        draft = run_scenarios(names, seed=seed, hsms=hsms)
        span = draft.records[-1].usecs - draft.records[0].usecs if draft.records else 0
        start_usecs = time.time_ns() // 1000 - span - 60_000_000
    return run_scenarios(names, seed=seed, hsms=hsms, start_usecs=start_usecs)


def stream_through_handler(
    simulation: Simulation, *, progress: Callable[[int, int], None] | None = None
) -> dict[str, int]:
    """Invoke the real subscription handler once per CloudWatch payload; returns summed counts.

    The first payload is a CONTROL_MESSAGE (CloudWatch's health check, never an event). `progress`
    is called with (invocations done, invocations in all) before the first and after each one.
    """
    from hsmaudit.aws.subscription import handler
    from hsmaudit.simulate.emit import control_message_event, subscription_events

    payloads: list[dict[str, Any]] = [control_message_event(), *subscription_events(simulation.records)]
    totals: Counter[str] = Counter()
    context = LambdaContext()
    if progress is not None:
        progress(0, len(payloads))
    for number, payload in enumerate(payloads):
        context.aws_request_id = f"demo-{number}"
        totals.update(_counts(handler(payload, context)))
        if progress is not None:
            progress(number + 1, len(payloads))
    totals["invocations"] = len(payloads)
    return dict(totals)


def _counts(result: dict[str, Any]) -> dict[str, int]:
    return {key: value for key, value in result.items() if isinstance(value, int)}


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


def stream_live_activity(
    simulation: Simulation,
    *,
    server_alive: Callable[[], bool],
    interval: float = LIVE_INTERVAL_SECONDS,
) -> None:
    """Everyday work on the same cluster, now, every `interval` seconds, through the handler,
    while `server_alive()` (the command stops it with Ctrl-C).

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
        time.sleep(interval)


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


def spooled_files(spool_dir: Path) -> list[str]:
    """Names of the batches the handler spooled (none when the collector took everything)."""
    return sorted(path.name for path in spool_dir.rglob("*") if path.is_file())


def alert_lines(store: EventStore) -> list[str]:
    """`alert <severity> <rule> <count>` per rule, most severe first: what the demo raised."""
    counts: Counter[tuple[str, str]] = Counter(
        (alert.severity or "info", alert.rule) for alert in store.alerts(limit=1_000_000)
    )
    ordered = sorted(counts.items(), key=lambda item: (SEVERITY_ORDER.get(item[0][0], 9), item[0][1]))
    return [f"alert  {severity:<8}  {rule:<36}  {count}" for (severity, rule), count in ordered]


@dataclass(frozen=True, slots=True)
class DemoVerdict:
    """Whether a played simulation ended as it promised: every record stored, every expected rule
    fired and no other, nothing spooled, every CloudTrail call accepted."""

    summary: Summary
    missing_events: int
    missing_rules: frozenset[str]
    unexpected_rules: frozenset[str]
    spooled: int
    control_plane_lost: int

    @property
    def ok(self) -> bool:
        """True when nothing is missing, unexpected, spooled or lost."""
        return (
            not self.missing_events
            and not self.missing_rules
            and not self.unexpected_rules
            and self.spooled == 0
            and not self.control_plane_lost
        )


def check_demo(store: EventStore, simulation: Simulation, totals: dict[str, int]) -> DemoVerdict:
    """Compare the store with the simulation (after the detections ran over it).

    An alert no scenario asked for is a false alert (or a bug): the demo must not pass with one.
    """
    from hsmaudit.simulate.emit import parsed_events

    expected_ids = {event.event_id for event in parsed_events(simulation.records)}
    stored_ids = {event.event_id for _, event in store.iter_events()}
    summary = store.summary()
    fired = set(summary.alerts)
    expected_rules = simulation.expected_rules | simulation.control_plane_rules
    return DemoVerdict(
        summary=summary,
        missing_events=len(expected_ids - stored_ids),
        missing_rules=frozenset(expected_rules - fired),
        unexpected_rules=frozenset(fired - expected_rules),
        spooled=totals.get("spooled", 0),
        control_plane_lost=totals.get("control_plane_sent", 0) - totals.get("control_plane_accepted", 0),
    )


class DemoStartError(HsmauditError):
    """The demo's store cannot be opened or its local server cannot start (the CLI exits 1)."""


@dataclass
class DemoCollector:
    """The demo's running parts: the store, the local collector over it and its token, the
    handler's spool directory and the detections over the store."""

    store: EventStore
    server: RunningServer
    token: str
    spool_dir: Path
    tailer: DetectionTailer

    @property
    def url(self) -> str:
        """The collector's (and dashboard's) base URL."""
        return self.server.url

    def play(
        self,
        simulation: Simulation,
        *,
        event_format: str = defaults.EVENT_FORMAT,
        progress: Callable[[int, int], None] | None = None,
    ) -> dict[str, int]:
        """Stream the simulation through the handler into the collector, then post its CloudTrail
        calls; the handler's counts plus `control_plane_sent` and `control_plane_accepted`."""
        with lambda_environment(self.url, self.token, self.spool_dir, event_format=event_format):
            totals = stream_through_handler(simulation, progress=progress)
        totals["control_plane_sent"] = len(simulation.api_calls)
        totals["control_plane_accepted"] = deliver_control_plane(simulation, self.url, self.token)
        return totals

    def judge(self, simulation: Simulation, totals: dict[str, int]) -> DemoVerdict:
        """Run the detections over everything stored (held copies included), then `check_demo`."""
        self.tailer.run_once(finalize=True)
        return check_demo(self.store, simulation, totals)

    def run_live(self, simulation: Simulation, *, event_format: str, live: bool) -> None:
        """Keep the dashboard up, with everyday work streamed when `live`, until the server stops
        (Ctrl-C's KeyboardInterrupt propagates to the command)."""
        if live:
            with lambda_environment(self.url, self.token, self.spool_dir, event_format=event_format):
                stream_live_activity(simulation, server_alive=self.server.thread.is_alive)
        while self.server.thread.is_alive():
            self.server.thread.join(0.5)

    def close(self) -> None:
        """Stop the detections and the server, close the store; the spool directory goes unless
        something was spooled in it."""
        self.tailer.stop()
        self.server.stop()
        self.store.close()
        if not spooled_files(self.spool_dir):  # keep anything spooled
            shutil.rmtree(self.spool_dir, ignore_errors=True)


def start_demo_collector(db: Path, host: str, port: int) -> DemoCollector:
    """Open the store at `db` and start the collector over it on `host:port` (0: any free port),
    with a fresh token and a temporary spool directory for the handler.

    Raises `DemoStartError` (the store is closed again when the server cannot start).
    """
    from hsmaudit.server.app import CollectorSettings, allowed_hosts_for, create_app
    from hsmaudit.server.detections import DetectionTailer
    from hsmaudit.server.hec import new_token
    from hsmaudit.server.run import start_in_thread
    from hsmaudit.store.database import EventStore
    from hsmaudit.store.errors import StoreError

    try:
        store = EventStore(db)
    except StoreError as error:
        raise DemoStartError(str(error)) from error
    token = new_token() + secrets.token_hex(4)
    try:
        server = start_in_thread(
            create_app(store, CollectorSettings(token=token), allowed_hosts=allowed_hosts_for(host)),
            host,
            port,
        )
    except (RuntimeError, OSError, SystemExit) as error:  # uvicorn exits when it cannot bind
        store.close()
        raise DemoStartError(f"cannot start the local server on {host}: {error}; try --port 0") from error
    spool_dir = Path(tempfile.mkdtemp(prefix="hsmaudit-demo-spool-"))
    # The simulated streams arrive together: a short hold keeps the dashboard's alerts prompt.
    tailer = DetectionTailer(store, arrival_hold_seconds=DEMO_HOLD_SECONDS)
    return DemoCollector(store=store, server=server, token=token, spool_dir=spool_dir, tailer=tailer)
