"""Sequence continuity per HSM stream: a record's neighbours, each stream's counts and gaps.

CloudHSM numbers each HSM's records per reboot; where a record went missing or a forged twin
sits shows in the neighbours, how many are missing per stream in `hsm_streams`.
"""

# ruff: noqa: S608 - SQL text is built from fixed column names and "?" placeholders only; every
# value, filter values included, is bound as a parameter.
from __future__ import annotations

import sqlite3
from collections import Counter
from typing import Any

from hsmaudit.records.event import HsmEvent
from hsmaudit.records.time import format_usecs
from hsmaudit.store.query import EventFilter, NeighbourRow, StreamStatus


def sequence_neighbours(
    connection: sqlite3.Connection, event: HsmEvent, around: int = 5
) -> list[NeighbourRow]:
    """`around` records before and after `event` in its HSM's sequence (same reboot epoch),
    gaps and duplicates marked: where a record went missing or a forged twin sits shows here."""
    if event.hsm_id is None or event.sequence_no is None or event.reboot_counter is None:
        return []
    select = (
        "SELECT sequence_no, event_id, usecs, opcode, user_name, response FROM events "
        "WHERE hsm_id = ? AND reboot_counter = ? AND coalesce(cluster_id, '') = ? AND sequence_no "
    )
    where = (event.hsm_id, event.reboot_counter, event.cluster_id or "", event.sequence_no)
    before = connection.execute(select + "< ? ORDER BY sequence_no DESC LIMIT ?", (*where, around))
    rows = list(reversed(before.fetchall()))
    rows += connection.execute(select + "= ? ORDER BY usecs, rowid", where).fetchall()
    rows += connection.execute(
        select + "> ? ORDER BY sequence_no, usecs LIMIT ?", (*where, around)
    ).fetchall()
    counts = Counter(row[0] for row in rows)
    out: list[NeighbourRow] = []
    previous: int | None = None
    for sequence_no, event_id, usecs, opcode, user_name, response in rows:
        if previous is not None and sequence_no > previous + 1:
            out.append(NeighbourRow(sequence_no=previous + 1, missing=sequence_no - previous - 1))
        out.append(
            NeighbourRow(
                sequence_no=sequence_no,
                event_id=event_id,
                time=None if not isinstance(usecs, int) else format_usecs(usecs),
                opcode=opcode,
                user_name=user_name,
                response=response,
                duplicate=counts[sequence_no] > 1,
                current=event_id == event.event_id,
            )
        )
        previous = sequence_no
    return out


def stream_status(connection: sqlite3.Connection, filters: EventFilter | None = None) -> list[StreamStatus]:
    """Per-HSM sequence continuity and last-seen (narrowed by cluster and HSM only)."""
    filters = filters or EventFilter()
    where = ["1 = 1"]
    params: list[Any] = []
    if filters.cluster_id is not None:
        where.append("cluster_id = ?")
        params.append(filters.cluster_id)
    if filters.hsm_id is not None:
        where.append("hsm_id = ?")
        params.append(filters.hsm_id)
    sql = (
        "SELECT cluster_id, hsm_id, reboot_counter, n, min_sequence_no, max_sequence_no, "
        "first_usecs, last_usecs "
        f"FROM hsm_streams WHERE {' AND '.join(where)} ORDER BY cluster_id, hsm_id, reboot_counter"
    )
    out = []
    for cluster_id, hsm_id, reboot, n, lo, hi, first, last in connection.execute(sql, params):
        out.append(
            StreamStatus(
                cluster_id=cluster_id or None,
                hsm_id=hsm_id,
                reboot_counter=reboot,
                records=n,
                first_sequence_no=lo,
                last_sequence_no=hi,
                missing=max(0, hi - lo + 1 - n),
                first_seen=None if first is None else format_usecs(first),
                last_seen=None if last is None else format_usecs(last),
            )
        )
    return out
