"""Phase 3: the SQLite queries (`detect/generated/sqlite/`) that `detect/sqlite.py` runs.

pySigma's SQLite backend over table `events` for single-event rules and for the brute-force
correlation (sliding window with window functions); a reviewed hand-written view folds a failed
login's per-HSM copies into one attempt (`bruteforce.py`), filtered by the compiled failed-login rule.
"""

from __future__ import annotations

from typing import Any, Final

from hsmaudit.detect.bruteforce import REPLICA_WINDOW_USECS
from hsmaudit.detect.compiler.parsing import RuleSource, sigma_collection
from hsmaudit.detect.compiler.targets import ATTEMPTS_VIEW, EVENTS_TABLE, GENERATED_NOTE
from hsmaudit.detect.errors import RuleError


def _sqlite_backend(table: str) -> Any:
    from sigma.backends.sqlite.sqlite import sqliteBackend

    # The SQLite backend is not typed (no annotations on __init__).
    return sqliteBackend(  # type: ignore[no-untyped-call]
        table=table, timestamp_field="usecs", timestamp_format="unix_us", event_id_field="event_id"
    )


def sqlite_single(source: RuleSource) -> str:
    queries = _sqlite_backend(EVENTS_TABLE).convert(sigma_collection([source.text]))
    if len(queries) != 1:
        raise RuleError(f"expected one SQLite query, got {len(queries)}", rule=source.rule_id)
    return str(queries[0])


_ATTEMPTS_SQL: Final = """\
-- {note}
-- One row per failed-login *attempt*: the per-HSM copies of one failed login are folded into the
-- first record (hsmaudit.detect.bruteforce: bursts of records of one user, user type and response
-- code no more than {window_seconds} s apart; the k-th record of each HSM in a burst is a copy of
-- the k-th attempt). Filter: the compiled failed-login rule.
CREATE TEMP VIEW IF NOT EXISTS {view} AS
WITH failed AS (
    SELECT event_id, usecs, time, opcode, success, response,
           COALESCE(cluster_id, '') AS cluster_id,
           COALESCE(hsm_id, log_stream, '') AS hsm_id,
           user_name,
           lower(COALESCE(user_name, '')) AS user_key,
           COALESCE(user_type, '') AS user_type,
           COALESCE(response_code, -1) AS response_code
    FROM {table}
    WHERE usecs IS NOT NULL AND ({condition})
),
gaps AS (
    SELECT *, CASE
        WHEN usecs - LAG(usecs) OVER replica_order <= {window_usecs} THEN 0 ELSE 1 END AS new_burst
    FROM failed
    WINDOW replica_order AS (
        PARTITION BY cluster_id, user_key, user_type, response_code ORDER BY usecs, event_id)
),
bursts AS (
    SELECT *, SUM(new_burst) OVER (
        PARTITION BY cluster_id, user_key, user_type, response_code
        ORDER BY usecs, event_id ROWS UNBOUNDED PRECEDING) AS burst
    FROM gaps
),
ranked AS (
    SELECT *, ROW_NUMBER() OVER (
        PARTITION BY cluster_id, user_key, user_type, response_code, burst, hsm_id
        ORDER BY usecs, event_id) AS rank_on_hsm
    FROM bursts
),
copies AS (
    SELECT *, ROW_NUMBER() OVER (
        PARTITION BY cluster_id, user_key, user_type, response_code, burst, rank_on_hsm
        ORDER BY usecs, event_id) AS copy_no
    FROM ranked
)
SELECT event_id, usecs, time, opcode, success, response, cluster_id, hsm_id, user_name, user_key,
       user_type, response_code
FROM copies
WHERE copy_no = 1
"""


def sqlite_attempts_view(failed_login_query: str) -> str:
    prefix = "SELECT * FROM " + EVENTS_TABLE + " WHERE "  # noqa: S608 - constant table name, no input
    if not failed_login_query.startswith(prefix):
        raise RuleError("unexpected SQLite query shape", rule="failed-login")
    return _ATTEMPTS_SQL.format(
        note=GENERATED_NOTE,
        view=ATTEMPTS_VIEW,
        table=EVENTS_TABLE,
        condition=failed_login_query[len(prefix) :],
        window_usecs=REPLICA_WINDOW_USECS,
        window_seconds=REPLICA_WINDOW_USECS // 1_000_000,
    )


def sqlite_correlation(source: RuleSource, texts: list[str]) -> str:
    # The correlation counts rows of the attempts view, whose user_key groups names
    # case-insensitively exactly as the backend's lower() grouping does.
    queries = _sqlite_backend(ATTEMPTS_VIEW).convert(sigma_collection(texts))
    matching = [str(query) for query in queries if str(query).lstrip().upper().startswith("WITH")]
    if len(matching) != 1:
        raise RuleError("expected one SQLite correlation query", rule=source.rule_id)
    return matching[0]
