"""A simulated CloudHSM cluster: N HSMs writing audit records the way real ones do.

Facts followed (`docs/reference/cloudhsm-records.md`):
- §1: one log group `/aws/cloudhsm/<cluster>`, one stream per HSM named with the HSM id; a login
  is recorded by the serving HSM and then by every other HSM shortly after; a logout only by the
  serving HSM; a generated key is logged once (CN_GENERATE_KEY…) plus CN_EXTRACT_MASKED_OBJECT_USER
  on the serving HSM, and CN_INSERT_MASKED_OBJECT_USER on each HSM that receives the copy;
- §2-§3: each stream's `Sequence No` starts at 0 and grows by one per record, with no gaps; the
  reboot counter is per HSM;
- §4-§6: opcode and user-type codes as published; failed logins answer `163:HSM Error:
  RET_USER_LOGIN_FAILURE` (bad password) or `206:HSM Error: This user doesn't exist`.

Records are built as `HsmEvent`s and rendered with `records.render.render_text_record`, so the
text is what the parser reads in production. Everything is driven by one `random.Random(seed)`:
the same seed and start time give byte-identical output.
"""

from __future__ import annotations

import random
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Final

from hsmaudit.records.event import HsmEvent
from hsmaudit.records.render import Separator, render_text_record

# Hex codes seen in published records (reference §4; absent ones are printed without a code).
OPCODE_CODES: Final[dict[str, int]] = {
    "CN_INIT_TOKEN": 0x1,
    "CN_CREATE_USER": 0x3,
    "CN_CREATE_CO": 0x4,
    "CN_CHANGE_PSWD": 0x9,
    "CN_LOGIN": 0xD,
    "CN_LOGOUT": 0xE,
    "CN_DESTROY_OBJECT": 0x11,
    "CN_SHARE_OBJECT": 0x12,
    "CN_GENERATE_KEY": 0x17,
    "CN_GENERATE_KEY_PAIR": 0x19,
    "CN_WRAP_KEY": 0x1A,
    "CN_UNWRAP_KEY": 0x1B,
    "CN_GEN_PSWD_ENC_KEY": 0x1D,
    "CN_NIST_AES_WRAP": 0x1E,
    "CN_INIT_DONE": 0x95,
    "CN_DELETE_USER": 0xA1,
    "CN_EXTRACT_MASKED_OBJECT_USER": 0xF0,
    "CN_INSERT_MASKED_OBJECT_USER": 0xF1,
    "CN_CREATE_APPLIANCE_USER": 0xFC,
}
LOG_TYPE_CODES: Final[dict[str, int]] = {
    "MINIMAL_LOG_ENTRY": 0,
    "MGMT_KEY_DETAILS_LOG": 1,
    "MGMT_USER_DETAILS_LOG": 2,
    "UNKNOWN_LOG_TYPE": 5,
}
USER_TYPE_CODES: Final[dict[str, int]] = {
    "CN_CRYPTO_USER": 1,
    "CN_CRYPTO_OFFICER": 2,
    "CN_APPLIANCE_USER": 5,
    "CN_CRYPTO_PRE_OFFICER": 6,
}
CU: Final = "CN_CRYPTO_USER"
CO: Final = "CN_CRYPTO_OFFICER"

BAD_PASSWORD: Final = (163, "RET_USER_LOGIN_FAILURE")
UNKNOWN_USER: Final = (206, "This user doesn't exist")

LOG_GROUP_PREFIX: Final = "/aws/cloudhsm/"
SECOND: Final = 1_000_000
MINUTE: Final = 60 * SECOND
HOUR: Final = 60 * MINUTE

_ID_CHARS: Final = "abcdefghijklmnopqrstuvwxyz234567"


@dataclass(frozen=True, slots=True)
class SimRecord:
    """One simulated CloudWatch log event: the record text and where/when it was delivered."""

    cluster_id: str
    hsm_id: str
    usecs: int
    message: str
    cwl_id: str
    cwl_timestamp: int
    """CloudWatch ingestion time, ms (a little after the HSM's own time)."""

    @property
    def log_group(self) -> str:
        """`/aws/cloudhsm/<cluster>`."""
        return LOG_GROUP_PREFIX + self.cluster_id


@dataclass(slots=True)
class SimHsm:
    """One HSM's logging state."""

    hsm_id: str
    reboot_counter: int
    sequence_no: int = 0
    silent: bool = False
    session: int = 0x1004000
    last_usecs: int = 0


