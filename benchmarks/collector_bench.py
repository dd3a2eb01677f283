"""Local collector figures: durable HEC ingest rate and `/api/summary` latency at 1,000,000 events.

    .venv/bin/python benchmarks/collector_bench.py            # full run (about a minute)
    .venv/bin/python benchmarks/collector_bench.py --quick    # smaller, for a smoke test

1. Ingest: `hsmaudit serve` runs in its own process (as in use); client threads post HEC bodies
   of 500 events each (the forwarder's envelope bytes, raw record text included) and count the
   events acknowledged with code 0. An acknowledgement means committed to SQLite (WAL,
   synchronous=FULL), so this is the durable rate. Run at 1 connection (no group commit possible)
   and at several.
2. Summary: the store is filled up to 1,000,000 events spread over 30 days and 3 HSMs (directly
   through `EventStore.add_events`, the same code path as the collector's writer), the server is
   restarted on it, and `/api/summary` is timed over HTTP: unfiltered, by HSM, by opcode, and
   with a time range that cuts hours (so the edge scan on `events` is measured too).

Targets (issue 6): ingest >= 50,000 events/s; summary < 250 ms.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from urllib.parse import urlencode

import msgspec
import urllib3

from hsmaudit.records.event import HsmEvent
from hsmaudit.records.identity import text_event_id
from hsmaudit.records.parse import format_usecs, parse_message
from hsmaudit.records.render import render_text_record
from hsmaudit.sinks.hec.envelope import EventEncoder
from hsmaudit.store.database import EventStore

HSMAUDIT = str(Path(sys.executable).with_name("hsmaudit"))
TOKEN = "bench-token"
CLUSTER = "cluster-benchmark01"
LOG_GROUP = f"/aws/cloudhsm/{CLUSTER}"
HSMS = ("hsm-benchaaaaaaa", "hsm-benchbbbbbbb", "hsm-benchccccccc")
START = 1_767_600_000_000_000  # 2026-01-05T08:00:00Z
SPAN_USECS = 30 * 86_400 * 1_000_000
MIX = (
    ("CN_LOGIN", "MGMT_USER_DETAILS_LOG", 30),
    ("CN_LOGOUT", "MGMT_USER_DETAILS_LOG", 10),
    ("CN_GENERATE_KEY", "MGMT_KEY_DETAILS_LOG", 10),
    ("CN_EXTRACT_MASKED_OBJECT_USER", "MGMT_KEY_DETAILS_LOG", 10),
    ("CN_INSERT_MASKED_OBJECT_USER", "MGMT_KEY_DETAILS_LOG", 20),
    ("CN_DESTROY_OBJECT", "MGMT_KEY_DETAILS_LOG", 3),
    ("CN_SHARE_OBJECT", "UNKNOWN_LOG_TYPE", 5),
    ("CN_WRAP_KEY", "MGMT_KEY_DETAILS_LOG", 1),
)


def templates() -> list[tuple[HsmEvent, int]]:
    """One parsed event per opcode of the mix (from rendered record text), with its weight."""
    out = []
    for opcode, log_type, weight in MIX:
        user = log_type == "MGMT_USER_DETAILS_LOG"
        keyed = log_type == "MGMT_KEY_DETAILS_LOG"
        base = HsmEvent(
            usecs=START,
            sequence_no=0,
            reboot_counter=9,
            command_type="CN_MGMT_CMD",
            command_type_code=0,
            opcode=opcode,
            session_handle="0x1004001",
            response_code=0,
            response="SUCCESS",
            success=True,
            log_type=log_type,
            log_type_code={"MGMT_USER_DETAILS_LOG": 2, "MGMT_KEY_DETAILS_LOG": 1}.get(log_type, 5),
            user_name="app_user" if user else None,
            user_type="CN_CRYPTO_USER" if user else None,
            user_type_code=1 if user else None,
            key_handle=262152 if keyed else None,
            public_key_handle=0 if keyed else None,
        )
        out.append((parse_message(render_text_record(base), log_group=LOG_GROUP, log_stream=HSMS[0]), weight))
    return out


def make_events(count: int, *, offset: int, seed: int) -> list[HsmEvent]:
    """`count` distinct events over 30 days and 3 HSMs; 3% of logins fail."""
    rng = random.Random(seed)
    pool = templates()
    choices = [event for event, weight in pool for _ in range(weight)]
    step = SPAN_USECS // max(count + offset, 1)
    replace = msgspec.structs.replace
    events = []
    for number in range(offset, offset + count):
        template = choices[number % len(choices)]
        hsm = HSMS[number % 3]
        usecs = START + number * step + rng.randrange(max(step, 1))
        fields: dict[str, object] = {
            "usecs": usecs,
            "time": format_usecs(usecs),
            "sequence_no": number,
            "hsm_id": hsm,
            "log_stream": hsm,
        }
        if template.opcode == "CN_LOGIN" and rng.random() < 0.03:
            fields.update(
                success=False,
                outcome="failure",
                response_code=163,
                response="RET_USER_LOGIN_FAILURE",
                severity="high",
            )
        fields["event_id"] = text_event_id(CLUSTER, hsm, template.reboot_counter, number, usecs)
        events.append(replace(template, **fields))
    return events


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Server:
    """`hsmaudit serve` in a subprocess."""

    def __init__(self, db: Path, synchronous: str = "full") -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        env = {k: v for k, v in os.environ.items() if not k.startswith("HSMAUDIT_")}
        self.process = subprocess.Popen(
            [
                HSMAUDIT,
                "serve",
                "--port",
                str(self.port),
                "--db",
                str(db),
                "--token",
                TOKEN,
                "--no-detect",
                "--synchronous",
                synchronous,
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            env=env,
        )
        http = urllib3.PoolManager(retries=False, timeout=2)
        for _ in range(600):
            try:
                if http.request("GET", self.url + "/services/collector/health").status == 200:
                    return
            except urllib3.exceptions.HTTPError:
                time.sleep(0.05)
        raise RuntimeError("server did not start")

    def cpu_seconds(self) -> float:
        """CPU time (user + system) the server process has used, from /proc (Linux)."""
        fields = Path(f"/proc/{self.process.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def thread_cpu(self) -> dict[str, float]:
        """CPU seconds per thread of the server (task id -> seconds), from /proc (Linux)."""
        ticks = os.sysconf("SC_CLK_TCK")
        out = {}
        for task in Path(f"/proc/{self.process.pid}/task").iterdir():
            fields = (task / "stat").read_text().rsplit(")", 1)[1].split()
            out[task.name] = (int(fields[11]) + int(fields[12])) / ticks
        return out

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=60)


def ingest(url: str, bodies: list[tuple[int, bytes]], concurrency: int) -> tuple[int, float]:
    """Post every body from `concurrency` keep-alive connections; (events acknowledged, seconds)."""
    lock = threading.Lock()
    queue = list(reversed(bodies))
    acked = [0]
    failures: list[str] = []

    def worker() -> None:
        pool = urllib3.HTTPConnectionPool(
            "127.0.0.1", int(url.rsplit(":", 1)[1]), maxsize=1, retries=False, timeout=60
        )
        headers = {"Authorization": f"Splunk {TOKEN}"}
        while True:
            with lock:
                if not queue:
                    return
                count, body = queue.pop()
            response = pool.request("POST", "/services/collector/event", body=body, headers=headers)
            if response.status == 200 and json.loads(response.data)["code"] == 0:
                with lock:
                    acked[0] += count
            else:
                failures.append(response.data.decode()[:200])

    threads = [threading.Thread(target=worker) for _ in range(concurrency)]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - started
    if failures:
        raise RuntimeError(f"{len(failures)} requests failed: {failures[0]}")
    return acked[0], elapsed


def time_summary(url: str, params: dict[str, str], repeat: int) -> tuple[float, float, int]:
    """(median ms, p95 ms, total_events) of GET /api/summary over HTTP."""
    pool = urllib3.HTTPConnectionPool(
        "127.0.0.1", int(url.rsplit(":", 1)[1]), maxsize=1, retries=False, timeout=60
    )
    path = "/api/summary" + ("?" + urlencode(params) if params else "")
    pool.request("GET", path)  # warm the page cache and the reader connection
    samples = []
    total = 0
    for _ in range(repeat):
        started = time.perf_counter()
        response = pool.request("GET", path)
        samples.append((time.perf_counter() - started) * 1000)
        assert response.status == 200, response.data
        total = json.loads(response.data)["total_events"]
    samples.sort()
    return statistics.median(samples), samples[int(len(samples) * 0.95) - 1], total


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ingest-events", type=int, default=200_000, help="events posted over HTTP per run")
    parser.add_argument("--batch", type=int, default=500)
    parser.add_argument("--concurrency", type=int, default=8, help="connections of the second ingest phase")
    parser.add_argument(
        "--total", type=int, default=1_000_000, help="events in the store for the summary timing"
    )
    parser.add_argument("--repeat", type=int, default=20)
    parser.add_argument("--quick", action="store_true", help="100k/50k events, for a smoke run")
    parser.add_argument("--db", type=Path, help="reuse this store (skips what it already holds)")
    parser.add_argument(
        "--synchronous", default="full", choices=["full", "normal"], help="the server's fsync policy"
    )
    args = parser.parse_args()
    if args.quick:
        args.ingest_events, args.total, args.repeat = 20_000, 100_000, 5

    workdir = args.db.parent if args.db else Path(tempfile.mkdtemp(prefix="hsmaudit-bench-"))
    db = args.db or workdir / "bench.sqlite3"
    encoder = EventEncoder()
    print(f"collector_bench: store {db}")

    ingest_events = make_events(args.ingest_events, offset=0, seed=1)
    bodies = [
        (len(chunk), b"\n".join(encoder.line(event) for event in chunk))
        for chunk in (ingest_events[i : i + args.batch] for i in range(0, len(ingest_events), args.batch))
    ]
    mean_body = statistics.mean(len(body) for _, body in bodies)
    print(
        f"  ingest bodies: {len(bodies)} x {args.batch} events, {mean_body / 1024:.0f} KiB each (raw text included)"
    )

    half = len(bodies) // 2
    reuse = args.db is not None and args.db.exists()
    server = Server(db, args.synchronous)
    print(f"  server: hsmaudit serve --synchronous {args.synchronous}")
    try:
        if reuse:
            print("  reusing the store: ingest skipped")
            bodies = []
        for concurrency, part in ((1, bodies[:half]), (args.concurrency, bodies[half:])) if bodies else ():
            cpu_before = server.cpu_seconds()
            threads_before = server.thread_cpu()
            acked, elapsed = ingest(server.url, part, concurrency)
            cpu = server.cpu_seconds() - cpu_before
            busy = sorted(
                (seconds - threads_before.get(task, 0.0) for task, seconds in server.thread_cpu().items()),
                reverse=True,
            )
            print(
                f"  durable ingest, {concurrency} connection(s): {acked / elapsed:,.0f} events/s acknowledged "
                f"({acked:,} events in {elapsed:.2f} s, {len(part) / elapsed:.0f} requests/s); "
                f"server used {cpu:.2f} CPU-s = {acked / cpu:,.0f} events per server CPU-second"
            )
            print(
                "    busiest server threads (share of wall time): "
                + ", ".join(f"{seconds / elapsed:.0%}" for seconds in busy[:3])
                + "  (the store writer is the busiest)"
            )
    finally:
        server.stop()

    with EventStore(db) as store:
        have = store.count_events()
        started = time.perf_counter()
        offset = args.ingest_events
        while have < args.total:
            chunk = min(50_000, args.total - have)
            for start in range(0, chunk, 5000):
                store.add_events(
                    make_events(min(5000, chunk - start), offset=offset + start, seed=offset + start)
                )
            offset += chunk
            have = store.count_events()
        print(
            f"  filled the store to {have:,} events in {time.perf_counter() - started:.1f} s (direct add_events)"
        )
    size = sum(path.stat().st_size for path in workdir.iterdir())
    print(f"  store size: {size / 2**20:.0f} MiB ({size / have:.0f} bytes/event)")
    print(
        f"  load average while measuring: {os.getloadavg()[0]:.1f} (2 cores; other work on the machine slows every figure)"
    )

    server = Server(db)
    try:
        cases = [
            ("unfiltered", {}),
            ("hsm_id", {"hsm_id": HSMS[1]}),
            ("opcode", {"opcode": "CN_LOGIN"}),
            ("7-day range cutting hours", {"since": "2026-01-09T10:17:31Z", "until": "2026-01-16T03:44:00Z"}),
            (
                "range + hsm + log type",
                {
                    "since": "2026-01-09T10:17:31Z",
                    "until": "2026-01-16T03:44:00Z",
                    "hsm_id": HSMS[0],
                    "log_type": "MGMT_KEY_DETAILS_LOG",
                },
            ),
        ]
        for name, params in cases:
            median, p95, total = time_summary(server.url, params, args.repeat)
            print(
                f"  /api/summary {name:28} median {median:6.1f} ms  p95 {p95:6.1f} ms  ({total:,} events matched)"
            )
        pool = urllib3.HTTPConnectionPool("127.0.0.1", server.port, retries=False, timeout=60)
        started = time.perf_counter()
        response = pool.request("GET", "/")
        print(
            f"  dashboard page (/) unfiltered: {(time.perf_counter() - started) * 1000:.1f} ms, {len(response.data) / 1024:.0f} KiB"
        )
    finally:
        server.stop()


if __name__ == "__main__":
    main()
