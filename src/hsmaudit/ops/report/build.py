"""The report's sections, computed from the events and the period alone.

What an assessor asks of an HSM audit trail (PCI DSS v4 requirement 10) is answered from the data,
section by section: which records exist for every HSM (sequence ranges per reboot), where the trail
is broken (gaps, resets, duplicates, silent periods), what people did (logins, user and key
management, critical commands, by day), what happened outside the HSM (CloudTrail's CloudHSM API
calls), which alerts the detections raise, and how far back the data goes.

The report is a pure function of the events and the period: no wall clock, sorted everywhere, so
the same data gives the same report and the same digests (`digests.py`).
"""

from __future__ import annotations

import bisect
from collections import Counter, defaultdict
from collections.abc import Iterable
from typing import Any, Final

from hsmaudit import __version__
from hsmaudit.detect.engine import DetectionConfig, detect_events
from hsmaudit.detect.silence import DEFAULT_SILENT_AFTER_USECS
from hsmaudit.ops.report.digests import content_id, data_digest, report_digest
from hsmaudit.ops.report.pci import PCI_SECTIONS
from hsmaudit.ops.report.period import Period
from hsmaudit.records.event import HsmEvent
from hsmaudit.records.time import format_usecs

REPORT_FORMAT: Final = "hsmaudit-report/1"
DAY_USECS: Final = 86_400_000_000
RETENTION_DAYS_REQUIRED: Final = 365
RETENTION_DAYS_AT_HAND: Final = 90

_USER_MANAGEMENT: Final = frozenset({"user_management", "quorum"})
_KEY_MANAGEMENT: Final = frozenset({"key_management"})


def build_report(
    events: Iterable[HsmEvent],
    period: Period = Period(),
    *,
    silent_after_usecs: int = DEFAULT_SILENT_AFTER_USECS,
) -> dict[str, Any]:
    """The report as plain JSON data (deterministic for the same events and period)."""
    ordered = sorted(
        (event for event in events if period.holds(event.usecs)),
        key=lambda e: (e.usecs if e.usecs is not None else -1, e.event_id or "", e.hsm_id or ""),
    )
    unique: dict[str, HsmEvent] = {}
    for event in ordered:
        unique.setdefault(event.event_id or content_id(event), event)
    ordered = list(unique.values())
    audit = [e for e in ordered if e.record_format != "cloudtrail"]
    calls = [e for e in ordered if e.record_format == "cloudtrail"]
    config = DetectionConfig(silent_after_usecs=silent_after_usecs)
    alerts = sorted(
        detect_events(ordered, config),
        key=lambda a: (a.time or "", a.rule, a.hsm_id or "", ",".join(a.event_ids)),
    )
    report: dict[str, Any] = {
        "format": REPORT_FORMAT,
        "generator": f"hsmaudit {__version__}",
        "period": _period_section(period, ordered),
        "streams": _streams(audit),
        "integrity": _integrity(audit, alerts, silent_after_usecs, period),
        "activity_by_day": _activity(audit),
        "control_plane": [_call_row(event) for event in calls],
        "alerts": {
            "by_rule": dict(sorted(Counter(a.rule for a in alerts).items())),
            "list": [
                {
                    "time": a.time,
                    "rule": a.rule,
                    "severity": a.severity,
                    "title": a.title,
                    "cluster_id": a.cluster_id,
                    "hsm_id": a.hsm_id,
                    "user_name": a.user_name,
                    "event_ids": sorted(a.event_ids),
                }
                for a in alerts
            ],
        },
        "retention": _retention(ordered),
        "pci_dss": [
            {"requirement": number, "title": title, "sections": list(sections), "evidence": evidence}
            for number, title, sections, evidence in PCI_SECTIONS
        ],
    }
    report["digests"] = {
        "data": data_digest(ordered),
        "events": len(ordered),
        "report": report_digest(report),
    }
    return report


def _time(usecs: int | None) -> str | None:
    return format_usecs(usecs) if usecs is not None else None


def _period_section(period: Period, events: list[HsmEvent]) -> dict[str, Any]:
    times = [e.usecs for e in events if e.usecs is not None]
    return {
        "since": _time(period.since_usecs),
        "until": _time(period.until_usecs),
        "first_event": _time(min(times)) if times else None,
        "last_event": _time(max(times)) if times else None,
        "events": len(events),
        "clusters": sorted({e.cluster_id for e in events if e.cluster_id}),
        "hsms": sorted({e.hsm_id for e in events if e.hsm_id and e.record_format != "cloudtrail"}),
    }


