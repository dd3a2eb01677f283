"""One `hsmaudit send` run without Typer or Rich: events in chunks sized for the destination,
the counts so far, where Ctrl-C stopped, and the summary (the line for people, the JSON object
for machines); `cli/send.py` reads the inputs, draws the bar and prints.

Chunks keep memory flat on large inputs, and keep Ctrl-C prompt: it lets the chunk in flight
finish, so the summary knows exactly what HEC took.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, Final

from hsmaudit.ops.destination import Delivered, Destination, destination_spool
from hsmaudit.records.event import HsmEvent
from hsmaudit.sources.files import STDIN

CHUNK_EVENTS: Final = 5000
"""Events handed to the destination at a time (HecClient splits them into HEC-sized batches);
for HEC at most ten requests' worth, so Ctrl-C, which lets the chunk in flight finish (and the
summary then knows exactly what HEC took), waits for ten requests at most."""

HEC_REQUESTS_PER_CHUNK: Final = 10


def chunks(events: Iterator[HsmEvent], size: int) -> Iterator[list[HsmEvent]]:
    """Lists of at most `size` events, in order."""
    while chunk := list(itertools.islice(events, size)):
        yield chunk


def chunk_events(per_request: int | None) -> int:
    """Events per delivery: CHUNK_EVENTS, or ten HEC requests' worth when that is less."""
    if per_request is None:
        return CHUNK_EVENTS
    return min(CHUNK_EVENTS, HEC_REQUESTS_PER_CHUNK * per_request)


@dataclass
class Sending:
    """A run's deliveries to one destination: what was kept so far and how many were unparsed."""

    destination: Destination
    total: Delivered = field(default_factory=Delivered)
    parse_errors: int = 0

    def chunks(self, events: Iterator[HsmEvent]) -> Iterator[list[HsmEvent]]:
        """The events in chunks the destination keeps all or nothing."""
        return chunks(events, chunk_events(self.destination.chunk_size))

    def deliver(self, chunk: list[HsmEvent]) -> None:
        """Deliver one chunk and count it (raises `DeliveryError` when not all was kept)."""
        self.parse_errors += sum(1 for event in chunk if event.parse_error)
        self.total.add(self.destination.deliver(chunk))

    def summary(self, *, seconds: float, empty_inputs: list[str]) -> dict[str, Any]:
        """`send --json`: what went where, what was spooled and why, in how long."""
        total = self.total
        return {
            "destination": self.destination.description,
            "events": total.events,
            "accepted": total.accepted,
            "spooled": total.spooled,
            "spooled_reasons": [{"reason": r, "events": n} for r, n in total.reasons.items()],
            "spool": destination_spool(self.destination),
            "duplicates": total.duplicates,
            "hec_requests": getattr(self.destination, "requests", 0),
            "parse_errors": self.parse_errors,
            "empty_inputs": empty_inputs,
            "seconds": round(seconds, 3),
        }

    def summary_line(self, seconds: float) -> str:
        """The summary for people (see `summary_line`)."""
        return summary_line(self.total, self.destination.description, seconds, self.parse_errors)


@dataclass(slots=True)
class Reading:
    """Which input `send` is reading (its index in the list of inputs)."""

    position: int = 0


@dataclass(frozen=True, slots=True)
class Stopped:
    """Where Ctrl-C stopped `send`: in which input, how many inputs were not read at all."""

    source: str | None
    unread: int
    in_flight: bool

    def message(self, total: Delivered) -> str:
        """One line: what was delivered, what was not, what to do."""
        kept = f"{total.accepted} events accepted by HEC" if total.accepted or not total.duplicates else ""
        if total.spooled:
            kept += f", {total.spooled} spooled for 'hsmaudit replay'"
        if self.in_flight:
            rest = "the delivery in flight may or may not have arrived, and the rest was not sent"
        else:
            where = "stdin" if self.source == STDIN else self.source
            rest = f"the rest of {where}"
            rest += f" and {self.unread} more inputs were not sent" if self.unread else " was not sent"
        return (
            f"interrupted: {kept or f'{total.events} events kept'}; {rest}. Send the same input "
            "again for the rest (repeats carry the same event_id: the store keeps one, "
            "Splunk's hsmaudit_dedup drops them)"
        )


def summary_line(total: Delivered, description: str, seconds: float, parse_errors: int) -> str:
    """`sent N events to X in Ys: A accepted`, or, when not all arrived, how many did and how many wait."""
    counts = f"{total.accepted} accepted"
    counts += f", {total.spooled} spooled" if total.spooled else ""
    counts += f", {total.duplicates} already stored" if total.duplicates else ""
    counts += f", {parse_errors} unparsed (sent with parse_error set)" if parse_errors else ""
    if total.spooled:
        return f"{total.events} events for {description}, in {seconds:.1f}s: {counts}"
    return f"sent {total.events} events to {description} in {seconds:.1f}s: {counts}"
