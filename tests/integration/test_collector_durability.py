"""Durability: `hsmaudit serve` killed with SIGKILL mid-stream loses nothing it acknowledged.

The collector answers HEC success only after the SQLite commit (WAL, synchronous=FULL) holding the
request's events; this test holds it to that with a real process, concurrent senders and a kill
at an arbitrary point, then checks that re-sending everything adds no duplicates.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import urllib3

from hsmaudit.records.event import HsmEvent, event_to_dict
from hsmaudit.records.parse import parse_message
from hsmaudit.records.render import render_text_record

HSMAUDIT = str(Path(sys.executable).with_name("hsmaudit"))
TOKEN = "durability-token-0f9e"
LOG_GROUP = "/aws/cloudhsm/cluster-durable001"
BATCHES = 240
BATCH_SIZE = 100


def make_batches() -> list[tuple[list[str], bytes]]:
    """(event ids, HEC body) per batch; every event distinct."""
    template = HsmEvent(
        reboot_counter=7,
        command_type="CN_MGMT_CMD",
        command_type_code=0,
        opcode="CN_LOGIN",
        opcode_code=0xD,
        session_handle="0x1004001",
        response_code=0,
        response="SUCCESS",
        success=True,
        log_type="MGMT_USER_DETAILS_LOG",
        log_type_code=2,
        user_name="app_user",
        user_type="CN_CRYPTO_USER",
        user_type_code=1,
    )
    batches = []
    for b in range(BATCHES):
        ids, lines = [], []
        for i in range(BATCH_SIZE):
            seq = b * BATCH_SIZE + i
            record = HsmEvent(
                **{**event_to_dict(template), "sequence_no": seq, "usecs": 1_767_600_000_000_000 + seq * 1000}
            )
            event = parse_message(
                render_text_record(record), log_group=LOG_GROUP, log_stream="hsm-durable0001"
            )
            ids.append(str(event.event_id))
            lines.append(
                json.dumps({"host": event.hsm_id, "source": LOG_GROUP, "event": event_to_dict(event)})
            )
        batches.append((ids, "\n".join(lines).encode()))
    return batches


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def serve(db: Path) -> Iterator[tuple[subprocess.Popen[bytes], str]]:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("HSMAUDIT_")}
    process = subprocess.Popen(
        [HSMAUDIT, "serve", "--port", str(port), "--db", str(db), "--token", TOKEN, "--no-detect"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        env=env,
    )
    url = f"http://127.0.0.1:{port}"
    http = urllib3.PoolManager(retries=False, timeout=2)
    deadline = time.monotonic() + 30
    while True:
        try:
            if http.request("GET", url + "/services/collector/health").status == 200:
                break
        except urllib3.exceptions.HTTPError:
            pass
        assert process.poll() is None, process.stderr.read().decode() if process.stderr else "exited"
        assert time.monotonic() < deadline, "collector did not start"
        time.sleep(0.05)
    try:
        yield process, url
    finally:
        if process.poll() is None:
            process.terminate()
            process.wait(timeout=30)


def stored_ids(db: Path) -> list[str]:
    with sqlite3.connect(db) as connection:
        return [row[0] for row in connection.execute("SELECT event_id FROM events")]


def test_sigkill_mid_stream_loses_no_acknowledged_event_and_resend_adds_no_duplicates(tmp_path: Path) -> None:
    batches = make_batches()
    db = tmp_path / "durable.sqlite3"
    acknowledged: list[int] = []
    lock = threading.Lock()
    next_batch = iter(range(BATCHES))

    with serve(db) as (process, url):

        def sender() -> None:
            http = urllib3.PoolManager(retries=False, timeout=10)
            headers = {"Authorization": f"Splunk {TOKEN}"}
            while True:
                with lock:
                    number = next(next_batch, None)
                if number is None:
                    return
                try:
                    response = http.request(
                        "POST", url + "/services/collector/event", body=batches[number][1], headers=headers
                    )
                except urllib3.exceptions.HTTPError:
                    return  # the collector is gone
                if response.status == 200 and json.loads(response.data)["code"] == 0:
                    with lock:
                        acknowledged.append(number)

        threads = [threading.Thread(target=sender) for _ in range(4)]
        for thread in threads:
            thread.start()
        # WHEN the collector is killed while batches are in flight
        deadline = time.monotonic() + 60
        while len(acknowledged) < 40 and time.monotonic() < deadline:
            time.sleep(0.005)
        os.kill(process.pid, signal.SIGKILL)
        process.wait(timeout=30)
        for thread in threads:
            thread.join(timeout=30)

    # THEN every acknowledged event is in the store
    assert 40 <= len(acknowledged) < BATCHES, "the kill must land mid-stream"
    ids = set(stored_ids(db))
    missing = [event_id for number in acknowledged for event_id in batches[number][0] if event_id not in ids]
    assert missing == []

    # AND re-sending everything to a restarted collector stores each event exactly once
    with serve(db) as (_, url):
        http = urllib3.PoolManager(retries=False, timeout=30)
        for _, body in batches:
            response = http.request(
                "POST",
                url + "/services/collector/event",
                body=body,
                headers={"Authorization": f"Splunk {TOKEN}"},
            )
            assert response.status == 200
        summary = json.loads(http.request("GET", url + "/api/summary").data)
    final = stored_ids(db)
    assert len(final) == len(set(final)) == BATCHES * BATCH_SIZE
    assert summary["total_events"] == BATCHES * BATCH_SIZE
