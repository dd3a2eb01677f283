"""Phase 4a: the SPL searches: pySigma's Splunk backend and the reviewed hand-written ones.

Single-event rules come from the backend (behind the `hsmaudit_events` macro, with literal
opcode terms and the cluster-action fold); the brute force (the backend's `bin _time` fixed
bins miss bursts across a bin edge, `docs/reference/splunk.md` §4.2) and the stateful
detections are hand-written here, as the engine computes them.
"""

from __future__ import annotations

from typing import Any, Final

from hsmaudit.detect.bruteforce import REPLICA_WINDOW_USECS
from hsmaudit.detect.compiler.parsing import RuleSource, sigma_collection
from hsmaudit.detect.compiler.targets import CLOUDTRAIL_MACRO, MACRO
from hsmaudit.detect.control_plane import DEFAULT_ACTIVE_WINDOW_USECS
from hsmaudit.detect.errors import RuleError
from hsmaudit.detect.silence import DEFAULT_SILENT_AFTER_USECS
from hsmaudit.records.event import SEVERITY_RANK


def splunk_single(source: RuleSource) -> str:
    from sigma.backends.splunk.splunk import SplunkBackend
    from sigma.processing.pipeline import ProcessingPipeline

    # Field names are the event's own (identity mapping), so the pipeline is empty; the base
    # search (index + sourcetypes) comes from the `hsmaudit_events` macro in front.
    collection = sigma_collection([source.text])
    for rule in collection.rules:
        rule.fields = []  # the stanza chooses its own `table` columns after the base search
    queries = SplunkBackend(ProcessingPipeline()).convert(collection)
    if len(queries) != 1:
        raise RuleError(f"expected one SPL query, got {len(queries)}", rule=source.rule_id)
    return str(queries[0])


def severity_eval(level_severity: str) -> str:
    """SPL: alert severity = max(rule level, the event's own severity), as the engine computes it."""
    ranked = sorted(SEVERITY_RANK, key=SEVERITY_RANK.__getitem__, reverse=True)
    floor = SEVERITY_RANK[level_severity]
    cases = [f'severity=="{name}", "{name}"' for name in ranked if SEVERITY_RANK[name] > floor]
    cases.append(f'true(), "{level_severity}"')
    return f"eval alert_severity=case({', '.join(cases)})"


ALERT_KEY: Final = "eval alert_key=coalesce(event_id, md5(_raw))"
"""SPL: one key per audit record on every sourcetype. JSON and lean events carry `event_id` (lean as
an indexed field); raw text sent any other way (`aws:cloudwatch:cloudhsm`, `aws:cloudhsm:audit:text`
without fields) has none, and the record text itself is the record's identity (its sequence number,
reboot counter and time are in it)."""

MAX_STREAM_WINDOW: Final = 10_000
"""limits.conf `[stats] max_stream_window` default: the largest `streamstats window=` Splunk accepts,
and the silent cap of a streamstats without `window`/`time_window` (limits.conf.spec)."""


def opcode_terms(entry: dict[str, Any]) -> str:
    """Literal index terms for the rule's opcodes, in front of the field filter.

    `opcode` is a search-time field (an extraction on raw text, a calculated field on JSON), so
    `opcode="CN_LOGIN"` alone cannot use the index's term list; the bare term can, and every
    event whose opcode is X has X in its text (JSON value or `Opcode:` line). Rules that match any
    opcode get no terms.
    """
    opcodes = entry.get("opcodes")
    if not opcodes:
        return ""
    return "(" + " OR ".join(opcodes) + ") "


_FOLD_KEY: Final = "cluster_key user_key user_type_key response_key opcode_key target_key"
_FOLD_FIRST: Final = (
    "cluster_id hsm_id user_name user_type opcode response_code response key_handle sequence_no severity"
)


