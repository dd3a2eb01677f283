"""Every docs/events.md field at search time, on every sourcetype, with Splunk's semantics.

The app's props.conf, transforms.conf and lookup tables run through `splunk_emulation` (Splunk's
search-time order; what Splunk would refuse is refused) over the published sample records, sent
each of the four ways the app supports:

* lean: `aws:cloudhsm:audit:text`, the record text with HEC indexed fields, host = HSM id,
  source = log group (the forwarder's default event, contracts.md §2);
* json: `aws:cloudhsm:audit`, the forwarder's JSON event (no log_group/log_stream/cwl_*);
* raw: `aws:cloudhsm:audit:text` sent any other way (HEC /raw, a file monitor), with and without
  a log group/stream in source/host;
* recipe: `aws:cloudwatch:cloudhsm`, what Splunk's Lambda blueprint posts (host/source constants),
  and the same after the documented change (host = log stream, source = log group).

The expected values are the parser's own event for the same text, and `expected.json`.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Final

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hsmaudit.records.event import FIELD_NAMES, HsmEvent, event_to_dict
from hsmaudit.records.opcodes import CERTIFICATE_OPCODES, OPCODES
from hsmaudit.records.parse import parse_message
from hsmaudit.records.render import SEPARATORS, render_text_record
from hsmaudit.sinks.hec.envelope import EventEncoder
from hsmaudit.splunk.knowledge import (
    CLOUDTRAIL_SOURCETYPE,
    JSON_SOURCETYPE,
    RECIPE_SOURCETYPE,
    REPLICA_BUCKET_USECS,
    TEXT_SOURCETYPE,
)
from tests.unit.splunk_conf import APP_DIR, DEFAULT_DIR, read_conf
from tests.unit.splunk_emulation import App, EmulationError, Event, Fields, pcre_to_python

PROPS = read_conf(DEFAULT_DIR / "props.conf")
TRANSFORMS = read_conf(DEFAULT_DIR / "transforms.conf")
APP = App(PROPS, TRANSFORMS, APP_DIR / "lookups")
TEXT = PROPS[TEXT_SOURCETYPE]

CLUSTER = "cluster-likphkxygsn"
LOG_GROUP = f"/aws/cloudhsm/{CLUSTER}"
LOG_STREAM = "hsm-nwbbiqbj4jk"
RECIPE_HOST, RECIPE_SOURCE = "serverless", "lambda:splunk-cloudwatch-logs-processor"
"""What the blueprint sends as host and source (docs/reference/splunk.md §7)."""

# Fields no search-time knowledge gives, on any sourcetype: `raw` is `_raw`; `extra` holds labels
# the parser did not map (JSON events carry it as extra.<label>); `parse_error` is the forwarder's
# verdict; `action` is CIM's at search time (the verb is compared as vendor_action).
NEVER: Final = frozenset({"raw", "extra", "parse_error", "action"})
# Per way of sending, what the event cannot carry (docs/splunk-app.md, "Fields per sourcetype").
MISSING: Final[dict[str, frozenset[str]]] = {
    "lean": frozenset({"cwl_id", "cwl_timestamp"}),
    "json": frozenset({"cwl_id", "cwl_timestamp"}),
    "raw_with_origin": frozenset({"event_id", "cwl_id", "cwl_timestamp"}),
    "raw": frozenset(
        {"event_id", "cwl_id", "cwl_timestamp", "cluster_id", "hsm_id", "log_group", "log_stream"}
    ),
    "recipe": frozenset(
        {"event_id", "cwl_id", "cwl_timestamp", "cluster_id", "hsm_id", "log_group", "log_stream"}
    ),
    "recipe_changed": frozenset({"event_id", "cwl_id", "cwl_timestamp"}),
}


def stream_of(raw: str) -> str:
    """Certificate records come on the cluster-named stream (reference §8.1), others on the HSM's."""
    return CLUSTER if raw.lstrip().startswith("{") else LOG_STREAM


def parsed(raw: str, log_stream: str | None = None) -> HsmEvent:
    return parse_message(raw, log_group=LOG_GROUP, log_stream=log_stream or stream_of(raw))


