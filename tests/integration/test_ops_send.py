"""`ops.send.Sending` in-process against our HEC on loopback: a run's chunks, what HEC took, what
the spool kept and why, and the summary `send` prints (no subprocess; the command is test_send.py).
"""

from __future__ import annotations

from pathlib import Path

from hsmaudit.ops.destination import HecDestination
from hsmaudit.ops.send import Sending
from hsmaudit.sinks.spool import LocalSpool

from .fault_hec import FaultHec, closed_port_url
from .test_ops_destination import client, events, spooled_ids


def run(sending: Sending, count: int) -> list[int]:
    """Deliver `count` events chunk by chunk, as `send` does; the chunk sizes."""
    sizes = []
    for chunk in sending.chunks(iter(events(count))):
        sending.deliver(chunk)
        sizes.append(len(chunk))
    return sizes


def test_a_run_sends_every_event_once_in_chunks_of_ten_requests(fault_hec: FaultHec) -> None:
    destination = HecDestination(client(fault_hec.url), spool=None)
    sending = Sending(destination)
    try:
        assert run(sending, 90) == [40, 40, 10]  # 4 events per request, 10 requests per chunk
    finally:
        destination.close()
    assert [e["fields"]["event_id"] for e in fault_hec.events()] == [e.event_id for e in events(90)]
    summary = sending.summary(seconds=0.5, empty_inputs=[])
    assert {key: summary[key] for key in ("events", "accepted", "spooled", "hec_requests", "spool")} == {
        "events": 90,
        "accepted": 90,
        "spooled": 0,
        "hec_requests": 23,
        "spool": None,
    }
    assert fault_hec.stats()["requests"] == 23
    assert sending.summary_line(0.5) == f"sent 90 events to {destination.description} in 0.5s: 90 accepted"


def test_hec_down_spools_every_chunk_with_its_reason_and_the_summary_says_so(tmp_path: Path) -> None:
    spool = LocalSpool(tmp_path / "spool")
    told: list[str] = []
    destination = HecDestination(client(closed_port_url(), max_attempts=2), spool=spool, on_block=told.append)
    sending = Sending(destination)
    try:
        assert run(sending, 50) == [40, 10]
    finally:
        destination.close()
    ids, reasons = spooled_ids(spool)
    assert sorted(ids) == sorted(e.event_id or "" for e in events(50))
    # the first request failed its attempts; the breaker then spooled the rest without sending
    assert destination.blocked is not None
    assert told == [destination.blocked]
    failed = next(reason for reason in reasons if reason != destination.blocked)
    assert failed.startswith("HEC still failing after 2 attempts")
    assert destination.blocked.startswith("HEC unavailable")
    summary = sending.summary(seconds=1.0, empty_inputs=["empty.txt"])
    assert summary["events"] == summary["spooled"] == 50
    assert summary["accepted"] == 0
    assert summary["spooled_reasons"] == [
        {"reason": failed, "events": 4},
        {"reason": destination.blocked, "events": 46},
    ]
    assert summary["spool"] == str(tmp_path / "spool")
    assert summary["empty_inputs"] == ["empty.txt"]
    assert (
        sending.summary_line(1.0)
        == f"50 events for {destination.description}, in 1.0s: 0 accepted, 50 spooled"
    )
