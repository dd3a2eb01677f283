"""Run the forwarders people use today beside hsmaudit, from a path given at run time.

Contains none of the peers' code: each is loaded from the checkout named on the command line.
- Splunk's Node blueprint `splunk-cloudwatch-logs-processor` (splunk/splunk-aws-serverless-apps,
  with `npm install --omit=dev splunk-logging@0.9.3` in its folder): invoked by the small driver
  below, one payload at a time like one warm Lambda, against the benchmark's own HEC sink.
- Splunk's Firehose transform `CloudWatchLogs-Firehose-Resources/lambda.py`
  (splunk/splunk-aws-gdi-toolkit): imported from its file and called like Firehose calls it.

The machine these run on is shared, so callers alternate hsmaudit and the peer in one process
run and report the median of each and their ratio, never one absolute figure alone.
"""

from __future__ import annotations

import base64
import contextlib
import importlib.util
import io
import json
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

# One warm Lambda: the blueprint's handler once per payload, sequentially; CPU from the process.
_NODE_DRIVER = r"""
'use strict';
const fs = require('fs');
const [modulePath, eventsPath, resultPath] = process.argv.slice(2);
const events = JSON.parse(fs.readFileSync(eventsPath, 'utf8'));
const handler = require(modulePath).handler;
const invoke = (event, n) => new Promise((resolve, reject) => {
  const context = { functionName: 'blueprint', awsRequestId: `req-${n}`,
                    getRemainingTimeInMillis: () => 30000 };
  handler(event, context, (error, result) => (error ? reject(error) : resolve(result)));
});
(async () => {
  const cpu = process.cpuUsage();
  const started = process.hrtime.bigint();
  for (let n = 0; n < events.length; n += 1) { await invoke(events[n], n); }
  const seconds = Number(process.hrtime.bigint() - started) / 1e9;
  const used = process.cpuUsage(cpu);
  fs.writeFileSync(resultPath, JSON.stringify({ seconds, cpu_seconds: (used.user + used.system) / 1e6,
                                                max_rss_kb: process.resourceUsage().maxRSS }));
  process.exit(0);
})().catch((error) => { process.stderr.write(String(error)); process.exit(1); });
"""


def node_blueprint_dir(path: Path) -> Path:
    """The blueprint folder (the one with index.js and node_modules/splunk-logging), or exit."""
    for candidate in (path, path / "splunk-cloudwatch-logs-processor"):
        if (candidate / "index.js").is_file():
            if not (candidate / "node_modules" / "splunk-logging").is_dir():
                raise SystemExit(
                    f"{candidate}: run `npm install --omit=dev splunk-logging@0.9.3` there first"
                )
            if shutil.which("node") is None:
                raise SystemExit("the Node blueprint needs `node` on PATH")
            return candidate
    raise SystemExit(f"{path}: no index.js of splunk-cloudwatch-logs-processor there")


def run_node_blueprint(
    blueprint: Path, payloads: list[dict[str, Any]], hec_url: str, token: str
) -> dict[str, float]:
    """One pass of the blueprint over `payloads`: wall seconds, CPU seconds and peak RSS (MB).

    Its console output (it logs every event, as it does in Lambda) goes to a temporary file.
    """
    with tempfile.TemporaryDirectory() as work:
        events, result, driver = Path(work, "events.json"), Path(work, "result.json"), Path(work, "driver.js")
        events.write_text(json.dumps(payloads))
        driver.write_text(_NODE_DRIVER)
        env = dict(os.environ, SPLUNK_HEC_URL=f"{hec_url}/services/collector", SPLUNK_HEC_TOKEN=token)
        with Path(work, "stdout.log").open("wb") as log:
            subprocess.run(
                ["node", str(driver), str(blueprint / "index.js"), str(events), str(result)],
                env=env,
                stdout=log,
                stderr=subprocess.PIPE,
                check=True,
            )
        figures = json.loads(result.read_text())
    return {
        "seconds": float(figures["seconds"]),
        "cpu_seconds": float(figures["cpu_seconds"]),
        "rss_mb": float(figures["max_rss_kb"]) / 1024,
    }


def load_gdi_transform(path: Path) -> Callable[[dict[str, Any], Any], Any]:
    """The gdi-toolkit's Firehose `handler`, imported from its file (it reads SPLUNK_* at import)."""
    if not path.is_file():
        raise SystemExit(f"{path}: not the gdi-toolkit's CloudWatchLogs-Firehose-Resources/lambda.py")
    for key, value in {
        "SPLUNK_INDEX": "main",
        "SPLUNK_SOURCETYPE": "aws:cloudhsm:audit:text",
        "SPLUNK_SOURCE": "cloudhsm",
        "SPLUNK_HOST": "cloudhsm",
    }.items():
        os.environ.setdefault(key, value)
    spec = importlib.util.spec_from_file_location("gdi_toolkit_firehose_transform", path)
    if spec is None or spec.loader is None:
        raise SystemExit(f"{path}: cannot be imported")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    handler: Callable[[dict[str, Any], Any], Any] = module.handler
    return handler


def firehose_invocations(payloads: list[dict[str, Any]], per_invocation: int = 100) -> list[dict[str, Any]]:
    """Subscription payloads as Firehose transformation events: each `awslogs.data` is one record.

    CloudWatch Logs writes base64(gzip(document)) into Firehose records; Firehose hands the
    transformation up to `per_invocation` of them at once.
    """
    records = [
        {
            "recordId": f"{n:056d}",
            "approximateArrivalTimestamp": 1_764_000_000_000 + n,
            "data": payload["awslogs"]["data"],
        }
        for n, payload in enumerate(payloads)
    ]
    return [
        {
            "invocationId": f"invocation-{i}",
            "deliveryStreamArn": "arn:aws:firehose:us-east-1:123456789012:deliverystream/bench",
            "region": "us-east-1",
            "records": records[i : i + per_invocation],
        }
        for i in range(0, len(records), per_invocation)
    ]


class LambdaContext:
    """What a Python transformation may read from its context."""

    aws_request_id = "00000000-0000-0000-0000-000000000000"
    function_name = "bench"

    @staticmethod
    def get_remaining_time_in_millis() -> int:
        return 300_000


def time_transform(
    handler: Callable[[dict[str, Any], Any], Any], invocations: list[dict[str, Any]]
) -> tuple[float, float, list[Any]]:
    """(wall seconds, CPU seconds, outputs) of one pass; what the handler prints is swallowed."""
    outputs = []
    with contextlib.redirect_stdout(io.StringIO()):
        started, cpu = time.perf_counter(), time.process_time()
        for invocation in invocations:
            outputs.append(handler(invocation, LambdaContext()))
        elapsed, cpu_used = time.perf_counter() - started, time.process_time() - cpu
    return elapsed, cpu_used, outputs


def hec_events_in(outputs: list[Any]) -> int:
    """How many HEC envelopes the transformation's `Ok` records hold (one per line)."""
    count = 0
    for output in outputs:
        for record in output["records"]:
            if record.get("result") == "Ok":
                count += sum(1 for line in base64.b64decode(record["data"]).splitlines() if line.strip())
    return count


def fast_match() -> str:
    """How the parser's fast-path match runs in this process: C (records/_scan.c) or the regex."""
    from hsmaudit.records.parse import FAST_SCAN_COMPILED

    return "C (records/_scan.c)" if FAST_SCAN_COMPILED else "regex (records/_scan.c not built)"
