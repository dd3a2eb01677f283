"""CloudTrail CloudHSM API calls -> `HsmEvent`s (record_format `cloudtrail`).

AWS's monitoring guidance for CloudHSM pairs the HSM audit log with CloudTrail's record of the
control plane: deleting an HSM, a cluster or a backup, restoring or copying a backup, never shows
in the HSM's own log. This module reads the three shapes those calls arrive in (a CloudTrail log
file's `Records` array, an EventBridge "AWS API Call via CloudTrail" event, and
`aws cloudtrail lookup-events` output whose `CloudTrailEvent` is a JSON string) and maps each
CloudHSM call to the same contract fields the audit records use. Records of any other service are
skipped and counted, never errors. Plain stdlib + msgspec: the Lambda may import it.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from hashlib import blake2b
from typing import Any, Final

import msgspec

from hsmaudit.records.event import Category, HsmEvent, Severity

EVENT_SOURCE: Final = "cloudhsm.amazonaws.com"

ACTIONS: Final[dict[str, tuple[Category, str, Severity]]] = {
    # eventName: (category, action, severity)
    "CreateCluster": ("cluster", "cluster_create", "medium"),
    "DeleteCluster": ("cluster", "cluster_delete", "critical"),
    "InitializeCluster": ("cluster", "cluster_initialize", "high"),
    "ModifyCluster": ("cluster", "cluster_modify", "medium"),
    "CreateHsm": ("cluster", "hsm_create", "medium"),
    "DeleteHsm": ("cluster", "hsm_delete", "critical"),
    "DeleteBackup": ("backup", "backup_delete", "high"),
    "RestoreBackup": ("backup", "backup_restore", "high"),
    "CopyBackupToRegion": ("backup", "backup_copy_region", "high"),
    "ModifyBackupAttributes": ("backup", "backup_modify", "medium"),
    "TagResource": ("other", "tag_resource", "info"),
    "UntagResource": ("other", "untag_resource", "info"),
    "DescribeClusters": ("other", "describe_clusters", "info"),
    "DescribeBackups": ("other", "describe_backups", "info"),
    "ListTags": ("other", "list_tags", "info"),
}
"""The CloudHSM v2 API actions; calls not listed still parse, as category `other`, severity info."""


class CloudTrailStats(msgspec.Struct):
    """What a read found: CloudHSM calls turned into events, and other services' records skipped."""

    events: int = 0
    skipped: int = 0


STATS: Final = CloudTrailStats()
"""Running totals for this process (the CLI reports them; tests reset them)."""


def is_cloudtrail(obj: Any) -> bool:
    """True for the shapes this module reads (a log file, an EventBridge event, lookup-events, one record)."""
    if not isinstance(obj, dict):
        return False
    if isinstance(obj.get("Records"), list):
        return True
    if obj.get("detail-type") == "AWS API Call via CloudTrail" and isinstance(obj.get("detail"), dict):
        return True
    if isinstance(obj.get("Events"), list):
        return True
    return "eventSource" in obj and "eventName" in obj and "eventTime" in obj


def cloudtrail_events(obj: Any, stats: CloudTrailStats | None = None) -> Iterator[HsmEvent]:
    """Yield one event per CloudHSM call in a CloudTrail shape; count the rest as skipped."""
    stats = stats if stats is not None else STATS
    for record in _records(obj):
        if not isinstance(record, dict) or record.get("eventSource") != EVENT_SOURCE:
            stats.skipped += 1
            continue
        stats.events += 1
        yield cloudtrail_event(record)


def _records(obj: Any) -> Iterator[Any]:
    if not isinstance(obj, dict):
        yield obj
        return
    if isinstance(obj.get("Records"), list):
        yield from obj["Records"]
    elif obj.get("detail-type") == "AWS API Call via CloudTrail" and isinstance(obj.get("detail"), dict):
        yield obj["detail"]
    elif isinstance(obj.get("Events"), list):
        for entry in obj["Events"]:
            text = entry.get("CloudTrailEvent") if isinstance(entry, dict) else None
            if isinstance(text, str):
                try:
                    yield msgspec.json.decode(text)
                except msgspec.DecodeError:
                    yield {"eventSource": EVENT_SOURCE, "_bad": text}
            else:
                yield entry
    else:
        yield obj