def from_hec(line: bytes) -> Event:
    """What Splunk indexes from one HEC /event envelope: `_raw` is `event` (a JSON text when an object)."""
    envelope = json.loads(line)
    body = envelope["event"]
    raw = body if isinstance(body, str) else json.dumps(body)
    fields = envelope.get("fields", {})
    assert all(isinstance(v, (str, int, float)) for v in fields.values()), "HEC indexed fields are flat"
    return Event(raw, envelope["sourcetype"], host=envelope.get("host"), source=envelope.get("source"),
                 indexed={name: str(value) for name, value in fields.items()})  # fmt: skip


LEAN_ENCODER: Final = EventEncoder(event_format="lean")
JSON_ENCODER: Final = EventEncoder(event_format="json")


def lean(event: HsmEvent) -> Event:
    """The forwarder's default HEC event, built by the forwarder's own encoder."""
    return from_hec(LEAN_ENCODER.line(event))


def as_json(event: HsmEvent, *, compact: bool = True) -> Event:
    """The forwarder's `json` format; `compact=False`: the same event as another sender with nulls."""
    if compact:
        return from_hec(JSON_ENCODER.line(event))
    data = event_to_dict(event, compact=False)
    for name in ("log_group", "log_stream", "cwl_id", "cwl_timestamp"):
        data.pop(name, None)
    return Event(
        json.dumps(data), JSON_SOURCETYPE, host=event.hsm_id or event.log_stream, source=event.log_group
    )


def raw_text(event: HsmEvent, *, origin: bool) -> Event:
    assert event.raw is not None
    if origin:  # the AWS add-on's CloudWatch Logs input style: "region:group:stream"
        return Event(event.raw, TEXT_SOURCETYPE, host=event.log_stream, source=f"us-east-1:{event.log_group}")
    return Event(event.raw, TEXT_SOURCETYPE, host="splunk-uf-1", source="/var/log/cloudhsm/audit.log")


def recipe(event: HsmEvent, *, changed: bool) -> Event:
    assert event.raw is not None
    if changed:
        return Event(event.raw, RECIPE_SOURCETYPE, host=event.log_stream, source=event.log_group)
    return Event(event.raw, RECIPE_SOURCETYPE, host=RECIPE_HOST, source=RECIPE_SOURCE)


WAYS: Final[dict[str, Callable[[HsmEvent], Event]]] = {
    "lean": lean,
    "json": as_json,
    "raw_with_origin": lambda e: raw_text(e, origin=True),
    "raw": lambda e: raw_text(e, origin=False),
    "recipe": lambda e: recipe(e, changed=False),
    "recipe_changed": lambda e: recipe(e, changed=True),
}


def expected_fields(event: HsmEvent, way: str) -> Fields:
    """The parser's event as Splunk shows field values: text, booleans true/false."""
    out: Fields = {}
    for name, value in event_to_dict(event, compact=True).items():
        if name in NEVER or name in MISSING[way] or isinstance(value, (dict, list)):
            continue
        out[name] = ("true" if value else "false") if isinstance(value, bool) else str(value)
    return out


def contract_fields(fields: Fields) -> Fields:
    return {name: value for name, value in fields.items() if name in FIELD_NAMES and name not in NEVER}


def assert_every_field(event: HsmEvent, way: str) -> Fields:
    """Every contract field the way can carry, with the parser's value; nothing else of the contract."""
    fields = APP.search_time(WAYS[way](event))
    assert contract_fields(fields) == expected_fields(event, way)
    assert fields.get("vendor_action") == event.action
    return fields


def sample_paths(samples_dir: Path) -> list[Path]:
    return sorted(samples_dir.glob("aws-*.txt"))


def test_every_field_of_every_sample_on_every_sourcetype(samples_dir: Path) -> None:
    paths = sample_paths(samples_dir)
    assert len(paths) >= 17
    for path in paths:
        event = parsed(path.read_text(encoding="utf-8").rstrip("\n"))
        assert event.parse_error is None, path.name
        for way in WAYS:
            try:
                assert_every_field(event, way)
            except AssertionError as error:
                raise AssertionError(f"{path.name} as {way}: {error}") from None


def test_samples_match_the_hand_written_expected_values(samples_dir: Path) -> None:
    expected = json.loads((samples_dir / "expected.json").read_text(encoding="utf-8"))
    for path in sample_paths(samples_dir):
        event = parsed(path.read_text(encoding="utf-8").rstrip("\n"))
        for way, build in WAYS.items():
            got = APP.search_time(build(event))
            for name, value in expected[path.name][0].items():
                if name in NEVER or name in MISSING[way]:
                    continue
                if value is None:
                    assert name not in got, f"{path.name} {way} {name}: {got[name]!r} for a null"
                    continue
                want = ("true" if value else "false") if isinstance(value, bool) else str(value)
                assert got.get(name) == want, f"{path.name} {way} {name}: {got.get(name)!r} != {want!r}"


