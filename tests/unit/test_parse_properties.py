"""Property tests: generated records in every separator style, and arbitrary input that must not crash."""

from __future__ import annotations

import base64
import contextlib
import gzip

import msgspec
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hsmaudit.records.context import RecordContext
from hsmaudit.records.event import HsmEvent, event_from_json, event_to_json
from hsmaudit.records.identity import text_event_id
from hsmaudit.records.opcodes import OPCODES
from hsmaudit.records.parse import parse_message
from hsmaudit.records.render import SEPARATORS, render_text_record
from hsmaudit.sources.cloudwatch import decode_subscription_event
from hsmaudit.sources.errors import SourceDecodeError
from hsmaudit.sources.files import read_bytes

FAST = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# The record's text time has a two-digit year read as 20YY, so stay within 2000-2099.
usecs_st = st.integers(min_value=946_684_800_000_000, max_value=4_102_444_799_999_999)
names_st = st.one_of(
    st.sampled_from(sorted(OPCODES)), st.from_regex(r"CN_[A-Z][A-Z0-9_]{0,24}", fullmatch=True)
)
free_text_st = (
    st.text(
        alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\r\n"),
        min_size=1,
        max_size=40,
    )
    .map(str.strip)
    .filter(bool)
)


@st.composite
def text_events(draw: st.DrawFn) -> HsmEvent:
    log_type = draw(st.sampled_from(["MINIMAL_LOG_ENTRY", "MGMT_KEY_DETAILS_LOG", "MGMT_USER_DETAILS_LOG"]))
    success = draw(st.booleans())
    fields: dict[str, object] = {
        "usecs": draw(usecs_st),
        "sequence_no": draw(st.integers(0, 2**64 - 1)),
        "reboot_counter": draw(st.integers(0, 2**32 - 1)),
        "command_type": "CN_MGMT_CMD",
        "command_type_code": 0,
        "opcode": draw(names_st),
        "opcode_code": draw(st.integers(0, 0xFFFF)),
        "session_handle": f"0x{draw(st.integers(0, 2**32)):x}",
        "success": success,
        "response_code": 0 if success else draw(st.integers(1, 999)),
        "response": "SUCCESS" if success else draw(free_text_st),
        "log_type": log_type,
        "log_type_code": {"MINIMAL_LOG_ENTRY": 0, "MGMT_KEY_DETAILS_LOG": 1, "MGMT_USER_DETAILS_LOG": 2}[
            log_type
        ],
    }
    if log_type == "MGMT_KEY_DETAILS_LOG":
        fields["key_handle"] = draw(st.integers(1, 2**63))
        fields["public_key_handle"] = draw(st.one_of(st.none(), st.integers(1, 2**63)))
    if log_type == "MGMT_USER_DETAILS_LOG":
        fields["user_name"] = draw(free_text_st)
        fields["user_type"] = draw(
            st.sampled_from(["CN_CRYPTO_USER", "CN_CRYPTO_OFFICER", "CN_APPLIANCE_USER"])
        )
        fields["user_type_code"] = draw(st.integers(0, 9))
    return HsmEvent(**fields)  # type: ignore[arg-type]


@FAST
@given(text_events())
def test_generated_records_round_trip_in_every_separator_style(generated: HsmEvent) -> None:
    parsed = [parse_message(render_text_record(generated, style)) for style in SEPARATORS]
    first = parsed[0]
    assert first.parse_error is None, first.parse_error
    for field in (
        "usecs", "sequence_no", "reboot_counter", "opcode", "opcode_code", "session_handle", "response_code",
        "response", "success", "log_type", "log_type_code", "key_handle", "public_key_handle", "user_name",
        "user_type", "user_type_code",
    ):  # fmt: skip
        assert getattr(first, field) == getattr(generated, field), field
    for other in parsed[1:]:
        assert msgspec.structs.replace(other, raw=None) == msgspec.structs.replace(first, raw=None)


@FAST
@given(st.text(max_size=400))
def test_arbitrary_text_never_raises_and_keeps_raw(text: str) -> None:
    event = parse_message(text, log_group="/aws/cloudhsm/cluster-x", log_stream="hsm-y")
    assert event.raw == text
    assert event.event_id
    assert event_from_json(event_to_json(event)) == event


@FAST
@given(
    st.lists(
        st.sampled_from(["Time: ", "Sequence No", " : ", "0x", "\n", "\t", ":", "usecs:", "1", "(0x1)", "{"])
    )
)
def test_record_shaped_noise_never_raises(parts: list[str]) -> None:
    text = "".join(parts)
    assert parse_message(text).raw == text


@FAST
@given(st.binary(max_size=300))
def test_arbitrary_bytes_either_decode_or_give_a_source_error(data: bytes) -> None:
    try:
        items = list(read_bytes(data, name="fuzz"))
    except SourceDecodeError as error:
        assert str(error).startswith("fuzz")
    else:
        assert isinstance(items, list)


@FAST
@given(st.binary(max_size=200), st.booleans())
def test_arbitrary_envelope_data_never_crashes(data: bytes, compress: bool) -> None:
    payload = gzip.compress(data) if compress else data
    event = {"awslogs": {"data": base64.b64encode(payload).decode()}}
    with contextlib.suppress(SourceDecodeError):
        decode_subscription_event(event)


identity_st = st.tuples(
    st.one_of(st.none(), st.text(max_size=12)),
    st.one_of(st.none(), st.text(max_size=12)),
    st.one_of(st.none(), st.integers(0, 2**32)),
    st.one_of(st.none(), st.integers(0, 2**64)),
    st.one_of(st.none(), usecs_st),
)


@FAST
@given(identity_st, identity_st)
def test_event_id_is_stable_and_differs_when_identity_differs(a: tuple, b: tuple) -> None:  # type: ignore[type-arg]
    assert text_event_id(*a) == text_event_id(*a)
    normalise = lambda t: tuple("" if v is None else str(v) for v in t)  # noqa: E731
    if normalise(a) != normalise(b) and all("|" not in str(v) for v in (*a, *b)):
        assert text_event_id(*a) != text_event_id(*b)


@FAST
@given(text_events(), st.sampled_from(SEPARATORS), st.booleans())
def test_fast_path_and_line_path_give_the_same_event(generated: HsmEvent, style: str, context: bool) -> None:
    from hsmaudit.records import parse as parser

    record = render_text_record(generated, style)  # type: ignore[arg-type]
    origin = (
        ("/aws/cloudhsm/cluster-p", "hsm-q", "cluster-p", "hsm-q") if context else (None, None, None, None)
    )
    ctx = RecordContext(*origin, "id-1", 5)
    fast = parser._fast_text_event(record, ctx)
    assert fast is not None  # rendered records have the canonical layout
    assert fast == parser._parse_text_lines(record, ctx)
