"""Hostile input: worst-case parse time by size, peak memory of bombs, collector latency under attack.

    .venv/bin/python benchmarks/hostile_bench.py            # full run (about two minutes)
    .venv/bin/python benchmarks/hostile_bench.py --quick    # smaller, for a smoke test

1. Parse: `parse_message` on lines of 1 KB to 1 MB built to be slow - whitespace runs in a value,
   after a label, before the colon, as a whole line; digit runs in `Sequence No`/`usecs`;
   certificate JSON nested as deep as the size allows. The figure is the slowest variant per size
   (best of `--repeat` runs each, so noise does not pose as a worst case). Target (issue 12): a
   1 MB line well under 100 ms, time linear in size.
2. Memory: peak Python allocation (tracemalloc) while the Lambda's decode
   (`decode_subscription_event`: base64, gunzip with its 32 MiB cap, JSON) handles a real 1 MiB
   payload, bombs inflating to 64 MiB, 1 GiB and 4 GiB, and 4 MiB of empty gzip members. Target:
   far below half of the function's 512 MB for any payload.
3. Collector: `hsmaudit serve` in its own process; one client posts small valid batches (10
   events) and its latency is measured, first alone, then while other clients keep sending
   hostile bodies (30 MiB of empty gzip members, a 5 MB whitespace record, a bomb to the cap, deep
   JSON). Decoding runs in worker threads: bodies up to 256 KiB in a lane of their own, big ones
   at most `--max-concurrent-decodes` (2) at once.
"""

from __future__ import annotations

import argparse
import base64
import gzip
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import tracemalloc
from collections.abc import Callable
from pathlib import Path

import urllib3

from hsmaudit.records.parse import parse_message
from hsmaudit.sources.cloudwatch import decode_subscription_event
from hsmaudit.sources.errors import SourceDecodeError

HSMAUDIT = shutil.which("hsmaudit") or str(Path(sys.executable).with_name("hsmaudit"))
TOKEN = "hostile-bench-token"
LOG_GROUP = "/aws/cloudhsm/cluster-bench01"
RECORD = (
    "Time: 12/19/17 21:01:17.140812, usecs:1513717277140812\n"
    "Sequence No : 0x3\n"
    "Reboot counter : 0xe\n"
    "Command Type(hex) : CN_MGMT_CMD (0x0)\n"
    "Opcode : CN_LOGIN (0xd)\n"
    "Session Handle : 0x1004001\n"
    "Response : 0:HSM Return: SUCCESS\n"
    "Log type : MGMT_USER_DETAILS_LOG (2)\n"
    "User Name : admin\n"
    "User Type : CN_CRYPTO_OFFICER (2)\n"
)


# ------------------------------------------------------------------------------------------ parse


