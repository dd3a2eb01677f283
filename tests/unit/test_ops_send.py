"""`ops.send` in-process: chunks sized for the destination, a run's counts into a real local store,
the summary (line and JSON object) and what Ctrl-C's message says. HEC on a socket is in
`tests/integration/test_ops_send.py`; the command itself in `tests/integration/test_send.py`.
"""

from __future__ import annotations

from pathlib import Path

from hsmaudit.ops.destination import Delivered, HecDestination, StoreDestination
from hsmaudit.ops.send import (
    CHUNK_EVENTS,
    Sending,
    Stopped,
    chunk_events,
    chunks,
    summary_line,
)
from hsmaudit.records.event import HsmEvent
from hsmaudit.records.parse import parse_message
from hsmaudit.sinks.hec.client import HecClient
from hsmaudit.sinks.hec.policy import BatchPolicy
from hsmaudit.sinks.hec.token import StaticToken
from hsmaudit.sources.files import STDIN
from hsmaudit.store.database import EventStore

from .test_ops_destination import events


def test_chunks_are_at_most_the_size_in_order_and_none_for_no_events() -> None:
    numbers = [event.sequence_no for event in events(7)]
    sizes = [[event.sequence_no for event in chunk] for chunk in chunks(iter(events(7)), 3)]
    assert sizes == [numbers[0:3], numbers[3:6], numbers[6:7]]
    assert list(chunks(iter([]), 3)) == []


def test_a_chunk_is_ten_hec_requests_at_most_and_never_more_than_the_cap() -> None:
    assert chunk_events(None) == CHUNK_EVENTS == 5000
    assert chunk_events(4) == 40
    assert chunk_events(500) == 5000
    assert chunk_events(1000) == 5000


def test_sending_to_hec_chunks_by_the_clients_batch(tmp_path: Path) -> None:
    # Building the client opens no connection; nothing is delivered here.
    client = HecClient("http://127.0.0.1:9", StaticToken("t"), batch=BatchPolicy(max_events=4))
    sending = Sending(HecDestination(client, spool=None))
    assert [len(chunk) for chunk in sending.chunks(iter(events(95)))] == [40, 40, 15]
    client.close()


def unparsed() -> HsmEvent:
    return parse_message("Time: not a record at all", log_group="/aws/cloudhsm/cluster-x", log_stream="hsm-x")


def test_a_run_into_the_store_counts_accepted_repeats_and_unparsed(tmp_path: Path) -> None:
    db = tmp_path / "s.sqlite"
    destination = StoreDestination(EventStore(db), str(db))
    sending = Sending(destination)
    broken = unparsed()
    assert broken.parse_error
    # 5 events, then the same 5 and 2 new ones and an unparsed record: one chunk, the store takes any number
    stream = iter([*events(5), *events(7), broken])
    for chunk in sending.chunks(stream):
        assert len(chunk) == 13
        sending.deliver(chunk)
    destination.close()
    assert sending.total == Delivered(events=13, accepted=8, duplicates=5)
    assert sending.parse_errors == 1
    assert sending.summary(seconds=1.23456, empty_inputs=["empty.log"]) == {
        "destination": f"local store {db}",
        "events": 13,
        "accepted": 8,
        "spooled": 0,
        "spooled_reasons": [],
        "spool": None,
        "duplicates": 5,
        "hec_requests": 0,
        "parse_errors": 1,
        "empty_inputs": ["empty.log"],
        "seconds": 1.235,
    }
    assert sending.summary_line(1.23456) == (
        f"sent 13 events to local store {db} in 1.2s: 8 accepted, 5 already stored, "
        "1 unparsed (sent with parse_error set)"
    )
    with EventStore(db) as store:
        assert store.count_events() == 8


def test_the_summary_line_says_how_many_wait_in_the_spool() -> None:
    kept = Delivered(events=10, accepted=4, spooled=6, reasons={"HEC is down": 6})
    assert summary_line(kept, "HEC x (spool /s)", 2.0, 0) == (
        "10 events for HEC x (spool /s), in 2.0s: 4 accepted, 6 spooled"
    )
    assert (
        summary_line(Delivered(events=3, accepted=3), "HEC x", 0.04, 0)
        == "sent 3 events to HEC x in 0.0s: 3 accepted"
    )


def test_ctrl_c_between_chunks_names_the_input_and_what_was_not_sent() -> None:
    total = Delivered(events=40, accepted=30, spooled=10)
    message = Stopped("a.log", 2, in_flight=False).message(total)
    assert message == (
        "interrupted: 30 events accepted by HEC, 10 spooled for 'hsmaudit replay'; the rest of a.log "
        "and 2 more inputs were not sent. Send the same input again for the rest (repeats carry the "
        "same event_id: the store keeps one, Splunk's hsmaudit_dedup drops them)"
    )
    last = Stopped(STDIN, 0, in_flight=False).message(Delivered(events=5, accepted=5))
    assert last.startswith("interrupted: 5 events accepted by HEC; the rest of stdin was not sent. ")


def test_a_second_ctrl_c_during_a_delivery_says_it_may_or_may_not_have_arrived() -> None:
    message = Stopped(None, 0, in_flight=True).message(Delivered())
    assert message.startswith(
        "interrupted: 0 events accepted by HEC; the delivery in flight may or may not have arrived, "
        "and the rest was not sent. "
    )


def test_a_store_that_had_everything_reports_the_events_kept() -> None:
    message = Stopped("a.log", 0, in_flight=False).message(Delivered(events=4, duplicates=4))
    assert message.startswith("interrupted: 4 events kept; the rest of a.log was not sent. ")
