"""What the handlers and the collector are given, and what our collector makes of what they send:
CloudHSM record text, CloudWatch subscription payloads, a fake Lambda context, simulated events
and their json HEC envelopes (`simulated`, `envelope`), and the decoding of one HEC envelope."""

from __future__ import annotations

import base64
import gzip
import json
import uuid
from dataclasses import dataclass, field
from typing import Any

from hsmaudit.records.event import HsmEvent, event_to_dict
from hsmaudit.records.render import render_text_record
from hsmaudit.simulate.emit import parsed_events
from hsmaudit.simulate.scenarios import run_scenarios

LOG_GROUP = "/aws/cloudhsm/cluster-fwdtest1"


def received_event(envelope: bytes | dict[str, Any]) -> HsmEvent:
    """What our collector makes of one HEC envelope, lean or json (its real decoding path)."""
    from hsmaudit.server.hec import decode_envelope, envelope_event

    text = envelope if isinstance(envelope, bytes) else json.dumps(envelope).encode()
    return envelope_event(decode_envelope(text, 0, max_event_size=10 * 1024 * 1024))


def record_text(sequence_no: int, *, hsm: int = 0, user_name: str = "admin") -> str:
    """A classic CloudHSM record; distinct per sequence number (so every event can be counted)."""
    failed = sequence_no % 5 == 4
    event = HsmEvent(
        usecs=1_700_000_000_000_000 + sequence_no * 1_013 + hsm,
        sequence_no=sequence_no,
        reboot_counter=0x107,
        command_type="CN_MGMT_CMD",
        command_type_code=0,
        opcode="CN_LOGIN",
        opcode_code=0xD,
        session_handle=f"0x{0x1004000 + sequence_no:x}",
        response_code=163 if failed else 0,
        response="RET_USER_LOGIN_FAILURE" if failed else "SUCCESS",
        success=not failed,
        log_type="MGMT_USER_DETAILS_LOG",
        log_type_code=2,
        user_name=user_name,
        user_type="CN_CRYPTO_OFFICER",
        user_type_code=2,
    )
    return render_text_record(event)


def subscription_document(
    messages: list[str], *, stream: str = "hsm-aaaa1111", group: str = LOG_GROUP, first_id: int = 0
) -> dict[str, Any]:
    """A decoded CloudWatch Logs DATA_MESSAGE document."""
    return {
        "messageType": "DATA_MESSAGE",
        "owner": "123456789012",
        "logGroup": group,
        "logStream": stream,
        "subscriptionFilters": ["hsmaudit"],
        "logEvents": [
            {
                "id": f"{37_000_000_000_000 + first_id + i:056d}",
                "timestamp": 1_700_000_000_000 + i,
                "message": m,
            }
            for i, m in enumerate(messages)
        ],
    }


def subscription_event(*documents: dict[str, Any]) -> dict[str, Any]:
    """`{"awslogs": {"data": base64(gzip(documents back to back))}}`."""
    body = b"".join(json.dumps(d, ensure_ascii=False).encode("utf-8") for d in documents)
    return {"awslogs": {"data": base64.b64encode(gzip.compress(body)).decode("ascii")}}


def control_document() -> dict[str, Any]:
    """CloudWatch's health check (cloudhsm-audit-format.md §10.3)."""
    return {
        "messageType": "CONTROL_MESSAGE",
        "owner": "CloudwatchLogs",
        "logGroup": "",
        "logStream": "",
        "subscriptionFilters": [],
        "logEvents": [
            {"id": "", "timestamp": 1_700_000_000_000, "message": "CWL CONTROL MESSAGE: Checking health"}
        ],
    }


@dataclass
class FakeContext:
    """The parts of the Lambda context the handlers read."""

    remaining_ms: int = 30_000
    aws_request_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    function_name: str = "hsmaudit-forwarder"

    def get_remaining_time_in_millis(self) -> int:
        return self.remaining_ms


def simulated(count: int = 40) -> list[HsmEvent]:
    events = list(parsed_events(run_scenarios(["seed", "failed-login-burst"], seed=11).records))
    assert len(events) >= count
    return events[:count]


def envelope(event: HsmEvent) -> str:
    return json.dumps(
        {
            "time": (event.usecs or 0) / 1e6,
            "host": event.hsm_id,
            "source": event.log_group,
            "sourcetype": "aws:cloudhsm:audit",
            "event": event_to_dict(event),
        }
    )
