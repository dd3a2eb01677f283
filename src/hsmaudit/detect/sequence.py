"""Log integrity per HSM stream: `sequence-gap`, `sequence-reset`, `sequence-duplicate`.

Facts (`docs/reference/cloudhsm-records.md` §3, §9): `Sequence No` rises by one per record
and "there should be no gaps" within a stream; the `Reboot counter` rises on each reboot and the
sequence may restart then (undocumented for AWS; Azure's same-vendor HSMs restart at zero), so
ordering and gap checks work on (stream, reboot counter, sequence number). Delivery can reorder
and repeat records, so:

- a record ahead of the next expected number waits in a small per-stream buffer; the gap is
  declared only when the stream has moved `reorder_window_usecs` of HSM time past it (or the
  buffer is full, or at `finalize()`);
- the same position seen again with the same `event_id` and content is a harmless re-delivery
  (counted, not alerted); with different content it is `sequence-duplicate` (tampering);
- a lower number on a record *newer* than anything seen (never seen, or a used position with new
  content) is a restart without a reboot-counter increase: `sequence-reset`. An older record at a
  position never seen is a late arrival; at a used position with other content, a duplicate.

State is per stream (bounded buffers), never per event: memory stays flat however long the input.
Shaped like pySigma validators: `process(event)` per item, `finalize()` at the end.
"""

from __future__ import annotations

import operator
from dataclasses import dataclass, field
from typing import Final, NamedTuple

from hsmaudit.records.alert import Alert
from hsmaudit.records.event import HsmEvent
from hsmaudit.records.time import format_usecs

DEFAULT_REORDER_WINDOW_USECS: Final = 120_000_000
DEFAULT_MAX_PENDING: Final = 1024
DEFAULT_MEMORY: Final = 4096
_MAX_GAPS: Final = 64

GAP: Final = "sequence-gap"
RESET: Final = "sequence-reset"
DUPLICATE: Final = "sequence-duplicate"

StreamKey = str


@dataclass(frozen=True, slots=True)
class SequenceSettings:
    """How long to wait for out-of-order records, and how much to remember per stream."""

    reorder_window_usecs: int = DEFAULT_REORDER_WINDOW_USECS
    max_pending: int = DEFAULT_MAX_PENDING
    memory: int = DEFAULT_MEMORY


class _Seen(NamedTuple):
    """What is remembered of one record: enough to tell a re-delivery from a forgery."""

    event_id: str
    digest: int
    usecs: int
    time: str | None


@dataclass(slots=True)
class _Stream:
    cluster_id: str | None
    hsm_id: str | None
    reboot: int
    expected: int
    max_usecs: int
    last: _Seen | None = None
    previous_reboot: int | None = None
    pending: dict[int, _Seen] = field(default_factory=dict)
    recent: dict[int, _Seen] = field(default_factory=dict)
    gaps: list[tuple[int, int]] = field(default_factory=list)
    twins: dict[int, list[_Seen]] = field(default_factory=dict)
    """Other versions of a position already reported as duplicates (so their redeliveries are quiet)."""


@dataclass(slots=True)
class SequenceStats:
    """What the detector saw besides alerts (for summaries and tests)."""

    redeliveries: int = 0
    late: int = 0
    reboots: int = 0


def content_digest(event: HsmEvent) -> int:
    """What a record says, independent of how it was delivered (CloudWatch id, raw spacing)."""
    return hash(_CONTENT(event))


# What a record says (usecs is in the event_id already; these are the fields a forger would change).
_CONTENT: Final = operator.attrgetter(
    "opcode",
    "response_code",
    "response",
    "session_handle",
    "user_name",
    "user_type",
    "target_user_name",
    "key_handle",
    "public_key_handle",
    "parse_error",
    "usecs",
)


