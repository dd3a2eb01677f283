"""Deterministic event ids: the same audit record always gets the same `event_id`.

contracts.md §1: a hash of cluster_id, hsm_id, reboot_counter, sequence_no and usecs. That is
what makes replays, Lambda's at-least-once retries and backfills safe to repeat: the store and
Splunk's de-duplication search count an id once. Records that carry no sequence number (certificate
records, unparsed text) hash their distinguishing content instead, so two different bad records
never share an id.
"""

from __future__ import annotations

from hashlib import blake2b


def _digest(text: str) -> str:
    # 128 bits: collision-free for any realistic audit trail, short enough for an index key.
    return blake2b(text.encode("utf-8", "surrogatepass"), digest_size=16).hexdigest()


def text_event_id(
    cluster_id: str | None,
    hsm_id: str | None,
    reboot_counter: int | None,
    sequence_no: int | None,
    usecs: int | None,
) -> str:
    """Id of a classic text record from its identity fields (absent ones hash as empty)."""
    return _digest(f"{cluster_id or ''}|{hsm_id or ''}|{_s(reboot_counter)}|{_s(sequence_no)}|{_s(usecs)}")


def certificate_event_id(
    cluster_id: str | None,
    log_stream: str | None,
    opcode: str | None,
    object_handle: int | None,
    usecs: int | None,
    response: str | None,
) -> str:
    """Id of a certificate-storage record, which has no sequence number of its own."""
    parts = (cluster_id or "", log_stream or "", opcode or "", _s(object_handle), _s(usecs), response or "")
    return _digest("cert|" + "|".join(parts))


def unparsed_event_id(cluster_id: str | None, log_stream: str | None, cwl_id: str | None, raw: str) -> str:
    """Id of a record that could not be parsed: its text, where it came from, and CloudWatch's id."""
    return _digest(f"raw|{cluster_id or ''}|{log_stream or ''}|{cwl_id or ''}|{raw}")


def _s(value: int | None) -> str:
    return "" if value is None else str(value)
