"""Property tests of the collector's HEC body decoding (`hsmaudit.server.hec`), no server needed:
arbitrary input never escapes as an exception, concatenated envelopes come back in order, and a
bad one is reported at its 0-based position with the ones before it kept (reference §1.9)."""

from __future__ import annotations

import gzip
import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hsmaudit.server.hec import (
    HecRequestError,
    PayloadTooLargeError,
    decode_body,
    decode_envelopes,
    envelope_event,
)

LIMIT = 5 * 1024 * 1024

json_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**70), 2**70),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=30),
)
json_values = st.recursive(
    json_scalars,
    lambda children: st.one_of(
        st.lists(children, max_size=4), st.dictionaries(st.text(max_size=10), children, max_size=4)
    ),
    max_leaves=12,
)
events = st.one_of(
    st.text(min_size=1, max_size=200).filter(lambda text: text.strip() != ""),
    st.dictionaries(st.text(min_size=1, max_size=12), json_values, min_size=1, max_size=6),
)
envelopes = st.fixed_dictionaries(
    {"event": events},
    optional={
        "host": st.text(max_size=20),
        "source": st.text(max_size=40),
        "time": st.floats(0, 2e9),
        "sourcetype": st.text(max_size=20),
    },
)
separators = st.sampled_from(["", "\n", " ", "\r\n", "\n\n", "\t"])


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=400))
def test_arbitrary_bytes_never_raise(body: bytes) -> None:
    good, error = decode_envelopes(body, max_event_size=LIMIT)
    assert error is None or isinstance(error, HecRequestError)
    for envelope in good:
        envelope_event(envelope)


@settings(max_examples=150, deadline=None)
@given(st.lists(envelopes, min_size=1, max_size=8), st.lists(separators, min_size=8, max_size=8))
def test_envelopes_back_to_back_decode_in_order(items: list[dict[str, Any]], gaps: list[str]) -> None:
    body = "".join(json.dumps(item) + gaps[index] for index, item in enumerate(items)).encode()
    good, error = decode_envelopes(body, max_event_size=LIMIT)
    assert error is None
    assert [json.loads(bytes(envelope.event)) for envelope in good] == [item["event"] for item in items]
    for envelope in good:
        event = envelope_event(envelope)
        assert event.event_id is not None


@settings(max_examples=150, deadline=None)
@given(
    st.lists(envelopes, min_size=0, max_size=6),
    st.sampled_from(['{"event": ', '{"host": "h"}', "[1]", '{"event": ""}', "42", '{"event": {}}', "}{"]),
    st.lists(envelopes, max_size=3),
)
def test_a_bad_envelope_is_reported_at_its_position_and_the_ones_before_are_kept(
    before: list[dict[str, Any]], bad: str, after: list[dict[str, Any]]
) -> None:
    body = "\n".join([*map(json.dumps, before), bad, *map(json.dumps, after)]).encode()
    good, error = decode_envelopes(body, max_event_size=LIMIT)
    assert error is not None
    assert error.invalid_event_number == len(before)
    assert len(good) == len(before)
    assert error.code in {6, 12, 13}


@settings(max_examples=100, deadline=None)
@given(st.binary(max_size=5000))
def test_gzip_bodies_round_trip_and_identity_passes_through(data: bytes) -> None:
    assert decode_body(gzip.compress(data), "gzip", limit=LIMIT) == data
    assert decode_body(gzip.compress(data[:10]) + gzip.compress(data[10:]), "gzip", limit=LIMIT) == data
    assert decode_body(data, None, limit=LIMIT) == data


def test_decompressed_size_is_what_the_limit_applies_to() -> None:
    with pytest.raises(PayloadTooLargeError):
        decode_body(gzip.compress(b"a" * 10_001), "gzip", limit=10_000)
    assert decode_body(gzip.compress(b"a" * 10_000), "gzip", limit=10_000) == b"a" * 10_000


@pytest.mark.parametrize("encoding", ["deflate", "br", "compress"])
def test_other_encodings_are_invalid_data_format(encoding: str) -> None:
    with pytest.raises(HecRequestError) as caught:
        decode_body(b"x", encoding, limit=LIMIT)
    assert caught.value.code == 6