def fields_per_sourcetype(samples_dir: Path) -> dict[str, dict[str, int]]:
    """Sample -> way -> how many docs/events.md fields Splunk shows (the figure in docs/splunk-app.md)."""
    return {
        path.name: {
            way: len(
                contract_fields(APP.search_time(build(parsed(path.read_text(encoding="utf-8").rstrip("\n")))))
            )
            for way, build in WAYS.items()
        }
        for path in sample_paths(samples_dir)
    }


def test_lean_json_and_changed_recipe_give_the_same_contract_fields(samples_dir: Path) -> None:
    for path in sample_paths(samples_dir):
        event = parsed(path.read_text(encoding="utf-8").rstrip("\n"))
        lean_fields = contract_fields(APP.search_time(lean(event)))
        assert lean_fields == contract_fields(APP.search_time(as_json(event))), path.name
        changed = contract_fields(APP.search_time(recipe(event, changed=True)))
        assert changed == {k: v for k, v in lean_fields.items() if k != "event_id"}, path.name


def test_json_nulls_from_other_senders_leave_the_derived_and_cim_fields_alone(samples_dir: Path) -> None:
    for path in sample_paths(samples_dir):
        event = parsed(path.read_text(encoding="utf-8").rstrip("\n"))
        compact = APP.search_time(as_json(event))
        with_nulls = APP.search_time(as_json(event, compact=False))
        derived = {
            k: v for k, v in with_nulls.items() if v != "null" and not k.startswith(("extra.", "attributes"))
        }
        assert derived == compact, path.name


def test_indexed_fields_are_never_shadowed_or_duplicated(samples_dir: Path) -> None:
    # GIVEN lean events that index every field the text does not print (the widest choice the
    # forwarder could make), with values that differ from what the app would derive
    widest = (
        "event_id",
        "cluster_id",
        "hsm_id",
        "category",
        "severity",
        "outcome",
        "success",
        "record_format",
    )
    for path in sample_paths(samples_dir):
        event = parsed(path.read_text(encoding="utf-8").rstrip("\n"))
        assert event.raw is not None
        indexed = {name: f"indexed-{name}" for name in widest}
        fields = APP.search_time(
            Event(event.raw, TEXT_SOURCETYPE, host=LOG_STREAM, source=LOG_GROUP, indexed=indexed)
        )
        # THEN every indexed field keeps its value: no EVAL, REPORT or lookup replaced it
        assert {name: fields[name] for name in widest} == indexed, path.name


def test_an_eval_shadowing_a_field_is_refused() -> None:
    stanza = {"KV_MODE": "json", "EVAL-opcode": 'nullif(opcode, "null")'}
    app = App({JSON_SOURCETYPE: stanza}, {}, APP_DIR / "lookups")
    with pytest.raises(EmulationError, match="shadows"):
        app.search_time(Event('{"opcode": "CN_LOGIN"}', JSON_SOURCETYPE))


