"""Replay from AWS's failure stores: the SQS on-failure queue and Firehose's S3 failure objects.

`hsmaudit replay` picks a store by its URL (`open_failure_store`): `sqs://name` or a queue URL is
the Lambda's on-failure queue; `s3://…/firehose-failed/…` or `…/firehose-errors/…` are the
objects Firehose wrote (any other `s3://` URL, or a path, is our own spool: `ops/replay.py`).

What each item becomes, before anything is sent:

- an on-failure message: its `requestPayload` is the original `{"awslogs": {"data": …}}` event;
  decoded with `sources.cloudwatch`, parsed, encoded with the client's event format (lean by
  default), as the forwarder would have;
- a failed-delivery record (Firehose could not deliver to Splunk): `rawData` is the HEC event(s)
  Firehose tried to send, our transformation's output; sent as they were, byte for byte;
- a processing-failed record (our transformation answered `ProcessingFailed`, or Firehose could
  not invoke it): `rawData` is the original CloudWatch record (gzip'd subscription document);
  decoded, parsed and encoded as the transformation would have (`aws.firehose.transform_record`).

Per item (a message, an object), the rules of `ops/replay.py` for spooled batches (and its
handling of refused lines, `split_failures` and `quarantine_refused`):

- every line accepted -> the item is deleted;
- HEC refused some lines as they are (a bad event, one too large), the rest accepted -> the
  refused lines go to the quarantine spool with HEC's reason, then the item is deleted;
- records that cannot be decoded go to the quarantine as raw payloads with the reason;
- a retryable failure (HEC down, busy, token refused) -> the item stays whole, and if HEC is
  down or refuses the token the run stops: the rest stays where it is;
- with no quarantine spool, an item that would need one stays (`kept`) and says so.

An item is deleted only after HEC accepted all of it. Running again is safe: a delivered item is
gone; an item left after a partial delivery is sent whole again, and its events carry the same
`event_id` (contracts.md §1), which Splunk's dedupe search and our store count once.
"""

from __future__ import annotations

import base64
import binascii
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Final, Literal

from hsmaudit.aws.failure_stores import (
    FirehoseFailureObjects,
    QueueMessage,
    SqsFailureQueue,
    is_queue_url,
)
from hsmaudit.ops.replay import quarantine_refused, split_failures
from hsmaudit.sinks.errors import SinkError
from hsmaudit.sinks.spool import SpoolBatch
from hsmaudit.sources.cloudwatch import decode_subscription_event, gunzip, iter_json_spans, log_messages
from hsmaudit.sources.errors import SourceDecodeError
from hsmaudit.sources.gzip_members import GZIP_MAGIC
from hsmaudit.sources.message import parse_log_message

if TYPE_CHECKING:
    from hsmaudit.sinks.hec.client import HecClient
    from hsmaudit.sinks.hec.envelope import EventEncoder
    from hsmaudit.sinks.spool import Spool

Status = Literal["delivered", "quarantined", "kept", "listed", "unreadable"]
Kind = Literal["on-failure", "delivery-failed", "processing-failed", "empty"]

FIREHOSE_PREFIXES: Final = ("firehose-failed", "firehose-errors")
"""Path segments of the stack's Firehose S3 prefixes (deploy/template.yaml); an `s3://` URL
containing one names Firehose's failure objects, any other names our spool."""
VISIBILITY_MARGIN: Final = 30
"""Seconds a received message stays hidden beyond the delivery budget (delete after delivery)."""


@dataclass(frozen=True, slots=True)
class ItemOutcome:
    """What replay did with one failure-store item (a JSON line on stdout)."""

    source: str
    item: str
    kind: Kind
    status: Status
    events: int
    accepted: int = 0
    quarantined: int = 0
    reason: str = ""

    @property
    def left(self) -> int:
        """Events still in the store after this item (all of them when it was kept)."""
        return self.events if self.status in ("kept", "listed", "unreadable") else 0

    def as_json(self) -> str:
        """One JSON line, counts and ids only."""
        return json.dumps(
            {
                "source": self.source,
                "item": self.item,
                "kind": self.kind,
                "status": self.status,
                "events": self.events,
                "accepted": self.accepted,
                "quarantined": self.quarantined,
                "reason": self.reason,
            },
            ensure_ascii=False,
        )


