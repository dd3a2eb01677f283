"""Where a report's events come from: the local store, or Splunk search exports.

Inputs are `HsmEvent`s: from the local store, or from a Splunk export (JSON lines, a JSON array or
CSV of search results: the JSON event's fields, or `_raw` record text with `host`/`source`).
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import msgspec

from hsmaudit.errors import HsmauditError
from hsmaudit.ops.report.period import Period
from hsmaudit.records.event import FIELD_NAMES, HsmEvent, event_from_dict
from hsmaudit.records.parse import parse_message


class ReportInputError(HsmauditError, ValueError):
    """An export file that is not JSON lines, a JSON array or CSV of search results."""


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


def iter_inputs(paths: Iterable[Path], period: Period) -> Iterator[HsmEvent]:
    """Events of several Splunk exports, in file order."""
    for path in paths:
        yield from events_from_splunk_export(path, period)