@pytest.mark.parametrize(
    ("stanza", "message"),
    [
        ({"KV_MODE": "none", "EXTRACT_x": "(?<a>x)"}, "unknown props.conf setting"),
        ({"KV_MODE": '"none"'}, "quoted"),
        ({}, "KV_MODE = auto"),
        ({"KV_MODE": "none", "EXTRACT-a": "(?<a>x)\\z"}, "PCRE construct"),
        ({"KV_MODE": "none", "EXTRACT-a": "(?<a>x) in a_private"}, "neither a default nor an indexed"),
        ({"KV_MODE": "none", "EXTRACT-a": "(?<a>x)", "EVAL-b": "a", "EVAL-c": "b"}, "which EVALs define"),
        ({"KV_MODE": "none", "EXTRACT-a": "(?<a>x)", "FIELDALIAS-a": "a AS b host AS b"}, "two aliases"),
        ({"KV_MODE": "none", "EVAL-b": '"1"', "FIELDALIAS-a": "b AS c"}, "cannot be aliased"),
        ({"KV_MODE": "none", "EXTRACT-a": "(?<a>x)", "EVAL-b": "If(a, 1, 2)"}, "lower case"),
        ({"KV_MODE": "none", "REPORT-a": "t_concat"}, "cannot concatenate"),
        ({"KV_MODE": "none", "LOOKUP-a": "hsmaudit_status hsmaudit_status OUTPUT status", "EVAL-x": "status"},
         "lookups run after EVAL"),
        ({"KV_MODE": "none", "LOOKUP-a": "hsmaudit_status hsmaudit_status OUTPUT outcome",
          "LOOKUP-b": "hsmaudit_status hsmaudit_status AS outcome OUTPUT success", "EXTRACT-a":
          "(?<hsmaudit_status>text\\|success)"}, "nested"),
        ({"KV_MODE": "none", "rename": "x"}, "rename"),
    ],
)  # fmt: skip
def test_the_emulation_refuses_what_splunk_would_not_do(stanza: dict[str, str], message: str) -> None:
    transforms = {**TRANSFORMS, "t_concat": {"REGEX": "(x)", "FORMAT": "a::pre$1"}}
    app = App({TEXT_SOURCETYPE: stanza}, transforms, APP_DIR / "lookups")
    with pytest.raises(EmulationError, match=message):
        app.search_time(Event("x text|success", TEXT_SOURCETYPE, host="h", source="s"))


def test_extract_runs_with_dotall_as_splunk_does() -> None:
    # Splunk prepends (?ms): "." runs into the next line, which is why the app's regexes never use it.
    app = App(
        {TEXT_SOURCETYPE: {"KV_MODE": "none", "EXTRACT-a": "User Name : (?<a>.+)"}}, {}, APP_DIR / "lookups"
    )
    assert (
        app.search_time(Event("User Name : bob\nUser Type : CU", TEXT_SOURCETYPE))["a"]
        == "bob\nUser Type : CU"
    )


def test_every_props_regex_reads_lines_without_dot() -> None:
    for stanza in PROPS.values():
        for key, value in stanza.items():
            if key.startswith("EXTRACT-"):
                assert not re.search(r"(?<!\\)\.[*+]", value), f"{key}: use [^\\r\\n] instead of ."


def test_line_breaker_splits_a_stream_of_records_at_every_time_line(samples_dir: Path) -> None:
    # text records and multi-line certificate-storage JSON records, interleaved as a log group holds them
    records = [p.read_text(encoding="utf-8").rstrip("\n") for p in sorted(samples_dir.glob("aws-*.txt"))]
    stream = "\n".join(records) + "\n"
    for sourcetype in (TEXT_SOURCETYPE, RECIPE_SOURCETYPE):
        breaker = re.compile(pcre_to_python(PROPS[sourcetype]["LINE_BREAKER"]))
        events, start = [], 0
        for match in breaker.finditer(stream):
            events.append(stream[start : match.start(1)])
            start = match.end(1)
        events.append(stream[start:])
        assert [event.rstrip("\r\n") for event in events if event.strip()] == records


def test_time_prefix_and_format_read_usecs_as_the_event_time(samples_dir: Path) -> None:
    assert TEXT["TIME_FORMAT"] == "%s%6N"
    assert TEXT["TZ"] == "UTC"
    lookahead = int(TEXT["MAX_TIMESTAMP_LOOKAHEAD"])
    prefix = re.compile(pcre_to_python(TEXT["TIME_PREFIX"]), re.MULTILINE)
    for path in sorted(samples_dir.glob("aws-doc-*.txt")):
        raw = path.read_text(encoding="utf-8")
        match = prefix.search(raw)
        assert match, path.name
        digits = re.match(r"\d+", raw[match.end() : match.end() + lookahead])
        assert digits and int(digits.group()) == parsed(raw).usecs, path.name


def text_fields(raw: str, **kwargs: str) -> Fields:
    return APP.search_time(Event(raw, TEXT_SOURCETYPE, host=kwargs.get("host", LOG_STREAM),
                                 source=kwargs.get("source", LOG_GROUP)))  # fmt: skip


def assert_same_as_parser(raw: str) -> Fields:
    """Raw text (origin in host/source) and JSON give the parser's fields and the same CIM fields."""
    event = parsed(raw)
    assert event.parse_error is None, event.parse_error
    text = assert_every_field(event, "raw_with_origin")
    json_side = assert_every_field(event, "json")
    for name in CIM_FIELDS:
        assert text.get(name) == json_side.get(name), (
            f"CIM {name}: text {text.get(name)!r} != JSON {json_side.get(name)!r}"
        )
    return text


