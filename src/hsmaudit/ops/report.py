"""`hsmaudit report`: an auditor-ready account of a period, from the events alone.

What an assessor asks of an HSM audit trail (PCI DSS v4 requirement 10) is answered from the data,
section by section: which records exist for every HSM (sequence ranges per reboot), where the trail
is broken (gaps, resets, duplicates, silent periods), what people did (logins, user and key
management, critical commands, by day), what happened outside the HSM (CloudTrail's CloudHSM API
calls), which alerts the detections raise, and how far back the data goes.

The report is a pure function of the events and the period: no wall clock, sorted everywhere, so
the same data gives the same report and the same digests. `data_digest` covers the events the
report read (their content-aware `event_id`s); `report_digest` covers the report's content. A later
run over the same data shows nothing changed (`hsmaudit report --check previous.json`).

Inputs are `HsmEvent`s: from the local store, or from a Splunk export (JSON lines, a JSON array or
CSV of search results: the JSON event's fields, or `_raw` record text with `host`/`source`).
"""

from __future__ import annotations

import bisect
import csv
import hashlib
import html
import io
import json
from collections import Counter, defaultdict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import msgspec

from hsmaudit import __version__
from hsmaudit.detect.engine import DetectionConfig, detect_events
from hsmaudit.errors import HsmauditError
from hsmaudit.records.event import FIELD_NAMES, HsmEvent, event_from_dict
from hsmaudit.records.parse import parse_message
from hsmaudit.records.time import format_usecs

REPORT_FORMAT: Final = "hsmaudit-report/1"
DAY_USECS: Final = 86_400_000_000
DEFAULT_SILENT_AFTER_USECS: Final = 3_600_000_000
RETENTION_DAYS_REQUIRED: Final = 365
RETENTION_DAYS_AT_HAND: Final = 90

_USER_MANAGEMENT: Final = frozenset({"user_management", "quorum"})
_KEY_MANAGEMENT: Final = frozenset({"key_management"})

PCI_SECTIONS: Final = (
    (
        "10.2",
        "Audit logs capture user activity and events relevant to security",
        ("activity_by_day", "control_plane"),
        "every login, user and key management command and critical command by day; the CloudHSM API "
        "calls that do not appear in the HSM's own log",
    ),
    (
        "10.3",
        "Audit logs are protected from destruction and unauthorised modification",
        ("streams", "integrity"),
        "per-HSM sequence ranges with every gap, reset and duplicate (a forged twin of a record is a "
        "duplicate); report and data digests",
    ),
    (
        "10.5.1",
        "Audit log history is retained for at least 12 months, 3 months immediately available",
        ("retention",),
        "the first and last record this data holds and the days between",
    ),
    (
        "10.7.2",
        "Failures of critical security control systems (audit logging) are detected and reported",
        ("integrity", "alerts"),
        "silent periods and gaps with their times, and the alerts the detections raised for them",
    ),
)


class ReportInputError(HsmauditError, ValueError):
    """An export file that is not JSON lines, a JSON array or CSV of search results."""


@dataclass(frozen=True, slots=True)
class Period:
    """The period a report covers: `since` inclusive, `until` exclusive (None: open)."""

    since_usecs: int | None = None
    until_usecs: int | None = None

    def holds(self, usecs: int | None) -> bool:
        """Whether an event time lies in the period (an event without a time is always reported)."""
        if usecs is None:
            return True
        if self.since_usecs is not None and usecs < self.since_usecs:
            return False
        return self.until_usecs is None or usecs < self.until_usecs


# --- inputs ------------------------------------------------------------------------------------


def events_from_store(path: Path, period: Period) -> list[HsmEvent]:
    """Every stored event in the period (the store's reader; no writes)."""
    from hsmaudit.store.database import EventStore
    from hsmaudit.store.query import EventFilter

    store = EventStore(path)
    try:
        filters = EventFilter(since_usecs=period.since_usecs, until_usecs=period.until_usecs)
        return [event for _, event in store.iter_events(filters)]
    finally:
        store.close()


