"""`ops.destination` in-process: the local store and JSON-lines destinations, the counts they
return, the spool lines a summary prints, and how the delivery options resolve into settings, a
checkpoint's destination key and an opened destination. HEC delivery needs a socket: see
`tests/integration/test_ops_destination.py`."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest

from hsmaudit.config import ENV_VARS, ConfigError
from hsmaudit.errors import HsmauditError
from hsmaudit.ops.destination import (
    Delivered,
    DeliveryOptions,
    DestinationChoiceError,
    HecDestination,
    JsonlDestination,
    StoreDestination,
    destination_key,
    destination_spool,
    open_destination,
    quiet_library_logs,
    resolve_settings,
    spool_lines,
)
from hsmaudit.records.event import HsmEvent
from hsmaudit.records.parse import parse_message
from hsmaudit.sinks.hec.client import HecClient
from hsmaudit.sinks.hec.policy import BatchPolicy
from hsmaudit.sinks.hec.token import StaticToken
from hsmaudit.sinks.spool import LocalSpool
from hsmaudit.store.database import EventStore

from ..support.records import login_record

LOG_GROUP = "/aws/cloudhsm/cluster-abc123def45"
STREAM = "hsm-abc123def45"


def events(count: int, start: int = 0) -> list[HsmEvent]:
    return [
        parse_message(login_record(n), log_group=LOG_GROUP, log_stream=STREAM)
        for n in range(start, start + count)
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


@pytest.fixture
def clean_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """No HSMAUDIT_* variable and a home without a config file: only flags and defaults decide."""
    for name in ENV_VARS:
        monkeypatch.delenv(name, raising=False)
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    return home


def test_delivery_options_name_their_settings_and_leave_out_what_was_not_given() -> None:
    options = DeliveryOptions(
        hec_url="https://splunk:8088",
        index="audit",
        event_format="json",
        sourcetype="st",
        ack=False,
        ca_bundle=Path("/etc/ca.pem"),
        spool_dir=Path("/var/spool/hsm"),
        raw=True,
    )
    assert options.flags() == {
        "hec_url": "https://splunk:8088",
        "hec_index": "audit",
        "event_format": "json",
        "hec_sourcetype": "st",
        "hec_ack": False,
        "hec_ca_bundle": "/etc/ca.pem",
        "spool_dir": "/var/spool/hsm",
        "include_raw": True,
    }
    assert set(DeliveryOptions().flags().values()) == {None}


def test_settings_take_flags_over_the_environment_over_the_config_file(
    clean_env: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = tmp_path / "config.toml"
    config.write_text('hec_url = "https://file:8088"\nhec_index = "from-file"\nhec_sourcetype = "file-st"\n')
    monkeypatch.setenv("HSMAUDIT_HEC_INDEX", "from-env")
    monkeypatch.setenv("HSMAUDIT_HEC_SOURCETYPE", "env-st")
    settings = resolve_settings(DeliveryOptions(sourcetype="flag-st", config=config))
    assert (settings.hec_url, settings.hec_index, settings.hec_sourcetype) == (
        "https://file:8088",
        "from-env",
        "flag-st",
    )


def test_the_destination_key_names_the_place_without_opening_it(
    clean_env: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    assert destination_key(DeliveryOptions(db=Path("s.sqlite"))) == f"db {tmp_path / 's.sqlite'}"
    assert destination_key(DeliveryOptions(out="-")) == "out -"
    assert destination_key(DeliveryOptions(out="e.jsonl")) == f"out {tmp_path / 'e.jsonl'}"
    assert destination_key(DeliveryOptions()) == "hec (no URL)"
    assert destination_key(DeliveryOptions(hec_url="https://splunk:99999")) == "hec (invalid URL)"
    # credentials in the URL never reach the checkpoint; another index is another place
    assert (
        destination_key(DeliveryOptions(hec_url="https://user:secret@splunk.example:8088"))
        == "hec https://splunk.example:8088/services/collector/event index=(the token default)"
    )
    assert (
        destination_key(DeliveryOptions(hec_url="https://splunk.example", index="audit"))
        == "hec https://splunk.example/services/collector/event index=audit"
    )
    assert not (tmp_path / "s.sqlite").exists()
    assert not (tmp_path / "e.jsonl").exists()


def test_open_destination_picks_the_store_or_json_lines(clean_env: Path, tmp_path: Path) -> None:
    store = open_destination(DeliveryOptions(db=tmp_path / "s.sqlite"))
    assert isinstance(store, StoreDestination)
    assert store.description == f"local store {tmp_path / 's.sqlite'}"
    store.close()
    jsonl = open_destination(DeliveryOptions(out=str(tmp_path / "e.jsonl"), raw=False))
    assert isinstance(jsonl, JsonlDestination)
    assert jsonl.include_raw is False
    jsonl.close()


def test_two_destinations_are_a_usage_error_before_anything_opens(clean_env: Path, tmp_path: Path) -> None:
    with pytest.raises(DestinationChoiceError, match=r"^give either --db or --out, not both$") as caught:
        open_destination(DeliveryOptions(db=tmp_path / "s.sqlite", out="-"))
    assert isinstance(caught.value, ValueError)
    assert isinstance(caught.value, HsmauditError)
    assert not (tmp_path / "s.sqlite").exists()


def test_hec_without_a_url_says_which_flag_or_variable_to_set(clean_env: Path) -> None:
    with pytest.raises(ConfigError, match=r"^no HEC URL: give --hec-url or set HSMAUDIT_HEC_URL"):
        open_destination(DeliveryOptions())


def test_hec_uses_the_lambdas_client_with_the_configured_spool_and_says_when_unverified(
    clean_env: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HSMAUDIT_HEC_TOKEN", "t")
    said: list[str] = []
    options = DeliveryOptions(hec_url="https://127.0.0.1:9", spool_dir=tmp_path / "spool")
    hec = open_destination(options, on_unverified=lambda: said.append("unverified"), on_block=said.append)
    assert isinstance(hec, HecDestination)
    assert hec.description == f"HEC https://127.0.0.1:9/services/collector/event (spool {tmp_path / 'spool'})"
    assert hec.on_block is not None
    hec.on_block("HEC is down")
    hec.close()
    assert said == ["HEC is down"]  # verification is on by default: nothing to warn about
    monkeypatch.setenv("HSMAUDIT_HEC_VERIFY", "false")
    unverified = open_destination(options, on_unverified=lambda: said.append("unverified"))
    assert isinstance(unverified, HecDestination)
    assert unverified.spool is not None
    unverified.close()
    assert said == ["HEC is down", "unverified"]


def test_quiet_library_logs_keeps_the_hec_clients_records_off_the_terminal() -> None:
    library = logging.getLogger("hsmaudit")
    saved = (library.handlers[:], library.propagate)
    try:
        library.handlers.clear()
        library.propagate = True
        quiet_library_logs()
        quiet_library_logs()
        assert [type(handler) for handler in library.handlers] == [logging.NullHandler]
        assert library.propagate is False
    finally:
        library.handlers[:], library.propagate = saved