CIM_FIELDS = (
    "action", "app", "vendor_product", "dest", "dvc", "user", "src_user", "signature", "command", "status",
    "result", "reason", "change_type", "object_category", "object", "object_id", "vendor_action", "cluster_action_id",
)  # fmt: skip


def test_a_zero_key_handle_makes_no_field_as_in_json() -> None:
    raw = (
        "Time: 12/13/17 23:09:04.815530, usecs:1513206544815530\nSequence No : 0x2b\nReboot counter : 0xe8\n"
        "Command Type(hex) : CN_MGMT_CMD (0x0)\nOpcode : CN_DESTROY_OBJECT (0x11)\nSession Handle : 0x2014004\n"
        "Response : 0:HSM Return: SUCCESS\nLog type : MGMT_KEY_DETAILS_LOG (1)\nPriv/Secret Key Handle : 131079\n"
        "Public Key Handle : 0"
    )
    got = assert_same_as_parser(raw)
    assert got["key_handle"] == "131079"
    assert "public_key_handle" not in got
    assert (got["action"], got["object_category"], got["object_id"], got["status"]) == (
        "deleted", "key", "131079", "success"
    )  # fmt: skip


def test_a_failed_crypto_officer_login_is_a_critical_authentication_failure() -> None:
    raw = (
        "Time: 01/24/18 17:41:39.037255, usecs:1516815699037255\nSequence No : 0x5\nReboot counter : 0x107\n"
        "Command Type(hex) : CN_MGMT_CMD (0x0)\nOpcode : CN_LOGIN (0xd)\nSession Handle : 0xc008002\n"
        "Response : 163:HSM Error: RET_USER_LOGIN_FAILURE\nLog type : MGMT_USER_DETAILS_LOG (2)\n"
        "User Name : admin\nUser Type : CN_CRYPTO_OFFICER (2)"
    )
    got = assert_same_as_parser(raw)
    assert (got["success"], got["outcome"], got["severity"]) == ("false", "failure", "critical")
    assert (got["action"], got["user"], got["reason"], got["signature"]) == (
        "failure", "admin", "RET_USER_LOGIN_FAILURE", "CN_LOGIN"
    )  # fmt: skip
    # The HSM is the destination; an audit record names no client, so there is no src.
    assert (got["dest"], got["dvc"], got["app"]) == (LOG_STREAM, LOG_STREAM, "cloudhsm")
    assert "src" not in got


def test_a_value_cannot_run_into_the_next_line() -> None:
    raw = (
        "Time: 01/16/18 01:49:39.437708, usecs:1516067379437708\nSequence No : 0x1\nReboot counter : 0x107\n"
        "Command Type(hex) : CN_MGMT_CMD (0x0)\nOpcode : CN_CREATE_USER (0x3)\nSession Handle : 0x7014006\n"
        "Response : 0:HSM Return: SUCCESS\nLog type : MGMT_USER_DETAILS_LOG (2)\nUser Name : bob  \n"
        "User Type : CN_CRYPTO_USER (1)"
    )
    got = assert_same_as_parser(raw)
    assert got["user_name"] == "bob"
    assert (got["action"], got["object_category"], got["change_type"], got["object"]) == (
        "created", "user", "AAA", "bob"
    )  # fmt: skip


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
    got = assert_same_as_parser(raw)
    # THEN every field equals the parser's, the actor is src_user and the target the CIM user
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
    got = assert_same_as_parser(raw)
    assert (got["category"], got["propagation_delay_usecs"]) == ("time_sync", "100")


def test_a_reinitialisation_is_critical_and_the_first_init_is_not() -> None:
    first = (
        "Time: 12/13/17 23:00:00.000001, usecs:1513206000000001\nSequence No : 0x0\nReboot counter : 0x1\n"
        "Command Type(hex) : CN_MGMT_CMD (0x0)\nOpcode : CN_INIT_TOKEN (0x1)\nSession Handle : 0x0\n"
        "Response : 0:HSM Return: SUCCESS\nLog type : MINIMAL_LOG_ENTRY (0)"
    )
    assert assert_same_as_parser(first)["severity"] == "info"
    assert assert_same_as_parser(first.replace("0x0\nReboot", "0x2a\nReboot"))["severity"] == "critical"


