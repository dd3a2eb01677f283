"""A report's digests: of the events it read and of its own content, and how two compare.

The report is a pure function of the events, so the same data gives the same digests.
`data_digest` covers the events the report read (their content-aware `event_id`s); `report_digest`
covers the report's content. A later run over the same data shows nothing changed
(`hsmaudit report --check previous.json`).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from typing import Any

import msgspec

from hsmaudit.records.event import HsmEvent


def content_id(event: HsmEvent) -> str:
    """An id for an event that has none (an export without `event_id`): SHA-256 of its JSON."""
    return hashlib.sha256(msgspec.json.encode(event)).hexdigest()


def data_digest(events: Iterable[HsmEvent]) -> str:
    """SHA-256 over the sorted event ids (content-aware: a changed record changes its id)."""
    digest = hashlib.sha256()
    for event_id in sorted(event.event_id or content_id(event) for event in events):
        digest.update(event_id.encode() + b"\n")
    return "sha256:" + digest.hexdigest()


def report_digest(report: dict[str, Any]) -> str:
    """SHA-256 of the report's canonical JSON, without its own digests."""
    body = {key: value for key, value in report.items() if key != "digests"}
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return "sha256:" + hashlib.sha256(canonical.encode()).hexdigest()


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
