"""Deterministic event ids: the same audit record always gets the same `event_id`.

contracts.md §1: a hash of cluster_id, hsm_id, reboot_counter, sequence_no, usecs **and the
record's content**. The identity fields make replays, Lambda's at-least-once retries and backfills
safe to repeat (the store and Splunk's de-duplication count an id once); the content makes a forged
twin (same identity, other opcode or user) a different id, so de-duplication never hides it and
the sequence check sees two records at one position (`sequence-duplicate`).

The content is the record *normalised*, so that an exact redelivery gets the same id whatever
carried it: for a clean text record, its `label=value` lines with the label mapped to the field
name, surrounding blanks removed, in one fixed order (separator spacing, CR/LF, line order and the
CloudWatch envelope's id and timestamp do not matter); for a text record with a parse error, its
non-blank lines stripped of surrounding blanks (the labels alone may not say what is wrong);
for a certificate record, its JSON with sorted keys and no spacing. Records that carry no
sequence number (certificate records, unparsed text) hash their content and origin instead, so two
different bad records never share an id.
"""

from __future__ import annotations

import operator
from hashlib import blake2b
from typing import TYPE_CHECKING, Final

import msgspec

if TYPE_CHECKING:
    from hsmaudit.records.event import HsmEvent


def _digest(text: str) -> str:
    # 128 bits: collision-free for any realistic audit trail, short enough for an index key.
    return blake2b(text.encode("utf-8", "surrogatepass"), digest_size=16).hexdigest()


def text_event_id(
    cluster_id: str | None,
    hsm_id: str | None,
    reboot_counter: int | None,
    sequence_no: int | None,
    usecs: int | None,
    content: str = "",
) -> str:
    """Id of a classic text record from its identity fields (absent ones hash as empty) and content.

    `content` is `text_content(...)` or `lines_content(...)` of the record; the identity fields
    alone (empty content) are accepted for synthetic events in tests and benchmarks.
    """
    return _digest(
        f"{cluster_id or ''}|{hsm_id or ''}|{_s(reboot_counter)}|{_s(sequence_no)}|{_s(usecs)}|{content}"
    )


def text_content(values: dict[str, str], extra: dict[str, str] | None) -> str:
    """Normalised content of a clean text record: `field=value` lines, known fields in parser order.

    `values` maps the parser's field names (in `records.parse._LABELS` order, which callers keep)
    to the value text as printed; `extra` holds the unmapped labels and is sorted here.
    """
    lines = [f"{key}={value}" for key, value in values.items()]
    if extra:
        lines += [f"+{label}={extra[label]}" for label in sorted(extra)]
    return "\n".join(lines)


def lines_content(text: str) -> str:
    """Normalised content of a text record that did not parse cleanly: its non-blank lines, stripped."""
    text = text.replace("\r\n", "\n").replace("\r", "\n") if "\r" in text else text
    return "\n".join(stripped for line in text.split("\n") if (stripped := line.strip(" \t")))


def certificate_event_id(cluster_id: str | None, log_stream: str | None, content: str) -> str:
    """Id of a certificate-storage record (no sequence number): its normalised JSON and stream."""
    return _digest(f"cert|{cluster_id or ''}|{log_stream or ''}|{content}")


def unparsed_event_id(cluster_id: str | None, log_stream: str | None, cwl_id: str | None, raw: str) -> str:
    """Id of a record that could not be parsed: its text, where it came from, and CloudWatch's id.

    CloudWatch's id is kept here because such a record has no identity of its own: two identical
    unreadable lines are two log events, and a real redelivery (retry, backfill) keeps the id.
    """
    return _digest(f"raw|{cluster_id or ''}|{log_stream or ''}|{cwl_id or ''}|{raw}")


# What a record says, for events that arrive as fields without their text (a hand-made JSON event
# sent to the collector): everything the parser reads from a record, nothing it derives.
CONTENT_FIELDS: Final = (
    "record_format",
    "command_type",
    "command_type_code",
    "opcode",
    "opcode_code",
    "session_handle",
    "response_code",
    "response",
    "log_type",
    "log_type_code",
    "user_name",
    "user_type",
    "user_type_code",
    "user_id",
    "target_user_name",
    "target_user_type",
    "target_user_type_code",
    "target_user_id",
    "key_handle",
    "public_key_handle",
    "object_handle",
    "attributes",
    "mechanism",
    "mfa_enabled",
    "operation",
    "operation_code",
    "number_of_users",
    "user_ids",
    "version_no",
    "local_time_usecs",
    "host_time_usecs",
    "propagation_delay_usecs",
    "extra",
)
_CONTENT_OF: Final = operator.attrgetter(*CONTENT_FIELDS)
_SORTED: Final = msgspec.json.Encoder(order="sorted")


def claimed_twin_event_id(event_id: str, content: str) -> str:
    """Id for a record that *claims* a stored record's id with other content (a forged id).

    A sender chooses the `event_id` of a JSON or lean event; one that reuses a genuine record's
    id for other content must not be dropped as a redelivery, so the store keeps it under this id.
    """
    return _digest(f"twin|{event_id}|{content}")


def fields_content(event: HsmEvent) -> str:
    """Normalised content of an event known only by its fields (no `raw`): its content fields as JSON."""
    return "fields:" + _SORTED.encode(_CONTENT_OF(event)).decode()


def json_content(document: object) -> str:
    """Normalised content of a JSON record: sorted keys, no spacing (integers kept exact)."""
    return _SORTED.encode(document).decode()


def _s(value: int | None) -> str:
    return "" if value is None else str(value)