@pytest.mark.parametrize("name", ["aws-doc-06-login-co-success.txt", "aws-doc-14-generate-key-pair.txt"])
def test_windows_line_endings_give_the_same_values(samples_dir: Path, name: str) -> None:
    raw = (samples_dir / name).read_text(encoding="utf-8").rstrip("\n")
    assert text_fields(raw.replace("\n", "\r\n")) == text_fields(raw)


def test_an_unknown_opcode_gets_the_parsers_defaults_from_the_wildcard_rows() -> None:
    raw = (
        "Time: 04/22/22 10:00:00.000001, usecs:1650621600000001\nSequence No : 0x11\nReboot counter : 0x2\n"
        "Command Type(hex) : CN_MGMT_CMD (0x0)\nOpcode : CN_BRAND_NEW (0x99)\nSession Handle : 0x1f\n"
        "Response : 19:HSM Error: RET_OBJECT_NOT_FOUND\nLog type : MINIMAL_LOG_ENTRY (0)"
    )
    got = assert_same_as_parser(raw)
    assert (got["category"], got["vendor_action"], got["severity"], got["action"]) == (
        "other",
        "other",
        "medium",
        "other",
    )


def test_recipe_events_without_origin_still_have_a_destination(samples_dir: Path) -> None:
    event = parsed((samples_dir / "aws-doc-06-login-co-success.txt").read_text(encoding="utf-8"))
    got = APP.search_time(recipe(event, changed=False))
    assert "hsm_id" not in got and "cluster_id" not in got
    assert (got["dest"], got["action"], got["opcode"]) == (RECIPE_HOST, "success", "CN_LOGIN")


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
        # Splunk's eval numbers are doubles: hex counters convert exactly up to 2**53 (docs/splunk-app.md).
        "sequence_no": draw(st.integers(0, 2**53)),
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


def test_a_counter_beyond_what_a_double_holds_is_refused_not_rounded() -> None:
    raw = (
        "Time: 04/22/22 10:00:00.000001, usecs:1650621600000001\nSequence No : 0x20000000000001\n"
        "Reboot counter : 0x2\nCommand Type(hex) : CN_MGMT_CMD (0x0)\nOpcode : CN_FIPS_RAND (0x50)\n"
        "Session Handle : 0x1f\nResponse : 0:HSM Return: SUCCESS\nLog type : MINIMAL_LOG_ENTRY (0)"
    )
    with pytest.raises(EmulationError, match="2\\*\\*53"):
        text_fields(raw)


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(text_events(), st.sampled_from(SEPARATORS))
def test_generated_records_in_every_separator_style_match_the_parser(event: HsmEvent, separator: str) -> None:
    assert_same_as_parser(render_text_record(event, separator))  # type: ignore[arg-type]


@pytest.mark.parametrize("opcode", sorted({*OPCODES, *CERTIFICATE_OPCODES}))
def test_every_known_opcode_gets_the_parsers_category_verb_and_severity_on_every_sourcetype(
    opcode: str,
) -> None:
    for success in (True, False):
        for user_type in ("CN_CRYPTO_OFFICER", "CN_CRYPTO_USER"):
            event = HsmEvent(
                usecs=1516815699037255, sequence_no=7, reboot_counter=1, command_type="CN_MGMT_CMD",
                command_type_code=0, opcode=opcode, opcode_code=1, session_handle="0x1", success=success,
                response_code=0 if success else 157, response="SUCCESS" if success else "user isn't initialized",
                log_type="MGMT_USER_DETAILS_LOG", log_type_code=2, user_name="alice", user_type=user_type,
                user_type_code=2,
            )  # fmt: skip
            assert_same_as_parser(render_text_record(event, "space"))


# --- CIM: event types and tags over the emulated fields -------------------------------------

EVENTTYPES = read_conf(DEFAULT_DIR / "eventtypes.conf")
TAGS = read_conf(DEFAULT_DIR / "tags.conf")
_TERM = re.compile(r'(\w+)\s*(?:=\s*"([^"]*)"|\s+IN\s+\(([^)]*)\))')
_ANY = re.compile(r"\(([^()]*\bOR\b[^()]*)\)")