def slow_lines(size: int) -> dict[str, str]:
    """Records of about `size` bytes, each bent a way that made the old line regex backtrack."""
    pad = max(size - len(RECORD), 1)
    depth = max(size // 2, 1)
    return {
        "spaces in a value": RECORD.replace("User Name : admin", "User Name : ad" + " " * pad + "min"),
        "spaces after a label": RECORD.replace("User Name :", "User Name" + " " * pad + ":"),
        "spaces before the colon, no colon": RECORD.replace("User Name : admin", "User Name" + " " * pad),
        "a line of spaces": RECORD + " " * pad + "\n",
        "tabs and spaces": RECORD.replace("admin", "admin" + " \t" * (pad // 2)),
        "hex digits in Sequence No": RECORD.replace("0x3\n", "0x" + "f" * pad + "\n"),
        "digits in usecs": RECORD.replace("usecs:", "usecs:" + "9" * pad, 1),
        "certificate JSON nested deep": '{"op_code":' + "[" * (depth // 2) + "]" * (depth // 2) + "}",
    }


def best_of(repeat: int, work: Callable[[], object]) -> float:
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        work()
        times.append(time.perf_counter() - started)
    return min(times)


def parse_figures(sizes: list[int], repeat: int) -> None:
    print(f"1. parse_message, slowest variant per input size (best of {repeat} runs each)")
    for size in sizes:
        worst_name, worst = "", 0.0
        for name, line in slow_lines(size).items():
            seconds = best_of(repeat, lambda line=line: parse_message(line, log_group=LOG_GROUP))
            if seconds > worst:
                worst_name, worst = name, seconds
        print(f"  {size // 1024:>5} KB: {worst * 1000:8.2f} ms  ({worst_name})")


# ----------------------------------------------------------------------------------------- memory


def subscription(body: bytes) -> dict[str, dict[str, str]]:
    return {"awslogs": {"data": base64.b64encode(body).decode()}}


def real_payload(target: int) -> bytes:
    messages = []
    size = 0
    while size < target:
        text = RECORD.replace("0x3\n", f"0x{len(messages):x}\n")
        messages.append({"id": str(len(messages)), "timestamp": 1_513_717_277_140, "message": text})
        size += len(text) + 60
    document = {
        "messageType": "DATA_MESSAGE",
        "owner": "123456789012",
        "logGroup": LOG_GROUP,
        "logStream": "hsm-bench",
        "subscriptionFilters": ["hsmaudit"],
        "logEvents": messages,
    }
    return gzip.compress(json.dumps(document).encode(), mtime=0)


def bomb(inflated: int) -> bytes:
    """gzip of `inflated` zero bytes, made in 16 MiB steps (never held whole)."""
    compressor = __import__("zlib").compressobj(9, 8, 16 + 15)
    chunk = b"\0" * (16 * 1024 * 1024)
    out = bytearray()
    for _ in range(inflated // len(chunk)):
        out += compressor.compress(chunk)
    out += compressor.flush()
    return bytes(out)


def memory_figures(quick: bool) -> None:
    print("2. the Lambda's decode (base64 + gunzip, 32 MiB cap + JSON): peak traced memory")
    payloads: dict[str, bytes] = {"real payload, 1 MiB of records": real_payload(1024 * 1024)}
    sizes = [64, 1024] if quick else [64, 1024, 4096]
    for mib in sizes:
        payloads[f"bomb inflating to {mib:,} MiB"] = bomb(mib * 1024 * 1024)
    payloads["4 MiB of empty gzip members"] = gzip.compress(b"", mtime=0) * (4 * 1024 * 1024 // 20)
    for name, body in payloads.items():
        event = subscription(body)
        tracemalloc.start()
        started = time.perf_counter()
        try:
            documents = decode_subscription_event(event)
            outcome = f"{sum(len(d.log_events) for d in documents):,} log events"
        except SourceDecodeError as error:
            outcome = "refused: " + str(error).split(": ", 1)[-1][:60]
        seconds = time.perf_counter() - started
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        print(
            f"  {name:<34} {len(body) / 1024:>9,.0f} KiB in  peak {peak / 2**20:6.1f} MiB"
            f"  {seconds * 1000:7.0f} ms  {outcome}"
        )


# -------------------------------------------------------------------------------------- collector


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Server:
    """`hsmaudit serve` in its own process, as in use."""

    def __init__(self, db: Path) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        env = {k: v for k, v in os.environ.items() if not k.startswith("HSMAUDIT_")}
        command = [HSMAUDIT, "serve", "--port", str(self.port), "--db", str(db), "--token", TOKEN]
        self.process = subprocess.Popen(
            [*command, "--no-detect", "--synchronous", "normal"],
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

    def rss_mib(self) -> float:
        for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
        return 0.0

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=60)


def hostile_bodies() -> dict[str, tuple[bytes, dict[str, str]]]:
    empty = gzip.compress(b"", mtime=0)
    gz = {"Content-Encoding": "gzip"}
    whitespace = json.dumps({"event": RECORD + " " * 5_000_000, "source": LOG_GROUP, "host": "hsm-x"})
    return {
        "30 MiB of empty gzip members": (empty * (30 * 1024 * 1024 // len(empty)), gz),
        "5 MB whitespace record": (whitespace.encode(), {}),
        "bomb to the 32 MiB cap": (bomb(256 * 1024 * 1024), gz),
        "deep JSON x 200 envelopes": (
            b"\n".join([b'{"event":' + b"[" * 5000 + b"]" * 5000 + b"}"] * 200),
            {},
        ),
    }


def probe_body(serial: int) -> bytes:
    lines = []
    for n in range(10):
        text = RECORD.replace("0x3\n", f"0x{serial * 10 + n:x}\n")
        lines.append(json.dumps({"event": text, "source": LOG_GROUP, "host": "hsm-probe"}))
    return "\n".join(lines).encode()


def probe(url: str, seconds: float, start: int) -> list[float]:
    """Latencies (ms) of small valid batches posted one after another for `seconds`."""
    http = urllib3.PoolManager(retries=False, timeout=120)
    latencies = []
    serial = start
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        started = time.perf_counter()
        response = http.request(
            "POST",
            url + "/services/collector/event",
            body=probe_body(serial),
            headers={"Authorization": f"Splunk {TOKEN}"},
        )
        latencies.append((time.perf_counter() - started) * 1000)
        assert response.status == 200, response.data
        serial += 1
        time.sleep(0.02)
    return latencies


def attack(url: str, body: bytes, headers: dict[str, str], stop: threading.Event, counts: list[int]) -> None:
    http = urllib3.PoolManager(retries=False, timeout=300)
    while not stop.is_set():
        response = http.request(
            "POST",
            url + "/services/collector/event",
            body=body,
            headers={"Authorization": f"Splunk {TOKEN}", **headers},
        )
        counts.append(response.status)


def describe(latencies: list[float]) -> str:
    ordered = sorted(latencies)
    p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]
    return (
        f"median {statistics.median(ordered):6.1f} ms  p99 {p99:7.1f} ms  max {ordered[-1]:7.1f} ms"
        f"  ({len(ordered)} requests)"
    )


def collector_figures(seconds: float, attackers: int) -> None:
    print(
        f"3. collector: latency of a client posting 10-event batches, alone and beside {attackers} "
        "hostile clients (a fresh server per scenario; its peak RSS)"
    )
    scenarios: dict[str, tuple[bytes, dict[str, str]] | None] = {"alone": None, **hostile_bodies()}
    for index, (name, hostile) in enumerate(scenarios.items()):
        with tempfile.TemporaryDirectory() as folder:
            server = Server(Path(folder) / "bench.sqlite3")
            try:
                stop = threading.Event()
                statuses: list[int] = []
                threads = []
                if hostile is not None:
                    body, headers = hostile
                    threads = [
                        threading.Thread(
                            target=attack, args=(server.url, body, headers, stop, statuses), daemon=True
                        )
                        for _ in range(attackers)
                    ]
                for thread in threads:
                    thread.start()
                time.sleep(0.5 if threads else 0)
                latencies = probe(server.url, seconds, index * 100_000)
                stop.set()
                for thread in threads:
                    thread.join(timeout=300)
                answers = ", ".join(f"{s} x{statuses.count(s)}" for s in sorted(set(statuses)))
                label = name if hostile is None else f"beside {name}"
                print(f"  {label:<37}{describe(latencies)}  peak RSS {server.rss_mib():4.0f} MiB")
                if answers:
                    print(f"  {'':<37}hostile requests answered: {answers}")
            finally:
                server.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0])
    parser.add_argument("--quick", action="store_true", help="smaller sizes and shorter runs")
    parser.add_argument("--repeat", type=int, default=3, help="runs per parse variant (the best counts)")
    parser.add_argument("--seconds", type=float, default=8.0, help="probe time per collector scenario")
    parser.add_argument("--attackers", type=int, default=2, help="hostile clients at once")
    options = parser.parse_args()
    sizes = [1024, 10 * 1024, 100 * 1024] if options.quick else [1024, 10 * 1024, 100 * 1024, 1024 * 1024]
    print(
        f"load average at start: {os.getloadavg()[0]:.1f} ({os.cpu_count()} cores; other work slows every figure)"
    )
    parse_figures(sizes, options.repeat)
    memory_figures(options.quick)
    collector_figures(3.0 if options.quick else options.seconds, options.attackers)


if __name__ == "__main__":
    main()
