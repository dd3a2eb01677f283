"""The app's alerts as Splunk's scheduler runs them: settings, windows, throttling, streamstats bounds.

`splunk_scheduler.py` models the scheduler strictly (settings outside savedsearches.conf.spec or
outside the model are refused); `test_rules_spl_semantics.run_search` executes the SPL. Together
they run each alert on its schedule over indexed events, so throttling is tested as Splunk applies
it: per result, keyed by the result's own values of `alert.suppress.fields`.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from itertools import pairwise
from pathlib import Path

import pytest

from hsmaudit.detect.engine import DetectionConfig, detect_events
from hsmaudit.detect.ruleset import load_ruleset
from hsmaudit.records.event import HsmEvent

from .splunk_scheduler import Scheduler, SchedulerModelError, check_stanza, cron_times, relative_time
from .test_detect_builder import MINUTE, SECOND, START, Cluster, normal_day
from .test_detect_scenarios import SCENARIOS, Scenario
from .test_rules_spl_semantics import (
    FUNCTIONS,
    MAX_STREAM_WINDOW,
    RUN_WINDOW,
    run_search,
    split_pipes,
    splunk_row,
)
from .test_rules_splunk import stanzas

# Shipped disabled (the set-up step enables them once the index macro is set): enabled here, as
# the admin does.
SHIPPED = stanzas()
STANZAS = {name: {**values, "disabled": "0"} for name, values in SHIPPED.items()}
ALERTS = {name: values for name, values in STANZAS.items() if "alert.suppress" in values}
INDEXING_LAG = 20.0  # seconds between an HSM writing a record and Splunk indexing it


def rows(
    events: list[HsmEvent], *, lag: float = INDEXING_LAG, event_ids: bool = True
) -> list[dict[str, object]]:
    """Events as indexed: `_indextime` some seconds after the HSM time; optionally no event_id
    (raw text from the published recipe, which has none)."""
    out = []
    # A record without a readable time gets the time it was received (HEC without `time`): here
    # the newest record's.
    received = max(((event.usecs or 0) / 1e6 for event in events), default=0.0)
    for event in events:
        row = splunk_row(event)
        if event.usecs is None:
            row["_time"] = received
        row["_indextime"] = row["_time"] + lag
        if not event_ids:
            row.pop("event_id", None)
        out.append(row)
    return out


def final_fields(spl: str) -> set[str]:
    """The fields of the search's last command, which must be `table` or `fields`."""
    last = split_pipes(spl)[-1].strip()
    command, _, rest = last.partition(" ")
    assert command in {"table", "fields"} and not rest.startswith("-"), f"ends in {last[:40]!r}"
    return set(re.split(r"[\s,]+", rest.strip()))


@pytest.mark.parametrize("name", STANZAS, ids=str)
def test_every_stanza_uses_only_settings_of_the_spec_that_the_model_implements(name: str) -> None:
    check_stanza(STANZAS[name])


def test_the_model_refuses_what_it_does_not_implement() -> None:
    good = dict(STANZAS["hsmaudit - key-deleted"])
    for key, value in [
        ("alert.supress.fields", "alert_key"),  # a typo Splunk would ignore silently
        ("action.email", "1"),
        ("allow_skew", "5"),  # the timescale is required
        ("dispatch.earliest_time", "rt-5m"),
        ("counttype", "custom"),
    ]:
        with pytest.raises(SchedulerModelError):
            check_stanza({**good, key: value})
    with pytest.raises(SchedulerModelError, match="skip runs"):
        Scheduler({**good, "realtime_schedule": "1"}, run_search)
    with pytest.raises(SchedulerModelError, match=r"needs alert\.suppress\.fields"):
        check_stanza({**good, "alert.suppress.fields": ""})
    with pytest.raises(AssertionError, match="not modelled"):
        run_search("`hsmaudit_events` opcode=CN_LOGIN | mvexpand event_ids", [])
    with pytest.raises(AssertionError, match="without a window"):
        run_search("`hsmaudit_events` opcode=CN_LOGIN | streamstats count as n by user_name", [])
    for unmodelled in [
        "streamstats window=20000 count as n by user_name",  # above max_stream_window
        "streamstats window=5 global=f count as n by user_name",
        "sort _time",  # stops at 10,000 results
        "stats count by user_name",  # the unnamed `count` column
        "dedup consecutive=true user_name",
    ]:
        with pytest.raises(AssertionError):
            run_search(f"`hsmaudit_events` opcode=CN_LOGIN | {unmodelled}", [])
    with pytest.raises(AssertionError, match="not an indexed field"):
        run_search("| tstats count as n where `hsmaudit_events` by opcode", [])


