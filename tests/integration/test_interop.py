"""Interop: real HEC clients post to the local collector and their events land in the store.

- Splunk's own HEC client for Node (npm `splunk-logging`, pinned in tests/interop/node and
  installed by `scripts/setup` with `npm ci`), run by node in a subprocess;
- hsmaudit's own `HecClient` (the Lambda's), with indexer acknowledgement on.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import msgspec
import pytest

from hsmaudit.records.parse import parse_message
from hsmaudit.server.app import CollectorSettings, create_app
from hsmaudit.server.run import RunningServer, start_in_thread
from hsmaudit.simulate.emit import parsed_events
from hsmaudit.simulate.scenarios import run_scenarios
from hsmaudit.sinks.hec.client import HecClient
from hsmaudit.sinks.hec.envelope import EventEncoder, EventFormat
from hsmaudit.sinks.hec.policy import AckPolicy, BatchPolicy
from hsmaudit.sinks.hec.token import StaticToken
from hsmaudit.store.database import EventStore

TOKEN = "interop-token-5a2c"
NODE_DIR = Path(__file__).resolve().parents[1] / "interop" / "node"


@pytest.fixture
def collector(tmp_path: Path) -> Iterator[tuple[RunningServer, EventStore]]:
    store = EventStore(tmp_path / "interop.sqlite3")
    server = start_in_thread(create_app(store, CollectorSettings(token=TOKEN)))
    yield server, store
    server.stop()
    store.close()


def node_send(
    url: str, token: str, records: list[dict[str, str]], *, batch: int, fmt: str = "object"
) -> dict[str, Any]:
    node = shutil.which("node")
    if node is None or not (NODE_DIR / "node_modules" / "splunk-logging").is_dir():
        pytest.fail("node and tests/interop/node/node_modules are needed: run scripts/setup (npm ci)")
    job = {"url": url, "token": token, "batch": batch, "format": fmt, "records": records}
    result = subprocess.run(
        [node, str(NODE_DIR / "send.js")],
        input=json.dumps(job),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        cwd=NODE_DIR,
    )
    assert result.returncode == 0, result.stderr
    output: dict[str, Any] = json.loads(result.stdout)
    return output


def records(count: int) -> list[dict[str, str]]:
    sim = run_scenarios(["seed", "failed-login-burst"], seed=21)
    return [{"message": r.message, "host": r.hsm_id, "source": r.log_group} for r in sim.records[:count]]


@pytest.mark.parametrize("fmt", ["object", "string"])
def test_splunk_logging_for_node_posts_records_that_land_parsed(
    collector: tuple[RunningServer, EventStore], fmt: str
) -> None:
    server, store = collector
    sent = records(23)
    output = node_send(server.url, TOKEN, sent, batch=5, fmt=fmt)
    assert output["errors"] == []
    assert [reply["code"] for reply in output["responses"]] == [0] * 5
    stored = {event.event_id: event for _, event in store.iter_events()}
    expected = {
        event.event_id: event
        for event in (parse_message(r["message"], log_group=r["source"], log_stream=r["host"]) for r in sent)
    }
    assert stored == expected
    assert all(event.parse_error is None for event in stored.values())


def test_splunk_logging_with_a_wrong_token_gets_code_4_and_stores_nothing(
    collector: tuple[RunningServer, EventStore],
) -> None:
    server, store = collector
    output = node_send(server.url, "not-the-token", records(3), batch=3)
    assert [reply.get("code") for reply in output["responses"]] == [4]
    assert store.count_events() == 0


@pytest.mark.parametrize("event_format", ["lean", "json"])
def test_hsmaudit_hec_client_with_acks_delivers_every_event_as_is(
    collector: tuple[RunningServer, EventStore], event_format: EventFormat
) -> None:
    server, store = collector
    events = list(parsed_events(run_scenarios(["day-to-day", "key-exported"], seed=22).records))
    client = HecClient(
        server.url,
        StaticToken(TOKEN),
        acks=AckPolicy(enabled=True, poll_interval=0.01),
        batch=BatchPolicy(max_events=50),
        encoder=EventEncoder(event_format=event_format),
    )
    try:
        report = client.send(events, deadline=time.monotonic() + 60)
    finally:
        client.close()
    assert (report.accepted, report.spooled_events, report.failed_events) == (len(events), 0, 0)
    assert report.requests >= len(events) // 50
    # Every field arrives, in both formats, except CloudWatch's own id and ingestion time, which
    # the forwarder does not send (HEC host and source say where a record came from).
    expected = [msgspec.structs.replace(e, cwl_id=None, cwl_timestamp=None) for e in events]
    assert [event for _, event in store.iter_events()] == expected


def test_hsmaudit_simulate_piped_into_hsmaudit_send_lands_in_the_collector(
    collector: tuple[RunningServer, EventStore],
) -> None:
    import os
    import sys

    server, store = collector
    bin_dir = Path(sys.executable).parent
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HSMAUDIT_", "AWS_"))}
    env.update({"HSMAUDIT_HEC_URL": server.url, "HSMAUDIT_HEC_TOKEN": TOKEN})
    simulated = subprocess.run(
        [str(bin_dir / "hsmaudit"), "simulate", "--seed", "5", "--scenario", "seed"],
        capture_output=True,
        check=True,
        timeout=60,
        env=env,
    )
    sent = subprocess.run(
        [str(bin_dir / "hsmaudit"), "send", "-"],
        input=simulated.stdout,
        capture_output=True,
        timeout=120,
        env=env,
        check=False,
    )
    assert sent.returncode == 0, sent.stderr.decode()
    assert TOKEN not in (sent.stdout + sent.stderr).decode()
    expected = {event.event_id for event in parsed_events(run_scenarios(["seed"], seed=5).records)}
    assert {event.event_id for _, event in store.iter_events()} == expected
