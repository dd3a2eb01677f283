"""The cluster simulator: realistic streams (reference cloudhsm-audit-format.md §1-§3, §10) and
scenarios whose declared alerts are exactly what the detection engine raises."""

from __future__ import annotations

import json
from collections import Counter, defaultdict

import pytest

from hsmaudit.detect.engine import detect_events
from hsmaudit.records.event import HsmEvent
from hsmaudit.simulate.cluster import ClusterSimulator
from hsmaudit.simulate.emit import (
    control_message_event,
    parsed_events,
    raw_text,
    subscription_events,
)
from hsmaudit.simulate.scenarios import SCENARIOS, run_scenarios
from hsmaudit.sources.cloudwatch import decode_subscription_event, log_messages
from hsmaudit.sources.files import split_records
from hsmaudit.sources.message import parse_log_message


def events_of(names: list[str], seed: int = 4, hsms: int = 3) -> list[HsmEvent]:
    return list(parsed_events(run_scenarios(names, seed=seed, hsms=hsms).records))


def test_same_seed_gives_identical_output_and_another_seed_does_not() -> None:
    one = [r.message for r in run_scenarios(seed=9).records]
    again = [r.message for r in run_scenarios(seed=9).records]
    other = [r.message for r in run_scenarios(seed=10).records]
    assert one == again
    assert one != other


def test_every_simulated_record_parses_cleanly() -> None:
    events = events_of(list(SCENARIOS))
    assert events
    assert [e.parse_error for e in events if e.parse_error] == []
    assert all(e.cluster_id and e.hsm_id and e.event_id for e in events)


def test_each_hsm_stream_counts_from_zero_without_gaps_and_time_never_goes_back() -> None:
    events = events_of(["day-to-day", "seed", "key-exported"])
    by_hsm: dict[str, list[HsmEvent]] = defaultdict(list)
    for event in events:
        by_hsm[event.hsm_id or ""].append(event)
    assert len(by_hsm) == 3
    for stream in by_hsm.values():
        ordered = sorted(stream, key=lambda e: e.sequence_no or 0)
        assert [e.sequence_no for e in ordered] == list(range(len(ordered)))
        times = [e.usecs or 0 for e in ordered]
        assert times == sorted(times)
        assert len({e.reboot_counter for e in ordered}) == 1


def test_a_login_is_recorded_by_every_hsm_and_a_logout_only_by_the_serving_one() -> None:
    sim = ClusterSimulator(seed=3, hsm_count=4)
    serving = sim.login("alice")
    sim.logout("alice", "CN_CRYPTO_USER", serving)
    events = list(parsed_events(sim.sorted_records()))
    logins = [e for e in events if e.opcode == "CN_LOGIN"]
    logouts = [e for e in events if e.opcode == "CN_LOGOUT"]
    assert sorted(e.hsm_id for e in logins) == sorted(h.hsm_id for h in sim.hsms)
    assert [e.hsm_id for e in logouts] == [sim.hsms[serving].hsm_id]
    assert {e.user_name for e in logins} == {"alice"}


def test_generated_key_is_extracted_on_the_serving_hsm_and_inserted_on_the_others() -> None:
    sim = ClusterSimulator(seed=3, hsm_count=3)
    serving = sim.login("bob")
    handle = sim.generate_key(serving)
    events = [e for e in parsed_events(sim.sorted_records()) if e.key_handle == handle]
    opcodes = Counter((e.opcode, e.hsm_id == sim.hsms[serving].hsm_id) for e in events)
    assert opcodes == Counter(
        {
            ("CN_GENERATE_KEY", True): 1,
            ("CN_EXTRACT_MASKED_OBJECT_USER", True): 1,
            ("CN_INSERT_MASKED_OBJECT_USER", False): 2,
        }
    )
    generate = next(e for e in events if e.opcode == "CN_GENERATE_KEY")
    assert (generate.log_type, generate.opcode_code) == ("MGMT_KEY_DETAILS_LOG", 0x17)


def test_failed_logins_carry_the_published_error_responses() -> None:
    sim = ClusterSimulator(seed=1)
    sim.failed_login("mallory")
    sim.failed_login("nobody", unknown_user=True)
    bad_password, unknown = parsed_events(sim.sorted_records())
    assert (bad_password.response_code, bad_password.response, bad_password.success) == (
        163,
        "RET_USER_LOGIN_FAILURE",
        False,
    )
    assert (unknown.response_code, unknown.response) == (206, "This user doesn't exist")


def test_silent_hsm_logs_nothing_after_it_goes_silent() -> None:
    sim = run_scenarios(["hsm-silent"], seed=2)
    silent = sim.simulator.hsms[-1].hsm_id
    last_silent = max(r.usecs for r in sim.records if r.hsm_id == silent)
    others_after = [r for r in sim.records if r.hsm_id != silent and r.usecs > last_silent]
    assert others_after
    assert others_after[-1].usecs - last_silent > 60 * 60 * 1_000_000


@pytest.mark.parametrize("name", list(SCENARIOS))
def test_scenario_raises_exactly_its_declared_alerts(name: str) -> None:
    simulation = run_scenarios([name], seed=6)
    fired = {alert.rule for alert in detect_events(parsed_events(simulation.records))}
    assert fired == simulation.expected_rules


def test_all_scenarios_together_raise_the_union_of_their_alerts() -> None:
    simulation = run_scenarios(seed=8)
    fired = {alert.rule for alert in detect_events(parsed_events(simulation.records))}
    assert fired == simulation.expected_rules
    assert simulation.scenarios[-1] == "hsm-silent"


def test_unknown_scenario_is_a_value_error() -> None:
    with pytest.raises(ValueError, match="unknown scenario"):
        run_scenarios(["no-such-thing"])


def test_subscription_payloads_decode_to_the_same_records_one_stream_each() -> None:
    simulation = run_scenarios(["seed", "day-to-day"], seed=3)
    payloads = list(subscription_events(simulation.records, batch_size=7))
    messages = []
    for payload in payloads:
        assert set(payload) == {"awslogs"}
        [document] = decode_subscription_event(payload)
        assert document.message_type == "DATA_MESSAGE"
        assert document.log_group == simulation.simulator.log_group
        assert 1 <= len(document.log_events) <= 7
        messages += [parse_log_message(m) for m in log_messages(document)]
    assert messages == list(parsed_events(simulation.records))


def test_control_message_payload_yields_no_messages() -> None:
    [document] = decode_subscription_event(control_message_event())
    assert document.message_type == "CONTROL_MESSAGE"
    assert list(log_messages(document)) == []


def test_raw_text_splits_back_into_the_records() -> None:
    records = run_scenarios(["seed"], seed=3).records
    assert list(split_records(raw_text(records))) == [r.message for r in records]


def test_payload_json_is_compact_and_gzip_is_deterministic() -> None:
    records = run_scenarios(["seed"], seed=3).records
    first = json.dumps(list(subscription_events(records)))
    second = json.dumps(list(subscription_events(records)))
    assert first == second
