"""The parser: every separator spelling, newer line variants, normalisation, and bad input."""

from __future__ import annotations

import random

import msgspec
import pytest

from hsmaudit.records.event import HsmEvent, event_from_json, event_to_json
from hsmaudit.records.parse import cluster_id_from_log_group, format_usecs, parse_message

LOGIN_FAIL_CO = """Time: 01/24/18 17:41:39.037255, usecs:1516815699037255
Sequence No : 0x4
Reboot counter : 0x107
Command Type(hex) : CN_MGMT_CMD (0x0)
Opcode : CN_LOGIN (0xd)
Session Handle : 0xc008002
Response : 163:HSM Error: RET_USER_LOGIN_FAILURE
Log type : MGMT_USER_DETAILS_LOG (2)
User Name : admin
User Type : CN_CRYPTO_OFFICER (2)"""

KEYGEN = """Time: 12/13/17 23:09:04.761594, usecs:1513206544761594
Sequence No: 0x29
Reboot counter: 0xe8
Command Type(hex): CN_MGMT_CMD (0x0)
Opcode: CN_GENERATE_KEY_PAIR (0x19)
Session Handle: 0x2014004
Response: 0:HSM Return: SUCCESS
Log type: MGMT_KEY_DETAILS_LOG (1)
Priv/Secret Key Handle: 131079
Public Key Handle: 131078"""


def _without_raw(event: HsmEvent) -> HsmEvent:
    return msgspec.structs.replace(event, raw=None)


def _restyle(record: str, separator: str) -> str:
    head, *lines = record.split("\n")
    restyled = [head]
    for line in lines:
        label, _, value = line.partition(":")
        restyled.append(f"{label.rstrip()}{separator}{value.strip()}")
    return "\n".join(restyled)


@pytest.mark.parametrize("separator", [" : ", ": ", "\t: ", "\t\t\t: ", "  :  ", "\t:\t", ":"])
def test_every_separator_spelling_parses_the_same(separator: str) -> None:
    reference = parse_message(LOGIN_FAIL_CO)
    event = parse_message(_restyle(LOGIN_FAIL_CO, separator))
    assert event.parse_error is None
    assert _without_raw(event) == _without_raw(reference)


def test_failed_crypto_officer_login_is_critical_failure() -> None:
    event = parse_message(LOGIN_FAIL_CO)
    assert event.opcode == "CN_LOGIN"
    assert event.opcode_code == 0xD
    assert event.response_code == 163
    assert event.response == "RET_USER_LOGIN_FAILURE"
    assert event.success is False
    assert event.outcome == "failure"
    assert event.category == "login"
    assert event.action == "login"
    assert event.severity == "critical"
    assert event.user_name == "admin"
    assert event.user_type == "CN_CRYPTO_OFFICER"
    assert event.user_type_code == 2


def test_failed_crypto_user_login_is_high() -> None:
    record = LOGIN_FAIL_CO.replace("admin", "app").replace("CN_CRYPTO_OFFICER (2)", "CN_CRYPTO_USER (1)")
    assert parse_message(record).severity == "high"


def test_successful_login_is_info() -> None:
    record = LOGIN_FAIL_CO.replace("163:HSM Error: RET_USER_LOGIN_FAILURE", "0:HSM Return: SUCCESS")
    event = parse_message(record)
    assert event.success is True
    assert event.outcome == "success"
    assert event.severity == "info"


def test_crlf_and_trailing_whitespace_are_tolerated() -> None:
    record = "\r\n".join(line + " \t" for line in KEYGEN.split("\n")) + "\r\n"
    event = parse_message(record)
    assert event.parse_error is None
    assert _without_raw(event) == _without_raw(parse_message(KEYGEN))
    assert event.raw == record  # raw is the record exactly as received


def test_line_order_does_not_matter() -> None:
    head, *lines = KEYGEN.split("\n")
    rng = random.Random(7)
    for _ in range(5):
        rng.shuffle(lines)
        event = parse_message("\n".join([*lines[:3], head, *lines[3:]]))
        assert event.parse_error is None
        assert _without_raw(event) == _without_raw(parse_message(KEYGEN))


