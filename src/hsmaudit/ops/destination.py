"""Where `send` and `backfill` put events: Splunk HEC (through the Lambda's own client), the local
store, or a JSON-lines file (an operator engine: no Typer, no Rich; the CLI passes the flags' values
as `DeliveryOptions` and `open_destination` picks one: `--db`, `--out`, else HEC).

Settings resolve with config.py's one precedence: flags > `HSMAUDIT_*` environment > config file >
defaults, the same for every command and the Lambda. The HEC token has no flag on purpose (a flag
shows in `ps` and shell history): `HSMAUDIT_HEC_TOKEN`, or a Secrets Manager / SSM reference.

Each destination's `deliver` returns only when every event is kept (accepted by HEC, written to
the spool, stored, or written) and raises `DeliveryError` otherwise, so a caller can advance its
checkpoint exactly after what is safe. HEC delivery uses `hsmaudit.sinks.hec.client.HecClient` and the
configured spool: the same code, batching, retries and spooling as the Lambda, not a second client.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, Protocol

from hsmaudit.errors import HsmauditError
from hsmaudit.records.event import HsmEvent, event_to_json

if TYPE_CHECKING:
    from hsmaudit.config import Settings
    from hsmaudit.sinks.hec.client import HecClient
    from hsmaudit.sinks.spool import Spool
    from hsmaudit.store.database import EventStore


class DeliveryError(HsmauditError):
    """Not every event was kept; nothing after the last kept event may be counted as delivered."""


class DestinationChoiceError(HsmauditError, ValueError):
    """The options name two destinations (`--db` and `--out`): a usage error."""


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


@dataclass(frozen=True)
class DeliveryOptions:
    """The delivery flags as given (None: not given, so environment or config file decide)."""

    db: Path | None = None
    out: str | None = None
    hec_url: str | None = None
    index: str | None = None
    event_format: str | None = None
    sourcetype: str | None = None
    ack: bool | None = None
    ca_bundle: Path | None = None
    spool_dir: Path | None = None
    raw: bool | None = None
    config: Path | None = None

    def flags(self) -> dict[str, Any]:
        """Setting name -> flag value, for `config.load_settings`."""
        return {
            "hec_url": self.hec_url,
            "hec_index": self.index,
            "event_format": self.event_format,
            "hec_sourcetype": self.sourcetype,
            "hec_ack": self.ack,
            "hec_ca_bundle": str(self.ca_bundle) if self.ca_bundle is not None else None,
            "spool_dir": str(self.spool_dir) if self.spool_dir is not None else None,
            "include_raw": self.raw,
        }


def resolve_settings(options: DeliveryOptions) -> Settings:
    """Settings with the one precedence: flags > environment > config file > defaults."""
    from hsmaudit.config import load_settings

    return load_settings(options.flags(), config_path=str(options.config) if options.config else None)


def hec_client(settings: Settings) -> HecClient:
    """The Lambda's `HecClient`, built by the Lambda's own factory from the resolved settings."""
    from hsmaudit.aws.runtime import build_client
    from hsmaudit.config import ConfigError

    if not settings.hec_url:
        raise ConfigError("no HEC URL: give --hec-url or set HSMAUDIT_HEC_URL (or use --db / --out)")
    return build_client(settings)


def destination_key(options: DeliveryOptions) -> str:
    """What the options deliver to, as a stable string for backfill's checkpoint.

    `hec <origin><path> index=<index>` (the index is part of it: another index is another
    place), `db <absolute path>`, `out <absolute path>` (`out -` for stdout). Nothing is opened.
    """
    if options.db is not None:
        return f"db {options.db.expanduser().resolve()}"
    if options.out is not None:
        return "out -" if options.out == "-" else f"out {Path(options.out).expanduser().resolve()}"
    settings = resolve_settings(options)
    if not settings.hec_url:
        return "hec (no URL)"
    from urllib.parse import urlsplit

    from hsmaudit.sinks.hec.url import event_url

    try:
        origin, path, _ = event_url(settings.hec_url)
        parts = urlsplit(origin)
        port = parts.port
    except ValueError:
        return "hec (invalid URL)"
    # host and port only: credentials in the URL must not end up in a checkpoint file
    where = f"{parts.scheme}://{parts.hostname}" + (f":{port}" if port else "")
    return f"hec {where}{path} index={settings.hec_index or '(the token default)'}"


def open_destination(
    options: DeliveryOptions,
    *,
    on_unverified: Callable[[], None] | None = None,
    on_block: Callable[[str], None] | None = None,
) -> Destination:
    """The destination the options name: --db, --out, or HEC (with the configured spool).

    `on_unverified` is called before the HEC client is built when TLS verification is off (the
    CLI warns once); `on_block` goes to `HecDestination`.
    """
    if options.db is not None and options.out is not None:
        raise DestinationChoiceError("give either --db or --out, not both")
    settings = resolve_settings(options)
    if options.db is not None:
        from hsmaudit.store.database import EventStore

        return StoreDestination(EventStore(options.db), str(options.db))
    if options.out is not None:
        return JsonlDestination(options.out, include_raw=settings.include_raw)
    quiet_library_logs()
    if not settings.hec_verify and on_unverified is not None:
        on_unverified()
    client = hec_client(settings)
    spool = None
    if settings.spool_location:
        from hsmaudit.aws.spools import open_spool

        spool = open_spool(settings.spool_location)
    return HecDestination(client, spool=spool, on_block=on_block)


def quiet_library_logs() -> None:
    """The HEC client logs for the Lambda (CloudWatch); on a terminal the summary says it all.

    Without a handler, Python's last-resort handler would print those records on stderr next to
    the command's own one-line error.
    """
    import logging

    library = logging.getLogger("hsmaudit")
    if not library.handlers:
        library.addHandler(logging.NullHandler())
        library.propagate = False
