"""Detections over the local SQLite store: the generated queries, plus the stateful detectors.

The store (`hsmaudit.store`, table `events`, one column per `HsmEvent` field, booleans 0/1,
`extra`/`attributes` as JSON text, `event_id` UNIQUE) is written by the collector. This module
only reads it, through a plain `sqlite3.Connection`, so `detect` stays independent of `store`:

- single-event rules run their pySigma-generated SQL (`generated/sqlite/<rule>.sql`);
- `login-brute-force` creates the attempts view (`failed-login-attempts.sql`) and runs pySigma's
  sliding-window correlation over it, then keeps the rising edges (the first window of a burst
  that reaches the threshold), which is exactly when the Python detector fires;
- `sequence-*`, `hsm-silent` and `hsm-removed-while-active` need per-stream order and memory,
  so the rows are streamed through the same Python detectors the engine uses.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from importlib import resources
from typing import Any, Final

import msgspec
import msgspec.inspect

from hsmaudit.detect.bruteforce import REPLICA_WINDOW_USECS
from hsmaudit.detect.bruteforce import RULE_ID as BRUTE_FORCE
from hsmaudit.detect.control_plane import HsmRemovedWhileActiveDetector
from hsmaudit.detect.engine import DetectionConfig
from hsmaudit.detect.errors import DetectStoreError
from hsmaudit.detect.folding import FAILED_LOGIN, FOLDED_RULES, action_alert
from hsmaudit.detect.ruleset import RuleSet, load_ruleset
from hsmaudit.detect.sequence import SequenceDetector, SequenceSettings
from hsmaudit.detect.silence import SilenceDetector
from hsmaudit.records.alert import Alert
from hsmaudit.records.event import FIELD_NAMES, HsmEvent, event_from_dict
from hsmaudit.records.time import format_usecs

_JSON_FIELDS: Final = frozenset({"extra", "attributes"})
_BOOL_FIELDS: Final = frozenset({"success", "mfa_enabled"})


def _integer_fields() -> frozenset[str]:
    info = msgspec.inspect.type_info(HsmEvent)
    assert isinstance(info, msgspec.inspect.StructType)
    names = set()
    for field in info.fields:
        kinds = field.type.types if isinstance(field.type, msgspec.inspect.UnionType) else (field.type,)
        if any(isinstance(kind, msgspec.inspect.IntType | msgspec.inspect.BoolType) for kind in kinds):
            names.add(field.name)
    return frozenset(names)


_INTEGER_FIELDS: Final = _integer_fields()


def generated_sql(name: str) -> str:
    """One generated query by file stem (`failed-login`, `failed-login-attempts`, …)."""
    folder = resources.files("hsmaudit.detect.generated").joinpath("sqlite")
    return folder.joinpath(f"{name}.sql").read_text(encoding="utf-8")


def events_table_sql() -> str:
    """`CREATE TABLE events` with one column per event field: the contract the store implements.

    For tests and for people who load events into their own database; the store creates its own.
    """
    columns = []
    for name in FIELD_NAMES:
        kind = "INTEGER" if name in _INTEGER_FIELDS else "TEXT"
        columns.append(f"{name} {kind}{' NOT NULL UNIQUE' if name == 'event_id' else ''}")
    return "CREATE TABLE IF NOT EXISTS events (" + ", ".join(columns) + ")"


def event_row(event: HsmEvent) -> tuple[Any, ...]:
    """An event as a row of `events_table_sql()` (booleans 0/1, JSON text for objects)."""
    values: list[Any] = []
    for name in FIELD_NAMES:
        value = getattr(event, name)
        if value is not None and name in _JSON_FIELDS:
            value = json.dumps(value)
        elif isinstance(value, bool):
            value = int(value)
        values.append(value)
    return tuple(values)


def insert_events(connection: sqlite3.Connection, events: list[HsmEvent]) -> None:
    """Insert events (duplicates by `event_id` ignored, as in the store)."""
    placeholders = ", ".join("?" for _ in FIELD_NAMES)
    connection.executemany(
        f"INSERT OR IGNORE INTO events ({', '.join(FIELD_NAMES)}) VALUES ({placeholders})",  # noqa: S608
        [event_row(event) for event in events],
    )


def event_from_row(row: dict[str, Any]) -> HsmEvent:
    """A row of `events` (any column order, unknown columns ignored) back into an event."""
    data: dict[str, Any] = {}
    for name in FIELD_NAMES:
        value = row.get(name)
        if value is None:
            continue
        if name in _JSON_FIELDS and isinstance(value, str):
            value = json.loads(value)
        elif name in _BOOL_FIELDS:
            value = value in (1, "1", True, "true")
        data[name] = value
    return event_from_dict(data)


def _rows(connection: sqlite3.Connection, sql: str) -> Iterator[dict[str, Any]]:
    cursor = connection.execute(sql)
    columns = [description[0] for description in cursor.description]
    for values in cursor:
        yield dict(zip(columns, values, strict=True))


def _check_table(connection: sqlite3.Connection) -> None:
    try:
        cursor = connection.execute("SELECT * FROM events LIMIT 0")
    except sqlite3.Error as error:
        raise DetectStoreError(f"no readable events table ({error}); is this an hsmaudit store?") from error
    columns = {description[0] for description in cursor.description}
    missing = {"event_id", "usecs", "opcode", "success", "hsm_id", "sequence_no"} - columns
    if missing:
        raise DetectStoreError(f"events table lacks column(s) {', '.join(sorted(missing))}")


# The cluster-action fold of `folding.py` in SQL, around a rule's generated query: bursts of one
# fold key no more than the replica window apart, the k-th record of each HSM in a burst a copy of
# the k-th action, named by its first copy. {key} is the fold key's columns (folding.fold_key).
_FOLD_SQL: Final = """WITH matched AS ({rule_sql}),
keyed AS (
    SELECT *, COALESCE(cluster_id, '') AS k_cluster, lower(COALESCE(user_name, '')) AS k_user,
           COALESCE(user_type, '') AS k_user_type, COALESCE(response_code, -1) AS k_response,
           {opcode} AS k_opcode, {target} AS k_target, COALESCE(hsm_id, log_stream, '') AS k_hsm
    FROM matched WHERE usecs IS NOT NULL
),
gaps AS (
    SELECT *, CASE WHEN usecs - LAG(usecs) OVER fold_order <= {window} THEN 0 ELSE 1 END AS new_burst
    FROM keyed
    WINDOW fold_order AS (PARTITION BY {key} ORDER BY usecs, event_id)
),
bursts AS (
    SELECT *, SUM(new_burst) OVER (
        PARTITION BY {key} ORDER BY usecs, event_id ROWS UNBOUNDED PRECEDING) AS burst
    FROM gaps
),
ranked AS (
    SELECT *, ROW_NUMBER() OVER (
        PARTITION BY {key}, burst, k_hsm ORDER BY usecs, event_id) AS rank_on_hsm
    FROM bursts
)
SELECT *, FIRST_VALUE(event_id) OVER (
    PARTITION BY {key}, burst, rank_on_hsm ORDER BY usecs, event_id) AS hsmaudit_action