def events_from_splunk_export(path: Path, period: Period) -> list[HsmEvent]:
    """Events from a Splunk search export: JSON lines (`{"result": {...}}` or flat), a JSON array, or CSV."""
    text = path.read_text(encoding="utf-8", errors="surrogateescape")
    rows: list[dict[str, Any]] = []
    stripped = text.lstrip()
    if path.suffix.lower() == ".csv" or (stripped and stripped[0] not in "[{"):
        rows = list(csv.DictReader(io.StringIO(text)))
    elif stripped.startswith("["):
        try:
            loaded = json.loads(text)
        except ValueError as error:
            raise ReportInputError(f"{path}: not a JSON array of results ({error})") from error
        rows = [row for row in loaded if isinstance(row, dict)]
    else:
        for number, line in enumerate(text.splitlines(), 1):
            if not line.strip():
                continue
            try:
                value = json.loads(line)
            except ValueError as error:
                raise ReportInputError(f"{path}:{number}: not JSON ({error})") from error
            if isinstance(value, dict):
                rows.append(value.get("result", value) if isinstance(value.get("result"), dict) else value)
    events = [_event_from_result(row) for row in rows]
    return [event for event in events if period.holds(event.usecs)]


def _event_from_result(row: dict[str, Any]) -> HsmEvent:
    """One search result: the contract's fields when present, else the record text in `_raw`."""
    fields = {name: row[name] for name in FIELD_NAMES if name in row and row[name] not in ("", None)}
    if fields.get("event_id") and fields.get("usecs") is not None:
        try:
            return event_from_dict(_typed(fields))
        except (msgspec.ValidationError, ValueError, TypeError):
            pass
    raw = row.get("_raw") or row.get("raw")
    if isinstance(raw, str) and raw:
        return parse_message(raw, log_group=_text(row.get("source")), log_stream=_text(row.get("host")))
    return HsmEvent(parse_error="Splunk result without event fields or _raw", raw=json.dumps(row)[:4096])


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def _typed(fields: dict[str, Any]) -> dict[str, Any]:
    """CSV and Splunk's JSON give every value as text: turn numbers and booleans back."""
    info = msgspec.inspect.type_info(HsmEvent)
    assert isinstance(info, msgspec.inspect.StructType)
    kinds = {field.name: field.type for field in info.fields}
    typed: dict[str, Any] = {}
    for name, given in fields.items():
        kind = kinds[name]
        options = kind.types if isinstance(kind, msgspec.inspect.UnionType) else (kind,)
        value: Any = given
        if isinstance(given, str):
            if any(isinstance(o, msgspec.inspect.BoolType) for o in options):
                value = given.lower() == "true"
            elif any(isinstance(o, msgspec.inspect.IntType) for o in options):
                value = int(given)
            elif any(isinstance(o, msgspec.inspect.DictType) for o in options):
                value = json.loads(given)
        typed[name] = value
    return typed


# --- the report ---------------------------------------------------------------------------------


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
        unique.setdefault(event.event_id or _content_id(event), event)
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


def _content_id(event: HsmEvent) -> str:
    return hashlib.sha256(msgspec.json.encode(event)).hexdigest()


def data_digest(events: Iterable[HsmEvent]) -> str:
    """SHA-256 over the sorted event ids (content-aware: a changed record changes its id)."""
    digest = hashlib.sha256()
    for event_id in sorted(event.event_id or _content_id(event) for event in events):
        digest.update(event_id.encode() + b"\n")
    return "sha256:" + digest.hexdigest()


def report_digest(report: dict[str, Any]) -> str:
    """SHA-256 of the report's canonical JSON, without its own digests."""
    body = {key: value for key, value in report.items() if key != "digests"}
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return "sha256:" + hashlib.sha256(canonical.encode()).hexdigest()


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


def compare_digests(previous: dict[str, Any], current: dict[str, Any]) -> list[str]:
    """What changed between two reports of the same period: empty when nothing did."""
    changes = []
    before, now = previous.get("digests", {}), current.get("digests", {})
    if (
        previous.get("period", {}).get("since") != current["period"]["since"]
        or previous.get("period", {}).get("until") != current["period"]["until"]
    ):
        changes.append("the reports cover different periods")
    if before.get("data") != now.get("data"):
        changes.append(f"data changed: {before.get('events')} -> {now.get('events')} events, digest differs")
    if before.get("report") != now.get("report"):
        changes.append("report content changed")
    return changes


