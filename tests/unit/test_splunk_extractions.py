"""The raw-text sourcetype gives the same fields and values as the parser, and both sourcetypes the same CIM fields.

props.conf's EXTRACT/REPORT/EVAL definitions run through `splunk_emulation` (Splunk's search-time
order, PCRE groups translated) over the published sample records and over generated records in
every separator style; the expected values are the parser's own event for the same text.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hsmaudit.records.event import FIELD_NAMES, HsmEvent, event_to_dict
from hsmaudit.records.opcodes import CERTIFICATE_OPCODES, OPCODES
from hsmaudit.records.parse import parse_message
from hsmaudit.records.render import SEPARATORS, render_text_record
from hsmaudit.splunk.knowledge import JSON_SOURCETYPE, TEXT_SOURCETYPE
from tests.unit.splunk_conf import DEFAULT_DIR, read_conf
from tests.unit.splunk_emulation import (
    Fields,
    alias_and_eval,
    extract,
    json_fields,
    pcre_to_python,
    report,
)

PROPS = read_conf(DEFAULT_DIR / "props.conf")
TRANSFORMS = read_conf(DEFAULT_DIR / "transforms.conf")
TEXT = PROPS[TEXT_SOURCETYPE]
JSON = PROPS[JSON_SOURCETYPE]

LOG_GROUP = "/aws/cloudhsm/cluster-likphkxygsn"
LOG_STREAM = "hsm-nwbbiqbj4jk"

# Contract fields a raw-text event cannot carry: the forwarder's id hash and CloudWatch metadata,
# the unparsed text, and `action`, which is CIM's at search time in both sourcetypes (the verb
# is compared as vendor_action below). Every other field must match the parser exactly.
NOT_FROM_TEXT = frozenset(
    {"event_id", "raw", "extra", "cwl_id", "cwl_timestamp", "log_stream", "action", "parse_error"}
)
CIM_FIELDS = (
    "action", "app", "vendor_product", "dest", "src", "dvc", "user", "src_user", "signature", "command", "status",
    "result", "reason", "change_type", "object_category", "object", "object_id", "vendor_action",
)  # fmt: skip


def text_event_fields(raw: str, *, source: str = LOG_GROUP, host: str = LOG_STREAM) -> Fields:
    """What Splunk makes of one raw-text event at search time."""
    fields: Fields = {"source": source, "host": host, "sourcetype": TEXT_SOURCETYPE}
    extract(TEXT, raw, fields)
    report(TEXT, TRANSFORMS, raw, fields)
    return alias_and_eval(TEXT, fields)


def json_event_fields(event: HsmEvent, *, compact: bool = True) -> Fields:
    """What Splunk makes of the forwarder's JSON event at search time (compact: nulls left out)."""
    fields = json_fields(event_to_dict(event, compact=compact))
    fields.update({"source": LOG_GROUP, "host": event.hsm_id or LOG_STREAM, "sourcetype": JSON_SOURCETYPE})
    return alias_and_eval(JSON, fields)


def parsed(raw: str) -> HsmEvent:
    return parse_message(raw, log_group=LOG_GROUP, log_stream=LOG_STREAM)


def assert_same_as_parser(raw: str) -> None:
    event = parsed(raw)
    assert event.parse_error is None, event.parse_error
    expected = json_fields(event_to_dict(event, compact=True))
    got = text_event_fields(raw)
    for field in FIELD_NAMES:
        if field in NOT_FROM_TEXT:
            continue
        assert got.get(field) == expected.get(field), (
            f"{field}: text {got.get(field)!r} != parser {expected.get(field)!r}"
        )
    assert got["vendor_action"] == event.action
    json_side = json_event_fields(event)
    for field in CIM_FIELDS:
        assert got.get(field) == json_side.get(field), (
            f"CIM {field}: text {got.get(field)!r} != JSON {json_side.get(field)!r}"
        )
    assert_nulls_are_nulls(event, json_side)


def assert_nulls_are_nulls(event: HsmEvent, compact_fields: Fields) -> None:
    """A JSON event with null values (extracted as "null") reads exactly like the compact one."""
    with_nulls = json_event_fields(event, compact=False)
    assert "null" not in {v for k, v in with_nulls.items() if not k.startswith(("extra.", "attributes"))}
    assert with_nulls == compact_fields


