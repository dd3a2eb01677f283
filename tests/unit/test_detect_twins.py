"""A forged twin is kept and flagged; an exact redelivery is one event everywhere (issue 12, item 5).

`event_id` hashes the record's identity *and* its normalised content (contracts.md §1). A record
delivered again (Lambda retry, backfill, another transport, other spacing or line endings) keeps
its id, so the store, the engine's and Splunk's de-duplication count it once. A record written
with the same HSM, reboot counter, sequence number and usecs but another opcode or user (a forger
writing first, or after) gets another id: the store keeps both and `sequence-duplicate` fires with
both ids, in the Python engine, over the SQLite store, and in the generated SPL (run by the SPL
model of `test_rules_spl_semantics`). Records come from the published samples.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

import msgspec
import pytest

from hsmaudit.detect.engine import DetectionConfig, detect_events
from hsmaudit.detect.sqlite import detect_store
from hsmaudit.records.alert import Alert
from hsmaudit.records.event import HsmEvent
from hsmaudit.records.parse import parse_message
from hsmaudit.store.database import EventStore

from .test_rules_spl_semantics import SEARCHES, run_search

SAMPLES = Path(__file__).resolve().parent.parent / "data" / "samples"
GROUP = "/aws/cloudhsm/cluster-twins111"
STREAM = "hsm-twins111"
LOGIN = (SAMPLES / "aws-doc-06-login-co-success.txt").read_text().strip()
CREATE = (SAMPLES / "aws-doc-10-create-user-cu.txt").read_text().strip()
# A forger's version of the create-user record: same position and time, a crypto officer instead.
FORGED = CREATE.replace("CN_CREATE_USER (0x3)", "CN_CREATE_CO (0x4)").replace(
    "User Name : bob\nUser Type : CN_CRYPTO_USER (1)",
    "User Name : mallory\nUser Type : CN_CRYPTO_OFFICER (2)",
)
NO_SILENCE = DetectionConfig(disabled=frozenset({"hsm-silent"}))


def record(text: str, cwl_id: str = "1", cwl_timestamp: int = 1516067380000) -> HsmEvent:
    return parse_message(text, log_group=GROUP, log_stream=STREAM, cwl_id=cwl_id, cwl_timestamp=cwl_timestamp)


def twin_inputs() -> tuple[HsmEvent, HsmEvent, HsmEvent, HsmEvent]:
    """The login, the original create-user, its exact redelivery (other envelope), the forged twin."""
    return (
        record(LOGIN),
        record(CREATE),
        record(CREATE, cwl_id="2", cwl_timestamp=1516067999000),
        record(FORGED, cwl_id="3"),
    )


def duplicates(alerts: list[Alert]) -> list[Alert]:
    return [alert for alert in alerts if alert.rule == "sequence-duplicate"]


# --- identity -------------------------------------------------------------------------------


def test_a_redelivery_keeps_its_id_whatever_the_envelope_spacing_or_line_endings() -> None:
    original = record(CREATE)
    assert original.parse_error is None
    variants = [
        CREATE,
        CREATE.replace(" : ", ": "),  # another published separator
        CREATE.replace(" : ", "\t\t: "),  # tabs (the line path)
        CREATE.replace("\n", "\r\n") + "\r\n",  # CRLF, trailing newline
        "\n".join(reversed(CREATE.split("\n"))),  # line order
    ]
    for index, text in enumerate(variants):
        again = record(text, cwl_id=f"other-{index}", cwl_timestamp=index)
        assert again.parse_error is None, again.parse_error
        assert again.event_id == original.event_id, repr(text)


def test_a_forged_twin_has_the_same_identity_but_another_id() -> None:
    original, forged = record(CREATE), record(FORGED)
    identity = ("cluster_id", "hsm_id", "reboot_counter", "sequence_no", "usecs")
    assert [getattr(forged, f) for f in identity] == [getattr(original, f) for f in identity]
    assert (forged.opcode, forged.user_name) == ("CN_CREATE_CO", "mallory")
    assert forged.event_id != original.event_id
    # one changed field is enough, whichever it is
    for old, new in [("0x7014006", "0x7014007"), ("bob", "bob2"), ("SUCCESS", "FAILURE")]:
        assert record(CREATE.replace(old, new)).event_id != original.event_id, old


def test_a_record_with_a_parse_error_still_separates_twins_by_content() -> None:
    broken = CREATE + "\n@@ garbage line one"
    other = CREATE + "\n@@ garbage line two"
    first, second = record(broken), record(other)
    assert first.parse_error and second.parse_error
    assert first.sequence_no == second.sequence_no == 1
    assert first.event_id != second.event_id
    assert record(broken.replace("\n", "\r\n"), cwl_id="9").event_id == first.event_id


# --- store, engine, SQLite, SPL ---------------------------------------------------------------


def test_the_store_keeps_the_twin_beside_the_original_and_one_copy_of_a_redelivery(tmp_path: Path) -> None:
    login, original, redelivered, forged = twin_inputs()
    with EventStore(tmp_path / "store.db") as store:
        assert store.add_events([login, original]) == 2
        assert store.add_events([redelivered]) == 0  # same event_id: not stored twice
        assert store.add_events([forged]) == 1  # same position, other content: kept
        stored = {event.event_id: event for _, event in store.iter_events()}
    assert set(stored) == {login.event_id, original.event_id, forged.event_id}
    assert stored[forged.event_id].user_name == "mallory"


def test_engine_raises_one_sequence_duplicate_for_the_twin_only() -> None:
    login, original, redelivered, forged = twin_inputs()
    clean = list(detect_events([login, original, redelivered], NO_SILENCE))
    assert duplicates(clean) == []
    assert [a.rule for a in clean] == ["user-created"]  # the redelivery does not alert again
    alerts = list(detect_events([login, original, redelivered, forged], NO_SILENCE))
    (alert,) = duplicates(alerts)
    assert alert.event_ids == [original.event_id, forged.event_id]
    assert (alert.hsm_id, alert.details["sequence_no"], alert.details["reboot_counter"]) == (STREAM, 1, 0x107)


@pytest.mark.parametrize("forger_first", [False, True])
def test_a_forger_writing_first_does_not_hide_the_real_record(forger_first: bool) -> None:
    login, original, redelivered, forged = twin_inputs()
    order = [login, forged, original, redelivered] if forger_first else [login, original, forged, redelivered]
    (alert,) = duplicates(list(detect_events(order, NO_SILENCE)))
    assert sorted(alert.event_ids) == sorted([original.event_id, forged.event_id])


def test_sqlite_detections_over_the_store_raise_the_same_single_duplicate(tmp_path: Path) -> None:
    login, original, redelivered, forged = twin_inputs()
    path = tmp_path / "store.db"
    with EventStore(path) as store:
        store.add_events([login, original, redelivered, forged, redelivered])
    with sqlite3.connect(path) as connection:
        alerts = detect_store(connection, NO_SILENCE)
    (alert,) = duplicates(alerts)
    assert sorted(alert.event_ids) == sorted([original.event_id, forged.event_id])
    # the single-event rules see the twin as the record it claims to be (a crypto officer created)
    assert sorted(a.rule for a in alerts if a.rule != "sequence-duplicate") == [
        "crypto-officer-created",
        "user-created",
    ]


def test_spl_dedup_removes_the_redelivery_and_the_duplicate_search_finds_the_twin() -> None:
    login, original, redelivered, forged = twin_inputs()
    assert run_search(SEARCHES["sequence-duplicate"], [login, original, redelivered, redelivered]) == []
    (row,) = run_search(SEARCHES["sequence-duplicate"], [login, original, redelivered, forged])
    assert row["variants"] == 2
    assert row["event_ids"] == sorted([original.event_id, forged.event_id])
    assert (row["stream"], row["sequence_no"]) == (STREAM, 1)
    # the single-event search alerts once on the redelivered record
    created = run_search(SEARCHES["user-created"], [original, redelivered])
    assert [r["event_ids"] for r in created] == [[original.event_id]]


# --- a forged twin that claims the genuine record's id ----------------------------------------


@pytest.mark.parametrize("same_batch", [False, True])
def test_a_twin_sent_with_the_genuine_records_id_is_still_kept_and_flagged(
    same_batch: bool, tmp_path: Path
) -> None:
    # A JSON or lean event carries the sender's event_id: a forger can reuse the genuine one.
    login, original, redelivered, forged = twin_inputs()
    claimed = msgspec.structs.replace(forged, event_id=original.event_id)
    path = tmp_path / "store.db"
    with EventStore(path) as store:
        if same_batch:
            assert store.add_events([login, original, claimed, redelivered]) == 3
        else:
            assert store.add_events([login, original]) == 2
            assert store.add_events([redelivered]) == 0  # the same record: still one event
            assert store.add_events([claimed]) == 1  # other content behind the same id: kept
            assert store.add_events([claimed]) == 0  # and its own redelivery is one event too
        stored = [event for _, event in store.iter_events()]
    assert sorted(e.user_name or "" for e in stored) == ["admin", "bob", "mallory"]
    twin = next(e for e in stored if e.user_name == "mallory")
    assert twin.event_id not in (original.event_id, forged.event_id)
    with sqlite3.connect(path) as connection:
        (alert,) = duplicates(detect_store(connection, NO_SILENCE))
    assert sorted(alert.event_ids) == sorted([original.event_id, twin.event_id])


def test_the_spl_duplicate_search_finds_a_twin_that_claims_the_genuine_id() -> None:
    login, original, redelivered, forged = twin_inputs()
    claimed = msgspec.structs.replace(forged, event_id=original.event_id)
    assert run_search(SEARCHES["sequence-duplicate"], [login, original, redelivered]) == []
    (row,) = run_search(SEARCHES["sequence-duplicate"], [login, original, claimed, redelivered])
    assert (row["variants"], row["event_ids"], row["sequence_no"]) == (2, [original.event_id], 1)
    assert row["opcodes"] == ["CN_CREATE_CO", "CN_CREATE_USER"]