def test_the_models_time_arithmetic() -> None:
    noon = 1_764_158_400.0  # 2025-11-26T12:00:00Z
    assert relative_time("-6m@m", noon + 30) == noon - 360
    assert relative_time("-24h@h", noon + 90) == noon - 86400
    assert relative_time("now", noon) == noon
    assert cron_times("*/5 * * * *", noon, noon + 900) == [noon, noon + 300, noon + 600]
    assert cron_times("17 * * * *", noon, noon + 3600) == [noon + 17 * 60]


@pytest.mark.parametrize("name", STANZAS, ids=str)
def test_continuous_scheduling_and_a_skew_on_every_scheduled_search(name: str) -> None:
    values = STANZAS[name]
    assert values["enableSched"] == "1"
    assert values["realtime_schedule"] == "0"  # never skip a run: index-time windows must tile
    assert re.fullmatch(r"[1-9]\d?%", values["allow_skew"]), values["allow_skew"]
    assert values.get("allow_data_time_skew", "false") == "false"


@pytest.mark.parametrize("name", ALERTS, ids=str)
def test_throttle_fields_are_in_the_alerts_final_fields(name: str) -> None:
    values = ALERTS[name]
    assert values["alert.digest_mode"] == "0"
    throttle = {field.strip() for field in values["alert.suppress.fields"].split(",")}
    assert throttle <= final_fields(values["search"]), throttle - final_fields(values["search"])


@pytest.mark.parametrize("name", STANZAS, ids=str)
def test_every_streamstats_has_an_explicit_bounded_window(name: str) -> None:
    for segment in split_pipes(STANZAS[name]["search"]):
        command, _, rest = segment.strip().partition(" ")
        if command != "streamstats":
            continue
        window = re.search(r"\bwindow=(\d+)", rest)
        assert window or re.search(r"\btime_window=\d+[smhd]", rest), segment
        if window:
            assert 0 < int(window.group(1)) <= MAX_STREAM_WINDOW, segment


def _brute_forces(events: list[HsmEvent], settings: dict[str, str]) -> list[tuple[str, str]]:
    scheduler = Scheduler(settings, run_search)
    fired = scheduler.run_between(START / 1e6, START / 1e6 + 45 * 60, rows(events))
    return sorted((str(f.result.get("cluster_id")), str(f.result.get("user_name"))) for f in fired)


def _two_attacks() -> list[HsmEvent]:
    """Alice and Bob both guessed five times, interleaved, on one 3-HSM cluster; Bob again on another."""
    cluster, other = Cluster(), Cluster(cluster_id="cluster-other0000001")
    for _ in range(5):
        cluster.login("alice", success=False)
        cluster.advance(20 * SECOND)
        cluster.login("bob", success=False)
        cluster.advance(20 * SECOND)
        other.login("bob", success=False)
        other.advance(40 * SECOND)
    return sorted(cluster.events + other.events, key=lambda e: e.usecs or 0)


def test_one_users_brute_force_does_not_mute_anothers() -> None:
    settings = STANZAS["hsmaudit - login-brute-force"]
    assert _brute_forces(_two_attacks(), settings) == [
        ("cluster-other0000001", "bob"),
        ("cluster-testabc1234", "alice"),
        ("cluster-testabc1234", "bob"),
    ]


def test_the_model_reproduces_the_muting_of_a_throttle_field_the_search_drops() -> None:
    # The shipped search before this fix ended in a table without cluster_key and user_key:
    # every result's throttle key was empty, so the first brute force muted all others for 30 min.
    settings = dict(STANZAS["hsmaudit - login-brute-force"])
    settings["search"] = settings["search"].replace(" cluster_key user_key rule", " rule")
    assert len(_brute_forces(_two_attacks(), settings)) == 1


def test_a_sustained_brute_force_alerts_once_per_throttle_period() -> None:
    cluster = Cluster()
    for _ in range(60):  # one guess every 30 s for 30 minutes
        cluster.login("mallory", success=False)
        cluster.advance(30 * SECOND)
    fired = _brute_forces(cluster.events, STANZAS["hsmaudit - login-brute-force"])
    assert fired == [("cluster-testabc1234", "mallory")] * 2  # at ~2.5 min and 30 min later