def _term_matches(field: str, wanted: list[str], fields: Fields) -> bool:
    actual = fields.get(field)
    return isinstance(actual, str) and any(
        re.fullmatch(re.escape(w).replace(r"\*", ".*"), actual) for w in wanted
    )


def matches(search: str, fields: Fields) -> bool:
    """Whether an event type's search matches: ANDed field="v" / field IN (...) terms and (a OR b) groups."""
    for group in _ANY.findall(search):
        alternatives = [part.strip() for part in group.split(" OR ")]
        if not any(matches(alternative, fields) for alternative in alternatives):
            return False
    rest = _ANY.sub("", search)
    terms = _TERM.findall(rest)
    assert _TERM.sub("", rest).strip() == "", f"unsupported event type search: {search}"
    for field, value, values in terms:
        wanted = [value] if not values else re.findall(r'"([^"]*)"', values)
        if not _term_matches(field, wanted, fields):
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
def test_events_land_in_the_right_data_models_on_every_sourcetype(
    samples_dir: Path, sample: str, tags: set[str], cim: dict[str, str]
) -> None:
    event = parsed((samples_dir / sample).read_text(encoding="utf-8").rstrip("\n"))
    for way, build in WAYS.items():
        fields = APP.search_time(build(event))
        assert tags_of(fields) == tags, way
        for name, value in cim.items():
            assert fields.get(name) == value, f"{way} {name}"
        if "authentication" in tags:
            # CIM Authentication: action success|failure, app, dest, user; src only when known.
            assert (
                fields["action"] in ("success", "failure") and fields["app"] == "cloudhsm" and fields["user"]
            )
            assert "src" not in fields and fields["dest"]
        if "change" in tags:
            assert fields["status"] in ("success", "failure") and fields["dvc"] and fields["object"]


def test_a_quorum_change_has_an_object() -> None:
    raw = (
        "Time: 04/22/22 10:00:00.000001, usecs:1650621600000001\nSequence No : 0x11\nReboot counter : 0x2\n"
        "Command Type(hex) : CN_MGMT_CMD (0x0)\nOpcode : CN_SET_M_VALUE (0x60)\nSession Handle : 0x1f\n"
        "Response : 0:HSM Return: SUCCESS\nLog type : MGMT_USER_DETAILS_LOG (2)\nUser Name : admin\n"
        "User Type : CN_CRYPTO_OFFICER (2)"
    )
    got = assert_same_as_parser(raw)
    assert tags_of(got) == {"change"}
    assert (got["object_category"], got["object"], got["object_id"], got["action"]) == (
        "quorum", "quorum:CN_SET_M_VALUE", "quorum:CN_SET_M_VALUE", "modified"
    )  # fmt: skip


def test_copies_of_one_login_on_every_hsm_share_a_cluster_action_id(samples_dir: Path) -> None:
    # GIVEN one failed login recorded by three HSMs of a cluster, each a moment after the first
    raw = (
        (samples_dir / "aws-doc-08-login-fail-157-unknown-user.txt").read_text(encoding="utf-8").rstrip("\n")
    )
    usecs = int(re.search(r"usecs:(\d+)", raw).group(1))  # type: ignore[union-attr]
    start = usecs - usecs % REPLICA_BUCKET_USECS - usecs  # offsets inside one replica window
    copies = []
    for offset, hsm in ((start + 100_000, "hsm-aaaaaaaaaaa"), (start + 700_000, "hsm-bbbbbbbbbbb"),
                        (start + 1_300_000, "hsm-ccccccccccc")):  # fmt: skip
        copy = raw.replace(f"usecs:{usecs}", f"usecs:{usecs + offset}")
        copies.append(parse_message(copy, log_group=LOG_GROUP, log_stream=hsm))
    # WHEN Splunk reads them, sent either way
    for way in ("lean", "json", "raw_with_origin"):
        ids = {APP.search_time(WAYS[way](event))["cluster_action_id"] for event in copies}
        # THEN they fold into one Authentication attempt
        assert len(ids) == 1, way
    assert len({APP.search_time(lean(e))["dest"] for e in copies}) == 3
    # AND a later attempt by the same user is another action
    later = parse_message(raw.replace(f"usecs:{usecs}", f"usecs:{usecs + 60_000_000}"), log_group=LOG_GROUP,
                          log_stream="hsm-aaaaaaaaaaa")  # fmt: skip
    assert APP.search_time(lean(later))["cluster_action_id"] not in ids


