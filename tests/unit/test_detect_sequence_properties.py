"""Properties of the integrity checks over arbitrary delivery orders (hypothesis).

Delivery may reorder records within the window and repeat them; neither is an alert. Losing a
record is exactly one `sequence-gap`, wherever it happens and however the rest is shuffled.
"""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from hsmaudit.detect.sequence import SequenceDetector
from hsmaudit.records.alert import Alert
from hsmaudit.records.event import HsmEvent
from hsmaudit.records.identity import text_event_id

START = 1_700_000_000_000_000


def record(seq: int, hsm: str = "hsm-prop") -> HsmEvent:
    usecs = START + seq * 1_000_000
    return HsmEvent(
        usecs=usecs,
        cluster_id="cluster-prop",
        hsm_id=hsm,
        record_format="text",
        sequence_no=seq,
        reboot_counter=3,
        opcode="CN_LOGOUT",
        event_id=text_event_id("cluster-prop", hsm, 3, seq, usecs),
    )


@st.composite
def deliveries(draw: st.DrawFn) -> tuple[list[int], int]:
    """A stream 0..n-1 with each record moved by at most `k` places and some delivered twice."""
    n = draw(st.integers(min_value=3, max_value=60))
    k = draw(st.integers(min_value=0, max_value=5))
    keys = [index + draw(st.floats(min_value=0, max_value=k)) for index in range(n)]
    order = [index for _, index in sorted(zip(keys, range(n), strict=True))]
    repeats = draw(st.lists(st.integers(min_value=0, max_value=len(order) - 1), max_size=5))
    for position in sorted(repeats, reverse=True):
        order.insert(position + 1, order[position])
    return order, n


def run(order: list[int]) -> list[Alert]:
    detector = SequenceDetector()
    alerts = [alert for seq in order for alert in detector.process(record(seq))]
    return alerts + detector.finalize()


@settings(max_examples=200, deadline=None)
@given(deliveries())
def test_reordered_and_repeated_delivery_is_never_an_alert(delivery: tuple[list[int], int]) -> None:
    order, _ = delivery
    assert run(order) == []


@settings(max_examples=200, deadline=None)
@given(deliveries(), st.data())
def test_one_lost_record_is_exactly_one_gap(delivery: tuple[list[int], int], data: st.DataObject) -> None:
    order, n = delivery
    lost = data.draw(st.integers(min_value=1, max_value=n - 2))
    # Reading starts at the first record delivered; for "lost" to mean anything it must be record 0
    # (a record older than the first one seen is history from before we started, not a gap).
    order = [0] + [seq for seq in order if seq != 0]
    alerts = run([seq for seq in order if seq != lost])
    assert [(a.rule, a.details["expected_sequence_no"], a.details["missing"]) for a in alerts] == [
        ("sequence-gap", lost, 1)
    ]