def test_key_handles_and_zero_public_handle() -> None:
    event = parse_message(KEYGEN)
    assert (event.key_handle, event.public_key_handle) == (131079, 131078)
    single = parse_message(KEYGEN.replace("Public Key Handle: 131078", "Public Key Handle: 0"))
    assert single.public_key_handle is None  # 0 means "no key in this slot"
    assert event.category == "key_management"
    assert event.action == "generate"
    assert event.severity == "high"


def test_hex_fields_and_time_are_normalised() -> None:
    event = parse_message(KEYGEN)
    assert event.sequence_no == 0x29
    assert event.reboot_counter == 0xE8
    assert event.session_handle == "0x2014004"
    assert event.time == "2017-12-13T23:09:04.761594Z"
    assert event.usecs == 1513206544761594
    upper = parse_message(KEYGEN.replace("0x29", "0X29").replace("0x2014004", "0X2014004"))
    assert upper.sequence_no == 0x29
    assert upper.session_handle == "0x2014004"


def test_context_gives_cluster_and_hsm() -> None:
    event = parse_message(KEYGEN, log_group="/aws/cloudhsm/cluster-likphkxygsn", log_stream="hsm-nwbbiqbj4jk")
    assert event.cluster_id == "cluster-likphkxygsn"
    assert event.hsm_id == "hsm-nwbbiqbj4jk"
    assert event.log_group == "/aws/cloudhsm/cluster-likphkxygsn"


def test_cluster_named_stream_is_not_an_hsm() -> None:
    event = parse_message(KEYGEN, log_group="/aws/cloudhsm/cluster-abc", log_stream="cluster-abc")
    assert event.cluster_id == "cluster-abc"
    assert event.hsm_id is None


def test_cluster_id_only_from_cloudhsm_log_groups() -> None:
    assert cluster_id_from_log_group("/aws/cloudhsm/cluster-x") == "cluster-x"
    assert cluster_id_from_log_group("/aws/lambda/foo") is None
    assert cluster_id_from_log_group(None) is None


def test_newer_line_variants_are_mapped() -> None:
    record = """Time: 04/22/22 10:11:12.123456, usecs:1650622272123456
Version No : 1.0
Opcode : CN_CHANGE_PSWD (0x9)
Command Type(hex) : CN_MGMT_CMD (0x0)
User id : 7
Sequence No : 0x10
Reboot counter : 0x2
Session Handle : 0x1
Response : 0:HSM Return: SUCCESS
Log type : MGMT_USER_DETAILS_LOG (2)
User Name : officer1
User Type : CN_CRYPTO_OFFICER (2)
Target User Name : bob
Target User Type : CN_CRYPTO_USER (1)
Target User id : 12
Mfa enabled : yes
Mechanism : 4229
Key Handle : 2490398
Operation : SHARE (1)
Number of Users : 2
UserIDs : 3,4"""
    event = parse_message(record)
    assert event.parse_error is None
    assert event.version_no == "1.0"
    assert (event.user_id, event.target_user_id) == ("7", "12")
    assert (event.target_user_name, event.target_user_type, event.target_user_type_code) == (
        "bob",
        "CN_CRYPTO_USER",
        1,
    )
    assert event.mfa_enabled is True
    assert event.mechanism == 4229
    assert event.key_handle == 2490398
    assert (event.operation, event.operation_code) == ("SHARE", 1)
    assert event.number_of_users == 2
    assert event.user_ids == "3,4"
    assert event.severity == "critical"  # a crypto officer's password changed
    assert event.action == "change_password"


