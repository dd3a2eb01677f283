"""The SQLite schema of the local store: one column per `HsmEvent` field, plus rollups.

Names are shared with the detections' SQL (preamble, "Local store"): table `events` has one
column per `HsmEvent` field named exactly as the field (`extra`, `attributes` as JSON text,
booleans 0/1) and `event_id` UNIQUE; table `alerts` has the contract §4 fields (`event_ids`,
`details` as JSON text).

Two rollup tables keep the dashboard fast at a million events (`benchmarks/collector_bench.py`):
`event_rollup` counts events per hour and per (cluster, HSM, log type, opcode, user type,
success, parse error), and `hsm_streams` keeps sequence-number range, count and last-seen per HSM stream.
Both are maintained by `EventStore.add_events` in the same transaction as the events (in SQL,
from the rows just inserted), so they are never out of step. Absent values are '' (and success
-1) in rollup keys: SQLite treats NULLs as distinct in a primary key, which would defeat the
upsert.
"""

from __future__ import annotations

from typing import Final

import msgspec.inspect

from hsmaudit.records.alert import Alert
from hsmaudit.records.event import FIELD_NAMES, HsmEvent

SCHEMA_VERSION: Final = 1
"""`PRAGMA user_version` of a store this module created; bump with a migration."""

APPLICATION_ID: Final = 0x48534D41  # "HSMA": marks the file as an hsmaudit store (PRAGMA application_id)

ROLLUP_BUCKET_USECS: Final = 3_600_000_000
"""Rollup bucket width: one hour. Filters that cut a bucket read its edge from `events`."""

JSON_FIELDS: Final = frozenset({"extra", "attributes"})
BOOL_FIELDS: Final = frozenset({"success", "mfa_enabled"})


def _sql_type(info: msgspec.inspect.Type) -> str:
    """SQL column type of one msgspec field type (Optional[X] -> X's type)."""
    if isinstance(info, msgspec.inspect.UnionType):
        inner = [t for t in info.types if not isinstance(t, msgspec.inspect.NoneType)]
        return _sql_type(inner[0]) if len(inner) == 1 else "TEXT"
    if isinstance(info, msgspec.inspect.IntType | msgspec.inspect.BoolType):
        return "INTEGER"
    return "TEXT"


def _event_columns() -> tuple[tuple[str, str], ...]:
    fields = msgspec.inspect.type_info(HsmEvent)
    assert isinstance(fields, msgspec.inspect.StructType)
    types = {field.name: _sql_type(field.type) for field in fields.fields}
    return tuple((name, types[name]) for name in FIELD_NAMES)


EVENT_COLUMNS: Final[tuple[tuple[str, str], ...]] = _event_columns()
"""(column, SQL type) for every `HsmEvent` field, in contract order."""

ALERT_FIELDS: Final[tuple[str, ...]] = Alert.__struct_fields__


def _events_table() -> str:
    columns = ",\n  ".join(
        f"{name} {sql_type}{' NOT NULL UNIQUE' if name == 'event_id' else ''}"
        for name, sql_type in EVENT_COLUMNS
    )
    return f"CREATE TABLE IF NOT EXISTS events (\n  {columns}\n)"


SCHEMA: Final[tuple[str, ...]] = (
    _events_table(),
    # Dashboard queries: newest events first (time ranges), optionally narrowed by opcode (rare
    # opcodes would otherwise mean a full scan). No per-HSM index: a cluster has a handful of
    # HSMs, so walking `events_usecs` finds an HSM's newest rows quickly, and every index is paid
    # for on each insert (`benchmarks/collector_bench.py`).
    "CREATE INDEX IF NOT EXISTS events_usecs ON events (usecs)",
    # The few CloudTrail control-plane calls, for the timeline's control-plane lane.
    "CREATE INDEX IF NOT EXISTS events_control_plane ON events (usecs) WHERE record_format = 'cloudtrail'",
    "CREATE INDEX IF NOT EXISTS events_opcode_usecs ON events (opcode, usecs)",
    # Failed logins by user: rare rows, so a partial index answers the panel without a scan.
    "CREATE INDEX IF NOT EXISTS events_failed_logins ON events (user_name, user_type, usecs)"
    " WHERE opcode = 'CN_LOGIN' AND success = 0",
    """CREATE TABLE IF NOT EXISTS alerts (
  alert_id TEXT NOT NULL UNIQUE,
  rule TEXT NOT NULL,
  title TEXT NOT NULL,
  severity TEXT NOT NULL,
  time TEXT,
  cluster_id TEXT,
  hsm_id TEXT,
  user_name TEXT,
  event_ids TEXT NOT NULL,
  details TEXT NOT NULL
)""",
    "CREATE INDEX IF NOT EXISTS alerts_time ON alerts (time)",
    "CREATE INDEX IF NOT EXISTS alerts_rule ON alerts (rule)",
    """CREATE TABLE IF NOT EXISTS event_rollup (
  bucket INTEGER NOT NULL,
  cluster_id TEXT NOT NULL,
  hsm_id TEXT NOT NULL,
  log_type TEXT NOT NULL,
  opcode TEXT NOT NULL,
  user_type TEXT NOT NULL,
  success INTEGER NOT NULL,
  parse_error INTEGER NOT NULL,
  n INTEGER NOT NULL,
  last_usecs INTEGER,
  PRIMARY KEY (bucket, cluster_id, hsm_id, log_type, opcode, user_type, success, parse_error)
) WITHOUT ROWID""",
    """CREATE TABLE IF NOT EXISTS hsm_streams (
  cluster_id TEXT NOT NULL,
  hsm_id TEXT NOT NULL,
  reboot_counter INTEGER NOT NULL,
  n INTEGER NOT NULL,
  min_sequence_no INTEGER NOT NULL,
  max_sequence_no INTEGER NOT NULL,
  first_usecs INTEGER,
  last_usecs INTEGER,
  PRIMARY KEY (cluster_id, hsm_id, reboot_counter)
) WITHOUT ROWID""",
)

