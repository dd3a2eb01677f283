"""The subscription Lambda handler end to end: payloads -> parse -> HEC, on loopback.

Runs the real `hsmaudit.aws.subscription.handler` (settings from the environment, the cached
runtime, gzip, batching, metrics off) over N payloads x M records against the independent HEC
sink (an HEC sink script written by another team, named with `--sink PATH`; the benchmark stops
with a clear message when the path is missing) running in its own process, and prints:

- events/s end to end (wall time of all handler calls), the handler's own CPU per event (what a
  Lambda pays; the rest of the wall time is the sink parsing JSON), and HEC requests;
- bytes on the wire per event (gzip'd request bodies as the sink received them) and uncompressed;
- peak RSS of this process (the handler's container);
- the handler module's cold import time (`python -X importtime` in a fresh interpreter), without
  and with Powertools' metrics module (imported on the first invocation, not at import);
- the decode floor in the same run: base64 + gunzip + JSON + parse of the same payloads, no HEC.

Records are the published CloudHSM audit records from `tests/data/samples` (every separator
style and log type there), renumbered per HSM so each is distinct.

Targets (issue 3): >= 100,000 events/s, <= 40 bytes/event on the wire, cold import <= 150 ms,
peak RSS <= 64 MB.

With `--node-blueprint PATH` (Splunk's `splunk-cloudwatch-logs-processor` folder with its
`splunk-logging` dependency installed) the blueprint runs over the same payloads against the same
sink, alternating with hsmaudit, and the ratios are printed (target, issue 15: >= 1.5x its
events/s, <= 0.5x its CPU per event). `--gzip-levels` adds CPU and wire bytes per gzip level 1-6.

Usage: python benchmarks/handler_bench.py --sink PATH [--payloads 200] [--records 50]
       [--event-format lean|json] [--no-raw] [--sink-nodelay] [--node-blueprint PATH]
       [--gzip-levels] [--repeat 3]   (median of N runs: figures on a shared machine vary)

`--event-format` is HSMAUDIT_EVENT_FORMAT (default lean, the forwarder's default); `--no-raw`
(HSMAUDIT_INCLUDE_RAW=false) changes only the json format.
"""

from __future__ import annotations

import argparse
import base64
import gzip
import json
import os
import re
import resource
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from peers import fast_match, node_blueprint_dir, run_node_blueprint

REPO = Path(__file__).resolve().parent.parent
SAMPLES = REPO / "tests" / "data" / "samples"
TOKEN = "bench-token"


def record_templates() -> list[str]:
    """The published text records (not the certificate JSON ones)."""
    texts = [p.read_text(encoding="utf-8").strip() for p in sorted(SAMPLES.glob("aws-doc-*.txt"))]
    return [t for t in texts if t.startswith("Time:")]


def renumber(text: str, sequence_no: int, usecs: int) -> str:
    from hsmaudit.records.parse import format_times

    # Rewrite the Time line whole: a text time that disagreed with usecs would be flagged in
    # every event's `extra` and make the figures unrealistic.
    text = re.sub(r"^Time: [^\n]*", f"Time: {format_times(usecs)[1]}, usecs:{usecs}", text, count=1)
    return re.sub(r"(Sequence No[ \t]*:[ \t]*)0x[0-9a-fA-F]+", rf"\g<1>0x{sequence_no:x}", text, count=1)