FROM ranked
UNION ALL
SELECT *, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, event_id
FROM matched WHERE usecs IS NULL
ORDER BY usecs, event_id"""
_FOLD_KEY: Final = "k_cluster, k_user, k_user_type, k_response, k_opcode, k_target"


def folded_rule_sql(rule_id: str) -> str:
    """A folded rule's query: its generated SQL, each row tagged with its action (`hsmaudit_action`)."""
    generated = "\n".join(
        line for line in generated_sql(rule_id).splitlines() if not line.startswith("--")
    ).strip()
    login = rule_id == FAILED_LOGIN  # the brute force's replica key: no opcode, no target
    return _FOLD_SQL.format(
        rule_sql=generated,
        opcode="''" if login else "COALESCE(opcode, '')",
        target="''" if login else "lower(COALESCE(target_user_name, ''))",
        window=REPLICA_WINDOW_USECS,
        key=_FOLD_KEY,
    )


def single_rule_alerts(connection: sqlite3.Connection, ruleset: RuleSet | None = None) -> list[Alert]:
    """Every single-event rule's generated SQL, run against `events`.

    One alert per matching row; for the rules on cluster actions (`folding.FOLDED_RULES`), one
    per action, its copies on the other HSMs folded in SQL exactly as the engine folds them.
    """
    ruleset = ruleset or load_ruleset()
    _check_table(connection)
    alerts = []
    for rule in ruleset.rules:
        folded = rule.id in FOLDED_RULES
        sql = folded_rule_sql(rule.id) if folded else generated_sql(rule.id)
        try:
            rows = list(_rows(connection, sql))
        except sqlite3.Error as error:
            raise DetectStoreError(f"rule {rule.id}: query failed: {error}") from error
        if not folded:
            alerts += [rule.alert(event_from_row(row)) for row in rows]
            continue
        actions: dict[str, list[HsmEvent]] = {}
        for row in rows:
            actions.setdefault(str(row["hsmaudit_action"]), []).append(event_from_row(row))
        alerts += [action_alert(rule, copies) for copies in actions.values()]
    return alerts


