"""Written once, run everywhere: the generated SQLite queries and the Python engine agree.

The queries run against a real SQLite database (the `events` table of the store contract). For
single-event rules both sides must produce the same alerts on every labelled scenario and on
random events (hypothesis); the brute force (view + pySigma sliding-window correlation) must fire
exactly when the Python detector does.
"""

from __future__ import annotations

import sqlite3
from collections import Counter
from collections.abc import Callable, Iterator

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hsmaudit.detect.engine import DetectionConfig, DetectionEngine, detect_events
from hsmaudit.detect.errors import DetectStoreError
from hsmaudit.detect.ruleset import load_ruleset
from hsmaudit.detect.sqlite import (
    brute_force_alerts,
    detect_store,
    event_from_row,
    event_row,
    events_table_sql,
    insert_events,
    single_rule_alerts,
)
from hsmaudit.records.alert import Alert
from hsmaudit.records.event import FIELD_NAMES, HsmEvent

from .test_detect_builder import Cluster
from .test_detect_scenarios import SCENARIOS, Scenario, brute_force, labels

SINGLE_RULES = {rule.id for rule in load_ruleset().rules}


def database(events: list[HsmEvent]) -> sqlite3.Connection:
    connection = sqlite3.connect(":memory:")
    connection.execute(events_table_sql())
    insert_events(connection, events)
    return connection


def single_keys(alerts: list[Alert]) -> Counter[tuple[str, tuple[str, ...], str]]:
    return Counter((a.rule, tuple(a.event_ids), a.severity) for a in alerts if a.rule in SINGLE_RULES)


@pytest.fixture
def connection() -> Iterator[sqlite3.Connection]:
    connection = sqlite3.connect(":memory:")
    connection.execute(events_table_sql())
    yield connection
    connection.close()


@pytest.mark.parametrize("build", SCENARIOS, ids=lambda f: f.__name__)
def test_single_event_rules_give_the_same_alerts_in_sqlite_and_python(build: Callable[[], Scenario]) -> None:
    scenario = build()
    python = list(detect_events(scenario.events))
    sql = single_rule_alerts(database(scenario.events))
    assert single_keys(sql) == single_keys(python)
    # and the alerts themselves are identical, details included
    assert sorted(sql, key=repr) == sorted([a for a in python if a.rule in SINGLE_RULES], key=repr)


@pytest.mark.parametrize("build", SCENARIOS, ids=lambda f: f.__name__)
def test_the_store_path_yields_the_scenario_labels_too(build: Callable[[], Scenario]) -> None:
    scenario = build()
    alerts = detect_store(database(scenario.events), now_usecs=scenario.now_usecs)
    assert labels(alerts) == Counter(scenario.expected), scenario.name


def test_brute_force_sql_fires_with_the_same_attempts_as_python() -> None:
    events = brute_force().events
    (python,) = [a for a in detect_events(events) if a.rule == "login-brute-force"]
    (sql,) = brute_force_alerts(database(events))
    assert sql == python


def test_brute_force_sql_rearms_like_python() -> None:
    cluster = Cluster()
    for offset in range(2):
        for _ in range(6):
            cluster.login("mallory", success=False, hsm=offset)
            cluster.advance(10_000_000)
        cluster.advance(1_800_000_000)
    python = [a for a in detect_events(cluster.events) if a.rule == "login-brute-force"]
    sql = brute_force_alerts(database(cluster.events))
    assert len(python) == 2
    assert sql == python


def test_event_rows_round_trip(connection: sqlite3.Connection) -> None:
    cluster = Cluster()
    event = cluster.record(cluster.hsms[0], "CN_LOGIN", user="bob", success=False)
    insert_events(connection, [event])
    cursor = connection.execute("SELECT * FROM events")
    columns = [d[0] for d in cursor.description]
    (row,) = cursor.fetchall()
    assert columns == list(FIELD_NAMES)
    assert event_from_row(dict(zip(columns, row, strict=True))) == event
    assert event_row(event)[FIELD_NAMES.index("success")] == 0


def test_missing_table_is_a_one_line_store_error() -> None:
    with pytest.raises(DetectStoreError, match="no readable events table"):
        single_rule_alerts(sqlite3.connect(":memory:"))


def test_table_without_the_contract_columns_is_refused() -> None:
    connection = sqlite3.connect(":memory:")
    connection.execute("CREATE TABLE events (event_id TEXT, usecs INTEGER)")
    with pytest.raises(DetectStoreError, match="lacks column"):
        detect_store(connection)


def test_detect_store_honours_disabled_rules() -> None:
    events = brute_force().events
    alerts = detect_store(database(events), DetectionConfig(disabled=frozenset({"failed-login"})))
    assert {a.rule for a in alerts} == {"login-brute-force"}


# --- random events: the generated SQL and the compiled predicates agree on every rule ----------

OPCODES = [
    "CN_LOGIN",
    "cn_login",
    "CN_LOGOUT",
    "CN_CREATE_CO",
    "CN_CREATE_USER",
    "CN_CREATE_APPLIANCE_USER",
    "CN_DELETE_USER",
    "CN_CHANGE_PSWD",
    "CN_DESTROY_OBJECT",
    "CN_TOMBSTONE_OBJECT",
    "CN_WRAP_KEY",
    "CN_EXTRACT_MASKED_OBJECT_USER",
    "CN_SET_M_VALUE",
    "CN_DELETE_TOKEN",
    "CN_APPROVE_TOKEN",
    "CN_UNKNOWN_THING",
]
USER_TYPES = ["CN_CRYPTO_USER", "CN_CRYPTO_OFFICER", "CN_CRYPTO_PRE_OFFICER", "CN_APPLIANCE_USER"]