def spl_folded(rule_id: str, base: str) -> str:
    """SPL of a rule on cluster actions: one row per action, its copies on other HSMs folded.

    The fold of `detect/folding.py` (and of the brute force): bursts of one fold key no more than
    the replica window apart, named by their first record's time; the k-th record of each HSM in
    a burst is a copy of the k-th action. `first()` after the ascending sort is the earliest copy
    (the serving HSM's); `action_key` (its alert_key) names the action for throttling.
    """
    window = REPLICA_WINDOW_USECS // 1_000_000
    login = rule_id == "failed-login"  # the brute force's replica key: no opcode, no target
    opcode, target = (
        ('""', '""') if login else ('coalesce(opcode, "")', 'lower(coalesce(target_user_name, ""))')
    )
    firsts = " ".join(f"first({name}) as {name}" for name in _FOLD_FIRST.split())
    return (
        f"{base} | {ALERT_KEY} | dedup alert_key"
        ' | eval cluster_key=coalesce(cluster_id, ""), user_key=lower(coalesce(user_name, "")),'
        ' user_type_key=coalesce(user_type, ""), response_key=coalesce(response_code, -1),'
        f" opcode_key={opcode}, target_key={target}, hsm_key=coalesce(hsm_id, host)"
        " | sort 0 _time alert_key"
        f" | streamstats current=f window=1 last(_time) as previous_time by {_FOLD_KEY}"
        f" | eval burst_start=if(isnull(previous_time) OR _time - previous_time > {window}, _time, null())"
        f" | streamstats window={MAX_STREAM_WINDOW} last(burst_start) as burst by {_FOLD_KEY}"
        " | eval burst=coalesce(burst, _time)"
        f" | streamstats window={MAX_STREAM_WINDOW} count as rank_on_hsm by {_FOLD_KEY} burst hsm_key"
        f" | stats min(_time) as _time min(_indextime) as first_indexed {firsts}"
        " first(alert_key) as action_key count as copies"
        f" values(hsm_key) as hsms values(event_id) as event_ids by {_FOLD_KEY} burst rank_on_hsm"
    )


def spl_brute_force(correlation: dict[str, Any], failed_login: dict[str, Any], failed_login_spl: str) -> str:
    window = REPLICA_WINDOW_USECS // 1_000_000
    # NULLs folded as in the SQLite view (a null `by` field would drop the event from streamstats).
    key = "cluster_key user_key user_type_key response_key"
    return (
        f"{MACRO} {opcode_terms(failed_login)}({failed_login_spl}) | {ALERT_KEY} | dedup alert_key"
        ' | eval cluster_key=coalesce(cluster_id, ""), user_key=lower(coalesce(user_name, "")),'
        ' user_type_key=coalesce(user_type, ""), response_key=coalesce(response_code, -1),'
        " hsm_key=coalesce(hsm_id, host)"
        " | sort 0 _time alert_key"
        # Fold each failed login's per-HSM copies into one attempt (hsmaudit.detect.bruteforce).
        # A burst is named by the time of its first record (carried forward with last(), which
        # skips nulls) rather than numbered by a running sum: both need a window, and when a burst
        # outgrows it every record counts as its own attempt (more attempts, never fewer).
        f" | streamstats current=f window=1 last(_time) as previous_time by {key}"
        f" | eval burst_start=if(isnull(previous_time) OR _time - previous_time > {window}, _time, null())"
        f" | streamstats window={MAX_STREAM_WINDOW} last(burst_start) as burst by {key}"
        " | eval burst=coalesce(burst, _time)"
        # Past the window the rank stops at its size: the count is then far above the threshold.
        f" | streamstats window={MAX_STREAM_WINDOW} count as rank_on_hsm by {key} burst hsm_key"
        f" | dedup {key} burst rank_on_hsm"
        # Sliding window (not `bin _time`: fixed bins miss a burst across a bin edge).
        f" | streamstats time_window={correlation['timespan_seconds']}s count as failed_attempts"
        " values(event_id) as event_ids values(hsm_key) as hsms by cluster_key user_key"
        f" | where failed_attempts >= {correlation['threshold']}"
        f' | eval rule="{correlation["id"]}", alert_severity="{correlation["severity"]}"'
        " | table _time cluster_id user_name user_type failed_attempts hsms event_ids cluster_key user_key"
        " rule alert_severity"
    )