def make_payloads(count: int, per_payload: int) -> list[dict[str, Any]]:
    templates = record_templates()
    payloads = []
    sequence = [0, 0, 0]
    for p in range(count):
        hsm = p % 3
        events = []
        for i in range(per_payload):
            seq = sequence[hsm]
            sequence[hsm] += 1
            usecs = 1_764_000_000_000_000 + (p * per_payload + i) * 1_337
            message = renumber(templates[(seq + hsm) % len(templates)], seq, usecs)
            events.append({"id": f"{p:028d}{i:028d}", "timestamp": usecs // 1000, "message": message})
        document = {
            "messageType": "DATA_MESSAGE",
            "owner": "123456789012",
            "logGroup": "/aws/cloudhsm/cluster-bench01",
            "logStream": f"hsm-bench{hsm:04d}",
            "subscriptionFilters": ["hsmaudit"],
            "logEvents": events,
        }
        data = gzip.compress(json.dumps(document).encode(), compresslevel=6)
        payloads.append({"awslogs": {"data": base64.b64encode(data).decode()}})
    return payloads


# Runs the shared sink unchanged except, with --sink-nodelay, for `disable_nagle_algorithm` on its
# request handler (socketserver's switch for TCP_NODELAY): the stock sink writes each answer's
# headers and body in two sends, so with Nagle on every answer waits for the client's delayed ACK
# (~40 ms on Linux) and the run measures that timer instead of the forwarder.
_SINK_RUNNER = """
import runpy, sys
sys.argv = sys.argv[1:]
nodelay = sys.argv.pop(0) == "nodelay"
module = runpy.run_path(sys.argv[0], run_name="hec_sink")
module["Handler"].disable_nagle_algorithm = nodelay
sys.exit(module["main"](sys.argv[1:]))
"""


def start_sink(sink: Path, *, nodelay: bool) -> tuple[subprocess.Popen[bytes], str]:
    if not sink.is_file():
        raise SystemExit(f"this benchmark needs an independent HEC sink script: --sink {sink} is not a file")
    port_file = Path(tempfile.mkdtemp()) / "port"
    mode = "nodelay" if nodelay else "stock"
    process = subprocess.Popen(
        [
            sys.executable,
            "-c",
            _SINK_RUNNER,
            mode,
            str(sink),
            "--port",
            "0",
            "--port-file",
            str(port_file),
            "--token",
            TOKEN,
        ],
        stdout=subprocess.DEVNULL,
    )
    for _ in range(200):
        if port_file.exists():
            return process, f"http://127.0.0.1:{port_file.read_text().strip()}"
        time.sleep(0.02)
    process.kill()
    raise SystemExit("hec_sink did not start")


def reset_sink(url: str) -> None:
    urllib.request.urlopen(urllib.request.Request(f"{url}/reset", method="POST"), timeout=5).read()


def sink_stats(url: str) -> dict[str, Any]:
    with urllib.request.urlopen(f"{url}/stats", timeout=5) as response:  # loopback only
        stats: dict[str, Any] = json.loads(response.read())
        return stats


def import_ms(statement: str) -> float:
    """Cumulative import time of the statement's top module in a fresh interpreter (best of 5)."""
    module = statement.split()[1].rstrip(",")
    best = float("inf")
    for _ in range(5):
        done = subprocess.run(
            [sys.executable, "-X", "importtime", "-c", statement], capture_output=True, text=True, check=True
        )
        total = 0.0
        for line in done.stderr.splitlines():
            parts = line.split("|")
            if len(parts) == 3 and parts[2].strip() == module:
                total = int(parts[1]) / 1000.0
        best = min(best, total)
    return best


def decode_floor(payloads: list[dict[str, Any]]) -> float:
    from hsmaudit.sources.cloudwatch import decode_subscription_event, log_messages
    from hsmaudit.sources.message import parse_log_message

    started = time.perf_counter()
    count = 0
    for payload in payloads:
        for document in decode_subscription_event(payload):
            for message in log_messages(document):
                parse_log_message(message)
                count += 1
    return count / (time.perf_counter() - started)


def gzip_levels(
    payloads: list[dict[str, Any]], max_events: int, repeat: int
) -> list[tuple[int, float, float]]:
    """(level, µs of gzip per event, wire bytes per event) for levels 1-6 on the handler's own bodies.

    The bodies are the HEC lines the handler builds (default format from the environment),
    batched as it batches them, so the figure is the one `BatchPolicy.gzip_level` (the HEC client's) trades.
    """
    from hsmaudit.sinks.batch import join_lines
    from hsmaudit.sinks.hec.envelope import EventEncoder
    from hsmaudit.sources.cloudwatch import decode_subscription_event, log_messages
    from hsmaudit.sources.message import parse_log_message

    encoder = EventEncoder(event_format=os.environ.get("HSMAUDIT_EVENT_FORMAT", "lean"))  # type: ignore[arg-type]
    bodies = []
    count = 0
    for payload in payloads:
        lines = [
            encoder.line(parse_log_message(m))
            for document in decode_subscription_event(payload)
            for m in log_messages(document)
        ]
        count += len(lines)
        bodies += [join_lines(lines[i : i + max_events]) for i in range(0, len(lines), max_events)]
    out = []
    for level in range(1, 7):
        best = float("inf")
        for _ in range(repeat):
            started = time.process_time()
            wire = sum(len(gzip.compress(body, compresslevel=level, mtime=0)) for body in bodies)
            best = min(best, time.process_time() - started)
        out.append((level, best / count * 1e6, wire / count))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sink", type=Path, required=True, help="path of the independent HEC sink script")
    parser.add_argument("--payloads", type=int, default=200)
    parser.add_argument("--records", type=int, default=50)
    parser.add_argument(
        "--event-format", choices=("lean", "json"), default="lean", help="HSMAUDIT_EVENT_FORMAT"
    )
    parser.add_argument("--no-raw", action="store_true", help="HSMAUDIT_INCLUDE_RAW=false (json only)")
    parser.add_argument("--repeat", type=int, default=3, help="runs; the median is reported")
    parser.add_argument(
        "--node-blueprint",
        type=Path,
        help="Splunk's splunk-cloudwatch-logs-processor folder (splunk-logging installed): run it too",
    )
    parser.add_argument(
        "--sink-nodelay",
        action="store_true",
        help="TCP_NODELAY in the sink (avoids its Nagle/delayed-ACK stall of ~40 ms per request)",
    )
    parser.add_argument(
        "--gzip-levels", action="store_true", help="also print gzip levels 1-6: CPU and bytes per event"
    )
    args = parser.parse_args()

    payloads = make_payloads(args.payloads, args.records)
    total = args.payloads * args.records
    blueprint = node_blueprint_dir(args.node_blueprint) if args.node_blueprint else None
    process, url = start_sink(args.sink, nodelay=args.sink_nodelay)
    try:
        os.environ.update(
            HSMAUDIT_HEC_URL=url,
            HSMAUDIT_HEC_TOKEN=TOKEN,
            HSMAUDIT_METRICS="false",
            HSMAUDIT_INCLUDE_RAW="false" if args.no_raw else "true",
            HSMAUDIT_EVENT_FORMAT=args.event_format,
            HSMAUDIT_LOG_LEVEL="ERROR",
        )
        os.environ.pop("HOME", None)
        from hsmaudit.aws.subscription import handler

        handler(payloads[0], None)  # warm: the container's first invocation builds the runtime
        runs: list[tuple[float, float]] = []
        node_runs: list[dict[str, float]] = []
        for _ in range(args.repeat):  # median of N, alternating with the peer: the machine is shared
            reset_sink(url)
            started = time.perf_counter()
            cpu_started = time.process_time()
            accepted = 0
            for payload in payloads:
                accepted += handler(payload, None)["accepted"]
            runs.append((time.perf_counter() - started, time.process_time() - cpu_started))
            stats = sink_stats(url)
            if accepted != total or stats["events"] != total:
                raise SystemExit(
                    f"lost events: sent {total}, accepted {accepted}, sink got {stats['events']}"
                )
            if blueprint is not None:
                reset_sink(url)
                node_runs.append(run_node_blueprint(blueprint, payloads, url, TOKEN))
                node_stats = sink_stats(url)
                if node_stats["events"] != total:
                    raise SystemExit(
                        f"the Node blueprint lost events: sink got {node_stats['events']} of {total}"
                    )
        elapsed = statistics.median(e for e, _ in runs)
        cpu = statistics.median(c for _, c in runs)
    finally:
        process.terminate()
        process.wait()
    floor = statistics.median(decode_floor(payloads) for _ in range(args.repeat))
    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    cold = import_ms("import hsmaudit.aws.subscription")
    powertools = import_ms("import aws_lambda_powertools.metrics")

    print(
        f"payloads x records        {args.payloads} x {args.records} = {total} events "
        f"(format {args.event_format}, raw included: {not args.no_raw})"
    )
    print(f"fast-path match           {fast_match()}")
    print(f"end to end                {total / elapsed:,.0f} events/s ({elapsed * 1000:.0f} ms)")
    print(
        f"handler CPU               {total / cpu:,.0f} events per CPU-second ({cpu / total * 1e6:.1f} µs/event; the rest is the sink)"
    )
    if node_runs:
        node_elapsed = statistics.median(r["seconds"] for r in node_runs)
        node_cpu = statistics.median(r["cpu_seconds"] for r in node_runs)
        print(
            f"Node blueprint            {total / node_elapsed:,.0f} events/s, {node_cpu / total * 1e6:.1f} µs CPU/event, "
            f"peak RSS {max(r['rss_mb'] for r in node_runs):.1f} MB (same sink, alternating runs)"
        )
        print(
            f"ratio hsmaudit / Node     {node_elapsed / elapsed:.2f}x events/s, {cpu / node_cpu:.2f}x CPU/event"
        )
    print(f"decode floor (no HEC)     {floor:,.0f} events/s (base64 + gunzip + JSON + parse)")
    print(
        f"HEC requests              {stats['requests']} ({stats['max_events_per_request']} events max per request)"
    )
    print(
        f"bytes on the wire / event {stats['wire_bytes'] / total:.1f} (gzip; uncompressed {stats['body_bytes'] / total:.0f})"
    )
    print(f"peak RSS                  {rss_mb:.1f} MB")
    if args.gzip_levels:
        for level, micros, size in gzip_levels(payloads, 500, args.repeat):
            print(
                f"gzip level {level}              {micros:.2f} µs/event, {size:.1f} bytes/event on the wire"
            )
    print(f"cold import               {cold:.1f} ms  hsmaudit.aws.subscription")
    print(
        f"                          {powertools:.1f} ms  aws_lambda_powertools.metrics (first invocation only)"
    )


if __name__ == "__main__":
    main()