def test_time_info_log_record() -> None:
    record = """Time: 04/22/22 10:11:12.123456, usecs:1650622272123456
Sequence No : 0x11
Reboot counter : 0x2
Command Type(hex) : CN_MGMT_CMD (0x0)
Opcode : CN_TIME_SYNC (0x77)
Session Handle : 0x0
Response : 0:HSM Return: SUCCESS
Log type : TIME_INFO_LOG (16)
local time : 04/30/22 10:11:12.123456, usec:1650622272123456
host time : 04/22/22 10:11:12.100000 usec:1650622272100000
propagation delay\t: usec:23456"""
    event = parse_message(record)
    assert event.parse_error is None
    assert event.category == "time_sync"
    assert event.log_type_code == 16
    assert event.local_time_usecs == 1650622272123456
    assert event.host_time_usecs == 1650622272100000
    assert event.propagation_delay_usecs == 23456


def test_unknown_labels_go_to_extra_and_unknown_names_are_accepted() -> None:
    record = (
        KEYGEN.replace("CN_GENERATE_KEY_PAIR (0x19)", "CN_BRAND_NEW (0x1234)")
        .replace("MGMT_KEY_DETAILS_LOG (1)", "MGMT_QUORUM_DETAILS_LOG (9)")
        .replace("0:HSM Return: SUCCESS", "219:HSM Error: Invalid User Type.")
        + "\nQuorum Members : 3"
    )
    event = parse_message(record)
    assert event.parse_error is None
    assert (event.opcode, event.opcode_code) == ("CN_BRAND_NEW", 0x1234)
    assert (event.log_type, event.log_type_code) == ("MGMT_QUORUM_DETAILS_LOG", 9)
    assert (event.response_code, event.response, event.success) == (219, "Invalid User Type.", False)
    assert event.category == "other"
    assert event.severity == "medium"  # an unknown command that failed
    assert event.extra == {"Quorum Members": "3"}


def test_206_unknown_user_response() -> None:
    record = LOGIN_FAIL_CO.replace(
        "163:HSM Error: RET_USER_LOGIN_FAILURE", "206:HSM Error: This user doesn't exist"
    )
    event = parse_message(record)
    assert (event.response_code, event.response, event.success) == (206, "This user doesn't exist", False)


def test_text_time_disagreeing_with_usecs_is_flagged() -> None:
    record = KEYGEN.replace("12/13/17 23:09:04.761594", "12/14/17 23:09:04.761594")
    event = parse_message(record)
    assert event.time == "2017-12-13T23:09:04.761594Z"  # usecs wins
    assert event.extra == {"time_disagreement": "12/14/17 23:09:04.761594"}


def test_missing_usecs_takes_time_from_text_and_flags_it() -> None:
    record = KEYGEN.replace(", usecs:1513206544761594", "")
    event = parse_message(record)
    assert event.usecs == 1513206544761594
    assert event.parse_error is not None
    assert "no usecs" in event.parse_error


def test_truncated_record_is_flagged_with_fields_kept() -> None:
    truncated = LOGIN_FAIL_CO[: LOGIN_FAIL_CO.index("Log type")]
    event = parse_message(truncated)
    assert event.parse_error is not None
    assert "missing field(s)" in event.parse_error
    assert "Log type" in event.parse_error
    assert event.raw == truncated
    assert event.sequence_no == 4  # every field that could be read is filled in
    assert event.opcode == "CN_LOGIN"
    assert event.success is False


def test_key_record_without_handles_is_flagged() -> None:
    record = KEYGEN.split("\nPriv/Secret", maxsplit=1)[0]
    event = parse_message(record)
    assert event.parse_error == "missing field(s): Priv/Secret Key Handle"


def test_garbage_lines_are_flagged() -> None:
    event = parse_message(KEYGEN + "\n%%% line noise %%%\n##: x")
    assert event.parse_error is not None
    assert "unrecognised line" in event.parse_error
    assert event.key_handle == 131079


def test_bad_values_are_flagged_not_raised() -> None:
    record = KEYGEN.replace("Sequence No: 0x29", "Sequence No: zz").replace("131079", "-x")
    event = parse_message(record)
    assert event.parse_error is not None
    assert "bad Sequence No value" in event.parse_error
    assert "bad Priv/Secret Key Handle value" in event.parse_error
    assert event.sequence_no is None


