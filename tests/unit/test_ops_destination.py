"""`ops.destination` in-process: the local store and JSON-lines destinations, the counts they
return, and the spool lines a summary prints. HEC delivery needs a socket: see
`tests/integration/test_ops_destination.py`."""

from __future__ import annotations

import json
from pathlib import Path

from hsmaudit.ops.destination import (
    Delivered,
    HecDestination,
    JsonlDestination,
    StoreDestination,
    destination_spool,
    spool_lines,
)
from hsmaudit.records.event import HsmEvent
from hsmaudit.records.parse import parse_message
from hsmaudit.sinks.hec import BatchPolicy, HecClient, StaticToken
from hsmaudit.sinks.spool import LocalSpool
from hsmaudit.store.database import EventStore

LOG_GROUP = "/aws/cloudhsm/cluster-abc123def45"
STREAM = "hsm-abc123def45"


def record(sequence_no: int) -> str:
    return (
        "Time: 12/19/17 21:01:17.140812, usecs:1513717277140812\n"
        f"Sequence No : 0x{sequence_no:x}\n"
        "Reboot counter : 0x107\n"
        "Command Type(hex) : CN_MGMT_CMD (0x0)\n"
        "Opcode : CN_LOGIN (0xd)\n"
        "Session Handle : 0x1004001\n"
        "Response : 0:HSM Return: SUCCESS\n"
        "Log type : MGMT_USER_DETAILS_LOG (2)\n"
        "User Name : admin\n"
        "User Type : CN_CRYPTO_OFFICER (2)\n"
    )


def events(count: int, start: int = 0) -> list[HsmEvent]:
    return [
        parse_message(record(n), log_group=LOG_GROUP, log_stream=STREAM) for n in range(start, start + count)
    ]


def test_the_store_counts_new_events_as_accepted_and_repeats_as_duplicates(tmp_path: Path) -> None:
    db = tmp_path / "events.sqlite3"
    destination = StoreDestination(EventStore(db), str(db))
    assert destination.description == f"local store {db}"
    assert destination.chunk_size is None  # one transaction takes any number
    try:
        first = destination.deliver(events(5))
        # the same 5 again and 3 new ones: event_id is UNIQUE in the store
        second = destination.deliver(events(8))
        nothing = destination.deliver([])
    finally:
        destination.close()
    assert (first.events, first.accepted, first.duplicates, first.spooled) == (5, 5, 0, 0)
    assert (second.events, second.accepted, second.duplicates) == (8, 3, 5)
    assert nothing == Delivered()
    with EventStore(db) as store:
        assert store.count_events() == 8


def test_json_lines_append_one_event_per_line_across_runs(tmp_path: Path) -> None:
    out = tmp_path / "events.jsonl"
    first = JsonlDestination(str(out))
    assert first.description == f"{out} (JSON lines)"
    assert first.deliver(events(2)) == Delivered(events=2, accepted=2)
    first.close()
    # a second run (a resumed backfill) appends, it does not truncate
    second = JsonlDestination(str(out), include_raw=False)
    assert second.deliver(events(1, start=2)) == Delivered(events=1, accepted=1)
    second.close()
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    assert [line["sequence_no"] for line in lines] == [0, 1, 2]
    assert [("raw" in line) for line in lines] == [True, True, False]
    assert {line["hsm_id"] for line in lines} == {STREAM}


def test_delivered_adds_counts_and_reasons() -> None:
    total = Delivered()
    total.add(Delivered(events=4, accepted=2, spooled=2, reasons={"HEC is down": 2}))
    total.add(Delivered(events=3, spooled=3, duplicates=0, reasons={"HEC is down": 1, "token refused": 2}))
    assert (total.events, total.accepted, total.spooled) == (7, 2, 5)
    assert total.reasons == {"HEC is down": 3, "token refused": 2}


def test_spool_lines_name_each_reason_largest_first_and_the_commands_to_run() -> None:
    kept = Delivered(spooled=5, reasons={"HEC is down": 1, "HEC refused the token": 4})
    lines = spool_lines(kept, "/var/spool/hsm", command="'my venv/bin/hsmaudit'")
    assert lines == [
        "  4 spooled: HEC refused the token",
        "  1 spooled: HEC is down",
        "5 events are in the spool /var/spool/hsm, not in Splunk: fix HEC "
        "(''my venv/bin/hsmaudit' doctor'), then run ''my venv/bin/hsmaudit' replay /var/spool/hsm'",
    ]
    assert spool_lines(Delivered(events=3, accepted=3), "/var/spool/hsm", command="hsmaudit") == []


def test_only_a_hec_destination_with_a_spool_has_a_spool_location(tmp_path: Path) -> None:
    # Building the client opens no connection; nothing is delivered here.
    url = "http://127.0.0.1:9/services/collector/event"
    client = HecClient(url, StaticToken("t"), batch=BatchPolicy(max_events=7))
    spooled = HecDestination(client, spool=LocalSpool(tmp_path / "spool"))
    bare = HecDestination(client, spool=None)
    assert destination_spool(spooled) == str(tmp_path / "spool")
    assert destination_spool(bare) is None
    jsonl = JsonlDestination(str(tmp_path / "e.jsonl"))
    assert destination_spool(jsonl) is None
    jsonl.close()
    # one HEC request is the all-or-nothing unit a caller may checkpoint after
    assert spooled.chunk_size == 7
    assert (
        spooled.description == f"HEC http://127.0.0.1:9/services/collector/event (spool {tmp_path / 'spool'})"
    )
    assert bare.description.endswith("(no spool)")
    client.close()
