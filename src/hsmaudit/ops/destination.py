"""Where `send` and `backfill` put events: Splunk HEC (through the Lambda's own client), the local
store, or a JSON-lines file (an operator engine: no Typer, no Rich; the CLI picks one from flags).

Each destination's `deliver` returns only when every event is kept (accepted by HEC, written to
the spool, stored, or written) and raises `DeliveryError` otherwise, so a caller can advance its
checkpoint exactly after what is safe. HEC delivery uses `hsmaudit.sinks.hec.HecClient` and the
configured spool: the same code, batching, retries and spooling as the Lambda, not a second client.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, TYPE_CHECKING, Protocol

from hsmaudit.errors import HsmauditError
from hsmaudit.records.event import HsmEvent, event_to_json

if TYPE_CHECKING:
    from hsmaudit.sinks.hec import HecClient
    from hsmaudit.sinks.spool import Spool
    from hsmaudit.store.database import EventStore


class DeliveryError(HsmauditError):
    """Not every event was kept; nothing after the last kept event may be counted as delivered."""


@dataclass
class Delivered:
    """Counts of one or more deliveries."""

    events: int = 0
    accepted: int = 0
    spooled: int = 0
    duplicates: int = 0  # the store already had them (same event_id)
    reasons: dict[str, int] = field(default_factory=dict)
    """Why events went to the spool: reason -> events (a summary prints one line per reason)."""

    def add(self, other: Delivered) -> None:
        self.events += other.events
        self.accepted += other.accepted
        self.spooled += other.spooled
        self.duplicates += other.duplicates
        for reason, count in other.reasons.items():
            self.reasons[reason] = self.reasons.get(reason, 0) + count


def destination_spool(destination: object) -> str | None:
    """The spool location of a HEC destination (None for the others, or without a spool)."""
    spool = getattr(destination, "spool", None)
    location = getattr(spool, "location", None)
    return str(location) if location is not None else None


def spool_lines(delivered: Delivered, location: str | None, *, command: str) -> list[str]:
    """One line per reason events went to the spool, largest first, and what to do next.

    `command` is how the operator runs hsmaudit again (the CLI passes `cli.output.self_command()`),
    so the hint pastes into their shell.
    """
    if not delivered.spooled:
        return []
    lines = [
        f"  {count} spooled: {reason}"
        for reason, count in sorted(delivered.reasons.items(), key=lambda item: -item[1])
    ]
    where = f" {location}" if location else ""
    lines.append(
        f"{delivered.spooled} events are in the spool{where}, not in Splunk: fix HEC "
        f"('{command} doctor'), then run '{command} replay{where}'"
    )
    return lines


class Destination(Protocol):
    """Somewhere events are kept."""

    description: str
    chunk_size: int | None
    """Events per `deliver` call that keeps the all-or-nothing promise (None: any number)."""

    def deliver(self, events: Sequence[HsmEvent]) -> Delivered:
        """Keep every event, or raise `DeliveryError`."""
        ...

    def close(self) -> None:
        """Release connections and files."""
        ...


class HecDestination:
    """Splunk HEC through `HecClient`; what HEC refuses goes to the spool when one is configured.

    A circuit breaker spans the whole run: once one delivery finds HEC down (every attempt of a
    batch failed) or refusing the token, later deliveries send nothing and spool at once with
    that reason; `on_block` is told once, so the operator hears it when it happens.
    """

    def __init__(
        self,
        client: HecClient,
        *,
        spool: Spool | None,
        budget_seconds: float = 300.0,
        on_block: Callable[[str], None] | None = None,
    ) -> None:
        self.client = client
        self.spool = spool
        self.blocked: str | None = None
        self.on_block = on_block
        # One HEC request: HEC accepts or refuses it whole (bar invalid-event-number, whose
        # accepted prefix is then re-sent at most once).
        self.chunk_size: int | None = client.max_events
        self.budget_seconds = budget_seconds
        # in brackets: "..., no spool in 0.1s" read as if the spool took 0.1s
        spool_text = f" (spool {spool.location})" if spool is not None else " (no spool)"
        self.description = f"HEC {client.origin}{client.event_path}{spool_text}"
        self.requests = 0
        self.retries = 0

    def deliver(self, events: Sequence[HsmEvent]) -> Delivered:
        if not events:
            return Delivered()
        report = self.client.send(
            events,
            deadline=time.monotonic() + self.budget_seconds,
            spool=self.spool,
            metadata={"origin": "hsmaudit-cli"},
            blocked=self.blocked,
        )
        self.requests += report.requests
        self.retries += report.retries
        if report.blocked is not None and self.blocked is None:
            self.blocked = report.blocked
            if self.on_block is not None and self.spool is not None:
                self.on_block(self.blocked)
        if report.failed:
            reason = report.failed[0].reason
            raise DeliveryError(
                f"HEC did not take {report.failed_events} of {len(events)} events ({reason}); "
                "configure a spool (HSMAUDIT_SPOOL_DIR) to keep them, or fix HEC and run again"
            )
        reasons: dict[str, int] = {}
        for batch in report.spooled:
            reasons[batch.reason] = reasons.get(batch.reason, 0) + batch.count
        return Delivered(
            events=len(events), accepted=report.accepted, spooled=report.spooled_events, reasons=reasons
        )

    def close(self) -> None:
        self.client.close()


class StoreDestination:
    """The local SQLite store (`--db`); repeats are free, `event_id` is UNIQUE there."""

    def __init__(self, store: EventStore, path: str) -> None:
        self.store = store
        self.description = f"local store {path}"
        self.chunk_size: int | None = None  # one transaction

    def deliver(self, events: Sequence[HsmEvent]) -> Delivered:
        if not events:
            return Delivered()
        added = self.store.add_events(events)
        return Delivered(events=len(events), accepted=added, duplicates=len(events) - added)

    def close(self) -> None:
        self.store.close()


class JsonlDestination:
    """JSON lines (one event per line, as `hsmaudit parse` prints) to a file or stdout."""

    def __init__(self, path: str, *, include_raw: bool = True) -> None:
        self.include_raw = include_raw
        self.chunk_size: int | None = None
        self._handle: IO[bytes]
        if path == "-":
            self._handle = sys.stdout.buffer
            self._own = False
            self.description = "stdout (JSON lines)"
        else:
            self._handle = Path(path).open("ab")  # noqa: SIM115 - closed by close()
            self._own = True
            self.description = f"{path} (JSON lines)"

    def deliver(self, events: Sequence[HsmEvent]) -> Delivered:
        for event in events:
            self._handle.write(event_to_json(event, include_raw=self.include_raw))
            self._handle.write(b"\n")
        self._handle.flush()
        return Delivered(events=len(events), accepted=len(events))

    def close(self) -> None:
        if self._own:
            self._handle.close()
        else:
            self._handle.flush()
