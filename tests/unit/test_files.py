"""Every input shape of `hsmaudit parse`, read from bytes as a file or stdin would give them."""

from __future__ import annotations

import base64
import gzip
import json

import pytest

from hsmaudit.records.event import event_to_json
from hsmaudit.records.parse import parse_message
from hsmaudit.sources.errors import SourceDecodeError
from hsmaudit.sources.files import read_bytes, split_records
from hsmaudit.sources.message import LogMessage

from .test_cloudwatch import RECORD, document, envelope

SECOND = RECORD.replace("Sequence No : 0x0", "Sequence No : 0x1")


def messages(data: bytes, **context: str) -> list[LogMessage]:
    items = list(read_bytes(data, name="input", **context))
    assert all(isinstance(item, LogMessage) for item in items)
    return [item for item in items if isinstance(item, LogMessage)]


def test_raw_text_splits_at_time_lines() -> None:
    text = f"\n\n{RECORD}\n\n{SECOND}\n"
    assert [m.message for m in messages(text.encode())] == [RECORD, SECOND]


def test_text_before_the_first_record_is_kept_not_dropped() -> None:
    found = messages(f"some banner\n{RECORD}".encode())
    assert [m.message for m in found] == ["some banner", RECORD]
    assert parse_message(found[0].message).parse_error == "not a CloudHSM audit record"


def test_crlf_text_files() -> None:
    text = (RECORD + "\n" + SECOND).replace("\n", "\r\n")
    assert [m.message for m in messages(text.encode())] == [RECORD, SECOND]


def test_split_records_on_tab_padded_time() -> None:
    assert len(list(split_records(f"{RECORD}\nTime\t: x\n"))) == 2


def test_context_flags_apply_to_raw_text() -> None:
    (found,) = messages(RECORD.encode(), log_group="/aws/cloudhsm/cluster-x", log_stream="hsm-y")
    assert (found.log_group, found.log_stream) == ("/aws/cloudhsm/cluster-x", "hsm-y")


def test_envelope_decoded_document_and_json_lines() -> None:
    lines = [json.dumps(envelope(document([RECORD]))), json.dumps(document([SECOND]))]
    found = messages("\n".join(lines).encode())
    assert [m.message for m in found] == [RECORD, SECOND]
    assert all(m.log_stream == "hsm-123" for m in found)


def test_filter_log_events_output() -> None:
    output = {
        "events": [
            {
                "logStreamName": "hsm-a",
                "timestamp": 1,
                "message": RECORD,
                "ingestionTime": 2,
                "eventId": "9" * 56,
            },
            {
                "logStreamName": "hsm-b",
                "timestamp": 3,
                "message": SECOND,
                "ingestionTime": 4,
                "eventId": "8" * 56,
            },
        ],
        "searchedLogStreams": [],
    }
    found = messages(json.dumps(output).encode(), log_group="/aws/cloudhsm/cluster-x")
    assert [(m.log_stream, m.cwl_id) for m in found] == [("hsm-a", "9" * 56), ("hsm-b", "8" * 56)]
    assert found[0].log_group == "/aws/cloudhsm/cluster-x"


def test_get_log_events_output_uses_the_stream_flag() -> None:
    output = {"events": [{"timestamp": 1, "message": RECORD, "ingestionTime": 2}], "nextForwardToken": "f/1"}
    (found,) = messages(json.dumps(output).encode(), log_stream="hsm-z")
    assert found.log_stream == "hsm-z"


def test_pretty_printed_certificate_record_keeps_its_text() -> None:
    text = (
        '{\n    "object_handle": 463180677312929947,\n    "op_code": "CreateObject",\n    "response": "OK",\n'
        '    "attributes": null,\n    "timestamp": 1725482483671\n}'
    )
    (found,) = messages((text + "\n").encode())
    assert found.message == text
    assert parse_message(found.message).object_handle == 463180677312929947


def test_parsed_events_pass_through() -> None:
    event = parse_message(RECORD, log_group="/aws/cloudhsm/cluster-a", log_stream="hsm-1")
    (item,) = read_bytes(event_to_json(event) + b"\n", name="events.jsonl")
    assert item == event


def test_json_strings_and_arrays() -> None:
    found = messages(json.dumps([RECORD, {"message": SECOND}]).encode())
    assert [m.message for m in found] == [RECORD, SECOND]


def test_gzip_file_is_read() -> None:
    assert [m.message for m in messages(gzip.compress(RECORD.encode()))] == [RECORD]


def test_empty_input_yields_nothing() -> None:
    assert list(read_bytes(b"  \n", name="empty")) == []


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b'{"awslogs": {"data": "###"}}', "not valid base64"),
        (b'{"events": [1]}', "a log event without a message string"),
        (b'{"a": 1}', "unrecognised JSON object"),
        (b"{broken", "not valid JSON"),
        (b'{"message": "x"}\n{broken', "not valid JSON"),
        (b"\xff\xfeTime", "not UTF-8"),
        (b"\x1f\x8b\x08junk", "not valid gzip"),
        (b"[42]", "is not an audit record"),
        (json.dumps({"awslogs": {"data": base64.b64encode(b"x").decode()}}).encode(), "not valid gzip"),
    ],
)
def test_undecodable_inputs_name_the_input(data: bytes, reason: str) -> None:
    with pytest.raises(SourceDecodeError) as caught:
        list(read_bytes(data, name="in.json"))
    assert reason in str(caught.value)
    assert str(caught.value).startswith("in.json")