def _streams(audit: list[HsmEvent]) -> list[dict[str, Any]]:
    by_hsm: dict[tuple[str, str], list[HsmEvent]] = defaultdict(list)
    for event in audit:
        by_hsm[(event.cluster_id or "", event.hsm_id or event.log_stream or "")].append(event)
    streams = []
    for (cluster_id, hsm_id), events in sorted(by_hsm.items()):
        ranges: dict[int, dict[str, Any]] = {}
        reboots = []
        previous: int | None = None
        for event in events:
            reboot = event.reboot_counter
            if reboot is None:
                continue
            if previous is not None and reboot != previous:
                reboots.append({"time": event.time, "from": previous, "to": reboot})
            previous = reboot
            seq = event.sequence_no
            if seq is None:
                continue
            row = ranges.setdefault(
                reboot, {"reboot_counter": reboot, "first_sequence_no": seq, "last_sequence_no": seq}
            )
            row["first_sequence_no"] = min(row["first_sequence_no"], seq)
            row["last_sequence_no"] = max(row["last_sequence_no"], seq)
            row["records"] = row.get("records", 0) + 1
            row.setdefault("first_time", event.time)
            row["last_time"] = event.time
        streams.append(
            {
                "cluster_id": cluster_id or None,
                "hsm_id": hsm_id or None,
                "records": len(events),
                "first_time": events[0].time,
                "last_time": events[-1].time,
                "sequence_ranges": [ranges[key] for key in sorted(ranges)],
                "reboots": reboots,
            }
        )
    return streams


_INTEGRITY_RULES: Final = (
    "sequence-gap",
    "sequence-reset",
    "sequence-duplicate",
    "hsm-silent",
    "hsm-removed-while-active",
)


def _integrity(
    audit: list[HsmEvent], alerts: list[Any], silent_after_usecs: int, period: Period
) -> dict[str, Any]:
    section: dict[str, Any] = {
        rule.replace("-", "_"): [
            {
                "time": a.time,
                "cluster_id": a.cluster_id,
                "hsm_id": a.hsm_id,
                "details": a.details,
                "event_ids": sorted(a.event_ids),
            }
            for a in alerts
            if a.rule == rule
        ]
        for rule in _INTEGRITY_RULES
    }
    section["silent_periods"] = _silent_periods(audit, silent_after_usecs, period)
    return section


def _silent_periods(audit: list[HsmEvent], silent_after_usecs: int, period: Period) -> list[dict[str, Any]]:
    """Stretches of at least `silent_after` in which an HSM wrote nothing while its cluster did."""
    cluster_times: dict[str, list[int]] = defaultdict(list)
    hsm_times: dict[tuple[str, str], list[int]] = defaultdict(list)
    for event in audit:
        if event.usecs is None or not event.hsm_id:
            continue
        cluster_times[event.cluster_id or ""].append(event.usecs)
        hsm_times[(event.cluster_id or "", event.hsm_id)].append(event.usecs)
    found = []
    for (cluster_id, hsm_id), times in sorted(hsm_times.items()):
        others = cluster_times[cluster_id]  # already in time order (events are sorted)
        end = period.until_usecs if period.until_usecs is not None else others[-1]
        for start, stop in zip(times, [*times[1:], end], strict=True):
            if stop - start < silent_after_usecs:
                continue
            logged = bisect.bisect_left(others, stop) - bisect.bisect_right(others, start)
            if logged > 0:
                found.append(
                    {
                        "cluster_id": cluster_id or None,
                        "hsm_id": hsm_id,
                        "from": format_usecs(start),
                        "to": format_usecs(stop),
                        "seconds": (stop - start) // 1_000_000,
                        "cluster_records_meanwhile": logged,
                        "open": stop == end and stop != times[-1],
                    }
                )
    return found


def _activity(audit: list[HsmEvent]) -> list[dict[str, Any]]:
    days: dict[str, Counter[str]] = defaultdict(Counter)
    for event in audit:
        if event.time is None:
            continue
        day = days[event.time[:10]]
        day["records"] += 1
        if event.opcode == "CN_LOGIN":
            day["logins_failed" if event.success is False else "logins"] += 1
        if event.category in _USER_MANAGEMENT:
            day["user_management"] += 1
        if event.category in _KEY_MANAGEMENT:
            day["key_management"] += 1
        if event.severity == "critical":
            day["critical"] += 1
        if event.parse_error is not None:
            day["unparsed"] += 1
    keys = ("records", "logins", "logins_failed", "user_management", "key_management", "critical", "unparsed")
    return [{"day": day, **{key: days[day][key] for key in keys}} for day in sorted(days)]


def _call_row(event: HsmEvent) -> dict[str, Any]:
    extra = event.extra or {}
    return {
        "time": event.time,
        "action": event.opcode,
        "severity": event.severity,
        "outcome": event.outcome,
        "user_name": event.user_name,
        "cluster_id": event.cluster_id,
        "hsm_id": event.hsm_id,
        "backup_id": extra.get("backupId"),
        "source_ip": extra.get("sourceIPAddress"),
        "event_id": event.event_id,
    }


def _retention(events: list[HsmEvent]) -> dict[str, Any]:
    times = [e.usecs for e in events if e.usecs is not None]
    if not times:
        return {"first_event": None, "last_event": None, "days_covered": 0, "meets_12_months": False}
    days = (max(times) - min(times)) // DAY_USECS
    return {
        "first_event": format_usecs(min(times)),
        "last_event": format_usecs(max(times)),
        "days_covered": days,
        "meets_12_months": days >= RETENTION_DAYS_REQUIRED,
        "meets_3_months_at_hand": days >= RETENTION_DAYS_AT_HAND,
        "note": "Covers only the data this report read; the retention settings of the log group, "
        "the index and the archive decide what is kept (PCI DSS v4 10.5.1).",
    }