def test_events_outside_the_data_models_keep_their_own_action(samples_dir: Path) -> None:
    # GIVEN JSON events whose verb is not a CIM action: a cluster-sync copy, and CloudTrail calls as
    # hsmaudit events in the JSON sourcetype (the forwarder sends CloudTrail records as they are, as
    # aws:cloudtrail, which the AWS add-on owns; another tool may not), one with a verb the table
    # cannot know
    from hsmaudit.records.cloudtrail import cloudtrail_events

    def hsmaudit_json(event: HsmEvent) -> Event:
        data = {
            k: v
            for k, v in event_to_dict(event, compact=True).items()
            if k not in ("log_group", "log_stream")
        }
        return Event(json.dumps(data), JSON_SOURCETYPE, host=event.hsm_id, source=event.log_group)

    sync = parsed((samples_dir / "aws-doc-22-insert-masked-262152.txt").read_text(encoding="utf-8"))
    trail = list(
        cloudtrail_events(json.loads((samples_dir.parent / "cloudtrail" / "lookup_events.json").read_text()))
    )
    assert {as_json(event).sourcetype for event in trail} == {CLOUDTRAIL_SOURCETYPE}
    assert CLOUDTRAIL_SOURCETYPE not in PROPS
    odd = msgspec_replace(trail[0], action="cluster_create_from_backup")
    for event in (sync, *trail, odd):
        fields = APP.search_time(hsmaudit_json(event))
        # THEN action is the event's own verb, as is vendor_action
        assert fields["action"] == fields["vendor_action"] == event.action, event.opcode
    # AND on the lean event the verb comes from the opcode table
    assert APP.search_time(lean(sync))["action"] == "sync"


def msgspec_replace(event: HsmEvent, **changes: object) -> HsmEvent:
    import msgspec

    return msgspec.structs.replace(event, **changes)


def test_a_flagged_lean_record_keeps_its_parse_error_and_severity(samples_dir: Path) -> None:
    # GIVEN a record the parser flags (its Log type line is gone), sent as the lean event
    raw = (samples_dir / "aws-doc-06-login-co-success.txt").read_text(encoding="utf-8").rstrip("\n")
    broken = "\n".join(line for line in raw.splitlines() if not line.startswith("Log type"))
    event = parsed(broken)
    assert event.parse_error
    fields = APP.search_time(lean(event))
    # THEN parse_error arrives as an indexed field and the severity is the parser's (at least medium)
    assert fields["parse_error"] == event.parse_error
    assert (fields["severity"], fields["category"]) == (event.severity, event.category)
    assert contract_fields(fields) == expected_fields(event, "lean")


def test_cloudtrail_calls_of_the_aws_add_on_get_hsmaudits_event_types(samples_dir: Path) -> None:
    # GIVEN CloudTrail records as the Splunk Add-on for AWS indexes them (sourcetype aws:cloudtrail,
    # the record's JSON keys as fields); the app adds no extraction of its own to that sourcetype
    import gzip

    from tests.unit.splunk_emulation import json_fields

    path = (
        samples_dir.parent / "cloudtrail" / "111122223333_CloudTrail_us-east-1_20260314T1030Z_example.json.gz"
    )
    records = json.loads(gzip.decompress(path.read_bytes()))["Records"]
    seen: dict[str, set[str]] = {}
    for record in records:
        fields = {**json_fields(json.dumps(record)), "sourcetype": CLOUDTRAIL_SOURCETYPE}
        names = {name for name, et in EVENTTYPES.items() if matches(et["search"], fields)}
        seen[
            record["eventName"] + ("" if record["eventSource"] == "cloudhsm.amazonaws.com" else "@other")
        ] = names
        # THEN CloudHSM calls are tagged cloudhsm/control_plane, other services' records are not
        tags = tags_of(fields)
        assert tags == (
            {"cloudhsm", "control_plane"} if record["eventSource"] == "cloudhsm.amazonaws.com" else set()
        )
    assert seen["DeleteHsm"] >= {
        "hsmaudit_cloudtrail",
        "hsmaudit_cloudtrail_critical",
        "hsmaudit_cloudtrail_cluster",
    }
    assert "hsmaudit_cloudtrail_backup" in seen["DeleteBackup"]
    assert not any(names for key, names in seen.items() if key.endswith("@other"))