@dataclass(frozen=True, slots=True)
class BadRecord:
    """A record that cannot be decoded: kept raw in the quarantine with the reason."""

    raw: bytes
    reason: str


@dataclass(frozen=True, slots=True)
class DecodedItem:
    """One item turned into HEC lines, plus what of it could not be decoded."""

    kind: Kind
    lines: tuple[bytes, ...] = ()
    bad: tuple[BadRecord, ...] = ()
    metadata: dict[str, str] = field(default_factory=dict)


# ------------------------------------------------------------------------------ decoding


def decode_on_failure_message(body: str, *, encoder: EventEncoder, name: str) -> DecodedItem:
    """An on-failure invocation record -> the HEC lines of its `requestPayload`.

    Raises nothing: a body that is not an invocation record, or a payload that cannot be decoded,
    comes back as one `BadRecord` (kept in the quarantine, never retried as is).
    """
    raw = body.encode("utf-8", "surrogatepass")
    try:
        record = json.loads(body)
    except ValueError as error:
        return DecodedItem("on-failure", bad=(BadRecord(raw, f"{name}: not JSON ({error})"),))
    if not isinstance(record, dict) or "requestPayload" not in record:
        reason = f"{name}: not a Lambda invocation record (no requestPayload)"
        return DecodedItem("on-failure", bad=(BadRecord(raw, reason),))
    found = record.get("requestContext")
    context: dict[str, object] = found if isinstance(found, dict) else {}
    metadata = {
        "request_id": str(context.get("requestId", "")),
        "function_arn": str(context.get("functionArn", "")),
        "condition": str(context.get("condition", "")),
    }
    try:
        documents = decode_subscription_event(record["requestPayload"], name=name)
    except SourceDecodeError as error:
        return DecodedItem("on-failure", bad=(BadRecord(raw, str(error)),), metadata=metadata)
    lines = tuple(
        encoder.line(parse_log_message(message))
        for document in documents
        for message in log_messages(document)
    )
    if documents and documents[0].log_group:
        metadata["log_group"] = documents[0].log_group
    return DecodedItem("on-failure" if lines else "empty", lines=lines, metadata=metadata)


def decode_firehose_object(data: bytes, *, key: str, encoder: EventEncoder) -> DecodedItem:
    """A Firehose failure object (gzip'd or not) -> HEC lines of every record in it.

    Each record is told apart by content: a `lambdaArn`, a key under `processing-failed/`, or
    gzip'd `rawData` make it a processing-failed record (the original CloudWatch data); otherwise
    `rawData` is the HEC event(s) Firehose tried to deliver. Raises `SourceDecodeError` only when
    the object as a whole is not gzip or not JSON records.
    """
    from hsmaudit.aws.firehose import transform_record

    text = gunzip(data, name=key) if data[:2] == GZIP_MAGIC else data
    lines: list[bytes] = []
    bad: list[BadRecord] = []
    kinds: set[Kind] = set()
    for position, (obj, source) in enumerate(iter_json_spans(text, name=key)):
        name = f"{key} record {position}"
        raw_record = source.encode("utf-8", "surrogatepass")
        raw_data = obj.get("rawData") if isinstance(obj, dict) else None
        if not isinstance(raw_data, str):
            bad.append(BadRecord(raw_record, f"{name}: not a Firehose error record (no rawData)"))
            continue
        try:
            decoded = base64.b64decode(raw_data, validate=True)
        except (binascii.Error, ValueError) as error:
            bad.append(BadRecord(raw_record, f"{name}: rawData is not valid base64 ({error})"))
            continue
        processing = "lambdaArn" in obj or "/processing-failed/" in f"/{key}" or decoded[:2] == GZIP_MAGIC
        if processing:
            kinds.add("processing-failed")
            try:
                found = transform_record(raw_data, encoder=encoder, name=name).lines
            except SourceDecodeError as error:
                bad.append(BadRecord(raw_record, str(error)))
                continue
            lines.extend(found)
            continue
        kinds.add("delivery-failed")
        events = [line.strip() for line in decoded.split(b"\n") if line.strip()]
        problem = next((e for e in events if not _is_hec_event(e)), None)
        if problem is not None or not events:
            bad.append(BadRecord(raw_record, f"{name}: rawData is not HEC event JSON"))
            continue
        lines.extend(events)
    kind: Kind = "processing-failed" if "processing-failed" in kinds else "delivery-failed"
    if not kinds:
        kind = "empty" if not bad else "delivery-failed"
    return DecodedItem(kind, lines=tuple(lines), bad=tuple(bad))