@dataclass(slots=True)
class ClusterSimulator:
    """Drives a cluster: call operations in order, read `records` (time-ordered per HSM)."""

    seed: int = 1
    hsm_count: int = 3
    start_usecs: int = 1_767_600_000 * SECOND  # 2026-01-05T08:00:00Z
    cluster_id: str | None = None
    separator: Separator = "space"
    replicate_management: bool = False
    """Failed logins and user-management commands are recorded by every HSM too, as logins are
    (issue 11: "every HSM records each login and each user-management command"). Off by default:
    AWS documents it for logins only, and existing seeds keep their output."""
    rng: random.Random = field(init=False)
    clock: int = field(init=False)
    hsms: list[SimHsm] = field(init=False)
    records: list[SimRecord] = field(init=False)
    next_handle: int = field(init=False)
    keys: list[int] = field(init=False)
    api_calls: list[dict[str, Any]] = field(init=False)
    """CloudHSM API calls as CloudTrail records them (the control plane beside the audit log)."""

    def __post_init__(self) -> None:
        if self.hsm_count < 1:
            raise ValueError("a cluster needs at least one HSM")
        self.rng = random.Random(self.seed)  # noqa: S311 - reproducible simulation, not cryptography
        self.clock = self.start_usecs
        if self.cluster_id is None:
            self.cluster_id = "cluster-" + self._name(11)
        self.hsms = [
            SimHsm(hsm_id="hsm-" + self._name(11), reboot_counter=self.rng.randint(3, 300))
            for _ in range(self.hsm_count)
        ]
        self.records = []
        self.next_handle = 262150 + self.rng.randint(0, 1000) * 8
        self.keys = []
        self.api_calls = []

    @property
    def log_group(self) -> str:
        """The cluster's CloudWatch log group."""
        return LOG_GROUP_PREFIX + str(self.cluster_id)

    def _name(self, length: int) -> str:
        return "".join(self.rng.choice(_ID_CHARS) for _ in range(length))

    # --- time ------------------------------------------------------------------------------

    def advance(self, seconds: float) -> None:
        """Move the cluster clock forward."""
        self.clock += int(seconds * SECOND)

    def advance_to_hour(self, hour: int, minute: int = 0) -> None:
        """Move to the next time (UTC) at hour:minute, e.g. 02:17 for a night-time event."""
        day = 24 * HOUR
        target = (self.clock // day) * day + hour * HOUR + minute * MINUTE
        if target <= self.clock:
            target += day
        self.clock = target

    # --- the record writer ------------------------------------------------------------------

    def serving_hsm(self) -> int:
        """A random HSM that is still logging (the client's connection lands on one)."""
        live = [index for index, hsm in enumerate(self.hsms) if not hsm.silent]
        return self.rng.choice(live) if live else 0

    def _record(
        self,
        index: int,
        opcode: str,
        log_type: str,
        *,
        at: int | None = None,
        user_name: str | None = None,
        user_type: str | None = None,
        key_handle: int | None = None,
        public_key_handle: int | None = None,
        error: tuple[int, str] | None = None,
        session: int | None = None,
    ) -> None:
        hsm = self.hsms[index]
        # An HSM's clock never runs backwards within its stream (replicas land a little later).
        usecs = max(self.clock if at is None else at, hsm.last_usecs + self.rng.randint(50, 400))
        hsm.last_usecs = usecs
        sequence_no = hsm.sequence_no
        hsm.sequence_no += 1
        if hsm.silent:
            return
        response_code, response = error if error is not None else (0, "SUCCESS")
        event = HsmEvent(
            usecs=usecs,
            sequence_no=sequence_no,
            reboot_counter=hsm.reboot_counter,
            command_type="CN_MGMT_CMD",
            command_type_code=0,
            opcode=opcode,
            opcode_code=OPCODE_CODES.get(opcode),
            session_handle=f"0x{session if session is not None else hsm.session:x}",
            response_code=response_code,
            response=response,
            success=error is None,
            log_type=log_type,
            log_type_code=LOG_TYPE_CODES[log_type],
            user_name=user_name,
            user_type=user_type,
            user_type_code=None if user_type is None else USER_TYPE_CODES.get(user_type),
            key_handle=key_handle if log_type == "MGMT_KEY_DETAILS_LOG" else None,
            public_key_handle=public_key_handle if log_type == "MGMT_KEY_DETAILS_LOG" else None,
        )
        message = render_text_record(event, self.separator)
        self.records.append(
            SimRecord(
                cluster_id=str(self.cluster_id),
                hsm_id=hsm.hsm_id,
                usecs=usecs,
                message=message,
                cwl_id=self._cwl_id(),
                cwl_timestamp=usecs // 1000 + self.rng.randint(200, 3000),
            )
        )

    def _cwl_id(self) -> str:
        # CloudWatch event ids are 56 decimal digits (reference §10.2); any unique value will do.
        return str(self.rng.randrange(10**55, 10**56))

    def _tick(self, low: float = 0.05, high: float = 2.0) -> None:
        self.advance(self.rng.uniform(low, high))

    # --- operations -------------------------------------------------------------------------

    def login(self, user: str, user_type: str = CU, *, serving: int | None = None) -> int:
        """A successful login: the serving HSM logs it, then every other HSM logs a replica."""
        index = self.serving_hsm() if serving is None else serving
        hsm = self.hsms[index]
        hsm.session += 1
        self._record(index, "CN_LOGIN", "MGMT_USER_DETAILS_LOG", user_name=user, user_type=user_type)
        for other in range(len(self.hsms)):
            if other != index:
                delay = int(self.rng.uniform(0.02, 0.6) * SECOND)
                self._record(
                    other,
                    "CN_LOGIN",
                    "MGMT_USER_DETAILS_LOG",
                    at=self.clock + delay,
                    user_name=user,
                    user_type=user_type,
                )
        self._tick()
        return index

    def failed_login(
        self, user: str, user_type: str = CU, *, unknown_user: bool = False, serving: int | None = None
    ) -> int:
        """A failed login, logged by the serving HSM (and by the others with `replicate_management`)."""
        index = self.serving_hsm() if serving is None else serving
        error = UNKNOWN_USER if unknown_user else BAD_PASSWORD
        self._record(
            index, "CN_LOGIN", "MGMT_USER_DETAILS_LOG", user_name=user, user_type=user_type, error=error
        )
        self._replicate(index, "CN_LOGIN", user, user_type, error=error)
        self._tick()
        return index

    def _replicate(
        self, index: int, opcode: str, user: str, user_type: str, *, error: tuple[int, str] | None = None
    ) -> None:
        """With `replicate_management`: the other HSMs record the command a moment later."""
        if not self.replicate_management:
            return
        for other in range(len(self.hsms)):
            if other != index:
                delay = int(self.rng.uniform(0.02, 0.6) * SECOND)
                self._record(
                    other,
                    opcode,
                    "MGMT_USER_DETAILS_LOG",
                    at=self.clock + delay,
                    user_name=user,
                    user_type=user_type,
                    error=error,
                )

    def logout(self, user: str, user_type: str, serving: int) -> None:
        """An explicit logout, logged by the serving HSM only."""
        self._record(serving, "CN_LOGOUT", "MGMT_USER_DETAILS_LOG", user_name=user, user_type=user_type)
        self._tick()

    def _sync_key(self, serving: int, handle: int) -> None:
        """Client-driven key synchronisation: extract on the serving HSM, insert on the others."""
        self._record(serving, "CN_EXTRACT_MASKED_OBJECT_USER", "MGMT_KEY_DETAILS_LOG", key_handle=handle)
        for other in range(len(self.hsms)):
            if other != serving:
                at = self.clock + int(self.rng.uniform(0.05, 0.8) * SECOND)
                self._record(
                    other, "CN_INSERT_MASKED_OBJECT_USER", "MGMT_KEY_DETAILS_LOG", at=at, key_handle=handle
                )
        self._tick()

    def _new_handle(self) -> int:
        self.next_handle += self.rng.choice((1, 2, 3, 8))
        return self.next_handle

    def generate_key(self, serving: int) -> int:
        """`genSymKey -t 31 -s 32 -l aes256`: CN_GENERATE_KEY, then the masked-object sync."""
        handle = self._new_handle()
        self._record(serving, "CN_GENERATE_KEY", "MGMT_KEY_DETAILS_LOG", key_handle=handle)
        self._tick(0.01, 0.2)
        self._sync_key(serving, handle)
        self.keys.append(handle)
        return handle

    def generate_key_pair(self, serving: int) -> tuple[int, int]:
        """`genRSAKeyPair`: CN_GENERATE_KEY_PAIR (private, public), then each key is synchronised."""
        private, public = self._new_handle(), self._new_handle()
        self._record(
            serving,
            "CN_GENERATE_KEY_PAIR",
            "MGMT_KEY_DETAILS_LOG",
            key_handle=private,
            public_key_handle=public,
        )
        self._tick(0.01, 0.2)
        self._sync_key(serving, private)
        self._sync_key(serving, public)
        self.keys += [private, public]
        return private, public

    def delete_key(self, serving: int, handle: int | None = None, *, token_key: bool = False) -> int:
        """Key deletion: CN_DESTROY_OBJECT (session key, as the seed's deleteKey logs), or
        CN_TOMBSTONE_OBJECT for a token key (current AWS table)."""
        if handle is None:
            handle = self.keys.pop(self.rng.randrange(len(self.keys))) if self.keys else self._new_handle()
        elif handle in self.keys:
            self.keys.remove(handle)
        opcode = "CN_TOMBSTONE_OBJECT" if token_key else "CN_DESTROY_OBJECT"
        self._record(serving, opcode, "MGMT_KEY_DETAILS_LOG", key_handle=handle, public_key_handle=0)
        self._tick()
        return handle

    def wrap_key(self, serving: int, handle: int | None = None) -> int:
        """`wrapKey`: an encrypted copy of a key leaves the HSM (CN_WRAP_KEY)."""
        if handle is None:
            handle = self.rng.choice(self.keys) if self.keys else self.generate_key(serving)
        self._record(serving, "CN_WRAP_KEY", "MGMT_KEY_DETAILS_LOG", key_handle=handle, public_key_handle=0)
        self._tick()
        return handle

    def share_key(self, serving: int) -> None:
        """`shareKey`: logged with UNKNOWN_LOG_TYPE and no handle, as in the 2019 example."""
        self._record(serving, "CN_SHARE_OBJECT", "UNKNOWN_LOG_TYPE")
        self._tick()

    def create_user(self, serving: int, user: str, user_type: str = CU) -> None:
        """`createUser`: CN_CREATE_CO for an officer, CN_CREATE_USER otherwise (user fields = target)."""
        opcode = "CN_CREATE_CO" if user_type == CO else "CN_CREATE_USER"
        self._record(serving, opcode, "MGMT_USER_DETAILS_LOG", user_name=user, user_type=user_type)
        self._replicate(serving, opcode, user, user_type)
        self._tick()

    def delete_user(self, serving: int, user: str, user_type: str = CU) -> None:
        """`deleteUser` (user fields = the deleted user)."""
        self._record(serving, "CN_DELETE_USER", "MGMT_USER_DETAILS_LOG", user_name=user, user_type=user_type)
        self._replicate(serving, "CN_DELETE_USER", user, user_type)
        self._tick()

    def change_password(self, serving: int, user: str, user_type: str = CU) -> None:
        """`changePswd` (user fields = the user whose password changed)."""
        self._record(serving, "CN_CHANGE_PSWD", "MGMT_USER_DETAILS_LOG", user_name=user, user_type=user_type)
        self._replicate(serving, "CN_CHANGE_PSWD", user, user_type)
        self._tick()

    def skip_sequence(self, index: int, count: int) -> None:
        """Lose `count` records of one HSM's stream: its next record shows a gap."""
        self.hsms[index].sequence_no += count

    def reboot(self, index: int) -> None:
        """The HSM restarts: its reboot counter rises and its sequence numbers start again at 0."""
        hsm = self.hsms[index]
        hsm.reboot_counter += 1
        hsm.sequence_no = 0

    def silence(self, index: int) -> None:
        """The HSM stops logging (deleted or broken); its stream just ends."""
        self.hsms[index].silent = True

    def api_call(
        self, name: str, parameters: dict[str, Any] | None = None, *, operator: str = "ops-admin"
    ) -> dict[str, Any]:
        """A CloudHSM API call by an operator's assumed role, as a CloudTrail record (its documented
        fields: userIdentity, eventTime, eventSource, eventName, requestParameters, eventID)."""
        seconds = self.clock // SECOND
        record: dict[str, Any] = {
            "eventVersion": "1.08",
            "userIdentity": {
                "type": "AssumedRole",
                "arn": f"arn:aws:sts::111122223333:assumed-role/HsmAdmin/{operator}",
                "accountId": "111122223333",
            },
            "eventTime": datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "eventSource": "cloudhsm.amazonaws.com",
            "eventName": name,
            "awsRegion": "us-east-1",
            "sourceIPAddress": "198.51.100.20",
            "userAgent": "aws-cli/2.17.0",
            "requestParameters": {"clusterId": self.cluster_id, **(parameters or {})},
            "responseElements": None,
            "eventID": str(uuid.UUID(int=self.rng.getrandbits(128), version=4)),
            "eventType": "AwsApiCall",
            "recipientAccountId": "111122223333",
        }
        self.api_calls.append(record)
        return record

    def backup_id(self) -> str:
        """A backup id of this cluster's style (backup-<11 characters>)."""
        return "backup-" + self._name(11)

    def sorted_records(self) -> list[SimRecord]:
        """Every record in HSM-time order (replicas interleave with later operations)."""
        return sorted(self.records, key=lambda record: (record.usecs, record.hsm_id))