_KNOWN_HSM: Final = "hsm_id=*"
"""The sequence checks need each record's HSM: numbering is per HSM. Raw text whose sender gave no
HSM (the published recipe's blueprint leaves `host`/`source` useless) would merge every HSM of a
cluster into one stream and raise a gap, reset or duplicate on nearly every record; such records
are not checked until their origin is known (docs/splunk-app.md, moving from the recipe)."""

_SEQUENCE_PROJECTION: Final = (
    "fields _time cluster_id hsm_id stream reboot_counter sequence_no event_id alert_key opcode"
    " | fields - _raw"
)
"""Only what the sequence checks use goes to the search head for `sort 0` (`fields` keeps _raw
unless told): a few dozen bytes per record instead of the record."""

_SEQUENCE_FIELDS: Final = "eval stream=coalesce(hsm_id, host)"


def spl_sequence_gap() -> str:
    return (
        f'{MACRO} record_format="text" {_KNOWN_HSM} sequence_no=* reboot_counter=*'
        f" | {ALERT_KEY} | dedup alert_key | {_SEQUENCE_FIELDS} | {_SEQUENCE_PROJECTION}"
        " | sort 0 cluster_id stream reboot_counter sequence_no"
        " | streamstats current=f window=1 last(sequence_no) as previous_sequence_no"
        " by cluster_id stream reboot_counter"
        " | where sequence_no > previous_sequence_no + 1"
        " | eval missing=sequence_no - previous_sequence_no - 1,"
        ' rule="sequence-gap", alert_severity="critical"'
        " | table _time cluster_id hsm_id stream reboot_counter previous_sequence_no sequence_no missing"
        " event_id rule alert_severity"
    )


def spl_sequence_reset() -> str:
    return (
        f'{MACRO} record_format="text" {_KNOWN_HSM} sequence_no=* reboot_counter=*'
        f" | {ALERT_KEY} | dedup alert_key | {_SEQUENCE_FIELDS} | {_SEQUENCE_PROJECTION}"
        " | sort 0 cluster_id stream _time sequence_no"
        " | streamstats current=f window=1 last(sequence_no) as previous_sequence_no"
        " last(reboot_counter) as previous_reboot_counter by cluster_id stream"
        f" | where {_RESTART} OR reboot_counter < previous_reboot_counter"
        ' | eval rule="sequence-reset", alert_severity="critical"'
        " | table _time cluster_id hsm_id stream reboot_counter previous_reboot_counter"
        " previous_sequence_no sequence_no event_id rule alert_severity"
    )


_RESTART: Final = "(sequence_no < previous_sequence_no AND reboot_counter <= previous_reboot_counter)"
"""In time order, the numbering went back without a reboot: a restart (sequence-reset)."""


_CONTENT_KEY: Final = (
    'eval content_key=md5(alert_key . "|" . coalesce(opcode, "") . "|" . coalesce(response_code, "")'
    ' . "|" . coalesce(response, "") . "|" . coalesce(session_handle, "")'
    ' . "|" . coalesce(user_name, "") . "|" . coalesce(user_type, "")'
    ' . "|" . coalesce(key_handle, "") . "|" . coalesce(public_key_handle, ""))'
)
"""SPL: a record's id *and* what it says. event_id hashes the content already; a sender can still
claim a genuine record's id for other content, which `dedup alert_key` alone would hide."""