def text_samples(samples_dir: Path) -> list[Path]:
    return sorted(samples_dir.glob("aws-doc-*.txt"))


def test_every_text_sample_gives_the_parsers_values_and_the_same_cim_fields(samples_dir: Path) -> None:
    samples = text_samples(samples_dir)
    assert len(samples) >= 15
    for path in samples:
        raw = path.read_text(encoding="utf-8").rstrip("\n")
        try:
            assert_same_as_parser(raw)
        except AssertionError as error:
            raise AssertionError(f"{path.name}: {error}") from None


def test_samples_match_the_shared_expected_values(samples_dir: Path) -> None:
    import json

    expected = json.loads((samples_dir / "expected.json").read_text(encoding="utf-8"))
    for path in text_samples(samples_dir):
        got = text_event_fields(path.read_text(encoding="utf-8"))
        for field, value in expected[path.name][0].items():
            if field in NOT_FROM_TEXT:
                continue
            want = (
                None
                if value is None
                else ("true" if value else "false")
                if isinstance(value, bool)
                else str(value)
            )
            assert got.get(field) == want, f"{path.name} {field}: {got.get(field)!r} != {want!r}"


def test_line_breaker_splits_a_stream_of_records_at_every_time_line(samples_dir: Path) -> None:
    records = [path.read_text(encoding="utf-8").rstrip("\n") for path in text_samples(samples_dir)]
    stream = "\n".join(records) + "\n"
    breaker = re.compile(pcre_to_python(TEXT["LINE_BREAKER"]))
    events, start = [], 0
    for match in breaker.finditer(stream):
        events.append(stream[start : match.start(1)])
        start = match.end(1)
    events.append(stream[start:])
    # Splunk trims the line endings at the end of an event.
    assert [event.rstrip("\r\n") for event in events if event.strip()] == records


def test_time_prefix_and_format_read_usecs_as_the_event_time(samples_dir: Path) -> None:
    assert TEXT["TIME_FORMAT"] == "%s%6N"
    assert TEXT["TZ"] == "UTC"
    lookahead = int(TEXT["MAX_TIMESTAMP_LOOKAHEAD"])
    prefix = re.compile(pcre_to_python(TEXT["TIME_PREFIX"]), re.MULTILINE)
    for path in text_samples(samples_dir):
        raw = path.read_text(encoding="utf-8")
        match = prefix.search(raw)
        assert match, path.name
        digits = re.match(r"\d+", raw[match.end() : match.end() + lookahead])
        assert digits and int(digits.group()) == parsed(raw).usecs, path.name


def test_a_zero_key_handle_makes_no_field_as_in_json() -> None:
    raw = (
        "Time: 12/13/17 23:09:04.815530, usecs:1513206544815530\nSequence No : 0x2b\nReboot counter : 0xe8\n"
        "Command Type(hex) : CN_MGMT_CMD (0x0)\nOpcode : CN_DESTROY_OBJECT (0x11)\nSession Handle : 0x2014004\n"
        "Response : 0:HSM Return: SUCCESS\nLog type : MGMT_KEY_DETAILS_LOG (1)\nPriv/Secret Key Handle : 131079\n"
        "Public Key Handle : 0"
    )
    got = text_event_fields(raw)
    assert got["key_handle"] == "131079"
    assert "public_key_handle" not in got
    assert (got["action"], got["object_category"], got["object_id"], got["status"]) == (
        "deleted",
        "key",
        "131079",
        "success",
    )
    assert_same_as_parser(raw)