def _is_hec_event(line: bytes) -> bool:
    try:
        value = json.loads(line)
    except ValueError:
        return False
    return isinstance(value, dict) and "event" in value


# ------------------------------------------------------------------------------ delivering


@dataclass(frozen=True, slots=True)
class Delivery:
    """How to deliver: the client, the quarantine (a spool, or none), seconds per item."""

    client: HecClient
    quarantine: Spool | None
    budget: float = 120.0


def deliver_item(
    item: str, decoded: DecodedItem, *, source: str, delivery: Delivery
) -> tuple[ItemOutcome, bool]:
    """Send one decoded item; returns its outcome and whether the run should go on.

    The caller deletes the item when the outcome is `delivered` or `quarantined` (everything in
    it is either accepted by HEC or kept in the quarantine), and leaves it otherwise.
    """
    events = len(decoded.lines) + len(decoded.bad)
    metadata = {**decoded.metadata, "replayed_from": f"{source} {item}"[:1024]}
    if decoded.bad and delivery.quarantine is None:
        reason = (
            f"{decoded.bad[0].reason}; no quarantine spool to keep it (--quarantine or HSMAUDIT_SPOOL_DIR)"
        )
        return ItemOutcome(source, item, decoded.kind, "kept", events, reason=reason), True
    report = delivery.client.send_lines(
        decoded.lines, deadline=time.monotonic() + delivery.budget, spool=None, metadata=metadata
    )
    retry, poison = split_failures(report)
    if retry:
        outcome = ItemOutcome(
            source, item, decoded.kind, "kept", events, accepted=report.accepted, reason=retry[0].reason
        )
        return outcome, report.blocked is None
    if poison and delivery.quarantine is None:
        reason = f"{poison[0].reason}; no quarantine spool to keep it (--quarantine or HSMAUDIT_SPOOL_DIR)"
        outcome = ItemOutcome(
            source, item, decoded.kind, "kept", events, accepted=report.accepted, reason=reason
        )
        return outcome, True
    held = 0
    reasons = [failed.reason for failed in poison]
    quarantine = delivery.quarantine
    if poison:
        assert quarantine is not None
        held = quarantine_refused(quarantine, poison, metadata)
    for record in decoded.bad:
        assert quarantine is not None
        kept = SpoolBatch(kind="payload", payload=record.raw, reason=record.reason, metadata=metadata)
        quarantine.put(kept)
        quarantine.quarantine(kept.batch_id, record.reason)
        held += 1
        reasons.append(record.reason)
    status: Status = "quarantined" if held else "delivered"
    outcome = ItemOutcome(
        source, item, decoded.kind, status, events, report.accepted, held, reasons[0] if reasons else ""
    )
    return outcome, True


Progress = Callable[[ItemOutcome], None]


def _receive_fresh(queue: SqsFailureQueue, seen: set[str], *, visibility: int) -> list[QueueMessage]:
    """The next received messages not seen in this run; a message seen before is released.

    An empty answer means the queue is drained for this run (or every message came round again:
    its visibility ran out, so it is put back rather than delivered twice in one run).
    """
    messages = queue.receive(visibility=visibility)
    fresh = []
    for message in messages:
        if message.message_id in seen:
            queue.release(message)
        else:
            seen.add(message.message_id)
            fresh.append(message)
    return fresh