def brute_force_alerts(connection: sqlite3.Connection, ruleset: RuleSet | None = None) -> list[Alert]:
    """login-brute-force over the store: attempts view + pySigma correlation, rising edges only."""
    ruleset = ruleset or load_ruleset()
    correlation = ruleset.correlations.get(BRUTE_FORCE)
    if correlation is None:
        return []
    _check_table(connection)
    try:
        # One statement: execute() (executescript would COMMIT the caller's open transaction).
        connection.execute(generated_sql("failed-login-attempts"))
        attempts = list(
            _rows(
                connection,
                "SELECT event_id, usecs, cluster_id, user_name, user_key, user_type, hsm_id"
                " FROM hsmaudit_failed_login_attempts ORDER BY usecs, event_id",
            )
        )
        windows = list(_rows(connection, generated_sql(BRUTE_FORCE)))
    except sqlite3.Error as error:
        raise DetectStoreError(f"rule {BRUTE_FORCE}: query failed: {error}") from error
    qualifying: dict[tuple[str, str, int], list[str]] = {}
    for window in windows:
        keys = json.loads(window["group_keys"])
        end = round(float(window["window_end"]) * 1_000_000)
        event_ids = [str(item).split(":", 1)[1] for item in json.loads(window["event_ids"])]
        qualifying[(str(keys["cluster_id"]).lower(), str(keys["user_name"]).lower(), end)] = event_ids
    attempt_by_id = {row["event_id"]: row for row in attempts}
    alerts = []
    previous_qualified: dict[tuple[str, str], bool] = {}
    first_spelling: dict[tuple[str, str], str | None] = {}
    for attempt in attempts:
        group = (str(attempt["cluster_id"]).lower(), str(attempt["user_key"]))
        first_spelling.setdefault(group, attempt["user_name"])
        window_ids = qualifying.get((*group, int(attempt["usecs"])))
        was = previous_qualified.get(group, False)
        previous_qualified[group] = window_ids is not None
        if window_ids is None or was:
            continue
        event_ids = window_ids
        by_id = {i: attempt_by_id[i] for i in event_ids if i in attempt_by_id}
        ordered = sorted(event_ids, key=lambda i: (by_id[i]["usecs"], i) if i in by_id else (0, i))
        hsms = sorted({str(by_id[i]["hsm_id"]) for i in ordered if i in by_id and by_id[i]["hsm_id"]})
        alerts.append(
            Alert(
                rule=correlation.id,
                title=correlation.title,
                severity=correlation.severity,
                time=format_usecs(int(attempt["usecs"])),
                cluster_id=attempt["cluster_id"] or None,
                user_name=first_spelling[group],
                event_ids=ordered,
                details={
                    "failed_attempts": len(ordered),
                    "threshold": correlation.threshold,
                    "window_seconds": correlation.timespan_seconds,
                    "window_start": format_usecs(int(by_id[ordered[0]]["usecs"])) if ordered else None,
                    "user_type": attempt["user_type"] or None,
                    "hsms": hsms,
                },
            )
        )
    return alerts