# --- HTML -----------------------------------------------------------------------------------------

_CSS: Final = """
body{font:14px/1.45 system-ui,sans-serif;margin:2rem auto;max-width:72rem;padding:0 1rem;color:#111}
h1{font-size:1.6rem}h2{border-bottom:2px solid #333;margin-top:2rem;font-size:1.2rem}
table{border-collapse:collapse;width:100%;margin:.5rem 0 1rem}
th,td{border:1px solid #bbb;padding:.25rem .45rem;text-align:left;vertical-align:top}
th{background:#eee}td.num{text-align:right;font-variant-numeric:tabular-nums}td.t{white-space:nowrap}
.ok{color:#064}.bad{color:#a00;font-weight:600}code{font-size:.85em;word-break:break-all}
.pci{font-size:.85rem;color:#444}.wrap{overflow-x:auto;max-width:100%}
@media print{body{margin:0;max-width:none}.wrap{overflow:visible}h2{break-after:avoid}tr{break-inside:avoid}}
"""


def _esc(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, dict | list):
        return html.escape(json.dumps(value, sort_keys=True), quote=True)
    return html.escape(str(value), quote=True)


# Timestamps and ids are read and compared whole: never split at their hyphens.
_WHOLE_COLUMNS: Final = frozenset(
    {"time", "first_time", "last_time", "from", "to", "first_event", "last_event"}
    | {"cluster_id", "hsm_id", "backup_id"}
)


