"""Labelled scenarios: each stream yields exactly its expected alerts (precision and recall 1.0).

Every rule fires on a minimal positive case and stays silent on its nearest negative; a day of
normal operations across a 3-HSM cluster yields nothing. The same scenarios run through the SQLite
store path in `test_detect_sqlite.py`.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass

import pytest

from hsmaudit.detect.engine import DetectionConfig, DetectionEngine, detect_events
from hsmaudit.records.alert import Alert
from hsmaudit.records.event import HsmEvent
from hsmaudit.records.parse import parse_message

from .test_detect_builder import BAD_PASSWORD, MINUTE, SECOND, START, Cluster, normal_day

Label = tuple[str, str | None, str | None]
"""(rule, hsm_id, user_name): what a person reading the alert needs to be right."""


@dataclass(frozen=True)
class Scenario:
    name: str
    events: list[HsmEvent]
    expected: list[Label]
    now_usecs: int | None = None


def labels(alerts: list[Alert]) -> Counter[Label]:
    return Counter((a.rule, a.hsm_id, a.user_name) for a in alerts)


# --- scenario builders -----------------------------------------------------------------------


def failed_login_replicated() -> Scenario:
    cluster = Cluster()
    cluster.login("carol", success=False)
    return Scenario(
        "one failed login logged by all 3 HSMs: one failed-login (the serving HSM's), no brute force",
        cluster.events,
        [("failed-login", cluster.hsms[0], "carol")],
    )


def successful_login() -> Scenario:
    cluster = Cluster()
    cluster.login("carol")
    return Scenario("a successful login is not a failure", cluster.events, [])


def brute_force() -> Scenario:
    cluster = Cluster()
    for _ in range(5):
        cluster.login("mallory", "CN_CRYPTO_OFFICER", success=False)
        cluster.advance(40 * SECOND)
    expected: list[Label] = [("failed-login", cluster.hsms[0], "mallory")] * 5
    expected.append(("login-brute-force", None, "mallory"))
    return Scenario("5 failed logins in 3 minutes, each on 3 HSMs: one brute force", cluster.events, expected)


def replicas_are_not_a_brute_force() -> Scenario:
    cluster = Cluster()
    cluster.login("dave", success=False)
    cluster.advance(MINUTE)
    cluster.login("dave", success=False)
    return Scenario(
        "2 failed logins x 3 HSMs = 6 records, but only 2 attempts (and 2 alerts)",
        cluster.events,
        [("failed-login", cluster.hsms[0], "dave")] * 2,
    )


def brute_force_across_bin_edge() -> Scenario:
    cluster = Cluster(clock=START + 57 * MINUTE)  # 07:57, then past 08:00 (a 10-minute bin edge)
    for _ in range(5):
        cluster.login("eve", success=False, replicate=False, hsm=0)
        cluster.advance(50 * SECOND)
    expected: list[Label] = [("failed-login", cluster.hsms[0], "eve")] * 5
    expected.append(("login-brute-force", None, "eve"))
    return Scenario(
        "a burst across a 10-minute bin edge still fires (sliding window)", cluster.events, expected
    )


def slow_failures() -> Scenario:
    cluster = Cluster()
    for _ in range(5):
        cluster.login("frank", success=False, replicate=False)
        cluster.advance(7 * MINUTE)
    return Scenario(
        "5 failures spread over 28 minutes are not a brute force",
        cluster.events,
        [("failed-login", cluster.hsms[0], "frank")] * 5,
    )


def rapid_failures_on_one_hsm() -> Scenario:
    cluster = Cluster()
    for _ in range(5):
        cluster.login("grace", success=False, replicate=False)
        cluster.advance(200_000)  # 5 attempts within a second on one HSM: all real attempts
    expected: list[Label] = [("failed-login", cluster.hsms[0], "grace")] * 5
    expected.append(("login-brute-force", None, "grace"))
    return Scenario("repeated attempts on one HSM are never folded as copies", cluster.events, expected)


def user_management() -> Scenario:
    cluster = Cluster()
    hsm = cluster.hsms[0]
    cluster.record(hsm, "CN_CREATE_CO", user="officer2", user_type="CN_CRYPTO_OFFICER")
    cluster.record(hsm, "CN_CREATE_USER", user="app3", user_type="CN_CRYPTO_USER")
    cluster.record(hsm, "CN_CREATE_USER", user="officer3", user_type="CN_CRYPTO_OFFICER")
    cluster.record(hsm, "CN_DELETE_USER", user="app1", user_type="CN_CRYPTO_USER")
    cluster.record(hsm, "CN_CHANGE_PSWD", user="admin", user_type="CN_CRYPTO_PRE_OFFICER")
    # nearest negatives: the same commands failing
    cluster.record(hsm, "CN_CREATE_CO", user="officer4", user_type="CN_CRYPTO_OFFICER", success=False)
    cluster.record(hsm, "CN_DELETE_USER", user="app2", success=False)
    return Scenario(
        "user management fires per successful command only",
        cluster.events,
        [
            ("crypto-officer-created", hsm, "officer2"),
            ("user-created", hsm, "app3"),
            ("crypto-officer-created", hsm, "officer3"),
            ("user-deleted", hsm, "app1"),
            ("password-changed", hsm, "admin"),
        ],
    )


def key_operations() -> Scenario:
    cluster = Cluster()
    hsm = cluster.hsms[1]
    cluster.record(hsm, "CN_DESTROY_OBJECT", key=131079)
    cluster.record(hsm, "CN_TOMBSTONE_OBJECT", key=131080)
    cluster.record(hsm, "CN_DESTROY_OBJECT", key=999, success=False)  # RET_OBJECT_NOT_FOUND
    cluster.record(hsm, "CN_WRAP_KEY", key=7)
    cluster.record(hsm, "CN_EXTRACT_MASKED_OBJECT_USER", key=8)  # cluster sync, not an export
    cluster.record(hsm, "CN_NIST_AES_WRAP", key=9)
    cluster.record(hsm, "CN_GENERATE_KEY", key=10)
    return Scenario(
        "key deletion (both opcodes) and export; sync copies and failures stay quiet",
        cluster.events,
        [("key-deleted", hsm, None), ("key-deleted", hsm, None), ("key-exported", hsm, None)],
    )


def quorum() -> Scenario:
    cluster = Cluster()
    hsm = cluster.hsms[2]
    cluster.record(hsm, "CN_SET_M_VALUE", user="officer1", user_type="CN_CRYPTO_OFFICER")
    cluster.record(hsm, "CN_DELETE_TOKEN", user="officer1", user_type="CN_CRYPTO_OFFICER")
    cluster.record(hsm, "CN_APPROVE_TOKEN", user="officer2", user_type="CN_CRYPTO_OFFICER")
    cluster.record(hsm, "CN_GET_TOKEN", user="officer2", user_type="CN_CRYPTO_OFFICER")
    return Scenario(
        "setting M and deleting tokens change quorum; approving does not",
        cluster.events,
        [("quorum-changed", hsm, "officer1"), ("quorum-changed", hsm, "officer1")],
    )


def critical_device_operations() -> Scenario:
    cluster = Cluster()
    new_hsm, old_hsm = cluster.hsms[2], cluster.hsms[0]
    cluster.record(new_hsm, "CN_INIT_TOKEN")  # a new HSM's stream starts with initialisation: fine
    cluster.record(new_hsm, "CN_INIT_DONE")
    cluster.record(old_hsm, "CN_LOGOUT", user="u")
    cluster.record(old_hsm, "CN_BACKUP_BEGIN")  # backups are routine
    cluster.record(old_hsm, "CN_INIT_TOKEN")  # re-initialising an HSM with history is not
    cluster.record(old_hsm, "CN_ZEROIZE", success=False)  # a failed zeroisation still counts
    cluster.record(old_hsm, "CN_RESTORE_BEGIN")
    return Scenario(
        "zeroise, restore and re-initialise an HSM with history; a new HSM's initialisation is fine",
        cluster.events,
        [("hsm-critical-operation", old_hsm, None)] * 3,
    )


def unparsed() -> Scenario:
    cluster = Cluster()
    hsm = cluster.hsms[0]
    good = cluster.record(hsm, "CN_LOGOUT", user="x")
    bad = parse_message("HSM rebooted unexpectedly", log_group=cluster.log_group, log_stream=hsm)
    whole = cluster.make(hsm, "CN_LOGOUT", user="y")
    assert whole.raw is not None
    truncated = parse_message(whole.raw.split("\nResponse")[0], log_group=cluster.log_group, log_stream=hsm)
    return Scenario(
        "unreadable and truncated records fire; a good record does not",
        [good, bad, truncated],
        [("unparsed-record", hsm, None), ("unparsed-record", hsm, None)],
    )


def sequence_gap() -> Scenario:
    cluster = Cluster()
    hsm = cluster.hsms[0]
    for _ in range(3):
        cluster.record(hsm, "CN_LOGOUT", user="u")
        cluster.advance(SECOND)
    cluster.next_sequence(hsm)  # sequence 3 is lost
    cluster.next_sequence(hsm)  # and 4
    for _ in range(3):
        cluster.record(hsm, "CN_LOGOUT", user="u")
        cluster.advance(SECOND)
    return Scenario("two records missing from one stream", cluster.events, [("sequence-gap", hsm, None)])


def reboot_is_not_a_gap() -> Scenario:
    cluster = Cluster()
    hsm = cluster.hsms[0]
    for _ in range(4):
        cluster.record(hsm, "CN_LOGOUT", user="u")
        cluster.advance(SECOND)
    cluster.reboot_hsm(0)
    for _ in range(4):
        cluster.record(hsm, "CN_LOGOUT", user="u")
        cluster.advance(SECOND)
    return Scenario("sequence restarts after a reboot-counter increase", cluster.events, [])


def sequence_reset() -> Scenario:
    cluster = Cluster()
    hsm = cluster.hsms[0]
    for _ in range(4):
        cluster.record(hsm, "CN_LOGOUT", user="u")
        cluster.advance(SECOND)
    cluster.sequence[hsm] = 0  # restart without a reboot
    for _ in range(2):
        cluster.record(hsm, "CN_LOGOUT", user="u")
        cluster.advance(SECOND)
    return Scenario("sequence back to 0 without a reboot", cluster.events, [("sequence-reset", hsm, None)])


def duplicates() -> Scenario:
    cluster = Cluster()
    hsm = cluster.hsms[0]
    first = cluster.record(hsm, "CN_LOGOUT", user="u")
    cluster.advance(SECOND)
    deleted = cluster.record(hsm, "CN_DESTROY_OBJECT", key=42)
    cluster.advance(SECOND)
    cluster.events.append(deleted)  # Lambda retry: the very same record again
    assert first.usecs is not None
    forged = cluster.make(hsm, "CN_GENERATE_KEY", key=43, sequence=first.sequence_no, at=first.usecs + 1)
    cluster.events.append(forged)  # same position, other content
    cluster.record(hsm, "CN_LOGOUT", user="u")
    return Scenario(
        "a re-delivery is silent (and alerts once); a forged position is a duplicate",
        cluster.events,
        [("key-deleted", hsm, None), ("sequence-duplicate", hsm, None)],
    )


def out_of_order() -> Scenario:
    cluster = Cluster()
    hsm = cluster.hsms[0]
    made = []
    for _ in range(6):
        made.append(cluster.make(hsm, "CN_LOGOUT", user="u"))
        cluster.advance(SECOND)
    order = [0, 2, 1, 3, 5, 4]
    return Scenario("records delivered out of order within the window", [made[i] for i in order], [])


def silent_hsm() -> Scenario:
    cluster = Cluster()
    for _ in range(3):
        cluster.login("app")
        cluster.advance(10 * MINUTE)
    cluster.hsms = cluster.hsms[:2]  # the third HSM stops logging
    for _ in range(14):
        cluster.login("app")
        cluster.advance(10 * MINUTE)
    return Scenario(
        "an HSM goes quiet while its cluster keeps logging",
        cluster.events,
        [("hsm-silent", "hsm-cccc3333", None)],
    )


def quiet_cluster_with_clock() -> Scenario:
    cluster = Cluster()
    cluster.login("app")
    return Scenario(
        "the whole cluster quiet for 2 hours by the given clock: every HSM is silent",
        cluster.events,
        [("hsm-silent", hsm, None) for hsm in cluster.hsms],
        now_usecs=cluster.clock + 2 * 60 * MINUTE,
    )


def quiet_cluster_without_clock() -> Scenario:
    cluster = Cluster()
    cluster.login("app")
    cluster.advance(5 * 60 * MINUTE)
    cluster.login("app")
    return Scenario("a cluster idle overnight, then active again, is not silent", cluster.events, [])


def normal_operations() -> Scenario:
    return Scenario("a day of normal operations on a 3-HSM cluster", normal_day().events, [])


DELETER = "Admin/mallory"


def control_plane_deletions() -> Scenario:
    cluster = Cluster()
    cluster.advance(2 * 60 * MINUTE)  # the HSM was drained long ago
    cluster.api_call("DescribeClusters")  # nearest negatives: reads and growth
    cluster.api_call("CreateHsm", {"availabilityZone": "us-east-1a"})
    cluster.api_call("DeleteHsm", {"hsmId": "hsm-cccc3333"})
    cluster.api_call("DeleteCluster", error="AccessDeniedException")  # an attempt counts
    return Scenario(
        "an HSM deleted and a refused cluster deletion: one alert each, the HSM was drained",
        cluster.events,
        [("hsm-or-cluster-deleted", "hsm-cccc3333", DELETER), ("hsm-or-cluster-deleted", None, DELETER)],
    )


def backups_and_initialisation() -> Scenario:
    cluster = Cluster()
    cluster.api_call("DeleteBackup", {"backupId": "backup-rtq2dwi2gq6"})
    cluster.api_call("ModifyCluster", {"backupRetentionPolicy": {"type": "DAYS", "value": "7"}})
    cluster.api_call("ModifyBackupAttributes", {"backupId": "backup-rtq2dwi2gq6", "neverExpires": False})
    cluster.api_call(
        "CopyBackupToRegion", {"backupId": "backup-rtq2dwi2gq6", "destinationRegion": "eu-west-1"}
    )
    cluster.api_call("RestoreBackup", {"backupId": "backup-rtq2dwi2gq6"})
    cluster.api_call("CreateCluster", {"hsmType": "hsm1.medium", "sourceBackupId": "backup-rtq2dwi2gq6"})
    cluster.api_call("CreateCluster", {"hsmType": "hsm1.medium"})  # nearest negative: a new, empty cluster
    cluster.api_call("InitializeCluster", {"signedCert": "-----BEGIN CERTIFICATE-----"})
    cluster.api_call("DescribeBackups")
    return Scenario(
        "backup deleted, retention changed twice, copied, restored, cloned; cluster initialised",
        cluster.events,
        [
            *[("backup-deleted-or-retention-changed", None, DELETER)] * 3,
            *[("backup-restored-or-copied", None, DELETER)] * 3,
            ("cluster-initialised", None, DELETER),
        ],
    )


def hsm_removed_while_active() -> Scenario:
    cluster = Cluster()
    cluster.login("app")
    cluster.advance(2 * MINUTE)
    cluster.api_call("DeleteHsm", {"hsmId": "hsm-aaaa1111"})
    return Scenario(
        "an HSM deleted two minutes after it logged a login",
        cluster.events,
        [
            ("hsm-or-cluster-deleted", "hsm-aaaa1111", DELETER),
            ("hsm-removed-while-active", "hsm-aaaa1111", DELETER),
        ],
    )


def hsm_removed_while_active_read_first() -> Scenario:
    scenario = hsm_removed_while_active()
    calls = [e for e in scenario.events if e.record_format == "cloudtrail"]
    records = [e for e in scenario.events if e.record_format != "cloudtrail"]
    return Scenario("the CloudTrail file read before the HSM streams", calls + records, scenario.expected)


SCENARIOS: list[Callable[[], Scenario]] = [
    failed_login_replicated,
    successful_login,
    brute_force,
    replicas_are_not_a_brute_force,
    brute_force_across_bin_edge,
    slow_failures,
    rapid_failures_on_one_hsm,
    user_management,
    key_operations,
    quorum,
    critical_device_operations,
    unparsed,
    sequence_gap,
    reboot_is_not_a_gap,
    sequence_reset,
    duplicates,
    out_of_order,
    silent_hsm,
    quiet_cluster_with_clock,
    quiet_cluster_without_clock,
    normal_operations,
    control_plane_deletions,
    backups_and_initialisation,
    hsm_removed_while_active,
    hsm_removed_while_active_read_first,
]


@pytest.mark.parametrize("build", SCENARIOS, ids=lambda f: f.__name__)
def test_scenario_yields_exactly_its_expected_alerts(build: Callable[[], Scenario]) -> None:
    scenario = build()
    alerts = list(detect_events(scenario.events, now_usecs=scenario.now_usecs))
    assert labels(alerts) == Counter(scenario.expected), scenario.name


def test_precision_and_recall_are_one_over_the_labelled_set() -> None:
    true_positive = false_positive = false_negative = 0
    for build in SCENARIOS:
        scenario = build()
        got = labels(list(detect_events(scenario.events, now_usecs=scenario.now_usecs)))
        want = Counter(scenario.expected)
        true_positive += sum((got & want).values())
        false_positive += sum((got - want).values())
        false_negative += sum((want - got).values())
    assert true_positive > 40
    assert true_positive / (true_positive + false_positive) == 1.0
    assert true_positive / (true_positive + false_negative) == 1.0


def test_every_shipped_rule_fires_in_some_scenario() -> None:
    fired = {label[0] for build in SCENARIOS for label in build().expected}
    assert fired == set(DetectionEngine().ruleset.rule_ids)


def test_failed_crypto_officer_login_is_critical_and_user_login_high() -> None:
    cluster = Cluster()
    cluster.login("boss", "CN_CRYPTO_OFFICER", success=False, replicate=False)
    cluster.login("app", "CN_CRYPTO_USER", success=False, replicate=False)
    severities = {(a.user_name, a.severity) for a in detect_events(cluster.events)}
    assert severities == {("boss", "critical"), ("app", "high")}


def test_brute_force_alert_names_the_attempts_not_the_copies() -> None:
    (alert,) = [a for a in detect_events(brute_force().events) if a.rule == "login-brute-force"]
    assert alert.details["failed_attempts"] == 5
    assert len(alert.event_ids) == 5
    assert alert.cluster_id == "cluster-testabc1234"
    assert alert.severity == "critical"
    assert alert.time is not None


def test_brute_force_rearms_after_the_window_clears() -> None:
    cluster = Cluster()
    for _burst in range(2):
        for _ in range(6):
            cluster.login("mallory", success=False, replicate=False)
            cluster.advance(10 * SECOND)
        cluster.advance(30 * MINUTE)
    rules = [a.rule for a in detect_events(cluster.events)]
    assert rules.count("login-brute-force") == 2


def test_brute_force_counts_user_names_case_insensitively_per_cluster() -> None:
    cluster = Cluster()
    other = Cluster(cluster_id="cluster-other999")
    for name in ("Admin", "admin", "ADMIN", "admin", "aDmin"):
        cluster.login(name, success=False, replicate=False)
        other.login(name, success=False, replicate=False) if name == "admin" else None
        cluster.advance(SECOND)
    alerts = [a for a in detect_events(cluster.events + other.events) if a.rule == "login-brute-force"]
    assert [(a.cluster_id, a.user_name) for a in alerts] == [("cluster-testabc1234", "Admin")]


def test_gap_waits_for_late_records_and_a_late_record_after_the_gap_is_not_a_reset() -> None:
    cluster = Cluster()
    hsm = cluster.hsms[0]
    made = []
    for _ in range(5):
        made.append(cluster.make(hsm, "CN_LOGOUT", user="u"))
        cluster.advance(SECOND)
    cluster.advance(10 * MINUTE)
    after = cluster.make(hsm, "CN_LOGOUT", user="u")
    engine = DetectionEngine(DetectionConfig(reorder_window_usecs=MINUTE))
    # 0, 1, (2 late), 3, 4, then a record 10 minutes later: 2 is overdue -> gap; then 2 arrives.
    alerts = []
    for event in [made[0], made[1], made[3], made[4], after, made[2]]:
        alerts += engine.process(event)
    alerts += engine.finalize()
    assert [(a.rule, a.details.get("expected_sequence_no"), a.details.get("missing")) for a in alerts] == [
        ("sequence-gap", 2, 1)
    ]


def test_disabled_rules_are_skipped() -> None:
    config = DetectionConfig(disabled=frozenset({"failed-login"}))
    alerts = list(detect_events(brute_force().events, config))
    assert {a.rule for a in alerts} == {"login-brute-force"}


def test_wrong_password_and_unknown_user_both_count_towards_brute_force() -> None:
    cluster = Cluster()
    for error in [BAD_PASSWORD, (206, "This user doesn't exist")] * 3:
        cluster.login("ghost", success=False, error=error, replicate=False)
        cluster.advance(SECOND * 10)
    assert "login-brute-force" in {a.rule for a in detect_events(cluster.events)}


def test_forgery_with_the_same_identity_fields_is_caught_on_the_stream() -> None:
    # Same HSM, reboot counter, sequence number and usecs, other content: event_id hashes the
    # content too, so the twin is another event (the store keeps both) and a duplicate position.
    cluster = Cluster()
    hsm = cluster.hsms[0]
    first = cluster.record(hsm, "CN_LOGOUT", user="u")
    forged = cluster.make(hsm, "CN_WRAP_KEY", key=5, sequence=first.sequence_no, at=first.usecs)
    assert forged.event_id != first.event_id
    alerts = list(detect_events([first, forged]))
    assert [a.rule for a in alerts] == ["sequence-duplicate", "key-exported"]
    assert alerts[0].event_ids == [first.event_id, forged.event_id]


def test_a_live_collector_gets_the_brute_force_alert_without_finalize() -> None:
    # GIVEN a collector that never calls finalize
    events = brute_force().events
    last = max(e.usecs or 0 for e in events)
    engine = DetectionEngine()
    alerts = [a for event in events for a in engine.process(event)]
    assert "login-brute-force" not in {a.rule for a in alerts}  # held for replicas to arrive
    # WHEN its periodic tick passes the wall clock 31 s later THEN the alert comes out
    assert [a.rule for a in engine.tick(last + 31 * SECOND)] == ["login-brute-force"]
    # the last attempt's failed-login waits until its burst can take no more copies
    assert [a.rule for a in engine.tick(last + 36 * SECOND)] == ["failed-login"]
    assert engine.finalize() == []


def test_ordinary_traffic_moves_the_clock_for_held_back_logins() -> None:
    cluster = Cluster()
    for _ in range(5):
        cluster.login("mallory", success=False, replicate=False)
        cluster.advance(SECOND)
    cluster.advance(MINUTE)
    cluster.login("app")  # the cluster's normal work goes on
    engine = DetectionEngine()
    alerts = [a for event in cluster.events for a in engine.process(event)]
    assert "login-brute-force" in {a.rule for a in alerts}


def test_a_live_collector_gets_a_gap_at_the_next_tick_after_the_reorder_window() -> None:
    scenario = sequence_gap()
    engine = DetectionEngine()
    assert [a for event in scenario.events for a in engine.process(event)] == []
    last = max(e.usecs or 0 for e in scenario.events)
    assert engine.tick(last + 10 * SECOND) == []  # still waiting for late records
    assert [a.rule for a in engine.tick(last + 3 * MINUTE)] == ["sequence-gap"]
    assert engine.finalize() == []