def replay_queue(
    queue: SqsFailureQueue,
    delivery: Delivery,
    *,
    limit: int | None = None,
    progress: Progress | None = None,
    stop: Callable[[], bool] | None = None,
) -> list[ItemOutcome]:
    """Deliver every on-failure message; delete each once delivered, release the ones left.

    A stopped run (HEC down, `--limit` reached, `stop()` true: Ctrl-C) releases what it received
    but did not deliver, so those messages are visible again at once.
    """
    outcomes: list[ItemOutcome] = []
    left: list[QueueMessage] = []
    seen: set[str] = set()
    visibility = int(delivery.budget) + VISIBILITY_MARGIN
    try:
        while limit is None or len(outcomes) < limit:
            fresh = _receive_fresh(queue, seen, visibility=visibility)
            if not fresh:
                break
            stopped = False
            for position, message in enumerate(fresh):
                if stopped or (limit is not None and len(outcomes) >= limit) or (stop is not None and stop()):
                    left.extend(fresh[position:])
                    stopped = True
                    break
                decoded = decode_on_failure_message(
                    message.body, encoder=delivery.client.encoder, name=f"message {message.message_id}"
                )
                outcome, go_on = deliver_item(
                    message.message_id, decoded, source=queue.location, delivery=delivery
                )
                if outcome.status in ("delivered", "quarantined"):
                    queue.delete(message)
                else:
                    left.append(message)
                outcomes.append(outcome)
                if progress is not None:
                    progress(outcome)
                stopped = not go_on
            if stopped:
                break
    finally:
        for message in left:
            queue.release(message)
    return outcomes


def replay_firehose(
    store: FirehoseFailureObjects,
    delivery: Delivery,
    *,
    limit: int | None = None,
    progress: Progress | None = None,
    stop: Callable[[], bool] | None = None,
) -> list[ItemOutcome]:
    """Deliver every Firehose failure object; delete each once all of it was delivered.

    `stop` is asked before each object (Ctrl-C): the object in flight is finished, not cut.
    """
    outcomes: list[ItemOutcome] = []
    for key in store.object_keys():
        if (limit is not None and len(outcomes) >= limit) or (stop is not None and stop()):
            break
        outcome, go_on = _replay_object(store, key, delivery)
        outcomes.append(outcome)
        if progress is not None:
            progress(outcome)
        if not go_on:
            break
    return outcomes


def _replay_object(store: FirehoseFailureObjects, key: str, delivery: Delivery) -> tuple[ItemOutcome, bool]:
    data = store.read(key)
    try:
        decoded = decode_firehose_object(data, key=key, encoder=delivery.client.encoder)
    except SourceDecodeError as error:
        decoded = DecodedItem("delivery-failed", bad=(BadRecord(data, str(error)),))
    outcome, go_on = deliver_item(key, decoded, source=store.location, delivery=delivery)
    if outcome.status in ("delivered", "quarantined"):
        store.delete(key)
    return outcome, go_on


# ------------------------------------------------------------------------------ listing


def list_queue(queue: SqsFailureQueue, encoder: EventEncoder) -> list[ItemOutcome]:
    """What the queue holds (events per message), without sending or deleting anything.

    Listing an SQS queue means receiving: every message is hidden for a moment while it is read
    and released (visible again) before this returns.
    """
    outcomes: list[ItemOutcome] = []
    received: list[QueueMessage] = []
    seen: set[str] = set()
    try:
        while fresh := _receive_fresh(queue, seen, visibility=VISIBILITY_MARGIN):
            received.extend(fresh)
            for message in fresh:
                decoded = decode_on_failure_message(
                    message.body, encoder=encoder, name=f"message {message.message_id}"
                )
                outcomes.append(_listed(queue.location, message.message_id, decoded))
    finally:
        for message in received:
            queue.release(message)
    return outcomes


def list_firehose(store: FirehoseFailureObjects, encoder: EventEncoder) -> list[ItemOutcome]:
    """What the Firehose failure objects hold, without sending or deleting anything."""
    outcomes = []
    for key in store.object_keys():
        try:
            decoded = decode_firehose_object(store.read(key), key=key, encoder=encoder)
        except SourceDecodeError as error:
            outcomes.append(
                ItemOutcome(store.location, key, "delivery-failed", "unreadable", 1, reason=str(error))
            )
            continue
        outcomes.append(_listed(store.location, key, decoded))
    return outcomes


