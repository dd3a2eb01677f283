"""The engine's memory is per HSM and per user, never per event (structure checks, not timings)."""

from __future__ import annotations

from hsmaudit.detect.bruteforce import BruteForceSettings, LoginBruteForceDetector
from hsmaudit.detect.engine import DetectionConfig, DetectionEngine
from hsmaudit.detect.sequence import SequenceDetector, SequenceSettings
from hsmaudit.detect.silence import SilenceDetector
from hsmaudit.records.event import HsmEvent
from hsmaudit.records.identity import text_event_id

HSMS = [f"hsm-state{i}" for i in range(3)]


def stream(count: int, *, skip_every: int = 0) -> list[HsmEvent]:
    events = []
    for index in range(count):
        hsm = HSMS[index % 3]
        seq = index // 3
        if skip_every and seq and seq % skip_every == 0:
            continue  # a gap in every stream now and then
        usecs = 1_700_000_000_000_000 + index * 1000
        events.append(
            HsmEvent(
                usecs=usecs,
                cluster_id="cluster-state",
                hsm_id=hsm,
                record_format="text",
                sequence_no=seq,
                reboot_counter=1,
                opcode="CN_LOGIN",
                success=index % 50 != 0,
                user_name=f"user{index % 7}",
                event_id=text_event_id("cluster-state", hsm, 1, seq, usecs),
            )
        )
    return events


def test_sequence_memory_is_bounded_per_stream_even_with_gaps() -> None:
    detector = SequenceDetector(SequenceSettings(memory=64, reorder_window_usecs=10_000))
    alerts = [alert for event in stream(30_000, skip_every=97) for alert in detector.process(event)]
    alerts += detector.finalize()
    assert alerts and {alert.rule for alert in alerts} == {"sequence-gap"}
    assert detector.stream_count == 3
    for state in detector._streams.values():
        assert len(state.recent) <= 64
        assert not state.pending
        assert len(state.gaps) <= 64


def test_engine_state_does_not_grow_with_events() -> None:
    config = DetectionConfig(seen_ids=1000)
    engine = DetectionEngine(config)
    events = stream(120_000)  # 1 ms apart: past every window after the first 40,000
    for event in events[:40_000]:
        engine.process(event)
    sizes_before = state_sizes(engine)
    for event in events[40_000:]:
        engine.process(event)
    assert state_sizes(engine) == sizes_before


def state_sizes(engine: DetectionEngine) -> tuple[int, ...]:
    sequence = engine._sequence
    silence = engine._silence
    brute = engine._brute_force
    assert sequence is not None and silence is not None and brute is not None
    recent = engine._recent
    return (
        sequence.stream_count,
        max(len(s.recent) for s in sequence._streams.values()),
        len(silence._hsms),
        len(brute._windows),
        len(brute._bursts),
        len(recent._current) + len(recent._previous) <= 2000,
    )


def test_brute_force_holds_back_only_the_reorder_window() -> None:
    detector = LoginBruteForceDetector(BruteForceSettings(reorder_window_usecs=5_000_000))
    for event in stream(10_000):
        if event.success is False:
            detector.process(event)
    held = len(detector._pending)
    for event in stream(40_000)[10_000:]:
        if event.success is False:
            detector.process(event)
    # a failed login every 50 ms here: 5 s of them are held, however long the input
    assert held == len(detector._pending) <= 101
    detector.finalize()
    assert not detector._pending


def test_silence_remembers_one_entry_per_hsm() -> None:
    detector = SilenceDetector()
    for event in stream(9_000):
        detector.process(event)
    assert len(detector._hsms) == 3
    assert detector.check() == []


def test_events_without_position_or_hsm_are_ignored_by_the_stateful_detectors() -> None:
    certificate = HsmEvent(record_format="certificate", usecs=1, cluster_id="c", event_id="cert")
    unparsed = HsmEvent(parse_error="not a CloudHSM audit record", event_id="bad")
    engine = DetectionEngine()
    assert engine.process(certificate) == []
    assert [a.rule for a in engine.process(unparsed)] == ["unparsed-record"]
    assert engine.finalize() == []
    assert engine.stats.events == 2


def test_every_stateful_detector_has_the_detector_shape() -> None:
    from hsmaudit.detect.detector import Detector

    for detector in (LoginBruteForceDetector(), SequenceDetector(), SilenceDetector()):
        assert isinstance(detector, Detector)
        assert detector.finalize() == []