_COLUMN_LIST: Final = ", ".join(name for name, _ in EVENT_COLUMNS)
_PLACEHOLDERS: Final = ", ".join("?" for _ in EVENT_COLUMNS)
INSERT_EVENT: Final = f"INSERT OR IGNORE INTO events ({_COLUMN_LIST}) VALUES ({_PLACEHOLDERS})"  # noqa: S608

INSERT_ALERT: Final = (
    "INSERT OR IGNORE INTO alerts (alert_id, rule, title, severity, time, cluster_id, hsm_id, user_name,"
    " event_ids, details) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)

# Rollups from the rows a transaction just inserted (rowid above the previous maximum), in SQL:
# no per-event Python work on the ingest path. Bucket: floor(usecs / 1 h) for integer times, -1
# for records without one (and for out-of-range times kept as text).
ROLLUP_FROM_NEW_ROWS: Final = f"""INSERT INTO event_rollup
  (bucket, cluster_id, hsm_id, log_type, opcode, user_type, success, parse_error, n, last_usecs)
SELECT
  CASE WHEN typeof(usecs) != 'integer' THEN -1
       WHEN usecs >= 0 THEN usecs / {ROLLUP_BUCKET_USECS}
       ELSE -((-usecs + {ROLLUP_BUCKET_USECS - 1}) / {ROLLUP_BUCKET_USECS}) END,
  coalesce(cluster_id, ''), coalesce(hsm_id, ''), coalesce(log_type, ''), coalesce(opcode, ''),
  coalesce(user_type, ''), coalesce(success, -1), parse_error IS NOT NULL,
  count(*), max(CASE WHEN typeof(usecs) = 'integer' THEN usecs END)
FROM events WHERE rowid > ?
GROUP BY 1, 2, 3, 4, 5, 6, 7, 8
ON CONFLICT (bucket, cluster_id, hsm_id, log_type, opcode, user_type, success, parse_error) DO UPDATE SET
  n = n + excluded.n,
  last_usecs = max(coalesce(last_usecs, excluded.last_usecs), coalesce(excluded.last_usecs, last_usecs))"""  # noqa: S608

STREAMS_FROM_NEW_ROWS: Final = """INSERT INTO hsm_streams
  (cluster_id, hsm_id, reboot_counter, n, min_sequence_no, max_sequence_no, first_usecs, last_usecs)
SELECT coalesce(cluster_id, ''), hsm_id, reboot_counter, count(*), min(sequence_no), max(sequence_no),
  min(CASE WHEN typeof(usecs) = 'integer' THEN usecs END),
  max(CASE WHEN typeof(usecs) = 'integer' THEN usecs END)
FROM events
WHERE rowid > ? AND hsm_id IS NOT NULL
  AND typeof(sequence_no) = 'integer' AND typeof(reboot_counter) = 'integer'
GROUP BY 1, 2, 3
ON CONFLICT (cluster_id, hsm_id, reboot_counter) DO UPDATE SET
  n = n + excluded.n,
  min_sequence_no = min(min_sequence_no, excluded.min_sequence_no),
  max_sequence_no = max(max_sequence_no, excluded.max_sequence_no),
  first_usecs = min(coalesce(first_usecs, excluded.first_usecs), coalesce(excluded.first_usecs, first_usecs)),
  last_usecs = max(coalesce(last_usecs, excluded.last_usecs), coalesce(excluded.last_usecs, last_usecs))"""