# What the stateful detectors read (position, identity, content digest): reading only these
# columns and building events directly is several times faster than converting whole rows.
STATEFUL_COLUMNS: Final = (
    "time",
    "usecs",
    "cluster_id",
    "hsm_id",
    "record_format",
    "sequence_no",
    "reboot_counter",
    "opcode",
    "session_handle",
    "response_code",
    "response",
    "user_name",
    "user_type",
    "target_user_name",
    "key_handle",
    "public_key_handle",
    "event_id",
    "log_group",
    "log_stream",
    "parse_error",
)


def iter_store_events(
    connection: sqlite3.Connection, *, batch: int = 5000, columns: tuple[str, ...] | None = None
) -> Iterator[HsmEvent]:
    """Every event of the store in arrival order (rowid), as the collector received them.

    Only the per-stream detectors read them this way (each stream arrives in its own order);
    the folded rules and the brute force are set-based SQL, so arrival order across streams
    does not matter to them.
    `columns` limits what is read (e.g. `STATEFUL_COLUMNS`); the other fields stay None.
    """
    _check_table(connection)
    wanted = columns or FIELD_NAMES
    select = ", ".join(wanted)
    try:
        cursor = connection.execute(f"SELECT {select} FROM events ORDER BY rowid")  # noqa: S608
    except sqlite3.OperationalError:  # a WITHOUT ROWID table: HSM time is the next best order
        cursor = connection.execute(f"SELECT {select} FROM events ORDER BY usecs")  # noqa: S608
    plain = columns is not None and not (set(columns) & (_JSON_FIELDS | _BOOL_FIELDS))
    while rows := cursor.fetchmany(batch):
        for values in rows:
            try:
                if plain:
                    yield HsmEvent(**dict(zip(wanted, values, strict=True)))
                else:
                    yield event_from_row(dict(zip(wanted, values, strict=True)))
            except (msgspec.ValidationError, TypeError, ValueError) as error:
                raise DetectStoreError(f"events row is not an event: {error}") from error


def detect_store(
    connection: sqlite3.Connection,
    config: DetectionConfig | None = None,
    *,
    now_usecs: int | None = None,
    ruleset: RuleSet | None = None,
) -> list[Alert]:
    """Every detection over the store: SQL where SQL can, the Python detectors where state is needed."""
    config = config or DetectionConfig()
    ruleset = ruleset or load_ruleset()
    disabled = config.disabled
    alerts = [alert for alert in single_rule_alerts(connection, ruleset) if alert.rule not in disabled]
    if BRUTE_FORCE not in disabled:
        alerts += brute_force_alerts(connection, ruleset)
    titles = {rule_id: rule.title for rule_id, rule in ruleset.stateful.items()}
    sequence = SequenceDetector(SequenceSettings(reorder_window_usecs=config.reorder_window_usecs), titles)
    silence = SilenceDetector(config.silent_after_usecs)
    removed = HsmRemovedWhileActiveDetector()
    stateful: list[Alert] = []
    for event in iter_store_events(connection, columns=STATEFUL_COLUMNS):
        stateful += sequence.process(event)
        silence.process(event)
        removed.process(event)
    stateful += sequence.finalize()
    stateful += removed.finalize()
    stateful += silence.finalize(now_usecs)
    alerts += [alert for alert in stateful if alert.rule not in disabled]
    return alerts