def test_a_failed_crypto_officer_login_is_a_critical_authentication_failure() -> None:
    raw = (
        "Time: 01/24/18 17:41:39.037255, usecs:1516815699037255\nSequence No : 0x5\nReboot counter : 0x107\n"
        "Command Type(hex) : CN_MGMT_CMD (0x0)\nOpcode : CN_LOGIN (0xd)\nSession Handle : 0xc008002\n"
        "Response : 163:HSM Error: RET_USER_LOGIN_FAILURE\nLog type : MGMT_USER_DETAILS_LOG (2)\n"
        "User Name : admin\nUser Type : CN_CRYPTO_OFFICER (2)"
    )
    got = text_event_fields(raw)
    assert (got["success"], got["outcome"], got["severity"]) == ("false", "failure", "critical")
    assert (got["action"], got["user"], got["reason"], got["signature"]) == (
        "failure", "admin", "RET_USER_LOGIN_FAILURE", "CN_LOGIN"
    )  # fmt: skip
    assert (got["src"], got["dest"], got["app"]) == (LOG_STREAM, LOG_STREAM, "cloudhsm")
    assert_same_as_parser(raw)


def test_a_value_cannot_run_into_the_next_line() -> None:
    raw = (
        "Time: 01/16/18 01:49:39.437708, usecs:1516067379437708\nSequence No : 0x1\nReboot counter : 0x107\n"
        "Command Type(hex) : CN_MGMT_CMD (0x0)\nOpcode : CN_CREATE_USER (0x3)\nSession Handle : 0x7014006\n"
        "Response : 0:HSM Return: SUCCESS\nLog type : MGMT_USER_DETAILS_LOG (2)\nUser Name : bob  \n"
        "User Type : CN_CRYPTO_USER (1)"
    )
    got = text_event_fields(raw)
    assert got["user_name"] == "bob"
    assert (got["action"], got["object_category"], got["change_type"], got["object"]) == (
        "created",
        "user",
        "AAA",
        "bob",
    )
    assert_same_as_parser(raw)


def test_json_events_with_null_values_read_like_compact_ones(samples_dir: Path) -> None:
    for path in sorted(samples_dir.glob("aws-*.txt")):
        event = parsed(path.read_text(encoding="utf-8"))
        assert_nulls_are_nulls(event, json_event_fields(event))
    unparsed = parsed("garbage")
    assert unparsed.parse_error
    fields = json_event_fields(unparsed, compact=False)
    assert fields["parse_error"] == unparsed.parse_error
    assert "opcode" not in fields and "user" not in fields and "vendor_action" not in fields
    assert fields["dest"] == LOG_STREAM


def test_newer_record_lines_give_the_parsers_values() -> None:
    # GIVEN a user-management record naming actor and target and the other newer lines (§2.3)
    raw = (
        "Time: 04/22/22 10:00:00.000001, usecs:1650621600000001\nVersion No : 1.0\nSequence No : 0x10\n"
        "Reboot counter : 0x2\nOpcode : CN_CHANGE_PSWD (0x9)\nCommand Type(hex) : CN_MGMT_CMD (0x0)\n"
        "User id : 7\nSession Handle : 0x1f\nResponse : 0:HSM Return: SUCCESS\n"
        "Log type : MGMT_USER_DETAILS_LOG (2)\nUser Name : admin\nUser Type : CN_CRYPTO_OFFICER (2)\n"
        "Target User Name : alice\nTarget User Type : CN_CRYPTO_OFFICER (2)\nTarget User id : 9\n"
        "Mfa enabled : Yes\nOperation : SHARE (1)\nNumber of Users : 3\nUserIDs : 4,5,6\nMechanism : 4225"
    )
    got = text_event_fields(raw)
    # THEN every field equals the parser's, the actor is src_user and the target the CIM user
    assert_same_as_parser(raw)
    assert (got["user"], got["src_user"], got["object_id"], got["severity"]) == (
        "alice",
        "admin",
        "9",
        "critical",
    )
    assert (got["mfa_enabled"], got["operation"], got["operation_code"], got["number_of_users"]) == (
        "true", "SHARE", "1", "3"
    )  # fmt: skip


def test_time_info_records_give_the_parsers_values() -> None:
    raw = (
        "Time: 04/22/22 10:00:00.000001, usecs:1650621600000001\nSequence No : 0x11\nReboot counter : 0x2\n"
        "Command Type(hex) : CN_MGMT_CMD (0x0)\nOpcode : CN_FIPS_RAND (0x50)\nSession Handle : 0x1f\n"
        "Response : 0:HSM Return: SUCCESS\nLog type : TIME_INFO_LOG (16)\n"
        "local time : 04/22/22 10:00:00.000001, usec:1650621600000001\n"
        "host time : 04/22/22 10:00:00.000101 usec:1650621600000101\npropagation delay\t: usec:100"
    )
    got = text_event_fields(raw)
    assert_same_as_parser(raw)
    assert (got["category"], got["propagation_delay_usecs"]) == ("time_sync", "100")