def test_duplicate_label_is_flagged() -> None:
    event = parse_message(KEYGEN + "\nOpcode: CN_WRAP_KEY (0x1a)")
    assert event.parse_error == "duplicate line 'Opcode'"
    assert event.opcode == "CN_GENERATE_KEY_PAIR"  # the first one counts


def test_not_a_record_is_kept_raw() -> None:
    event = parse_message("[ERROR] First test message", log_group="g", log_stream="s", cwl_id="eventId1")
    assert event.parse_error == "not a CloudHSM audit record"
    assert event.raw == "[ERROR] First test message"
    assert event.severity == "medium"
    assert event.event_id is not None
    assert event.cwl_id == "eventId1"


def test_init_token_past_sequence_zero_is_critical() -> None:
    base = KEYGEN.replace("CN_GENERATE_KEY_PAIR (0x19)", "CN_INIT_TOKEN (0x1)").replace(
        "MGMT_KEY_DETAILS_LOG (1)", "MINIMAL_LOG_ENTRY (0)"
    )
    base = base.split("\nPriv/Secret")[0]
    assert parse_message(base).severity == "critical"
    assert parse_message(base.replace("0x29", "0x0")).severity == "info"


def test_certificate_records() -> None:
    ok = parse_message(
        '{"object_handle": 18446744073709551615, "op_code": "SetAttributeValues", '
        '"response": "OK", "attributes": ["Label"], "timestamp": 1725482483671}'
    )
    assert ok.parse_error is None
    assert ok.object_handle == 2**64 - 1
    assert ok.attributes == ["Label"]
    assert ok.action == "modify"
    assert ok.time == "2024-09-04T20:41:23.671000Z"
    failed = parse_message(
        '{"object_handle": null, "op_code": "CreateObject", "response": "MaxObjectsReached", '
        '"attributes": null, "timestamp": 1725482483671}'
    )
    assert (failed.success, failed.outcome, failed.object_handle) == (False, "failure", None)
    assert failed.severity == "medium"


@pytest.mark.parametrize(
    ("message", "error"),
    [
        ('{"op_code": ', "malformed JSON record"),
        ('{"hello": 1}', "not a CloudHSM audit record (JSON without op_code)"),
        ('{"op_code": "CreateObject", "response": "OK"}', "missing timestamp"),
        ('{"op_code": 5, "response": "OK", "timestamp": 1}', "bad op_code"),
    ],
)
def test_bad_certificate_records_are_flagged(message: str, error: str) -> None:
    event = parse_message(message)
    assert event.parse_error is not None
    assert error in event.parse_error
    assert event.raw == message


def test_event_id_is_deterministic_and_identity_sensitive() -> None:
    context = {"log_group": "/aws/cloudhsm/cluster-a", "log_stream": "hsm-1"}
    first = parse_message(KEYGEN, **context).event_id
    assert first == parse_message(KEYGEN, **context).event_id
    assert first != parse_message(KEYGEN, log_group="/aws/cloudhsm/cluster-b", log_stream="hsm-1").event_id
    assert first != parse_message(KEYGEN, log_group="/aws/cloudhsm/cluster-a", log_stream="hsm-2").event_id
    assert first != parse_message(KEYGEN.replace("0x29", "0x2a"), **context).event_id
    assert first != parse_message(KEYGEN.replace("0xe8", "0xe9"), **context).event_id
    assert first != parse_message(KEYGEN.replace("761594", "761595"), **context).event_id


def test_json_round_trip_keeps_every_field() -> None:
    event = parse_message(KEYGEN, log_group="/aws/cloudhsm/cluster-a", log_stream="hsm-1")
    assert event_from_json(event_to_json(event)) == event
    without_raw = event_from_json(event_to_json(event, include_raw=False))
    assert without_raw.raw is None
    assert without_raw.key_handle == 131079


def test_format_usecs_has_six_digits_and_z() -> None:
    assert format_usecs(1513717277140812) == "2017-12-19T21:01:17.140812Z"
    assert format_usecs(1725482483671000) == "2024-09-04T20:41:23.671000Z"
