"""CloudWatch Logs subscription payloads: envelopes, control messages, multi-document gzip, bad input."""

from __future__ import annotations

import base64
import gzip
import json
from pathlib import Path
from typing import Any

import pytest

from hsmaudit.sources.cloudwatch import (
    decode_documents,
    decode_subscription_event,
    gunzip_base64,
    log_messages,
)
from hsmaudit.sources.errors import SourceDecodeError

RECORD = """Time: 12/19/17 21:01:16.962174, usecs:1513717276962174
Sequence No : 0x0
Reboot counter : 0xe8
Command Type(hex) : CN_MGMT_CMD (0x0)
Opcode : CN_LOGIN (0xd)
Session Handle : 0x1004001
Response : 0:HSM Return: SUCCESS
Log type : MGMT_USER_DETAILS_LOG (2)
User Name : ünïcødé\u2028user
User Type : CN_CRYPTO_USER (1)"""


def document(messages: list[str], message_type: str = "DATA_MESSAGE") -> dict[str, Any]:
    return {
        "messageType": message_type,
        "owner": "012345678901",
        "logGroup": "/aws/cloudhsm/cluster-abc",
        "logStream": "hsm-123",
        "subscriptionFilters": ["hsmaudit"],
        "logEvents": [
            {"id": f"{index:056d}", "timestamp": 1513717277000 + index, "message": message}
            for index, message in enumerate(messages)
        ],
    }


def envelope(*documents: dict[str, Any]) -> dict[str, Any]:
    raw = b"".join(gzip.compress(json.dumps(doc, ensure_ascii=False).encode()) for doc in documents)
    return {"awslogs": {"data": base64.b64encode(raw).decode()}}


def test_envelope_yields_messages_with_context_and_exact_unicode() -> None:
    (doc,) = decode_subscription_event(envelope(document([RECORD, RECORD])))
    messages = list(log_messages(doc))
    assert len(messages) == 2
    assert messages[0].message == RECORD  # non-ASCII and U+2028 byte-exact
    assert messages[0].log_group == "/aws/cloudhsm/cluster-abc"
    assert messages[0].log_stream == "hsm-123"
    assert messages[0].cwl_id == "0" * 56  # a 56-digit id stays a string
    assert messages[1].timestamp == 1513717277001


def test_control_message_yields_nothing(samples_dir: Path) -> None:
    control = json.loads((samples_dir / "cwl-control-message-decoded.json").read_text())
    (doc,) = decode_subscription_event(envelope(control))
    assert doc.is_control
    assert list(log_messages(doc)) == []


def test_aws_sample_envelope_decodes(samples_dir: Path) -> None:
    event = json.loads((samples_dir / "cwl-aws-sample-envelope.json").read_text())
    (doc,) = decode_subscription_event(event)
    assert doc.owner == "123456789123"
    assert [m.message for m in log_messages(doc)] == [
        "[ERROR] First test message",
        "[ERROR] Second test message",
    ]


def test_concatenated_gzip_members_and_documents_are_all_read() -> None:
    docs = decode_subscription_event(envelope(document([RECORD]), document([RECORD, RECORD])))
    assert [len(doc.log_events) for doc in docs] == [1, 2]


def test_documents_back_to_back_in_one_member() -> None:
    payload = (json.dumps(document([RECORD])) + json.dumps(document([RECORD]))).encode()
    assert len(decode_documents(payload)) == 2


def test_unknown_keys_are_ignored() -> None:
    doc = document([RECORD])
    doc["policyLevel"] = "ACCOUNT_LEVEL_POLICY"
    (decoded,) = decode_subscription_event(envelope(doc))
    assert len(decoded.log_events) == 1


@pytest.mark.parametrize(
    ("event", "reason"),
    [
        ({"awslogs": {"data": "%%%not base64%%%"}}, "not valid base64"),
        ({"awslogs": {"data": base64.b64encode(b"plain, not gzip").decode()}}, "not valid gzip"),
        ({"awslogs": {"data": base64.b64encode(gzip.compress(b"{not json")).decode()}}, "not valid JSON"),
        ({"awslogs": {"data": base64.b64encode(gzip.compress(b"\xff\xfe")).decode()}}, "not UTF-8"),
        (
            {"awslogs": {"data": base64.b64encode(gzip.compress(b'{"logEvents": []}')).decode()}},
            "not a CloudWatch Logs subscription document",
        ),
        ({"records": []}, "no awslogs.data"),
        ({"awslogs": {"data": 5}}, "not a string"),
    ],
)
def test_undecodable_envelopes_raise_one_clear_error(event: dict[str, Any], reason: str) -> None:
    with pytest.raises(SourceDecodeError) as caught:
        decode_subscription_event(event, name="payload.json")
    assert reason in str(caught.value)
    assert str(caught.value).startswith("payload.json: ")
    assert "\n" not in str(caught.value)


def test_truncated_gzip_is_a_decode_error() -> None:
    data = gzip.compress(json.dumps(document([RECORD])).encode())[:-6]
    with pytest.raises(SourceDecodeError, match="not valid gzip"):
        gunzip_base64(base64.b64encode(data))