@pytest.mark.parametrize("name", ["aws-doc-06-login-co-success.txt", "aws-doc-14-generate-key-pair.txt"])
def test_windows_line_endings_give_the_same_values(samples_dir: Path, name: str) -> None:
    raw = (samples_dir / name).read_text(encoding="utf-8").rstrip("\n")
    crlf = raw.replace("\n", "\r\n")
    assert text_event_fields(crlf) == text_event_fields(raw)


def test_cluster_and_hsm_come_from_an_aws_add_on_style_source_too() -> None:
    raw = (Path(__file__).parent / "x").as_posix()  # any text: only source/host matter here
    got = text_event_fields(raw, source=f"us-east-1:{LOG_GROUP}:{LOG_STREAM}", host="splunk-hf-1")
    assert (got["cluster_id"], got["hsm_id"], got["log_group"]) == (
        "cluster-likphkxygsn",
        LOG_STREAM,
        LOG_GROUP,
    )


# --- generated records --------------------------------------------------------------------

usecs_st = st.integers(min_value=946_684_800_000_000, max_value=4_102_444_799_999_999)
opcodes_st = st.one_of(
    st.sampled_from(sorted(OPCODES)), st.from_regex(r"CN_[A-Z][A-Z0-9_]{0,20}", fullmatch=True)
)
words_st = st.from_regex(r"[A-Za-z0-9_][A-Za-z0-9_ '.-]{0,20}[A-Za-z0-9_.]", fullmatch=True)
user_types_st = st.sampled_from(
    ["CN_CRYPTO_USER", "CN_CRYPTO_OFFICER", "CN_APPLIANCE_USER", "CN_CRYPTO_PRE_OFFICER"]
)


@st.composite
def text_events(draw: st.DrawFn) -> HsmEvent:
    log_type, log_type_code = draw(
        st.sampled_from([("MINIMAL_LOG_ENTRY", 0), ("MGMT_KEY_DETAILS_LOG", 1), ("MGMT_USER_DETAILS_LOG", 2)])
    )
    success = draw(st.booleans())
    fields: dict[str, object] = {
        "usecs": draw(usecs_st),
        "sequence_no": draw(st.integers(0, 2**64 - 1)),
        "reboot_counter": draw(st.integers(0, 2**32 - 1)),
        "command_type": "CN_MGMT_CMD",
        "command_type_code": 0,
        "opcode": draw(opcodes_st),
        "opcode_code": draw(st.integers(0, 0xFFFF)),
        "session_handle": f"0x{draw(st.integers(0, 2**32)):x}",
        "success": success,
        "response_code": 0 if success else draw(st.integers(1, 999)),
        "response": "SUCCESS" if success else draw(words_st),
        "log_type": log_type,
        "log_type_code": log_type_code,
    }
    if log_type == "MGMT_KEY_DETAILS_LOG":
        fields["key_handle"] = draw(st.integers(1, 2**63))
        fields["public_key_handle"] = draw(st.one_of(st.none(), st.integers(1, 2**63)))
    if log_type == "MGMT_USER_DETAILS_LOG":
        fields["user_name"] = draw(words_st)
        fields["user_type"] = draw(user_types_st)
        fields["user_type_code"] = draw(st.integers(0, 9))
    return HsmEvent(**fields)  # type: ignore[arg-type]


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(text_events(), st.sampled_from(SEPARATORS))
def test_generated_records_in_every_separator_style_match_the_parser(event: HsmEvent, separator: str) -> None:
    assert_same_as_parser(render_text_record(event, separator))  # type: ignore[arg-type]


