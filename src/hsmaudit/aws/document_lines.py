"""One CloudWatch subscription document -> its HEC lines: the loop both Lambdas run per stream.

A clean record's lean line needs only its time and id from the parse, so in the lean format a run
of clean records becomes its lines in one call into the compiled core (`records.parse.lean_lines`,
which also follows the stream's order); the records it is not sure of, the json format, and every
record where the core was not built take the Python path: `lean_identity` + `text_line` where only
the line is needed (the Firehose transformation), `parse_message` + `line` where the stream's
order is followed too (the subscription Lambda's SequenceGaps metric). Every path gives the same
bytes (tests/unit/test_lean_identity.py, tests/unit/test_fast_scan.py).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from hsmaudit.records.parse import (
    cluster_id_from_log_group,
    hsm_id_from_log_stream,
    lean_identity,
    lean_lines,
    lean_position,
    parse_message,
)
from hsmaudit.sinks.hec.envelope import EventEncoder
from hsmaudit.sources.cloudwatch import SubscriptionDocument


@dataclass(slots=True)
class LineCounts:
    """What the loop counted over the documents it was given."""

    events: int = 0
    parse_errors: int = 0
    sequence_gaps: int = 0
    """Records missing between consecutive records of one boot in one document: a document holds
    one HSM stream in CloudWatch's order and an HSM numbers its records with no gaps (reference
    §3), so a jump is a lost or removed record: the `SequenceGaps` metric the deploy template
    alarms on. Counted only with `follow_order`; gaps across deliveries are the `sequence-gap`
    detection's job."""


def document_lines(
    document: SubscriptionDocument, *, encoder: EventEncoder, counts: LineCounts, follow_order: bool
) -> Iterator[bytes]:
    """The HEC lines of one data document's records, in their order, in chunks.

    Each chunk is one or more whole lines, each ending in a newline (no line holds one). The
    caller skips control documents.
    """
    group, stream = document.log_group or None, document.log_stream or None
    cluster_id = cluster_id_from_log_group(group)
    hsm_id = hsm_id_from_log_stream(stream, cluster_id)
    entries = document.log_events
    total = len(entries)
    counts.events += total
    lean = encoder.event_format == "lean"
    compiled = lean  # runs of clean records in one call, while the compiled core is here
    before_text, before_id = encoder.lean_parts(hsm_id, stream, group, cluster_id) if lean else (b"", b"")
    line, text_line = encoder.line, encoder.text_line
    reboot: int | None = None
    sequence: int | None = None
    position = 0
    while position < total:
        if compiled:
            run = lean_lines(entries, position, cluster_id, hsm_id, before_text, before_id, reboot, sequence)
            if run is None:
                compiled = False
            else:
                chunk, position, reboot, sequence, gaps = run
                if follow_order:
                    counts.sequence_gaps += gaps
                if chunk:
                    yield chunk
                if position == total:
                    break
        entry = entries[position]
        position += 1
        message = entry.message
        if lean and follow_order:
            found = lean_position(message, cluster_id, hsm_id)
            if found is not None:
                fast = text_line(message, found[0], found[1], hsm_id, stream, group, cluster_id)
                if fast is not None:
                    counts.sequence_gaps += _missing(reboot, sequence, found[2], found[3])
                    reboot, sequence = found[2], found[3]
                    yield fast + b"\n"
                    continue
        elif lean:
            identity = lean_identity(message, cluster_id, hsm_id)
            if identity is not None:
                fast = text_line(message, identity[0], identity[1], hsm_id, stream, group, cluster_id)
                if fast is not None:
                    yield fast + b"\n"
                    continue
        event = parse_message(
            message,
            log_group=group,
            log_stream=stream,
            cwl_id=entry.id or None,
            cwl_timestamp=entry.timestamp,
        )
        if event.parse_error is not None:
            counts.parse_errors += 1
        if follow_order:
            number, counter = event.sequence_no, event.reboot_counter
            if number is not None and counter is not None:
                counts.sequence_gaps += _missing(reboot, sequence, counter, number)
                reboot, sequence = counter, number
        yield line(event) + b"\n"


def _missing(reboot: int | None, sequence: int | None, counter: int, number: int) -> int:
    """Records missing between the last one seen (reboot, sequence) and this one, in one boot."""
    if counter == reboot and sequence is not None and number > sequence + 1:
        return number - sequence - 1
    return 0
