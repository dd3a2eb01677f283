"""HEC URLs: what a user gives (origin, `/services/collector`, `.../event`) -> origin and paths."""

from __future__ import annotations

from typing import Final
from urllib.parse import urlsplit

EVENT_PATH: Final = "/services/collector/event"
ACK_PATH: Final = "/services/collector/ack"


def event_url(url: str) -> tuple[str, str, str]:
    """Split a HEC URL into (origin, event path, ack path).

    Accepts a bare origin (`https://hec.example.com:8088`), `.../services/collector`, or the full
    `.../services/collector/event` (and `/event/1.0`) path.
    """
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ValueError("the HEC URL must start with https:// (or http:// for a local collector)")
    origin = f"{parts.scheme}://{parts.netloc}"
    path = parts.path.rstrip("/")
    marker = "/services/collector"
    if not path:
        return origin, EVENT_PATH, ACK_PATH
    if marker in path:
        base = path[: path.index(marker) + len(marker)]
        event_path = path if path != base else base + "/event"
        return origin, event_path, base + "/ack"
    return origin, path, ACK_PATH
