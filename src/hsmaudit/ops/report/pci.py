"""The PCI DSS v4 requirements a report evidences, and the sections that evidence each."""

from __future__ import annotations

from typing import Final

PCI_SECTIONS: Final = (
    (
        "10.2",
        "Audit logs capture user activity and events relevant to security",
        ("activity_by_day", "control_plane"),
        "every login, user and key management command and critical command by day; the CloudHSM API "
        "calls that do not appear in the HSM's own log",
    ),
    (
        "10.3",
        "Audit logs are protected from destruction and unauthorised modification",
        ("streams", "integrity"),
        "per-HSM sequence ranges with every gap, reset and duplicate (a forged twin of a record is a "
        "duplicate); report and data digests",
    ),
    (
        "10.5.1",
        "Audit log history is retained for at least 12 months, 3 months immediately available",
        ("retention",),
        "the first and last record this data holds and the days between",
    ),
    (
        "10.7.2",
        "Failures of critical security control systems (audit logging) are detected and reported",
        ("integrity", "alerts"),
        "silent periods and gaps with their times, and the alerts the detections raised for them",
    ),
)
