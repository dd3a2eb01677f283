"""Property: for any sequence of HEC failures, every line is accepted once or spooled once.

Hypothesis scripts our loopback HEC with random answers (success, 503, 500, 429, connection
reset, 413, invalid events anywhere, a refused token) and random batch sizes and attempt limits.
Without timeouts or acks nothing can be accepted twice, so the invariant is exact: the lines the
server accepted plus the lines in the spool are the input, each exactly once.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from pathlib import Path
from tempfile import TemporaryDirectory
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hsmaudit.sinks.hec.client import HecClient
from hsmaudit.sinks.hec.policy import BatchPolicy, ConnectionPolicy, RetryPolicy
from hsmaudit.sinks.hec.token import StaticToken
from hsmaudit.sinks.spool import LocalSpool

from .fault_hec import TOKEN, FaultHec

ACTIONS = st.sampled_from(
    [
        "ok",
        "reset",
        ("status", 503, {"text": "Server is busy", "code": 9}, {}),
        ("status", 500, {"text": "Internal server error", "code": 8}, {}),
        ("status", 429, {"text": "Too Many Requests"}, {"Retry-After": "0"}),
        ("status", 413, {"text": "Request Entity Too Large"}, {}),
        ("status", 403, {"text": "Invalid token", "code": 4}, {}),
    ]
)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    count=st.integers(min_value=0, max_value=40),
    script=st.lists(ACTIONS, max_size=12),
    poison=st.sets(st.integers(min_value=0, max_value=39), max_size=4),
    max_events=st.integers(min_value=1, max_value=25),
    attempts=st.integers(min_value=1, max_value=4),
)
def test_every_line_is_accepted_or_spooled_exactly_once(
    fault_hec: FaultHec, count: int, script: list[Any], poison: set[int], max_events: int, attempts: int
) -> None:
    fault_hec.accepted.clear()
    fault_hec.script = list(script)
    fault_hec.poison = lambda envelope: envelope["event"]["n"] in poison
    lines = [b'{"time":1.000000,"event":{"n":%d}}' % n for n in range(count)]
    client = HecClient(
        fault_hec.url,
        StaticToken(TOKEN),
        connection=ConnectionPolicy(timeout=2.0),
        retry=RetryPolicy(max_attempts=attempts, backoff_base=0.001, backoff_cap=0.002),
        batch=BatchPolicy(max_events=max_events),
    )
    with TemporaryDirectory() as directory:
        spool = LocalSpool(Path(directory))
        report = client.send_lines(lines, deadline=time.monotonic() + 20, spool=spool)
        spooled = [line for batch_id in spool.list() for line in spool.get(batch_id).lines]
    client.close()
    assert report.complete
    assert report.accepted == len(fault_hec.accepted)
    assert report.spooled_events == len(spooled)
    assert Counter(fault_hec.accepted) + Counter(spooled) == Counter(lines)
    assert not poison & {json.loads(line)["event"]["n"] for line in fault_hec.accepted}
