"""A CloudHSM cluster on paper: builds labelled record streams for the detection tests.

Every record is rendered as real CloudHSM text (`records.render.render_text_record`) and parsed
back with `records.parse.parse_message`, so the detections see exactly what the parser emits. The
cluster keeps one sequence counter per HSM and replicates logins to every HSM a moment later, and
key generation writes the masked-object sync copies, as `cloudhsm-audit-format.md` §1 describes.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Final

from hsmaudit.records.cloudtrail import cloudtrail_event
from hsmaudit.records.event import HsmEvent
from hsmaudit.records.parse import parse_message
from hsmaudit.records.render import Separator, render_text_record

START: Final = 1_764_140_400_000_000  # 2025-11-26T07:00:00Z
SECOND: Final = 1_000_000
MINUTE: Final = 60 * SECOND

# Opcode hex codes where a published record shows them (reference §4); others print bare names.
_OPCODE_CODES: Final[dict[str, int]] = {
    "CN_LOGIN": 0xD,
    "CN_LOGOUT": 0xE,
    "CN_CREATE_USER": 0x3,
    "CN_CREATE_CO": 0x4,
    "CN_DELETE_USER": 0xA1,
    "CN_CHANGE_PSWD": 0x9,
    "CN_GENERATE_KEY": 0x17,
    "CN_GENERATE_KEY_PAIR": 0x19,
    "CN_DESTROY_OBJECT": 0x11,
    "CN_SHARE_OBJECT": 0x12,
    "CN_WRAP_KEY": 0x1A,
    "CN_UNWRAP_KEY": 0x1B,
    "CN_NIST_AES_WRAP": 0x1E,
    "CN_EXTRACT_MASKED_OBJECT_USER": 0xF0,
    "CN_INSERT_MASKED_OBJECT_USER": 0xF1,
}
_USER_OPCODES: Final = frozenset(
    {
        "CN_LOGIN",
        "CN_LOGOUT",
        "CN_CREATE_USER",
        "CN_CREATE_CO",
        "CN_CREATE_APPLIANCE_USER",
        "CN_DELETE_USER",
        "CN_CHANGE_PSWD",
        "CN_SET_M_VALUE",
        "CN_APPROVE_TOKEN",
        "CN_DELETE_TOKEN",
        "CN_GET_TOKEN",
    }
)
_KEY_OPCODES: Final = frozenset(
    {
        "CN_GENERATE_KEY",
        "CN_GENERATE_KEY_PAIR",
        "CN_DESTROY_OBJECT",
        "CN_TOMBSTONE_OBJECT",
        "CN_WRAP_KEY",
        "CN_UNWRAP_KEY",
        "CN_NIST_AES_WRAP",
        "CN_EXTRACT_MASKED_OBJECT_USER",
        "CN_INSERT_MASKED_OBJECT_USER",
        "CN_CREATE_OBJECT",
        "CN_MODIFY_OBJECT",
    }
)
_USER_TYPE_CODES: Final[dict[str, int]] = {
    "CN_CRYPTO_USER": 1,
    "CN_CRYPTO_OFFICER": 2,
    "CN_APPLIANCE_USER": 5,
    "CN_CRYPTO_PRE_OFFICER": 6,
}
BAD_PASSWORD: Final = (163, "RET_USER_LOGIN_FAILURE")


@dataclass
class Cluster:
    """Emits records of a cluster in arrival order; `events` is the labelled stream."""

    cluster_id: str = "cluster-testabc1234"
    hsms: tuple[str, ...] = ("hsm-aaaa1111", "hsm-bbbb2222", "hsm-cccc3333")
    clock: int = START
    reboot: int = 0x107
    separator: Separator = "space"
    events: list[HsmEvent] = field(default_factory=list)
    sequence: dict[str, int] = field(default_factory=dict)
    reboots: dict[str, int] = field(default_factory=dict)

    @property
    def log_group(self) -> str:
        return f"/aws/cloudhsm/{self.cluster_id}"

    def advance(self, usecs: int) -> None:
        self.clock += usecs

    def next_sequence(self, hsm: str) -> int:
        value = self.sequence.get(hsm, 0)
        self.sequence[hsm] = value + 1
        return value

    def make(
        self,
        hsm: str,
        opcode: str,
        *,
        at: int | None = None,
        success: bool = True,
        error: tuple[int, str] = (19, "RET_OBJECT_NOT_FOUND"),
        user: str | None = None,
        user_type: str = "CN_CRYPTO_USER",
        key: int | None = None,
        public_key: int | None = None,
        session: str = "0x2014005",
        sequence: int | None = None,
        reboot: int | None = None,
    ) -> HsmEvent:
        """One record as the parser returns it (not yet added to the stream)."""
        if opcode in _USER_OPCODES:
            log_type, log_code = "MGMT_USER_DETAILS_LOG", 2
        elif opcode in _KEY_OPCODES:
            log_type, log_code = "MGMT_KEY_DETAILS_LOG", 1
        else:
            log_type, log_code = "MINIMAL_LOG_ENTRY", 0
        code, text = (0, "SUCCESS") if success else error
        template = HsmEvent(
            usecs=self.clock if at is None else at,
            sequence_no=self.next_sequence(hsm) if sequence is None else sequence,
            reboot_counter=self.reboots.get(hsm, self.reboot) if reboot is None else reboot,
            command_type="CN_MGMT_CMD",
            command_type_code=0,
            opcode=opcode,
            opcode_code=_OPCODE_CODES.get(opcode),
            session_handle=session,
            response_code=code,
            response=text,
            success=success,
            log_type=log_type,
            log_type_code=log_code,
            user_name=(user or "app_user") if log_type == "MGMT_USER_DETAILS_LOG" else None,
            user_type=user_type if log_type == "MGMT_USER_DETAILS_LOG" else None,
            user_type_code=_USER_TYPE_CODES.get(user_type) if log_type == "MGMT_USER_DETAILS_LOG" else None,
            key_handle=key,
            public_key_handle=public_key,
        )
        text_record = render_text_record(template, self.separator)
        event = parse_message(text_record, log_group=self.log_group, log_stream=hsm)
        assert event.parse_error is None, (event.parse_error, text_record)
        return event

    def record(self, hsm: str, opcode: str, **kwargs: object) -> HsmEvent:
        """Make one record and append it to the stream."""
        event = self.make(hsm, opcode, **kwargs)  # type: ignore[arg-type]
        self.events.append(event)
        return event

    def login(
        self,
        user: str,
        user_type: str = "CN_CRYPTO_USER",
        *,
        hsm: int = 0,
        success: bool = True,
        error: tuple[int, str] = BAD_PASSWORD,
        replicate: bool = True,
        lag: int = 300_000,
    ) -> list[HsmEvent]:
        """A login on one HSM, then the same login on every other HSM `lag` later (§1)."""
        serving = self.hsms[hsm]
        made = [
            self.record(serving, "CN_LOGIN", user=user, user_type=user_type, success=success, error=error)
        ]
        if replicate:
            for offset, other in enumerate(h for h in self.hsms if h != serving):
                made.append(
                    self.record(
                        other,
                        "CN_LOGIN",
                        at=self.clock + lag * (offset + 1),
                        user=user,
                        user_type=user_type,
                        success=success,
                        error=error,
                        session="0x1004001",
                    )
                )
        return made

    def generate_key(self, handle: int, *, hsm: int = 0, pair: bool = False) -> None:
        """A key generated on one HSM, extracted masked there and inserted on the others (§1)."""
        serving = self.hsms[hsm]
        if pair:
            self.record(serving, "CN_GENERATE_KEY_PAIR", key=handle, public_key=handle - 1)
        else:
            self.record(serving, "CN_GENERATE_KEY", key=handle)
        self.record(serving, "CN_EXTRACT_MASKED_OBJECT_USER", key=handle)
        for offset, other in enumerate(h for h in self.hsms if h != serving):
            self.record(
                other, "CN_INSERT_MASKED_OBJECT_USER", at=self.clock + 200_000 * (offset + 1), key=handle
            )

    def api_call(
        self,
        name: str,
        parameters: dict[str, object] | None = None,
        *,
        error: str | None = None,
        role: str = "Admin",
        session: str = "mallory",
    ) -> HsmEvent:
        """A CloudHSM API call as CloudTrail records it (record contents reference), at the clock."""
        self.clock += SECOND
        seconds = self.clock // SECOND
        record: dict[str, object] = {
            "eventVersion": "1.08",
            "userIdentity": {
                "type": "AssumedRole",
                "arn": f"arn:aws:sts::111122223333:assumed-role/{role}/{session}",
                "accountId": "111122223333",
            },
            "eventTime": datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "eventSource": "cloudhsm.amazonaws.com",
            "eventName": name,
            "awsRegion": "us-east-1",
            "sourceIPAddress": "203.0.113.7",
            "requestParameters": {"clusterId": self.cluster_id, **(parameters or {})},
            "responseElements": None,
            "eventID": f"{name}-{self.clock:x}",
            "eventType": "AwsApiCall",
            "recipientAccountId": "111122223333",
        }
        if error is not None:
            record["errorCode"] = error
            record["errorMessage"] = "User is not authorized to perform this operation"
        event = cloudtrail_event(record)
        self.events.append(event)
        return event

    def reboot_hsm(self, hsm: int) -> None:
        """The HSM reboots: its reboot counter rises and (as Azure's firmware does) its sequence restarts."""
        name = self.hsms[hsm]
        self.reboots[name] = self.reboots.get(name, self.reboot) + 1
        self.sequence[name] = 0


def normal_day(seed: int = 7) -> Cluster:
    """A day of normal operations across a 3-HSM cluster: nothing in it should alert."""
    rng = random.Random(seed)
    cluster = Cluster()
    handle = 262_150
    users = ["app_user_1", "app_user_2", "batch"]
    for _ in range(24 * 6):  # every ~10 minutes for a day
        serving = rng.randrange(3)
        user = rng.choice(users)
        cluster.login(user, hsm=serving)
        cluster.advance(2 * SECOND)
        action = rng.random()
        if action < 0.3:
            handle += 2
            cluster.generate_key(handle, hsm=serving, pair=rng.random() < 0.5)
        elif action < 0.45:
            cluster.record(cluster.hsms[serving], "CN_NIST_AES_WRAP", key=handle)
        elif action < 0.55:
            cluster.record(cluster.hsms[serving], "CN_SHARE_OBJECT")
        cluster.advance(3 * SECOND)
        cluster.record(cluster.hsms[serving], "CN_LOGOUT", user=user)
        cluster.advance(rng.randrange(8 * MINUTE, 11 * MINUTE))
    cluster.events.sort(key=lambda e: e.usecs or 0)
    return cluster


def test_records_round_trip_through_the_parser_with_every_separator() -> None:
    for separator in ("space", "colon", "tabs"):
        cluster = Cluster(separator=separator)  # type: ignore[arg-type]
        event = cluster.record(cluster.hsms[1], "CN_LOGIN", user="bob", success=False, error=BAD_PASSWORD)
        assert (event.opcode, event.success, event.response_code, event.user_name) == (
            "CN_LOGIN",
            False,
            163,
            "bob",
        )
        assert (event.cluster_id, event.hsm_id, event.sequence_no) == (
            "cluster-testabc1234",
            "hsm-bbbb2222",
            0,
        )


def test_logins_are_replicated_to_every_hsm_with_their_own_sequence_numbers() -> None:
    cluster = Cluster()
    made = cluster.login("alice")
    assert [e.hsm_id for e in made] == list(cluster.hsms)
    assert [e.sequence_no for e in made] == [0, 0, 0]
    assert len({e.event_id for e in made}) == 3


def test_normal_day_covers_all_hsms_and_key_sync() -> None:
    cluster = normal_day()
    opcodes = {e.opcode for e in cluster.events}
    assert {"CN_INSERT_MASKED_OBJECT_USER", "CN_EXTRACT_MASKED_OBJECT_USER", "CN_LOGIN"} <= opcodes
    assert {e.hsm_id for e in cluster.events} == set(cluster.hsms)
    assert len(cluster.events) > 500