def _table(rows: list[dict[str, Any]], columns: list[str], empty: str) -> str:
    if not rows:
        return f"<p class=ok>{_esc(empty)}</p>"
    head = "".join(f"<th>{_esc(c.replace('_', ' '))}</th>" for c in columns)
    body = []
    for row in rows:
        cells = []
        for column in columns:
            value = row.get(column)
            kind = " class=num" if isinstance(value, int) and not isinstance(value, bool) else ""
            if column in _WHOLE_COLUMNS and value:
                kind = " class=t"
            cells.append(f"<td{kind}>{_esc(value)}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    table = f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"
    return f"<div class=wrap>{table}</div>"  # a wide table scrolls on its own on a phone


def _pci_note(section: str) -> str:
    numbers = [number for number, _, sections, _ in PCI_SECTIONS if section in sections]
    return f"<p class=pci>Evidence for PCI DSS v4 {_esc(', '.join(numbers))}</p>" if numbers else ""


_SECTION_TITLES: Final = {
    "streams": "Audit streams",
    "integrity": "Integrity",
    "activity_by_day": "Activity by day",
    "control_plane": "Control plane",
    "alerts": "Alerts raised",
    "retention": "Retention",
}


def _period_text(period: dict[str, Any]) -> str:
    """The period in words: without --since/--until the report covers all the data it read
    (it said "start to end", and the page title "- to -")."""
    since, until = period["since"], period["until"]
    if not since and not until:
        return "all the data read (no --since or --until)"
    return f"{since or 'the first event'} to {until or 'the last event'}"


def render_html(report: dict[str, Any]) -> str:
    """A printable page: no scripts, no external resources, every value escaped."""
    period = report["period"]
    integrity = report["integrity"]
    first = period["since"] or period["first_event"]
    last = period["until"] or period["last_event"]
    span = f" {first} to {last}" if first and last else ""
    pci_rows = [
        {**row, "sections": ", ".join(_SECTION_TITLES.get(name, name) for name in row["sections"])}
        for row in report["pci_dss"]
    ]
    parts: list[str] = [
        "<!doctype html><html lang=en><head><meta charset=utf-8>",
        "<meta http-equiv=Content-Security-Policy content=\"default-src 'none'; style-src 'unsafe-inline'\">",
        "<meta name=viewport content='width=device-width,initial-scale=1'>",
        f"<title>CloudHSM audit report{_esc(span)}</title>",
        f"<style>{_CSS}</style></head><body>",
        "<h1>CloudHSM audit report</h1>",
        _table(
            [
                {"item": "period", "value": _period_text(period)},
                {"item": "events read", "value": period["events"]},
                {"item": "first / last event", "value": f"{period['first_event']} / {period['last_event']}"},
                {"item": "clusters", "value": ", ".join(period["clusters"]) or "-"},
                {"item": "HSMs", "value": ", ".join(period["hsms"]) or "-"},
                {"item": "data digest", "value": report["digests"]["data"]},
                {"item": "report digest", "value": report["digests"]["report"]},
                {"item": "generator", "value": report["generator"]},
            ],
            ["item", "value"],
            "",
        ),
        "<h2>PCI DSS v4 requirements and where this report evidences them</h2>",
        _table(pci_rows, ["requirement", "title", "sections", "evidence"], ""),
        "<h2 id=streams>Audit streams: sequence ranges and reboots</h2>",
        _pci_note("streams"),
    ]
    for stream in report["streams"]:
        parts.append(
            f"<h3>{_esc(stream['hsm_id'])} <small>({_esc(stream['cluster_id'])}, {stream['records']} "
            f"records, {_esc(stream['first_time'])} to {_esc(stream['last_time'])})</small></h3>"
        )
        parts.append(
            _table(
                stream["sequence_ranges"],
                [
                    "reboot_counter",
                    "first_sequence_no",
                    "last_sequence_no",
                    "records",
                    "first_time",
                    "last_time",
                ],
                "no sequenced records",
            )
        )
        if stream["reboots"]:
            parts.append(_table(stream["reboots"], ["time", "from", "to"], ""))
    parts += ["<h2 id=integrity>Integrity: gaps, resets, duplicates, silence</h2>", _pci_note("integrity")]
    titles = {
        "sequence_gap": "Sequence gaps",
        "sequence_reset": "Sequence resets",
        "sequence_duplicate": "Duplicates (different records at one position)",
        "hsm_silent": "HSMs that stopped logging",
        "hsm_removed_while_active": "HSMs deleted while logging",
    }
    for key, title in titles.items():
        parts.append(f"<h3>{_esc(title)}</h3>")
        parts.append(
            _table(
                integrity[key],
                ["time", "cluster_id", "hsm_id", "details", "event_ids"],
                "none found",
            )
        )
    parts.append("<h3>Silent periods (the HSM wrote nothing while its cluster did)</h3>")
    parts.append(
        _table(
            integrity["silent_periods"],
            ["cluster_id", "hsm_id", "from", "to", "seconds", "cluster_records_meanwhile", "open"],
            "none: every HSM logged whenever its cluster did",
        )
    )
    parts += [
        "<h2 id=activity_by_day>Activity by day</h2>",
        _pci_note("activity_by_day"),
        _table(
            report["activity_by_day"],
            [
                "day",
                "records",
                "logins",
                "logins_failed",
                "user_management",
                "key_management",
                "critical",
                "unparsed",
            ],
            "no audit records in the period",
        ),
        "<h2 id=control_plane>Control plane (CloudTrail CloudHSM API calls)</h2>",
        _pci_note("control_plane"),
        _table(
            report["control_plane"],
            [
                "time",
                "action",
                "severity",
                "outcome",
                "user_name",
                "cluster_id",
                "hsm_id",
                "backup_id",
                "source_ip",
            ],
            "no CloudTrail records in the data (load them with hsmaudit parse or the collector)",
        ),
        "<h2 id=alerts>Alerts raised</h2>",
        _pci_note("alerts"),
        _table(
            [{"rule": rule, "count": count} for rule, count in report["alerts"]["by_rule"].items()],
            ["rule", "count"],
            "no alerts",
        ),
        _table(
            report["alerts"]["list"],
            ["time", "rule", "severity", "title", "cluster_id", "hsm_id", "user_name"],
            "no alerts",
        ),
        "<h2 id=retention>Retention</h2>",
        _pci_note("retention"),
        _table([report["retention"]], list(report["retention"]), ""),
        "</body></html>",
    ]
    return "\n".join(parts) + "\n"


def render_json(report: dict[str, Any]) -> str:
    """The report as indented JSON (sorted keys: byte-identical for the same data)."""
    return json.dumps(report, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def iter_inputs(paths: Iterable[Path], period: Period) -> Iterator[HsmEvent]:
    """Events of several Splunk exports, in file order."""
    for path in paths:
        yield from events_from_splunk_export(path, period)
