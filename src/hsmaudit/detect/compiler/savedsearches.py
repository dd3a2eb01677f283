"""Phase 4b: `savedsearches.conf`, one scheduled alert stanza per rule id plus the dedup report.

Scheduling (cron, event-time and index-time windows that tile between runs), throttling (checked
against each search's final fields) and severity of every stanza; the searches come from `spl`.
Where the file goes is the caller's (`OutputPaths.savedsearches`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Final

from hsmaudit.detect.compiler.ruleset import STATEFUL_META
from hsmaudit.detect.compiler.spl import (
    ALERT_KEY,
    opcode_terms,
    severity_eval,
    spl_brute_force,
    spl_duplicates,
    spl_folded,
    spl_hsm_removed_while_active,
    spl_hsm_silent,
    spl_sequence_duplicate,
    spl_sequence_gap,
    spl_sequence_reset,
)
from hsmaudit.detect.compiler.targets import CLOUDTRAIL_MACRO, GENERATED_NOTE, MACRO
from hsmaudit.detect.errors import RuleError
from hsmaudit.detect.folding import FOLDED_RULES

# Splunk alert.severity: 1 debug, 2 info, 3 warn, 4 error, 5 severe, 6 fatal (savedsearches.conf.spec).
_SPLUNK_SEVERITY: Final[dict[str, int]] = {"info": 2, "medium": 3, "high": 4, "critical": 5}


@dataclass(frozen=True, slots=True)
class _Stanza:
    rule_id: str
    title: str
    description: str
    search: str
    severity: str
    cron: str
    earliest: str
    latest: str
    index_window: tuple[str, str] | None
    suppress_fields: str
    suppress_period: str
    allow_skew: str = "20%"


SINGLE_EVENT_LAG_MINUTES: Final = 60
"""How late (index time after HSM time) a record may arrive and still raise a single-event alert:
CloudWatch Logs -> Lambda delivers in seconds, Firehose buffers up to 15 minutes and retries; a
replay after a longer outage is checked with `hsmaudit detect` (docs/detections.md)."""

SEQUENCE_LOOKBACK: Final = "-2h@m"
SEQUENCE_SETTLE: Final = "-5m@m"
"""The sequence checks compare neighbouring records of one stream within the last 2 hours, up to
5 minutes ago (a record still in flight is not yet a gap): runs every 15 minutes overlap by
1 h 40 min, so every pair of neighbours less than that apart is compared at least once."""


INDEX_WINDOW: Final = ("-6m@m", "-1m@m")
"""Index time a single-event run looks at: the 5 minutes up to a minute ago (indexing latency)."""


def _single_stanza(entry: dict[str, Any], spl: str) -> _Stanza:
    if entry.get("logsource") == "cloudtrail":
        # The macro ends in the eval that maps CloudTrail's names to ours, so the condition is a
        # `search` after it (CloudHSM's control plane makes a handful of calls a day).
        base = f"{CLOUDTRAIL_MACRO} | search ({spl})"
    else:
        base = f"{MACRO} {opcode_terms(entry)}({spl})"
    folded = entry["id"] in FOLDED_RULES
    if folded:
        # One result per cluster action: the copies every HSM records fold (docs/detections.md).
        fields = (
            "_time cluster_id hsm_id user_name user_type opcode response_code response key_handle"
            " sequence_no copies hsms event_ids action_key"
        )
        # The copies of one action come from different HSM log streams and can be indexed in
        # different runs' index windows; each run would fold only the copies it sees and alert
        # again. So a folded rule reads every copy by event time and alerts in the one run whose
        # index window holds the action's first copy to be indexed (the same window the
        # dispatch.index_* settings give the other rules, from the scheduled time addinfo reports).
        earliest, latest = INDEX_WINDOW
        base = (
            f"{spl_folded(entry['id'], base)} | addinfo"
            f' | where first_indexed >= relative_time(info_max_time, "{earliest}")'
            f' AND first_indexed < relative_time(info_max_time, "{latest}")'
        )
    else:
        fields = (
            "_time cluster_id hsm_id user_name user_type opcode response_code response key_handle"
            " sequence_no event_id alert_key"
        )
        base = f"{base} | {ALERT_KEY} | dedup alert_key"
    search = (
        f"{base}"
        f" | {severity_eval(entry['severity'])} "
        f'| eval rule="{entry["id"]}" | table {fields} rule alert_severity'
    )
    return _Stanza(
        rule_id=entry["id"],
        title=entry["title"],
        description=entry["description"],
        search=search,
        severity=entry["severity"],
        cron="*/5 * * * *",
        # By index time: consecutive runs' index windows tile (continuous scheduling), so every
        # record is looked at exactly once, however late it was indexed within the lag; the
        # event-time window (the 5-minute period plus the lag) is what Splunk reads.
        earliest=f"-{5 + SINGLE_EVENT_LAG_MINUTES}m@m",
        latest="now",
        index_window=None if folded else INDEX_WINDOW,
        suppress_fields="action_key" if folded else "alert_key",
        # A second copy of a record can only turn up while the record is inside the event-time
        # window: suppressing its key for that long means a record (an action) alerts once.
        suppress_period=f"{5 + SINGLE_EVENT_LAG_MINUTES}m",
    )


_POSITION: Final = "cluster_id,stream,reboot_counter,sequence_no"
"""Throttle key of the sequence checks: one finding per position of one HSM stream (the stream is
`coalesce(hsm_id, host)`, so it exists when a sender gave no hsm_id)."""


def _stateful_stanzas(entries: dict[str, dict[str, Any]]) -> list[_Stanza]:
    def stanza(rule_id: str, search: str, **overrides: Any) -> _Stanza:
        entry = entries[rule_id]
        values: dict[str, Any] = {
            "rule_id": rule_id,
            "title": entry["title"],
            "description": entry["description"],
            "search": search,
            "severity": entry["severity"],
            "cron": "*/15 * * * *",
            "earliest": SEQUENCE_LOOKBACK,
            "latest": SEQUENCE_SETTLE,
            "index_window": None,
            "suppress_fields": "cluster_id,hsm_id",
            "suppress_period": "24h",
        }
        values.update(overrides)
        return _Stanza(**values)

    return [
        stanza("sequence-gap", spl_sequence_gap(), suppress_fields=_POSITION),
        stanza("sequence-reset", spl_sequence_reset(), suppress_fields=_POSITION),
        stanza("sequence-duplicate", spl_sequence_duplicate(), suppress_fields=_POSITION),
        # tstats reads the index's metadata (host, source, time), not events: 25 hours of it. A
        # silence (one last_seen) stays in the results for a day; throttled for as long, it
        # alerts once, and a new silence of the same HSM (a later last_seen) alerts again.
        stanza(
            "hsm-silent",
            spl_hsm_silent(),
            cron="*/30 * * * *",
            earliest="-25h@m",
            latest="now",
            suppress_fields="cluster_id,hsm_id,last_seen",
            suppress_period="25h",
        ),
        # A DeleteHsm call of the last hour (CloudTrail delivers within minutes, 15 at most as
        # AWS documents it; an hour leaves room), joined with the HSM's last record up to the
        # 10-minute active window before it: 75 minutes of events, every 15 minutes.
        stanza(
            "hsm-removed-while-active",
            spl_hsm_removed_while_active(),
            earliest="-75m@m",
            latest="now",
            suppress_fields="hsm_id,deletion_event_id",
        ),
    ]


def final_fields(spl: str) -> list[str]:
    """The result fields of a search that ends in `table`/`fields` (quotes respected); else []."""
    segments = re.split(r'\|(?=(?:[^"]*"[^"]*")*[^"]*$)', spl)
    last = segments[-1].strip()
    command, _, rest = last.partition(" ")
    if command not in {"table", "fields"} or rest.startswith("-"):
        return []
    return [name for name in re.split(r"[\s,]+", rest.removeprefix("+").strip()) if name]


def _check_throttle(stanza: _Stanza) -> None:
    """Splunk builds the per-result throttle key from the result's fields: a field the search does
    not return is empty in every result, so one alert would mute every other (Alerting Manual,
    "Throttle alerts"). Refuse such a stanza at compile time."""
    returned = set(final_fields(stanza.search))
    missing = [f for f in stanza.suppress_fields.split(",") if f.strip() not in returned]
    if missing:
        raise RuleError(
            f"throttle fields {missing} are not in the search's final fields", rule=stanza.rule_id
        )


def _render_stanza(stanza: _Stanza, *, alert: bool = True) -> str:
    lines = [
        f"[hsmaudit - {stanza.rule_id}]",
        f"description = {stanza.title}. {stanza.description}",
        f"search = {stanza.search}",
        # Shipped off: `hsmaudit_events` ships as index=*, and nothing should scan every index on
        # a schedule before the admin has set the index (docs/splunk-app.md, "Set up").
        "disabled = 1",
        "enableSched = 1",
        f"cron_schedule = {stanza.cron}",
        # Continuous scheduling: a delayed run is run late, never skipped, so the index-time
        # windows of consecutive runs tile without a hole (savedsearches.conf.spec).
        "realtime_schedule = 0",
        # Spread the start within a fifth of the period; the time range stays the scheduled one
        # (allow_data_time_skew defaults to false), so the windows still tile.
        f"allow_skew = {stanza.allow_skew}",
        f"dispatch.earliest_time = {stanza.earliest}",
        f"dispatch.latest_time = {stanza.latest}",
    ]
    if stanza.index_window is not None:
        lines += [
            f"dispatch.index_earliest = {stanza.index_window[0]}",
            f"dispatch.index_latest = {stanza.index_window[1]}",
        ]
    if alert:
        _check_throttle(stanza)
        lines += [
            "counttype = number of events",
            "relation = greater than",
            "quantity = 0",
            "alert.track = 1",
            f"alert.severity = {_SPLUNK_SEVERITY[stanza.severity]}",
            "alert.digest_mode = 0",
            "alert.suppress = 1",
            f"alert.suppress.fields = {stanza.suppress_fields}",
            f"alert.suppress.period = {stanza.suppress_period}",
        ]
    lines.append("request.ui_dispatch_app = hsmaudit")
    return "\n".join(lines) + "\n"


def render_savedsearches(
    entries: list[dict[str, Any]], correlation: dict[str, Any], single_spl: dict[str, str]
) -> str:
    header = [
        f"# {GENERATED_NOTE}",
        "# One stanza per hsmaudit rule id (docs/detections.md). Every search starts from the",
        "# `hsmaudit_events` macro (index + sourcetypes, edited in one place).",
        "# Single-event rules: pySigma Splunk backend. login-brute-force, sequence-*, hsm-silent:",
        "# reviewed hand-written SPL (src/hsmaudit/detect/compiler/spl.py) - sliding windows and",
        "# per-stream state that the backend cannot express.",
        "",
    ]
    stanzas = [_single_stanza(entry, single_spl[entry["id"]]) for entry in entries]
    brute = _Stanza(
        rule_id=correlation["id"],
        title=correlation["title"],
        description=correlation["description"],
        search=spl_brute_force(
            correlation, next(e for e in entries if e["id"] == "failed-login"), single_spl["failed-login"]
        ),
        severity=correlation["severity"],
        cron="*/5 * * * *",
        # The 10-minute sliding window before each attempt of the last 5 minutes, plus 5 minutes
        # for late records (each run overlaps the previous ones by 15 minutes).
        earliest="-20m@m",
        latest="now",
        index_window=None,
        suppress_fields="cluster_key,user_key",
        suppress_period="30m",
    )
    stanzas.append(brute)
    stanzas += _stateful_stanzas(STATEFUL_META)
    stanzas.sort(key=lambda s: s.rule_id)
    body = [_render_stanza(stanza) for stanza in stanzas]
    dedup = _Stanza(
        rule_id="duplicate-events",
        title="CloudHSM audit events delivered more than once",
        description="Records indexed more than once (Lambda retries, replays: the same event_id, "
        "or the same text when a sender gave no id); searches keep one result per record, "
        "this report shows how often it matters.",
        search=spl_duplicates(),
        severity="info",
        cron="17 * * * *",
        # The hour before last, by HSM time: both copies of a record share its time, so they fall
        # in the same hour; an hour's wait lets the late copy be indexed.
        earliest="-2h@h",
        latest="-1h@h",
        index_window=None,
        suppress_fields="event_id",
        suppress_period="24h",
    )
    body.append(_render_stanza(dedup, alert=False))
    return "\n".join(header) + "\n".join(body)
