"""The report as a printable HTML page: no scripts, no external resources, every value escaped."""

from __future__ import annotations

import html
import json
from typing import Any, Final

from hsmaudit.ops.report.pci import PCI_SECTIONS

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
