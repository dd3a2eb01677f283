"""Per-invocation counts and their CloudWatch EMF metrics.

Emitted through aws-lambda-powertools' `Metrics` (EMF on stdout, which the Lambda runtime ships to
CloudWatch Logs, where CloudWatch extracts the metrics; no API call, no boto3). Powertools is
imported on the first emit, not with the handler module: it costs ~40 ms of import time
(`benchmarks/handler_bench.py` prints both figures), and a module that only defines things keeps
cold starts and unrelated imports (tests, the CLI) cheap. Without Powertools installed the same
EMF document is written directly, so metrics never depend on an optional package.

Metric names (namespace `HSMAUDIT_METRICS_NAMESPACE`, dimension `service`):
EventsIn, EventsSent, EventsSpooled, EventsFailed, Retries, ParseErrors, ControlMessages,
BadPayloads, SequenceGaps (records missing between two records of one delivery), HecRequests,
HecLatency (ms, one value per request), BatchBytes (bytes on the wire per request),
FirehoseRecordsOk/Dropped/Failed.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from dataclasses import dataclass, field
from typing import Final, Literal

Unit = Literal["Count", "Milliseconds", "Bytes"]

_UNITS: Final[dict[str, Unit]] = {
    "EventsIn": "Count",
    "EventsSent": "Count",
    "EventsSpooled": "Count",
    "EventsFailed": "Count",
    "Retries": "Count",
    "ParseErrors": "Count",
    "ControlMessages": "Count",
    "BadPayloads": "Count",
    "SequenceGaps": "Count",
    "HecRequests": "Count",
    "FirehoseRecordsOk": "Count",
    "FirehoseRecordsDropped": "Count",
    "FirehoseRecordsFailed": "Count",
    "HecLatency": "Milliseconds",
    "BatchBytes": "Bytes",
}
MAX_VALUES: Final = 100
"""EMF allows at most 100 values per metric in one document."""


@dataclass(slots=True)
class InvocationMetrics:
    """What one invocation did, in numbers (never payloads)."""

    counts: dict[str, float] = field(default_factory=dict)
    series: dict[str, list[float]] = field(default_factory=dict)

    def add(self, name: str, value: float) -> None:
        """Add to a counter."""
        self.counts[name] = self.counts.get(name, 0) + value

    def observe(self, name: str, value: float) -> None:
        """Record one value of a distribution (latency, bytes per request)."""
        values = self.series.setdefault(name, [])
        if len(values) < MAX_VALUES:
            values.append(value)


def emit(metrics: InvocationMetrics, *, namespace: str, service: str) -> None:
    """Write the metrics as one EMF document (Powertools when installed); never raises.

    Metrics are a side channel: a failure here must not fail an invocation whose events were
    delivered (AWS would retry it and duplicate them), so it is logged and swallowed.
    """
    try:
        _emit(metrics, namespace=namespace, service=service)
    except Exception as error:  # boundary: see above
        logging.getLogger("hsmaudit.aws").warning(
            "hsmaudit: metrics not emitted (%s: %s)", type(error).__name__, error
        )


def _emit(metrics: InvocationMetrics, *, namespace: str, service: str) -> None:
    try:
        from aws_lambda_powertools import Metrics
    except ImportError:  # the minimal artefact: write EMF ourselves
        _emit_plain(metrics, namespace=namespace, service=service)
        return
    powertools = Metrics(namespace=namespace, service=service)
    for name, value in metrics.counts.items():
        powertools.add_metric(name=name, unit=_UNITS.get(name, "Count"), value=value)
    for name, values in metrics.series.items():
        for value in values:
            powertools.add_metric(name=name, unit=_UNITS.get(name, "Count"), value=value)
    powertools.flush_metrics()


def _emit_plain(metrics: InvocationMetrics, *, namespace: str, service: str) -> None:
    values: dict[str, float | list[float]] = dict(metrics.counts)
    values.update({name: list(series) for name, series in metrics.series.items() if series})
    document = {
        "_aws": {
            "Timestamp": int(time.time() * 1000),
            "CloudWatchMetrics": [
                {
                    "Namespace": namespace,
                    "Dimensions": [["service"]],
                    "Metrics": [{"Name": name, "Unit": _UNITS.get(name, "Count")} for name in values],
                }
            ],
        },
        "service": service,
        **values,
    }
    sys.stdout.write(json.dumps(document, separators=(",", ":")) + "\n")
    sys.stdout.flush()
