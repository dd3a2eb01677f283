"""CloudTrail CloudHSM calls parse into `cloudtrail` events; other services are skipped and counted."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hsmaudit.records.cloudtrail import CloudTrailStats, cloudtrail_events
from hsmaudit.records.event import HsmEvent
from hsmaudit.sources.files import read_bytes, read_paths

DATA = Path(__file__).resolve().parents[1] / "data" / "cloudtrail"
LOG_FILE = DATA / "111122223333_CloudTrail_us-east-1_20260314T1030Z_example.json.gz"


def _events(path: Path) -> list[HsmEvent]:
    items = list(read_paths([str(path)]))
    assert all(isinstance(item, HsmEvent) for item in items)
    return [item for item in items if isinstance(item, HsmEvent)]


def test_gzipped_log_file_maps_fields_and_skips_other_services() -> None:
    stats = CloudTrailStats()
    events = list(cloudtrail_events(json.loads(gzip.decompress(LOG_FILE.read_bytes())), stats))
    assert (stats.events, stats.skipped) == (3, 1)
    delete_hsm, delete_cluster, delete_backup = events
    assert delete_hsm.record_format == "cloudtrail"
    assert delete_hsm.time == "2026-03-14T10:15:00.000000Z"
    assert (delete_hsm.cluster_id, delete_hsm.hsm_id) == ("cluster-jxhlf7644ne", "hsm-ktsfg2nbmw4")
    assert (delete_hsm.action, delete_hsm.severity, delete_hsm.outcome) == (
        "hsm_delete",
        "critical",
        "success",
    )
    assert delete_hsm.user_name == "Alice"
    assert delete_cluster.cluster_id == "cluster-jxhlf7644ne"
    assert delete_cluster.user_name == "HsmAdmin/ops-session"
    assert (delete_cluster.action, delete_cluster.severity) == ("cluster_delete", "critical")
    assert delete_backup.outcome == "failure"
    assert delete_backup.response == "AccessDeniedException"
    assert delete_backup.extra is not None and delete_backup.extra["backupId"] == "backup-rtq2dwi2gq6"
    assert len({event.event_id for event in events}) == 3


def test_gzipped_file_through_the_file_source() -> None:
    events = _events(LOG_FILE)
    assert [event.opcode for event in events] == ["DeleteHsm", "DeleteCluster", "DeleteBackup"]


def test_eventbridge_api_call_event() -> None:
    (event,) = _events(DATA / "eventbridge_copy_backup.json")
    assert (event.opcode, event.category, event.action) == (
        "CopyBackupToRegion",
        "backup",
        "backup_copy_region",
    )
    assert event.extra is not None and event.extra["destinationRegion"] == "eu-west-1"


def test_lookup_events_output() -> None:
    modify, initialise = _events(DATA / "lookup_events.json")
    assert modify.cluster_id == "cluster-jxhlf7644ne"
    assert modify.extra is not None and modify.extra["backupRetentionDays"] == "7"
    assert (initialise.action, initialise.severity) == ("cluster_initialize", "high")


def test_non_cloudhsm_only_file_yields_nothing_and_counts() -> None:
    stats = CloudTrailStats()
    doc = {"Records": [{"eventSource": "s3.amazonaws.com", "eventName": "GetObject", "eventTime": "x"}] * 3}
    assert list(cloudtrail_events(doc, stats)) == []
    assert stats.skipped == 3


def test_bad_cloudtrail_event_string_is_flagged() -> None:
    doc = {"Events": [{"CloudTrailEvent": "{not json"}]}
    (event,) = cloudtrail_events(doc, CloudTrailStats())
    assert event.parse_error == "CloudTrailEvent is not JSON"
    assert event.raw == "{not json"


@given(
    st.dictionaries(
        st.sampled_from(["eventName", "eventTime", "userIdentity", "requestParameters", "errorCode"]),
        st.one_of(
            st.none(),
            st.integers(),
            st.text(max_size=20),
            st.dictionaries(st.text(max_size=5), st.text(max_size=5), max_size=3),
        ),
    )
)
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_hostile_records_never_raise(fields: dict[str, object]) -> None:
    record = {"eventSource": "cloudhsm.amazonaws.com", **fields}
    (event,) = cloudtrail_events({"Records": [record]}, CloudTrailStats())
    assert event.record_format == "cloudtrail"
    assert event.event_id


def test_same_record_same_id_different_content_different_id() -> None:
    base = json.loads((DATA / "eventbridge_copy_backup.json").read_text())
    first = list(read_bytes(json.dumps(base).encode(), name="a"))
    base["detail"]["eventTime"] = "2026-03-14T11:00:01Z"
    second = list(read_bytes(json.dumps(base).encode(), name="b"))
    again = list(read_bytes((DATA / "eventbridge_copy_backup.json").read_bytes(), name="c"))
    assert (
        isinstance(first[0], HsmEvent) and isinstance(second[0], HsmEvent) and isinstance(again[0], HsmEvent)
    )
    assert first[0].event_id == again[0].event_id != second[0].event_id
