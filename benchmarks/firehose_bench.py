"""The Firehose transformation Lambda against Splunk's gdi-toolkit transform and the decode floor.

Runs the real `hsmaudit.aws.firehose.handler` (settings from the environment, metrics off, the
default event format) over N subscription payloads x M CloudHSM records, wrapped as Firehose
invocations of 100 records (base64(gzip(document)) each, as CloudWatch Logs writes them), and
prints, from one run:

- events/s and CPU per event of hsmaudit's transform (full parse, event id, HEC envelope);
- with `--gdi-toolkit PATH` (its `CloudWatchLogs-Firehose-Resources/lambda.py`), the same figures
  for Splunk's transform over the same invocations (it parses nothing: one string concatenation
  per log event) and the ratio; runs alternate between the two, medians are reported;
- the decode floor of the same records, always: base64 + gunzip + JSON of every Firehose record,
  what any transformation must do at the least.

Records are the published CloudHSM text records (`handler_bench.make_payloads`).

Target (issue 15): hsmaudit >= 1.0x the gdi-toolkit transform's events/s, with full parsing.

Usage: python benchmarks/firehose_bench.py [--gdi-toolkit PATH/lambda.py] [--payloads 200]
       [--records 50] [--repeat 3]
"""

from __future__ import annotations

import argparse
import base64
import os
import resource
import statistics
import sys
import time
import zlib
from pathlib import Path
from typing import Any

import msgspec

sys.path.insert(0, str(Path(__file__).resolve().parent))
from handler_bench import make_payloads
from peers import fast_match, firehose_invocations, hec_events_in, load_gdi_transform, time_transform


def decode_floor(invocations: list[dict[str, Any]]) -> tuple[float, int]:
    """(seconds, log events) for base64 + gunzip + JSON decode of every record, nothing else."""
    decode = msgspec.json.decode
    count = 0
    started = time.perf_counter()
    for invocation in invocations:
        for record in invocation["records"]:
            document = decode(zlib.decompress(base64.b64decode(record["data"]), 31))
            count += len(document["logEvents"])
    return time.perf_counter() - started, count


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--gdi-toolkit", type=Path, help="the gdi-toolkit's Firehose lambda.py")
    parser.add_argument("--payloads", type=int, default=200)
    parser.add_argument("--records", type=int, default=50)
    parser.add_argument("--repeat", type=int, default=3, help="alternating runs; medians reported")
    args = parser.parse_args()

    os.environ.update(HSMAUDIT_METRICS="false", HSMAUDIT_LOG_LEVEL="ERROR")
    os.environ.pop("HOME", None)
    invocations = firehose_invocations(make_payloads(args.payloads, args.records))
    total = args.payloads * args.records

    from hsmaudit.aws.firehose import handler

    peer = load_gdi_transform(args.gdi_toolkit) if args.gdi_toolkit else None
    time_transform(handler, invocations[:1])  # warm: the container's first invocation
    ours: list[tuple[float, float]] = []
    theirs: list[tuple[float, float]] = []
    floors: list[float] = []
    for _ in range(args.repeat):
        elapsed, cpu, outputs = time_transform(handler, invocations)
        if hec_events_in(outputs) != total:
            raise SystemExit(f"hsmaudit's transform lost events: {hec_events_in(outputs)} of {total}")
        ours.append((elapsed, cpu))
        if peer is not None:
            elapsed, cpu, _outputs = time_transform(peer, invocations)
            theirs.append((elapsed, cpu))
        seconds, count = decode_floor(invocations)
        floors.append(count / seconds)
    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024

    def rate(runs: list[tuple[float, float]]) -> tuple[float, float]:
        return statistics.median(total / e for e, _ in runs), statistics.median(
            c / total * 1e6 for _, c in runs
        )

    our_rate, our_cpu = rate(ours)
    floor = statistics.median(floors)
    print(
        f"payloads x records        {args.payloads} x {args.records} = {total} events, {len(invocations)} invocations"
    )
    print(f"fast-path match           {fast_match()}")
    print(
        f"hsmaudit transform        {our_rate:,.0f} events/s, {our_cpu:.2f} µs CPU/event (median of {args.repeat})"
    )
    if theirs:
        their_rate, their_cpu = rate(theirs)
        print(
            f"gdi-toolkit transform     {their_rate:,.0f} events/s, {their_cpu:.2f} µs CPU/event (same runs, alternating)"
        )
        print(
            f"ratio hsmaudit / gdi      {our_rate / their_rate:.2f}x events/s, {our_cpu / their_cpu:.2f}x CPU/event"
        )
    print(f"decode floor              {floor:,.0f} events/s (base64 + gunzip + JSON)")
    print(f"ratio hsmaudit / floor    {our_rate / floor:.2f}")
    print(f"peak RSS                  {rss_mb:.1f} MB (this process, both transforms)")


if __name__ == "__main__":
    main()
