"""The detections against the cluster simulator (`hsmaudit.simulate`), built independently.

Each simulator scenario declares the rule ids it must trigger; the engine must produce exactly
those, over several seeds, when the records arrive the way CloudWatch delivers them (subscription
payloads grouped per HSM stream, so streams interleave out of time order), and the store path
must agree.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator

import pytest

from hsmaudit.detect.engine import detect_events
from hsmaudit.detect.sqlite import detect_store, events_table_sql, insert_events
from hsmaudit.records.event import HsmEvent
from hsmaudit.simulate.cluster import SimRecord
from hsmaudit.simulate.emit import parsed_events, subscription_events
from hsmaudit.simulate.scenarios import SCENARIOS, run_scenarios
from hsmaudit.sources.cloudwatch import decode_subscription_event, log_messages
from hsmaudit.sources.message import parse_log_message


def delivered(records: list[SimRecord]) -> Iterator[HsmEvent]:
    """Records through real subscription payloads: gzip + base64, decoded and parsed as the Lambda does."""
    for payload in subscription_events(records, batch_size=20):
        for document in decode_subscription_event(payload):
            for message in log_messages(document):
                yield parse_log_message(message)


@pytest.mark.parametrize("seed", [1, 2, 3])
@pytest.mark.parametrize("name", list(SCENARIOS))
def test_each_simulator_scenario_fires_exactly_its_declared_rules(name: str, seed: int) -> None:
    simulation = run_scenarios([name], seed=seed)
    alerts = list(detect_events(parsed_events(simulation.records)))
    assert {alert.rule for alert in alerts} == simulation.expected_rules


def test_all_scenarios_chained_delivered_as_cloudwatch_payloads() -> None:
    simulation = run_scenarios(seed=11)
    alerts = list(detect_events(delivered(simulation.records)))
    assert {alert.rule for alert in alerts} == simulation.expected_rules
    assert sum(alert.rule == "login-brute-force" for alert in alerts) == 1


def test_the_store_path_agrees_on_the_chained_scenarios() -> None:
    simulation = run_scenarios(seed=11)
    events = list(parsed_events(simulation.records))
    connection = sqlite3.connect(":memory:")
    connection.execute(events_table_sql())
    insert_events(connection, events)
    from_store = sorted((a.rule, tuple(a.event_ids)) for a in detect_store(connection))
    from_stream = sorted((a.rule, tuple(a.event_ids)) for a in detect_events(events))
    assert from_store == from_stream
