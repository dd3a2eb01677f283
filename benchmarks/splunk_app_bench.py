"""Splunk app figures: build time and size, AppInspect time, and index bytes per event.

(a) `build_app` (render generated parts, pack, gzip): median wall time of N builds, package bytes,
    files.
(b) `splunk-appinspect inspect --mode precert` on the package (all checks), wall time, when
    `.venv-appinspect` exists.
(c) bytes per event object of the `json` format with nulls and compact (nulls left out), with
    and without `raw`, over the published samples in tests/data/samples: what one json event costs
    in the index (_raw). The lean default's _raw is the record text: benchmarks/license_bench.py
    compares both formats with the text.

Usage: python benchmarks/splunk_app_bench.py [--builds 20]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from hsmaudit.records.event import event_to_dict
from hsmaudit.records.parse import parse_message
from hsmaudit.splunk.package import build_app

REPO = Path(__file__).resolve().parent.parent
SAMPLES = REPO / "tests" / "data" / "samples"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--builds", type=int, default=20)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        times = []
        built = None
        for number in range(args.builds):
            start = time.perf_counter()
            built = build_app(Path(tmp) / str(number))
            times.append(time.perf_counter() - start)
        assert built is not None
        print(
            f"build: median {statistics.median(times) * 1000:.1f} ms over {args.builds} builds; "
            f"{built.size} bytes, {built.files} files, sha256 {built.sha256[:16]}…"
        )
        appinspect = REPO / ".venv-appinspect" / "bin" / "splunk-appinspect"
        if appinspect.is_file():
            report = Path(tmp) / "report.json"
            start = time.perf_counter()
            subprocess.run(
                [str(appinspect), "inspect", str(built.path), "--mode", "precert", "--skip-trusted-libraries-update",
                 "--data-format", "json", "--output-file", str(report), "--ci"],
                capture_output=True, check=False, cwd=tmp,
            )  # fmt: skip
            elapsed = time.perf_counter() - start
            summary = json.loads(report.read_text(encoding="utf-8"))["summary"]
            print(f"appinspect precert: {elapsed:.2f} s; {summary}")
        else:
            print("appinspect: .venv-appinspect not installed (scripts/setup)")

    events = [
        parse_message(
            path.read_text(encoding="utf-8"), log_group="/aws/cloudhsm/cluster-x", log_stream="hsm-y"
        )
        for path in sorted(SAMPLES.glob("aws-*.txt"))
    ]

    def size(compact: bool, include_raw: bool) -> float:
        encoded = [
            json.dumps(
                event_to_dict(e, include_raw=include_raw, compact=compact), separators=(",", ":")
            ).encode()
            for e in events
        ]
        return sum(map(len, encoded)) / len(encoded)

    for include_raw in (True, False):
        with_nulls, compact = size(False, include_raw), size(True, include_raw)
        print(
            f"_raw bytes/event ({'with' if include_raw else 'without'} raw, {len(events)} samples): "
            f"with nulls {with_nulls:.0f}, compact {compact:.0f} ({(1 - compact / with_nulls) * 100:.0f}% smaller)"
        )


if __name__ == "__main__":
    sys.exit(main())