def cloudtrail_event(record: dict[str, Any]) -> HsmEvent:
    """Map one CloudHSM CloudTrail record to an event (a malformed one is flagged, never raised)."""
    raw = msgspec.json.encode(record).decode()
    event_id = blake2b(f"cloudtrail|{raw}".encode(), digest_size=16).hexdigest()
    name = record.get("eventName")
    if "_bad" in record or not isinstance(name, str):
        return HsmEvent(
            record_format="cloudtrail",
            category="other",
            severity="medium",
            event_id=event_id,
            parse_error="not a CloudTrail record (no eventName)"
            if "_bad" not in record
            else "CloudTrailEvent is not JSON",
            raw=record.get("_bad", raw),
        )
    category, action, severity = ACTIONS.get(name, ("other", _snake(name), "info"))
    params = record.get("requestParameters") if isinstance(record.get("requestParameters"), dict) else {}
    if name == "CreateCluster" and isinstance(params, dict) and isinstance(params.get("sourceBackupId"), str):
        action, severity = "cluster_create_from_backup", "high"  # every key of the backup, in a new cluster
    response = record.get("responseElements") if isinstance(record.get("responseElements"), dict) else {}
    error_code = record.get("errorCode")
    failed = isinstance(error_code, str) and bool(error_code)
    usecs, time = _time(record.get("eventTime"))
    extra: dict[str, str] = {}
    for key in ("eventID", "awsRegion", "sourceIPAddress", "userAgent", "errorCode", "errorMessage"):
        value = record.get(key)
        if isinstance(value, str) and value:
            extra[key] = value
    for key in ("backupId", "destinationRegion", "sourceBackupId", "resourceId"):
        value = params.get(key) if isinstance(params, dict) else None
        if isinstance(value, str):
            extra[key] = value
    retention = _retention(params)
    if retention is not None:
        extra["backupRetentionDays"] = retention
    return HsmEvent(
        time=time,
        usecs=usecs,
        cluster_id=_find(params, response, "clusterId"),
        hsm_id=_find(params, response, "hsmId"),
        record_format="cloudtrail",
        opcode=name,
        response=error_code if failed else "SUCCESS",
        success=not failed,
        outcome="failure" if failed else "success",
        user_name=_user_name(record.get("userIdentity")),
        user_type=_str(record.get("userIdentity", {}).get("type"))
        if isinstance(record.get("userIdentity"), dict)
        else None,
        category=category,
        action=action,
        severity=severity,
        event_id=event_id,
        extra=extra or None,
        parse_error=None if usecs is not None else "eventTime missing or not ISO-8601",
        raw=raw,
    )


def _find(params: Any, response: Any, key: str) -> str | None:
    for source in (params, response):
        if isinstance(source, dict):
            value = source.get(key)
            if isinstance(value, str) and value:
                return value
            for nested in ("cluster", "hsm", "backup"):
                inner = source.get(nested)
                if isinstance(inner, dict) and isinstance(inner.get(key), str):
                    return str(inner[key])
    return None


def _retention(params: Any) -> str | None:
    policy = params.get("backupRetentionPolicy") if isinstance(params, dict) else None
    if isinstance(policy, dict) and policy.get("type", "DAYS") == "DAYS" and policy.get("value") is not None:
        return str(policy["value"])
    return None


def _user_name(identity: Any) -> str | None:
    """The IAM identity's readable name: userName, else the session's role name, else the ARN's tail."""
    if not isinstance(identity, dict):
        return None
    if isinstance(identity.get("userName"), str):
        return str(identity["userName"])
    issuer = (
        identity.get("sessionContext", {}).get("sessionIssuer", {})
        if isinstance(identity.get("sessionContext"), dict)
        else {}
    )
    arn = identity.get("arn")
    if isinstance(arn, str) and arn:
        tail = arn.rsplit(":", 1)[-1]
        parts = tail.split("/")
        if parts[0] == "assumed-role" and len(parts) >= 3:
            return f"{parts[1]}/{parts[2]}"
        return parts[-1] if len(parts) > 1 else tail
    if isinstance(issuer, dict) and isinstance(issuer.get("userName"), str):
        return str(issuer["userName"])
    return _str(identity.get("principalId"))


def _str(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def _time(value: Any) -> tuple[int | None, str | None]:
    if not isinstance(value, str):
        return None, None
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None, None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    usecs = int(moment.timestamp()) * 1_000_000 + moment.microsecond
    return usecs, moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _snake(name: str) -> str:
    return "".join(f"_{c.lower()}" if c.isupper() else c for c in name).lstrip("_")
