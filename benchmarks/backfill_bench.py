"""Backfill throughput and checkpoint cost.

(a) `hsmaudit backfill` through the console script, from moto (server mode, loopback) to the
    independent HEC sink (loopback; optional, see tests/conftest.py), for a cluster of H HSM streams with N records each; pacing set
    high so the figure is hsmaudit's (and moto's) speed, not the quota's. Reported: events/s,
    CloudWatch Logs requests, pages, and events/s of the same run into a JSON-lines file.
(b) with a throttling proxy answering every 3rd GetLogEvents with ThrottlingException: the
    slowdown and proof that nothing was lost or doubled.
(c) checkpoint save (atomic write + fsync) time per page for a checkpoint of 1, 10 and 100 streams.

The real bound in production is the quota: at the default 10 GetLogEvents/s and up to 10,000
events per page, one backfill reads at most 100,000 events/s; CloudHSM streams are far smaller.

Usage: python benchmarks/backfill_bench.py [--hsms 2] [--records 5000]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from tests.integration.test_cli_harness import (  # noqa: E402
    HSMAUDIT,
    ThrottlingProxy,
    _load_hec_sink,
    clean_env,
    kept_events,
    make_cluster,
)

from hsmaudit.sources.checkpoint import BackfillJob, Checkpoint, StreamPosition, save_checkpoint  # noqa: E402


def run_backfill(args: list[str], env: dict[str, str]) -> tuple[dict[str, object], float]:
    started = time.perf_counter()
    result = subprocess.run(
        [HSMAUDIT, *args], capture_output=True, text=True, env=clean_env(env), check=False
    )
    seconds = time.perf_counter() - started
    if result.returncode != 0:
        raise SystemExit(f"backfill failed: {result.stderr}")
    return json.loads(result.stdout.strip().splitlines()[-1]), seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--hsms", type=int, default=2)
    parser.add_argument("--records", type=int, default=5000)
    options = parser.parse_args()

    from moto.server import ThreadedMotoServer
    from tests.integration.test_cli_harness import Moto

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    url = f"http://{host}:{port}"
    moto = Moto(
        url=url,
        env={
            "AWS_ENDPOINT_URL": url,
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_DEFAULT_REGION": "us-east-1",
        },
    )
    import logging

    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    cluster = make_cluster(moto, hsms=options.hsms, records=options.records)
    total = cluster.total
    sink_module = _load_hec_sink()
    with tempfile.TemporaryDirectory() as scratch:
        kept = Path(scratch) / "kept.jsonl"
        sink = sink_module.start_sink(port=0, token="bench", keep_events=str(kept))
        sink.kept = kept
        env = {**moto.env, "HSMAUDIT_HEC_URL": sink.url, "HSMAUDIT_HEC_TOKEN": "bench"}
        common = ["backfill", "--cluster", cluster.cluster_id, "--since", "3d", "--json", "--no-progress"]
        common += ["--max-rps", "1000"]

        summary, seconds = run_backfill([*common, "--checkpoint", f"{scratch}/a.json"], env)
        print(f"(a) HEC: {total} events in {seconds:.2f}s wall = {total / seconds:,.0f} events/s "
              f"(inside: {summary['events_per_second']:,.0f}/s); {summary['aws_requests']} CloudWatch "
              f"requests, {summary['pages']} pages")  # fmt: skip
        assert len(kept_events(sink)) == total

        summary, seconds = run_backfill(
            [*common, "--checkpoint", f"{scratch}/b.json", "--out", f"{scratch}/out.jsonl"], env
        )
        print(f"(a) file: {total} events in {seconds:.2f}s wall = {total / seconds:,.0f} events/s")

        sink.reset()
        kept.write_text("")
        with ThrottlingProxy(url, every=3) as proxy:
            throttled_env = {**env, "AWS_ENDPOINT_URL": proxy.url}
            summary, seconds = run_backfill(
                [
                    *common,
                    "--checkpoint",
                    f"{scratch}/c.json",
                    "--page-size",
                    "1000",
                    "--retry-base-delay",
                    "0.05",
                ],
                throttled_env,
            )
        ids = [e["event"]["event_id"] for e in kept_events(sink)]
        print(f"(b) throttled every 3rd call: {total} events in {seconds:.2f}s; {summary['throttled']} throttled, "
              f"{summary['retries']} retries, {summary['backoff_seconds']}s backing off; delivered "
              f"{len(ids)}, distinct {len(set(ids))} (expected {total})")  # fmt: skip
        sink.stop()

        for streams in (1, 10, 100):
            job = BackfillJob(log_groups=("/aws/cloudhsm/cluster-x",), since_ms=0, until_ms=1)
            checkpoint = Checkpoint(job=job)
            for index in range(streams):
                checkpoint = checkpoint.with_position(
                    "/aws/cloudhsm/cluster-x",
                    f"hsm-{index:04d}",
                    StreamPosition().advance([(1000, "a" * 32)]),
                )
            path = Path(scratch) / f"cp-{streams}.json"
            rounds = 200
            started = time.perf_counter()
            for _ in range(rounds):
                save_checkpoint(path, checkpoint)
            per_save = (time.perf_counter() - started) / rounds * 1000
            print(f"(c) checkpoint of {streams:>3} streams: {per_save:.2f} ms per atomic save "
                  f"({path.stat().st_size} bytes)")  # fmt: skip
    server.stop()


if __name__ == "__main__":
    main()