def test_raw_text_without_event_id_has_a_per_record_key() -> None:
    # Recipe data (aws:cloudwatch:cloudhsm) carries no event_id. Two deletions must be two alerts,
    # and the same record delivered twice one alert.
    cluster = Cluster()
    first = cluster.record(cluster.hsms[0], "CN_DESTROY_OBJECT", key=11)
    cluster.advance(MINUTE)
    second = cluster.record(cluster.hsms[0], "CN_DESTROY_OBJECT", key=12)
    indexed = rows([first, second, first], event_ids=False)
    indexed[2]["_indextime"] += 400  # the re-delivery lands in the next run's index window
    scheduler = Scheduler(STANZAS["hsmaudit - key-deleted"], run_search)
    fired = scheduler.run_between(START / 1e6, START / 1e6 + 30 * 60, indexed)
    assert sorted(f.result["key_handle"] for f in fired) == [11, 12]
    assert all(f.result["alert_key"] for f in fired)


# --- windows ---------------------------------------------------------------------------------

PERIOD = {"*/5 * * * *": 300, "*/15 * * * *": 900, "*/30 * * * *": 1800, "17 * * * *": 3600}
NOON = 1_764_158_400.0  # 2025-11-26T12:00:00Z, a scheduled time of every cron above but the report


def span(values: dict[str, str], key_earliest: str, key_latest: str) -> float:
    return relative_time(values[key_latest], NOON) - relative_time(values[key_earliest], NOON)


def test_installing_the_app_schedules_nothing_until_the_admin_enables_the_searches() -> None:
    assert all(values["disabled"] == "1" for values in SHIPPED.values())


@pytest.mark.parametrize("name", STANZAS, ids=str)
def test_no_search_reads_more_than_its_window_plus_lag(name: str) -> None:
    values = STANZAS[name]
    period = PERIOD[values["cron_schedule"]]
    read = span(values, "dispatch.earliest_time", "dispatch.latest_time")
    if values["search"].startswith("| tstats "):
        # Index metadata only (no event is read): hsm-silent's day of "was this HSM active".
        assert read <= 25 * 3600
        return
    assert read <= 2 * 3600, f"{name} reads {read / 3600:.1f} h of events per run"
    if "dispatch.index_earliest" in values:
        # Single-event rules: one period of index time, one period plus an hour's lag of event time.
        assert span(values, "dispatch.index_earliest", "dispatch.index_latest") == period
        assert read == period + 3600
    elif "| addinfo |" in values["search"]:
        # Folded single-event rules: the same index window, applied to each action's first copy.
        assert RUN_WINDOW.search(values["search"])
        assert '"-6m@m") AND first_indexed < relative_time(info_max_time, "-1m@m")' in values["search"]
        assert read == period + 3600
    elif name == "hsmaudit - login-brute-force":
        assert read == 600 + period + 300  # the 10-minute rule window, the period, 5 minutes' lag
    elif "sequence" in name:
        assert read == 2 * 3600 - 300
    elif name == "hsmaudit - hsm-removed-while-active":
        assert read == 3600 + 600 + 300  # an hour of CloudTrail lag, the 10-minute active window
    else:
        assert name == "hsmaudit - duplicate-events" and read == period


@pytest.mark.parametrize("name", [n for n, v in STANZAS.items() if "dispatch.index_earliest" in v], ids=str)
def test_index_time_windows_of_consecutive_runs_tile_so_each_record_is_seen_once(name: str) -> None:
    values = STANZAS[name]
    runs = cron_times(values["cron_schedule"], NOON, NOON + 86400)
    windows = [
        (
            relative_time(values["dispatch.index_earliest"], t),
            relative_time(values["dispatch.index_latest"], t),
        )
        for t in runs
    ]
    assert all(end == next_start for (_, end), (next_start, _) in pairwise(windows))


def test_a_record_alerts_exactly_once_whatever_its_delivery_lag_within_the_hour() -> None:
    cluster = Cluster()
    events, lags = [], [5.0, 59.0, 61.0, 299.0, 301.0, 1800.0, 3000.0]
    for handle, _ in enumerate(lags, start=100):
        events.append(cluster.record(cluster.hsms[0], "CN_DESTROY_OBJECT", key=handle))
        cluster.advance(47 * SECOND)
    indexed = []
    for event, lag in zip(events, lags, strict=True):
        indexed += rows([event], lag=lag)
    late = rows([cluster.record(cluster.hsms[0], "CN_DESTROY_OBJECT", key=999)], lag=2 * 3600.0)
    scheduler = Scheduler(STANZAS["hsmaudit - key-deleted"], run_search)
    fired = scheduler.run_between(START / 1e6, START / 1e6 + 4 * 3600, indexed + late)
    assert sorted(f.result["key_handle"] for f in fired) == list(range(100, 100 + len(lags)))
    # Beyond the lag a record is outside every run's event-time window (docs/detections.md: replays
    # after a long outage are checked with `hsmaudit detect`).
    assert max(end - start for start, end in scheduler.windows) == 65 * 60


