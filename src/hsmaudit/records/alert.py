"""The alert: what a detection says about one or more events (contracts.md §4)."""

from __future__ import annotations

from typing import Any, Final

import msgspec

from hsmaudit.records.event import Severity


class Alert(msgspec.Struct, frozen=True, kw_only=True):
    """One detection result; `event_ids` point back at the events that triggered it."""

    rule: str
    title: str
    severity: Severity
    time: str | None = None
    cluster_id: str | None = None
    hsm_id: str | None = None
    user_name: str | None = None
    event_ids: list[str] = msgspec.field(default_factory=list)
    details: dict[str, Any] = msgspec.field(default_factory=dict)


_ENCODER: Final = msgspec.json.Encoder()
_DECODER: Final = msgspec.json.Decoder(Alert)


def alert_to_json(alert: Alert) -> bytes:
    """Encode an alert as one compact JSON object."""
    return _ENCODER.encode(alert)


def alert_from_json(data: bytes | str) -> Alert:
    """Decode one alert written by `alert_to_json` (raises `msgspec.DecodeError`)."""
    return _DECODER.decode(data)
