"""The Firehose transformation's shortcut (`lean_identity` + `EventEncoder.text_line`) is invisible.

For any message, the shortcut either declines (None: the transformation then calls `parse_message`)
or yields the time and id `parse_message` gives, for a record it parses clean, and the HEC line it
builds is byte for byte `EventEncoder.line` of the parsed event.
"""

from __future__ import annotations

import base64
import gzip

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hsmaudit.aws.firehose import transform_record
from hsmaudit.records.parse import lean_identity, parse_message
from hsmaudit.records.render import SEPARATORS, render_text_record
from hsmaudit.sinks.hec.envelope import EventEncoder
from tests.unit.test_hostile_input import GOOD, NASTY_TEXT
from tests.unit.test_parse_properties import text_events

ORIGINS = [
    ("/aws/cloudhsm/cluster-p", "hsm-q", "cluster-p", "hsm-q"),
    ("/aws/cloudhsm/cluster-p", "cluster-p", "cluster-p", None),  # the certificate stream
    (None, None, None, None),  # Firehose's message extraction: no group, no stream
    ("/other/group", "hsm-q", None, "hsm-q"),
]


def _check(message: str, origin: tuple[str | None, str | None, str | None, str | None]) -> bool:
    """Assert the shortcut agrees with the full parse; True when it did not decline."""
    group, stream, cluster_id, hsm_id = origin
    identity = lean_identity(message, cluster_id, hsm_id)
    event = parse_message(message, log_group=group, log_stream=stream)
    if identity is None:
        return False
    assert event.parse_error is None
    assert identity == (event.usecs, event.event_id)
    encoder = EventEncoder()
    line = encoder.text_line(message, *identity, hsm_id, stream, group, cluster_id)
    assert line == encoder.line(event)
    return True


@settings(max_examples=200, deadline=None)
@given(text_events(), st.sampled_from(SEPARATORS), st.sampled_from(ORIGINS))
def test_generated_records_take_the_shortcut_with_the_parse_s_time_id_and_line(
    generated, style, origin
) -> None:  # type: ignore[no-untyped-def]
    record = render_text_record(generated, style)
    # every canonical ASCII record takes it (other text goes the way parse_message's fast path does)
    assert _check(record, origin) == record.isascii()


@settings(max_examples=300, deadline=None)
@given(line=NASTY_TEXT, position=st.integers(0, 9), origin=st.sampled_from(ORIGINS))
def test_hostile_lines_inside_a_record_never_make_the_shortcut_disagree(
    line: str, position: int, origin
) -> None:  # type: ignore[no-untyped-def]
    lines = GOOD.split("\n")
    lines.insert(position, line)
    _check("\n".join(lines), origin)


@settings(max_examples=300, deadline=None)
@given(message=NASTY_TEXT, origin=st.sampled_from(ORIGINS))
def test_any_message_never_makes_the_shortcut_disagree(message: str, origin) -> None:  # type: ignore[no-untyped-def]
    _check(message, origin)


@pytest.mark.parametrize(
    "usecs",
    ["253402300799999999", "253402300800000000", "9" * 30, "1" * 5000, "0"],
)
def test_times_at_and_past_what_datetime_can_show_decline_as_the_parse_flags_them(usecs: str) -> None:
    message = GOOD.replace("usecs:1513717277140812", f"usecs:{usecs}")
    took = _check(message, ORIGINS[0])
    assert took == (int(usecs) < 253402300800000000 if len(usecs) < 4000 else False)


def test_a_firehose_record_mixing_clean_and_flagged_records_gives_the_parse_s_lines_and_counts() -> None:
    clean = [GOOD.replace("0x3\n", f"{n:#x}\n", 1) for n in range(3, 8)]
    flagged = [GOOD.replace("CN_LOGIN (0xd)", "CN_LOGIN (0xzz)"), "hello", ""]
    messages = [clean[0], flagged[0], clean[1], flagged[1], clean[2], flagged[2], *clean[3:]]
    document = {
        "messageType": "DATA_MESSAGE",
        "logGroup": "/aws/cloudhsm/cluster-p",
        "logStream": "hsm-q",
        "logEvents": [{"id": str(n), "timestamp": n, "message": m} for n, m in enumerate(messages)],
    }
    data = base64.b64encode(gzip.compress(msgspec.json.encode(document))).decode()
    for event_format in ("lean", "json"):
        encoder = EventEncoder(event_format=event_format)  # type: ignore[arg-type]
        transformed = transform_record(data, encoder=encoder, name="r")
        lines, control, parse_errors = transformed.lines, transformed.control, transformed.parse_errors
        expected = [
            encoder.line(
                parse_message(
                    m,
                    log_group=document["logGroup"],
                    log_stream=document["logStream"],
                    cwl_id=str(n),
                    cwl_timestamp=n,
                )  # type: ignore[arg-type]
            )
            for n, m in enumerate(messages)
        ]
        assert lines == expected
        assert (control, parse_errors) == (0, 3)