def test_each_silence_of_an_hsm_alerts_once(monkeypatch: pytest.MonkeyPatch) -> None:
    cluster = Cluster()
    quiet, busy = cluster.hsms[1], [cluster.hsms[0], cluster.hsms[2]]
    for step in range(6 * 30):  # 30 hours, a record every 10 minutes on each live HSM
        hour = step / 6
        for hsm in [*busy, quiet] if hour < 2 or 20 <= hour < 21 else busy:
            cluster.record(hsm, "CN_LOGIN", user="app")
        cluster.advance(10 * MINUTE)
    clock = {"now": 0.0}
    monkeypatch.setitem(FUNCTIONS, "now", lambda: clock["now"])
    monkeypatch.setitem(FUNCTIONS, "strftime", lambda value, _format: str(value))
    scheduler = Scheduler(
        STANZAS["hsmaudit - hsm-silent"], run_search, on_dispatch=lambda t: clock.update(now=t)
    )
    fired = scheduler.run_between(START / 1e6, START / 1e6 + 30 * 3600, rows(cluster.events))
    assert [(f.result["hsm_id"], round((f.scheduled - START / 1e6) / 3600, 1)) for f in fired] == [
        (quiet, 3.0),  # last record at 1:50, silent for an hour at the 3:00 run
        (quiet, 22.0),  # logged again 20:00-20:50, silent again at 22:00
    ]


def test_a_gap_alerts_once_although_the_sequence_runs_overlap() -> None:
    cluster = Cluster()
    hsm = cluster.hsms[0]
    for minute in range(6 * 60):
        if minute == 3 * 60:
            cluster.next_sequence(hsm)  # one record lost
        cluster.record(hsm, "CN_LOGIN", user="app")
        cluster.advance(MINUTE)
    scheduler = Scheduler(STANZAS["hsmaudit - sequence-gap"], run_search)
    fired = scheduler.run_between(START / 1e6, START / 1e6 + 8 * 3600, rows(cluster.events))
    assert [(f.result["stream"], f.result["missing"]) for f in fired] == [(hsm, 1)]
    # seen by the first run whose window ends 5 minutes past the record after the gap
    assert fired[0].scheduled - START / 1e6 == 3 * 3600 + 15 * 60


def test_the_set_up_docs_list_every_search_to_enable() -> None:
    docs = (Path(__file__).resolve().parents[2] / "docs" / "splunk-app.md").read_text(encoding="utf-8")
    listed = re.findall(r"^   \[(hsmaudit - [\w-]+)\]\n   disabled = 0$", docs, re.MULTILINE)
    assert sorted(listed) == sorted(SHIPPED)


def test_addinfo_reports_the_scheduled_range_not_the_skewed_start() -> None:
    cluster = Cluster()
    cluster.record(cluster.hsms[0], "CN_DESTROY_OBJECT", key=7)
    settings = dict(STANZAS["hsmaudit - key-deleted"])
    settings["search"] = (
        settings["search"].rsplit("| table", 1)[0]
        + '| addinfo | eval window_start=relative_time(info_max_time, "-6m@m")'
        " | table info_min_time info_max_time window_start alert_key"
    )
    scheduler = Scheduler(settings, run_search)
    fired = scheduler.run_between(START / 1e6, START / 1e6 + 10 * 60, rows(cluster.events))
    assert [(f.result["info_max_time"] - f.result["info_min_time"], f.scheduled) for f in fired] == [
        (65 * 60, START / 1e6 + 5 * 60)
    ]
    assert fired[0].result["window_start"] == fired[0].scheduled - 6 * 60


def test_records_without_an_hsm_are_not_sequence_checked_as_one_merged_stream() -> None:
    # The published recipe's events: raw text, no event_id, and a host that is not the HSM.
    cluster = Cluster()
    for _ in range(20):
        cluster.login("app", success=True)  # every HSM records it, each with its own numbering
        cluster.advance(MINUTE)
    recipe = rows(cluster.events, event_ids=False)
    for row in recipe:
        row.pop("hsm_id", None)
        row["host"] = "lambda-blueprint"
    for rule in ("sequence-gap", "sequence-reset", "sequence-duplicate"):
        scheduler = Scheduler(STANZAS[f"hsmaudit - {rule}"], run_search)
        assert scheduler.run_between(START / 1e6, START / 1e6 + 3 * 3600, recipe) == [], rule
    # The same records with their HSM known are in order: nothing either.
    known = rows(cluster.events, event_ids=False)
    scheduler = Scheduler(STANZAS["hsmaudit - sequence-gap"], run_search)
    assert scheduler.run_between(START / 1e6, START / 1e6 + 3 * 3600, known) == []


