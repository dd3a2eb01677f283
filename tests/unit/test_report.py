"""`hsmaudit report` over a simulated quarter with a known gap, a reboot and a DeleteHsm.

The quarter is played by the real simulator (records rendered as CloudHSM text and parsed back)
plus its CloudTrail calls; the report must place each planted fact at its time, give the same
digests for the same data in any order, change them when one record changes, and escape hostile
strings in the HTML.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from hsmaudit.ops.report import (
    Period,
    build_report,
    compare_digests,
    events_from_splunk_export,
    render_html,
)
from hsmaudit.records.cloudtrail import cloudtrail_event
from hsmaudit.records.event import HsmEvent, event_to_dict
from hsmaudit.records.parse import format_usecs
from hsmaudit.simulate.cluster import CU, HOUR, ClusterSimulator
from hsmaudit.simulate.emit import parsed_events
from hsmaudit.simulate.scenarios import day_to_day

DAY = 24 * HOUR


@dataclass(frozen=True)
class Quarter:
    events: list[HsmEvent]
    gap_hsm: str
    gap_after_usecs: int
    reboot_hsm: str
    reboot_after_usecs: int
    deleted_hsm: str
    deleted_at: str
    start_usecs: int


def quarter() -> Quarter:
    sim = ClusterSimulator(seed=5, hsm_count=3)
    start = sim.clock
    gap_after = reboot_after = 0
    for day in range(91):
        sim.clock = start + day * DAY
        sim.advance_to_hour(9)
        day_to_day(sim, sessions=1)
        if day == 30:
            gap_after = sim.clock
            sim.skip_sequence(1, 3)
        if day == 60:
            reboot_after = sim.clock
            sim.reboot(0)
    serving = sim.login("hostile", CU)
    sim.logout("hostile", CU, serving)
    deleted = sim.hsms[2].hsm_id
    call = sim.api_call("DeleteHsm", {"hsmId": deleted})
    events = [*parsed_events(sim.sorted_records()), *(cloudtrail_event(c) for c in sim.api_calls)]
    return Quarter(
        events,
        sim.hsms[1].hsm_id,
        gap_after,
        sim.hsms[0].hsm_id,
        reboot_after,
        deleted,
        call["eventTime"].replace("Z", ".000000Z"),
        start,
    )


@pytest.fixture(scope="module")
def planted() -> Quarter:
    return quarter()


@pytest.fixture(scope="module")
def report(planted: Quarter) -> dict[str, Any]:
    return build_report(planted.events)


def test_the_gap_appears_on_its_hsm_right_after_the_day_it_was_planted(
    planted: Quarter, report: dict[str, Any]
) -> None:
    [gap] = report["integrity"]["sequence_gap"]
    assert gap["hsm_id"] == planted.gap_hsm
    assert gap["details"]["missing"] == 3
    assert format_usecs(planted.gap_after_usecs) < gap["time"] < format_usecs(planted.gap_after_usecs + DAY)


def test_the_reboot_is_listed_with_its_time_and_counters(planted: Quarter, report: dict[str, Any]) -> None:
    [stream] = [s for s in report["streams"] if s["hsm_id"] == planted.reboot_hsm]
    [reboot] = stream["reboots"]
    assert reboot["to"] == reboot["from"] + 1
    assert (
        format_usecs(planted.reboot_after_usecs)
        < reboot["time"]
        < format_usecs(planted.reboot_after_usecs + DAY)
    )
    ranges = stream["sequence_ranges"]
    assert [r["reboot_counter"] for r in ranges] == [reboot["from"], reboot["to"]]
    assert ranges[1]["first_sequence_no"] == 0
    assert not report["integrity"]["sequence_reset"]  # a reboot is not a reset


def test_the_delete_hsm_call_is_a_control_plane_action_and_an_alert(
    planted: Quarter, report: dict[str, Any]
) -> None:
    [call] = [c for c in report["control_plane"] if c["action"] == "DeleteHsm"]
    assert (call["hsm_id"], call["time"], call["user_name"]) == (
        planted.deleted_hsm,
        planted.deleted_at,
        "HsmAdmin/ops-admin",
    )
    deletions = [a for a in report["alerts"]["list"] if a["rule"] == "hsm-or-cluster-deleted"]
    assert [a["time"] for a in deletions] == [planted.deleted_at]


def test_activity_retention_and_pci_sections(planted: Quarter, report: dict[str, Any]) -> None:
    days = report["activity_by_day"]
    assert len(days) == 91
    assert sum(d["records"] for d in days) == sum(
        1 for e in planted.events if e.record_format != "cloudtrail"
    )
    assert all(d["logins"] >= 1 for d in days)
    assert report["retention"]["days_covered"] == 90
    assert report["retention"]["meets_3_months_at_hand"] is True
    assert report["retention"]["meets_12_months"] is False
    assert [p["requirement"] for p in report["pci_dss"]] == ["10.2", "10.3", "10.5.1", "10.7.2"]
    for section in report["pci_dss"]:
        assert set(section["sections"]) <= set(report)


def test_same_data_in_any_order_gives_the_same_report_and_digests(
    planted: Quarter, report: dict[str, Any]
) -> None:
    shuffled = list(planted.events)
    random.Random(3).shuffle(shuffled)
    again = build_report(shuffled + shuffled[:10])  # redelivered copies change nothing
    assert again == report
    assert compare_digests(report, again) == []
    assert render_html(again) == render_html(report)


def test_one_changed_record_changes_the_data_digest(planted: Quarter, report: dict[str, Any]) -> None:
    from hsmaudit.records.parse import parse_message

    events = list(planted.events)
    victim = next(i for i, e in enumerate(events) if e.opcode == "CN_LOGIN" and e.raw)
    raw = events[victim].raw
    assert raw is not None
    events[victim] = parse_message(
        raw.replace("CN_LOGIN", "CN_LOGOUT"),
        log_group=events[victim].log_group,
        log_stream=events[victim].log_stream,
    )
    changed = build_report(events)
    assert changed["digests"]["data"] != report["digests"]["data"]
    assert any("data changed" in change for change in compare_digests(report, changed))


def test_a_period_reports_only_its_events(planted: Quarter) -> None:
    since = planted.start_usecs + 10 * DAY
    period = Period(since_usecs=since, until_usecs=since + 7 * DAY)
    week = build_report(planted.events, period)
    assert len(week["activity_by_day"]) == 7
    assert week["period"]["since"] == format_usecs(since)
    assert not week["integrity"]["sequence_gap"]


def test_hostile_strings_are_escaped_in_the_html() -> None:
    hostile = '<script>alert(1)</script>"><img src=x onerror=alert(2)>'
    sim = ClusterSimulator(seed=2, hsm_count=2)
    sim.failed_login(hostile, CU)  # the user name reaches the alert table
    sim.api_call("DeleteHsm", {"hsmId": "hsm-x"}, operator=hostile)
    events = [*parsed_events(sim.sorted_records()), *(cloudtrail_event(c) for c in sim.api_calls)]
    page = render_html(build_report(events))
    assert "<script" not in page.lower()
    assert "<img" not in page.lower()
    assert "&lt;script&gt;alert(1)&lt;/script&gt;&quot;&gt;&lt;img src=x onerror=alert(2)&gt;" in page
    assert "default-src 'none'" in page


def test_a_splunk_export_gives_the_same_report_as_the_store(
    planted: Quarter, report: dict[str, Any], tmp_path: Path
) -> None:
    lines = []
    for event in planted.events:
        if event.record_format == "cloudtrail":
            row = {key: value for key, value in event_to_dict(event).items() if value is not None}
        else:  # lean events: the record text with host and source, as Splunk returns _raw
            row = {"_raw": event.raw, "host": event.log_stream, "source": event.log_group}
        lines.append(
            json.dumps({"result": {k: v if isinstance(v, str | dict) else str(v) for k, v in row.items()}})
        )
    path = tmp_path / "export.json"
    path.write_text("\n".join(lines))
    exported = build_report(events_from_splunk_export(path, Period()))
    assert exported["digests"]["data"] == report["digests"]["data"]
    assert exported == report


def test_a_csv_export_of_raw_records_is_read_like_the_forwarder_reads_them(
    planted: Quarter, tmp_path: Path
) -> None:
    import csv

    audit = [e for e in planted.events if e.record_format != "cloudtrail"]
    path = tmp_path / "export.csv"
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=["_time", "host", "source", "_raw"])
        writer.writeheader()
        for event in audit:
            writer.writerow(
                {"_time": event.time, "host": event.log_stream, "source": event.log_group, "_raw": event.raw}
            )
    exported = build_report(events_from_splunk_export(path, Period()))
    assert exported == build_report(audit)
    assert exported["digests"]["events"] == len(audit)


def test_the_page_names_its_period_in_words_and_its_sections_by_title() -> None:
    """Without --since/--until the page said "start to end" and was titled "- to -"; the PCI DSS
    table listed section ids as JSON (`["activity_by_day", ...]`)."""
    sim = ClusterSimulator(seed=3, hsm_count=2)
    day_to_day(sim, sessions=1)
    sim.api_call("DeleteHsm", {"hsmId": sim.hsms[1].hsm_id})
    events = [*parsed_events(sim.sorted_records()), *(cloudtrail_event(c) for c in sim.api_calls)]
    whole = build_report(events)
    page = render_html(whole)
    first, last = whole["period"]["first_event"], whole["period"]["last_event"]
    assert f"<title>CloudHSM audit report {first} to {last}</title>" in page
    assert "<td>all the data read (no --since or --until)</td>" in page
    assert "start to end" not in page and "- to -" not in page
    assert "<td>Activity by day, Control plane</td>" in page and "&quot;activity_by_day" not in page
    assert "<p class=ok>none found</p>" in page  # the integrity tables this stream has nothing for
    assert f"<td class=t>{first}</td>" in page  # timestamps and ids are not split at hyphens
    assert f"<td class=t>{sim.hsms[1].hsm_id}</td>" in page  # the control-plane table
    assert "td.t{white-space:nowrap}" in page
    since = events[1].usecs
    assert since is not None
    bounded = render_html(build_report(events, Period(since_usecs=since)))
    assert f"<td>{format_usecs(since)} to the last event</td>" in bounded
    assert f"<title>CloudHSM audit report {format_usecs(since)} to {last}</title>" in bounded