def _listed(source: str, item: str, decoded: DecodedItem) -> ItemOutcome:
    status: Status = "unreadable" if decoded.bad and not decoded.lines else "listed"
    reason = decoded.bad[0].reason if decoded.bad else ""
    return ItemOutcome(
        source, item, decoded.kind, status, len(decoded.lines) + len(decoded.bad), reason=reason
    )


# ------------------------------------------------------------------------------ choosing a store

FailureStore = SqsFailureQueue | FirehoseFailureObjects


def is_failure_store(where: str) -> bool:
    """True for a queue (`sqs://`, a queue URL) or an `s3://` URL under a Firehose prefix."""
    if is_queue_url(where):
        return True
    if not where.startswith("s3://"):
        return False
    segments = where.removeprefix("s3://").split("/")[1:]
    return any(segment in FIREHOSE_PREFIXES for segment in segments)


def open_failure_store(where: str) -> FailureStore:
    """The store a URL names (raises `FailureStoreError` for anything else)."""
    if is_queue_url(where):
        return SqsFailureQueue(where)
    return FirehoseFailureObjects(where)


def replay_store(
    store: FailureStore,
    delivery: Delivery,
    *,
    limit: int | None = None,
    progress: Progress | None = None,
    stop: Callable[[], bool] | None = None,
) -> list[ItemOutcome]:
    """Replay whichever store it is."""
    if isinstance(store, SqsFailureQueue):
        return replay_queue(store, delivery, limit=limit, progress=progress, stop=stop)
    return replay_firehose(store, delivery, limit=limit, progress=progress, stop=stop)


def count_items(store: FailureStore) -> int | None:
    """How many items the store holds, for a progress bar (SQS: approximate; None if unknown)."""
    try:
        if isinstance(store, SqsFailureQueue):
            return store.approximate_count()
        return sum(1 for _ in store.object_keys())
    except SinkError:
        return None


def list_store(store: FailureStore, encoder: EventEncoder) -> list[ItemOutcome]:
    """List whichever store it is."""
    if isinstance(store, SqsFailureQueue):
        return list_queue(store, encoder)
    return list_firehose(store, encoder)


def source_summary(outcomes: list[ItemOutcome], where: str, *, listed: bool = False) -> list[str]:
    """The per-source summary: delivered, quarantined (with reasons), left (with reasons)."""
    if listed:
        events = sum(o.events for o in outcomes)
        unreadable = sum(1 for o in outcomes if o.status == "unreadable")
        lines = [f"{len(outcomes)} items ({events} events) in {where}; {unreadable} unreadable"]
        return lines + [f"  unreadable {o.item}: {o.reason}" for o in outcomes if o.status == "unreadable"]
    delivered = sum(o.accepted for o in outcomes if o.status in ("delivered", "quarantined"))
    done = sum(1 for o in outcomes if o.status in ("delivered", "quarantined"))
    held = sum(o.quarantined for o in outcomes)
    kept = [o for o in outcomes if o.status == "kept"]
    lines = [
        f"{where}: delivered {delivered} events from {done} items; quarantined {held}; "
        f"left {len(kept)} items ({sum(o.events for o in kept)} events)"
    ]
    groups: dict[tuple[str, str], int] = {}
    for outcome in outcomes:
        if outcome.quarantined:
            key = ("quarantined", outcome.reason)
            groups[key] = groups.get(key, 0) + outcome.quarantined
        if outcome.status == "kept":
            key = ("left", outcome.reason)
            groups[key] = groups.get(key, 0) + outcome.events
    for (verb, reason), count in sorted(groups.items(), key=lambda item: -item[1]):
        lines.append(f"  {count} events {verb}: {reason}")
    return lines


def anything_left(outcomes: list[ItemOutcome]) -> bool:
    """Whether the run leaves something to deliver (the CLI exits 1)."""
    return any(o.status == "kept" for o in outcomes)