class SequenceDetector:
    """Per-stream continuity of `sequence_no` within a `reboot_counter`."""

    def __init__(
        self, settings: SequenceSettings | None = None, titles: dict[str, str] | None = None
    ) -> None:
        self.settings = settings or SequenceSettings()
        self.titles = {
            GAP: "CloudHSM audit sequence gap",
            RESET: "CloudHSM audit sequence reset",
            DUPLICATE: "CloudHSM audit sequence duplicate",
            **(titles or {}),
        }
        self.stats = SequenceStats()
        self._memory = self.settings.memory
        self._streams: dict[StreamKey, _Stream] = {}

    def process(self, event: HsmEvent) -> list[Alert]:
        """Check one record; records without a sequence position (certificate, unparsed) are skipped."""
        seq = event.sequence_no
        reboot = event.reboot_counter
        if seq is None or reboot is None or event.record_format != "text":
            return []
        usecs = event.usecs if event.usecs is not None else 0
        # HSM ids are unique across clusters; streams without one fall back to (group, stream).
        key = event.hsm_id or f"{event.log_group or ''}|{event.log_stream or ''}"
        seen = _Seen(event.event_id or "", hash(_CONTENT(event)), usecs, event.time)
        stream = self._streams.get(key)
        if stream is not None and seq == stream.expected and reboot == stream.reboot:
            # The common case: the next record of the stream (an unseen position by construction),
            # `_accept` inlined: this line runs once per event.
            recent = stream.recent
            recent[seq] = seen
            recent.pop(seq - self._memory, None)
            stream.expected = seq + 1
            stream.last = seen
            if usecs > stream.max_usecs:  # noqa: PLR1730 - cheaper than max() on the hot path
                stream.max_usecs = usecs
            if stream.pending:
                self._drain(stream)
                return self._overdue(stream) if stream.pending else []
            return []
        if stream is None:
            stream = _Stream(event.cluster_id, event.hsm_id, reboot, seq + 1, usecs, last=seen)
            stream.recent[seq] = seen
            self._streams[key] = stream
            return []
        alerts: list[Alert] = []
        if reboot != stream.reboot:
            if reboot < stream.reboot and reboot == stream.previous_reboot:
                self.stats.late += 1  # a straggler from before the reboot
                return []
            if reboot > stream.reboot:
                self.stats.reboots += 1
                alerts += self._flush(stream)
                self._restart(stream, reboot, seq, seen, previous_reboot=stream.reboot)
                return alerts
            alerts.append(
                self._alert(
                    RESET,
                    stream,
                    seen,
                    [stream.last.event_id] if stream.last else [],
                    reason="reboot counter decreased",
                    previous_reboot_counter=stream.reboot,
                    reboot_counter=reboot,
                    previous_sequence_no=stream.expected - 1,
                    sequence_no=seq,
                )
            )
            alerts += self._flush(stream)
            self._restart(stream, reboot, seq, seen, previous_reboot=stream.reboot)
            return alerts

        known = stream.recent.get(seq) or stream.pending.get(seq)
        if known is not None and known.event_id == seen.event_id and known.digest == seen.digest:
            self.stats.redeliveries += 1
            return []
        twins = stream.twins.get(seq) if known is not None and stream.twins else None
        if twins and any(t.event_id == seen.event_id and t.digest == seen.digest for t in twins):
            self.stats.redeliveries += 1  # a redelivery of a twin already reported
            return []
        # A used position below the last one on a record newer than anything seen is a restart
        # (reset, below); on an older record, or at the last position itself (a twin read right
        # after its original, as in time order), it is a second version of history (duplicate).
        if known is not None and not (seq < stream.expected - 1 and usecs > stream.max_usecs):
            self._remember_twin(stream, seq, seen)
            return [
                self._alert(
                    DUPLICATE,
                    stream,
                    seen,
                    [known.event_id, seen.event_id],
                    reboot_counter=reboot,
                    sequence_no=seq,
                    first_event_id=known.event_id,
                    first_time=known.time,
                )
            ]
        if seq == stream.expected:
            self._accept(stream, seq, seen)
            self._drain(stream)
        elif seq > stream.expected:
            stream.pending[seq] = seen
        elif known is None and (
            any(start <= seq < end for start, end in stream.gaps) or usecs < stream.max_usecs
        ):
            self.stats.late += 1
            return []
        else:
            alerts.append(
                self._alert(
                    RESET,
                    stream,
                    seen,
                    [stream.last.event_id, seen.event_id] if stream.last else [seen.event_id],
                    reason="sequence number went back without a reboot-counter increase",
                    reboot_counter=reboot,
                    previous_sequence_no=stream.expected - 1,
                    sequence_no=seq,
                )
            )
            stream.pending.clear()
            self._restart(stream, reboot, seq, seen, previous_reboot=stream.previous_reboot)
        stream.max_usecs = max(stream.max_usecs, usecs)
        if stream.pending:
            alerts += self._overdue(stream)
        return alerts

    def advance(self, now_usecs: int) -> list[Alert]:
        """A live collector's clock: gaps whose late records are now overdue are declared."""
        alerts: list[Alert] = []
        for stream in self._streams.values():
            if stream.pending:
                alerts += self._overdue(stream, now_usecs)
        return alerts

    def finalize(self) -> list[Alert]:
        """End of input: every record still waiting for a missing predecessor marks a gap."""
        alerts: list[Alert] = []
        for stream in self._streams.values():
            alerts += self._flush(stream)
        return alerts

    @property
    def stream_count(self) -> int:
        """How many HSM streams are tracked (memory is proportional to this)."""
        return len(self._streams)

    # --- internals ---------------------------------------------------------------------------

    def _restart(
        self, stream: _Stream, reboot: int, seq: int, seen: _Seen, *, previous_reboot: int | None
    ) -> None:
        stream.previous_reboot = previous_reboot
        stream.reboot = reboot
        stream.expected = seq + 1
        stream.pending.clear()
        stream.recent.clear()
        stream.gaps.clear()
        stream.twins.clear()
        stream.recent[seq] = seen
        stream.last = seen
        stream.max_usecs = max(stream.max_usecs, seen.usecs)

    def _remember_twin(self, stream: _Stream, seq: int, seen: _Seen) -> None:
        twins = stream.twins
        twins.setdefault(seq, []).append(seen)
        if len(twins) > self._memory:  # bounded like `recent`: forget the oldest positions
            for old in sorted(twins)[: len(twins) - self._memory]:
                del twins[old]

    def _accept(self, stream: _Stream, seq: int, seen: _Seen) -> None:
        recent = stream.recent
        recent[seq] = seen
        memory = self.settings.memory
        # Positions arrive in order, so the one `memory` back is the one to forget (O(1); popping
        # a dict's first item degrades as deleted slots pile up at its front).
        recent.pop(seq - memory, None)
        if len(recent) > 2 * memory:  # after gaps: keep only the newest `memory` positions
            stream.recent = dict(sorted(recent.items())[-memory:])
        stream.expected = seq + 1
        stream.last = seen

    def _drain(self, stream: _Stream) -> None:
        pending = stream.pending
        while pending:
            seen = pending.pop(stream.expected, None)
            if seen is None:
                return
            self._accept(stream, stream.expected, seen)

    def _overdue(self, stream: _Stream, clock: int | None = None) -> list[Alert]:
        alerts: list[Alert] = []
        now = stream.max_usecs if clock is None else max(clock, stream.max_usecs)
        while stream.pending:
            first = min(stream.pending)
            waiting = stream.pending[first]
            too_many = len(stream.pending) > self.settings.max_pending
            too_old = now - waiting.usecs > self.settings.reorder_window_usecs
            if not (too_many or too_old):
                break
            alerts.append(self._gap(stream, first, waiting))
        return alerts

    def _flush(self, stream: _Stream) -> list[Alert]:
        alerts = []
        while stream.pending:
            first = min(stream.pending)
            alerts.append(self._gap(stream, first, stream.pending[first]))
        return alerts

    def _gap(self, stream: _Stream, first: int, waiting: _Seen) -> Alert:
        missing_from = stream.expected
        stream.gaps.append((missing_from, first))
        if len(stream.gaps) > _MAX_GAPS:
            del stream.gaps[0]
        before = stream.last
        alert = self._alert(
            GAP,
            stream,
            waiting,
            ([before.event_id] if before else []) + [waiting.event_id],
            reboot_counter=stream.reboot,
            expected_sequence_no=missing_from,
            next_sequence_no=first,
            missing=first - missing_from,
            last_time_before_gap=before.time if before else None,
        )
        stream.expected = first
        self._drain(stream)
        # Positions skipped by the gap are never popped one by one: forget the old ones here.
        horizon = stream.expected - self.settings.memory
        if any(seq < horizon for seq in stream.recent):
            stream.recent = {seq: s for seq, s in stream.recent.items() if seq >= horizon}
        return alert

    def _alert(
        self, rule: str, stream: _Stream, seen: _Seen, event_ids: list[str], **details: object
    ) -> Alert:
        return Alert(
            rule=rule,
            title=self.titles[rule],
            severity="critical",
            time=seen.time if seen.time is not None else (format_usecs(seen.usecs) if seen.usecs else None),
            cluster_id=stream.cluster_id,
            hsm_id=stream.hsm_id,
            user_name=None,
            event_ids=[event_id for event_id in event_ids if event_id],
            details={name: value for name, value in details.items() if value is not None},
        )