@pytest.mark.parametrize("opcode", sorted({*OPCODES, *CERTIFICATE_OPCODES}))
def test_every_known_opcode_gets_the_parsers_category_verb_and_severity_on_both_sourcetypes(
    opcode: str,
) -> None:
    for success in (True, False):
        event = HsmEvent(
            usecs=1516815699037255, sequence_no=7, reboot_counter=1, command_type="CN_MGMT_CMD", command_type_code=0,
            opcode=opcode, opcode_code=1, session_handle="0x1", success=success, response_code=0 if success else 157,
            response="SUCCESS" if success else "user isn't initialized", log_type="MGMT_USER_DETAILS_LOG",
            log_type_code=2, user_name="alice", user_type="CN_CRYPTO_OFFICER", user_type_code=2,
        )  # fmt: skip
        assert_same_as_parser(render_text_record(event, "space"))


# --- CIM: event types and tags over the emulated fields -------------------------------------

EVENTTYPES = read_conf(DEFAULT_DIR / "eventtypes.conf")
TAGS = read_conf(DEFAULT_DIR / "tags.conf")
_TERM = re.compile(r'(\w+)\s*(?:=\s*"([^"]*)"|\s+IN\s+\(([^)]*)\))')


def matches(search: str, fields: Fields) -> bool:
    """Whether an event type's search (field="value" and field IN (...) terms, ANDed) matches."""
    terms = _TERM.findall(search)
    assert _TERM.sub("", search).strip() == "", f"unsupported event type search: {search}"
    for field, value, values in terms:
        wanted = [value] if not values else re.findall(r'"([^"]*)"', values)
        actual = fields.get(field)
        if actual is None or not any(re.fullmatch(re.escape(w).replace(r"\*", ".*"), actual) for w in wanted):
            return False
    return True


def tags_of(fields: Fields) -> set[str]:
    tags: set[str] = set()
    for name, eventtype in EVENTTYPES.items():
        if matches(eventtype["search"], fields):
            tags |= {tag for tag, state in TAGS[f"eventtype={name}"].items() if state == "enabled"}
    return tags


@pytest.mark.parametrize(
    ("sample", "tags", "cim"),
    [
        ("aws-doc-06-login-co-success.txt", {"authentication", "privileged"}, {"action": "success", "user": "admin"}),
        ("aws-doc-08-login-fail-157-unknown-user.txt", {"authentication"}, {"action": "failure", "user": "ExampleUser"}),
        ("aws-doc-10-create-user-cu.txt", {"change", "account"}, {"action": "created", "object": "bob", "object_category": "user"}),
        ("aws-doc-12-delete-user-co.txt", {"change", "account"}, {"action": "deleted", "user": "alice", "change_type": "AAA"}),
        ("aws-doc-14-generate-key-pair.txt", {"change"}, {"action": "created", "object_id": "131079", "object_category": "key"}),
        ("aws-doc-16-destroy-object-private.txt", {"change"}, {"action": "deleted", "object_id": "131079", "status": "success"}),
        ("aws-doc-24-wrap-key.txt", {"change"}, {"action": "read", "object_id": "7", "change_type": "key_management"}),
        ("aws-doc-22-insert-masked-262152.txt", set(), {"vendor_action": "sync"}),
        ("aws-doc-02-init-token.txt", set(), {"vendor_action": "initialize"}),
        ("aws-certstore-02-destroyobject.txt", {"change"}, {"action": "deleted", "object_category": "certificate"}),
    ],
)  # fmt: skip
def test_events_land_in_the_right_data_models_on_both_sourcetypes(
    samples_dir: Path, sample: str, tags: set[str], cim: dict[str, str]
) -> None:
    raw = (samples_dir / sample).read_text(encoding="utf-8").rstrip("\n")
    event = parsed(raw)
    views = [json_event_fields(event), json_event_fields(event, compact=False)]
    if event.record_format == "text":
        views.append(text_event_fields(raw))
    for fields in views:
        assert tags_of(fields) == tags, fields["sourcetype"]
        for field, value in cim.items():
            assert fields.get(field) == value, f"{fields['sourcetype']} {field}"
        if "authentication" in tags:
            # CIM Authentication needs action success|failure, app, src, dest and user.
            assert fields["action"] in ("success", "failure") and fields["app"] == "cloudhsm"
            assert fields["src"] == fields["dest"] == LOG_STREAM and fields["user"]
        if "change" in tags:
            assert fields["status"] in ("success", "failure") and fields["dvc"] == LOG_STREAM