# --- one alert per cluster action across runs ---------------------------------------------------


def _password_change_on_every_hsm(lags: list[float]) -> list[dict[str, object]]:
    """One CN_CHANGE_PSWD, recorded by each HSM of the cluster; each copy indexed after its own lag
    (the HSMs' log streams are delivered separately)."""
    cluster = Cluster()
    indexed: list[dict[str, object]] = []
    for offset, (hsm, lag) in enumerate(zip(cluster.hsms, lags, strict=True)):
        copy = cluster.record(
            hsm, "CN_CHANGE_PSWD", user="carol", at=cluster.clock + offset * 300_000, session="0x1004001"
        )
        indexed += rows([copy], lag=lag)
    return indexed


@pytest.mark.parametrize(
    "lags",
    [[20.0, 20.0, 20.0], [20.0, 330.0, 700.0], [700.0, 20.0, 330.0], [20.0, 20.0, 2000.0]],
    ids=["same-run", "three-runs", "first-copy-late", "one-copy-half-an-hour-late"],
)
def test_copies_indexed_in_different_runs_are_one_alert(lags: list[float]) -> None:
    scheduler = Scheduler(STANZAS["hsmaudit - password-changed"], run_search)
    fired = scheduler.run_between(START / 1e6, START / 1e6 + 2 * 3600, _password_change_on_every_hsm(lags))
    assert len(fired) == 1, [(f.scheduled - START / 1e6, f.result.get("copies")) for f in fired]
    # It fires in the run whose index window holds the first copy to arrive.
    first = START / 1e6 + min(lags)
    assert fired[0].scheduled - 360 <= first < fired[0].scheduled - 60


# --- every scenario, as scheduled ---------------------------------------------------------------

AUDIT_RULES = [
    rule.id
    for rule in load_ruleset().rules
    if STANZAS[f"hsmaudit - {rule.id}"]["search"].startswith("`hsmaudit_events`")
]


def _ids(result: dict[str, object]) -> set[str]:
    ids = result.get("event_ids", result.get("event_id"))
    return set(ids) if isinstance(ids, list) else {str(ids)}


@pytest.mark.parametrize("build", SCENARIOS, ids=lambda f: f.__name__)
def test_scheduled_single_event_alerts_fire_once_per_engine_alert(build: Callable[[], Scenario]) -> None:
    """Run on their schedule (copies indexed 20 s after the HSM wrote them), the single-event
    alerts fire exactly as often as the engine alerts, each on records of one engine alert: the
    windows tile, the folded rules fold across runs, and the throttles mute nothing they should
    not."""
    scenario = build()
    engine = list(detect_events(scenario.events, DetectionConfig(disabled=frozenset({"hsm-silent"}))))
    indexed = rows(scenario.events)
    start = min(float(row["_time"]) for row in indexed) - 600
    end = max(float(row["_indextime"]) for row in indexed) + 2 * 3600
    for rule in AUDIT_RULES:
        scheduler = Scheduler(STANZAS[f"hsmaudit - {rule}"], run_search)
        fired = scheduler.run_between(start, end, indexed)
        expected = [set(a.event_ids) for a in engine if a.rule == rule]
        assert len(fired) == len(expected), (rule, len(fired), len(expected))
        for alert in fired:
            assert any(_ids(alert.result) <= ids for ids in expected), (rule, alert.result)


def test_a_normal_day_run_on_schedule_raises_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    indexed = rows(normal_day().events)
    start = min(float(row["_time"]) for row in indexed)
    end = max(float(row["_indextime"]) for row in indexed) + 600
    clock = {"now": 0.0}
    monkeypatch.setitem(FUNCTIONS, "now", lambda: clock["now"])
    monkeypatch.setitem(FUNCTIONS, "strftime", lambda value, _format: str(value))
    for name, values in STANZAS.items():
        if "hsmaudit_cloudtrail" in values["search"] or "alert.suppress" not in values:
            continue
        scheduler = Scheduler(values, run_search, on_dispatch=lambda t: clock.update(now=t))
        assert scheduler.run_between(start, end, indexed) == [], name