def spl_sequence_duplicate() -> str:
    # event_id hashes the record's content (contracts.md §1): `dedup` on id and content removes
    # exact re-deliveries only, so two keys left at one position are two different records (a
    # forged twin, with its own id or claiming the genuine one); raw text without an id keys on
    # its text (`ALERT_KEY`). Positions re-used after a restart belong to a new numbering (an
    # `epoch`, as the engine restarts its stream state): sequence-reset's.
    return (
        f'{MACRO} record_format="text" {_KNOWN_HSM} sequence_no=* reboot_counter=*'
        f" | {ALERT_KEY} | {_CONTENT_KEY} | dedup content_key | {_SEQUENCE_FIELDS}"
        f" | {_SEQUENCE_PROJECTION.replace(' alert_key ', ' content_key ')}"
        " | sort 0 cluster_id stream _time sequence_no"
        " | streamstats current=f window=1 last(sequence_no) as previous_sequence_no"
        " last(reboot_counter) as previous_reboot_counter by cluster_id stream"
        f" | eval restart=if({_RESTART}, 1, 0)"
        # A running count of restarts in (stream, time) order; `accum` has no window cap, unlike
        # a streamstats sum, which stops at max_stream_window records. Sorted by stream, the
        # count differs between the numberings of one stream.
        " | accum restart as epoch"
        " | stats dc(content_key) as variants values(event_id) as event_ids values(opcode) as opcodes"
        " max(_time) as _time by cluster_id stream reboot_counter epoch sequence_no"
        " | where variants > 1"
        ' | eval rule="sequence-duplicate", alert_severity="critical"'
        " | table _time cluster_id stream reboot_counter sequence_no variants opcodes event_ids"
        " rule alert_severity"
    )


def spl_hsm_silent() -> str:
    seconds = DEFAULT_SILENT_AFTER_USECS // 1_000_000
    # host is the HSM id and source the log group on both formats (contracts.md §2); both are
    # index-time metadata, so tstats answers without reading an event.
    return (
        f'| tstats latest(_time) as last_seen count as records where {MACRO} host="hsm-*" by source host'
        ' | eval cluster_id=replace(source, "^/aws/cloudhsm/", ""), hsm_id=host'
        " | eval silent_seconds=now() - last_seen"
        f" | where silent_seconds >= {seconds}"
        # last_seen is epoch seconds (UTC); strftime renders in the search user's time zone, so
        # the text carries its offset (%z) instead of a "Z" that would mislabel local time.
        ' | eval rule="hsm-silent", alert_severity="high",'
        ' last_seen_time=strftime(last_seen, "%Y-%m-%dT%H:%M:%S%z")'
        " | table cluster_id hsm_id last_seen last_seen_time silent_seconds records rule alert_severity"
    )


def spl_hsm_removed_while_active() -> str:
    window = DEFAULT_ACTIVE_WINDOW_USECS // 1_000_000
    # Few DeleteHsm calls and one stats row per HSM: the join's subsearch stays tiny.
    return (
        f'{CLOUDTRAIL_MACRO} | search opcode="DeleteHsm" response="SUCCESS" hsm_id=*'
        " | dedup event_id"
        " | eval deleted_at=_time, deletion_event_id=event_id"
        f' | join type=inner hsm_id [search {MACRO} hsm_id=* NOT record_format="cloudtrail"'
        " | stats latest(_time) as last_record_at latest(event_id) as last_event_id by hsm_id]"
        f" | where last_record_at >= deleted_at - {window}"
        " | eval seconds_from_last_record_to_deletion=deleted_at - last_record_at,"
        ' rule="hsm-removed-while-active", alert_severity="critical"'
        " | table _time cluster_id hsm_id user_name deleted_at last_record_at"
        " seconds_from_last_record_to_deletion deletion_event_id last_event_id rule alert_severity"
    )


def spl_duplicates() -> str:
    return (
        f"{MACRO} | {ALERT_KEY}"
        " | stats count as copies min(_indextime) as first_indexed max(_indextime) as last_indexed"
        " values(hsm_id) as hsm_id values(event_id) as event_id by alert_key"
        " | where copies > 1"
        " | table alert_key event_id hsm_id copies first_indexed last_indexed"
    )