@st.composite
def random_events(draw: st.DrawFn) -> list[HsmEvent]:
    count = draw(st.integers(min_value=1, max_value=25))
    events = []
    for index in range(count):
        events.append(
            HsmEvent(
                usecs=1_700_000_000_000_000 + index,
                cluster_id=draw(st.sampled_from(["cluster-a", None])),
                hsm_id="hsm-1",
                record_format="text",
                opcode=draw(st.none() | st.sampled_from(OPCODES)),
                success=draw(st.none() | st.booleans()),
                user_name=draw(st.none() | st.sampled_from(["alice", "Bob"])),
                user_type=draw(st.none() | st.sampled_from(USER_TYPES)),
                target_user_type=draw(st.none() | st.sampled_from(USER_TYPES)),
                severity=draw(st.sampled_from(["info", "medium", "high", "critical"])),
                parse_error=draw(st.none() | st.just("missing field(s): Opcode")),
                event_id=f"id-{index}",
            )
        )
    return events


@settings(max_examples=150, deadline=None)
@given(random_events())
def test_random_events_match_the_same_rules_in_sqlite_and_python(events: list[HsmEvent]) -> None:
    engine = DetectionEngine(DetectionConfig(disabled=frozenset({"hsm-silent"})))
    python = [a for event in events for a in engine.process(event) if a.rule in SINGLE_RULES]
    python += [a for a in engine.finalize() if a.rule in SINGLE_RULES]  # folded rules wait for copies
    assert single_keys(single_rule_alerts(database(events))) == single_keys(python)


def test_case_folding_is_ascii_only_on_both_sides() -> None:
    # SQLite's LIKE folds A-Z only; the engine must not match more (KELVIN SIGN lower-cases to k).
    events = [
        HsmEvent(opcode="CN_WRAP_\u212aEY", success=True, event_id="kelvin"),
        HsmEvent(opcode="cn_wrap_key", success=True, event_id="ascii"),
    ]
    python = [a for a in detect_events(events) if a.rule in SINGLE_RULES]
    assert single_keys(single_rule_alerts(database(events))) == single_keys(python)
    assert [a.event_ids for a in python] == [["ascii"]]


@st.composite
def failed_login_streams(draw: st.DrawFn) -> list[HsmEvent]:
    """Failed logins of a few users over 3 HSMs: some replicated, bursts and pauses, unique times."""
    hsms = ["hsm-a", "hsm-b", "hsm-c"]
    events: list[HsmEvent] = []
    clock = 1_700_000_000_000_000
    sequence = dict.fromkeys(hsms, 0)
    for _ in range(draw(st.integers(min_value=1, max_value=30))):
        clock += draw(st.sampled_from([1, 200_000, 3_000_000, 40_000_000, 200_000_000, 700_000_000]))
        user = draw(st.sampled_from(["alice", "Alice", "bob"]))
        serving = draw(st.sampled_from(hsms))
        copies = [serving] + ([h for h in hsms if h != serving] if draw(st.booleans()) else [])
        for offset, hsm in enumerate(copies):
            usecs = clock + offset * draw(st.integers(min_value=1, max_value=2_000_000))
            events.append(
                HsmEvent(
                    usecs=usecs,
                    time=f"t{usecs}",
                    cluster_id="cluster-h",
                    hsm_id=hsm,
                    record_format="text",
                    sequence_no=sequence[hsm],
                    reboot_counter=1,
                    opcode="CN_LOGIN",
                    success=False,
                    response_code=163,
                    user_name=user,
                    user_type="CN_CRYPTO_USER",
                    event_id=f"{hsm}-{sequence[hsm]}",
                )
            )
            sequence[hsm] += 1
        clock = max(e.usecs or 0 for e in events)
    times = [e.usecs for e in events]
    if len(set(times)) != len(times):  # ties are ordered differently by SQL peers; keep times unique
        events = [e for i, e in enumerate(events) if e.usecs not in times[:i]]
    return sorted(events, key=lambda e: e.usecs or 0)


@settings(max_examples=150, deadline=None)
@given(failed_login_streams())
def test_brute_force_sql_and_python_agree_on_random_streams(events: list[HsmEvent]) -> None:
    # About half of these streams fire, some several times (re-armed): both sides must agree on
    # which attempts, how many, and for whom.
    python = [a for a in detect_events(events) if a.rule == "login-brute-force"]
    sql = brute_force_alerts(database(events))
    key = lambda a: (a.cluster_id, (a.user_name or "").lower(), a.event_ids, a.details["failed_attempts"])  # noqa: E731
    assert sorted(map(key, sql)) == sorted(map(key, python))


def test_store_detection_leaves_the_callers_transaction_alone() -> None:
    connection = database(brute_force().events)
    connection.execute("CREATE TABLE scratch (x)")
    connection.commit()
    connection.execute("INSERT INTO scratch VALUES (1)")
    assert connection.in_transaction
    assert brute_force_alerts(connection)
    assert connection.in_transaction  # not committed behind the caller's back
    connection.rollback()
    assert connection.execute("SELECT count(*) FROM scratch").fetchone() == (0,)
