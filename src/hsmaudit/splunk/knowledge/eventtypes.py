"""The generated blocks of eventtypes.conf and tags.conf: CIM Change and CloudTrail event types."""

from __future__ import annotations

from typing import Final

from hsmaudit.records.cloudtrail import ACTIONS as CLOUDTRAIL_ACTIONS
from hsmaudit.records.cloudtrail import EVENT_SOURCE as CLOUDTRAIL_EVENT_SOURCE
from hsmaudit.splunk.knowledge.cim import change_opcodes
from hsmaudit.splunk.knowledge.names import CLOUDTRAIL_SOURCETYPE, RECIPE_SOURCETYPE
from hsmaudit.splunk.knowledge.spl import spl_quote

HSM_SOURCETYPES: Final = f'(sourcetype="aws:cloudhsm:audit*" OR sourcetype="{RECIPE_SOURCETYPE}")'
CHANGE_EVENTTYPES: Final[dict[str, tuple[str, str]]] = {
    # object_category -> (event type, description)
    "user": ("hsmaudit_account_change", "CloudHSM user management (CIM Change, Account_Management)"),
    "key": ("hsmaudit_key_change", "CloudHSM key management (CIM Change)"),
    "quorum": ("hsmaudit_quorum_change", "CloudHSM quorum changes (CIM Change)"),
    "certificate": ("hsmaudit_certificate_change", "CloudHSM certificate-storage changes (CIM Change)"),
}


def change_eventtypes() -> list[str]:
    """The Change event types, one per CIM object_category, each naming its opcodes."""
    lines: list[str] = []
    for category, opcodes in change_opcodes().items():
        name, description = CHANGE_EVENTTYPES[category]
        names = ", ".join(spl_quote(opcode) for opcode in sorted(opcodes))
        lines += [
            f"[{name}]",
            f"search = {HSM_SOURCETYPES} opcode IN ({names})",
            f"description = {description}",
            "",
        ]
    return lines[:-1]


CLOUDTRAIL_BASE: Final = f'sourcetype="{CLOUDTRAIL_SOURCETYPE}" eventSource="{CLOUDTRAIL_EVENT_SOURCE}"'


def cloudtrail_eventtypes() -> list[str]:
    """Event types of the AWS add-on's CloudTrail events for CloudHSM, by the ACTIONS table."""
    lines = [
        "[hsmaudit_cloudtrail]",
        f"search = {CLOUDTRAIL_BASE}",
        "description = CloudHSM control-plane calls recorded by CloudTrail (Splunk Add-on for AWS)",
        "",
    ]
    by_severity: dict[str, set[str]] = {}
    by_category: dict[str, set[str]] = {}
    for name, (category, _verb, severity) in CLOUDTRAIL_ACTIONS.items():
        by_severity.setdefault(severity, set()).add(name)
        by_category.setdefault(category, set()).add(name)
    for severity in ("critical", "high", "medium"):
        names = ", ".join(spl_quote(n) for n in sorted(by_severity.get(severity, ())))
        lines += [
            f"[hsmaudit_cloudtrail_{severity}]",
            f"search = {CLOUDTRAIL_BASE} eventName IN ({names})",
            f"description = CloudHSM control-plane calls of severity {severity} "
            "(hsmaudit's CloudTrail table)",
            "",
        ]
    for category in ("cluster", "backup"):
        names = ", ".join(spl_quote(n) for n in sorted(by_category.get(category, ())))
        lines += [
            f"[hsmaudit_cloudtrail_{category}]",
            f"search = {CLOUDTRAIL_BASE} eventName IN ({names})",
            f"description = CloudHSM {category} control-plane calls (hsmaudit's CloudTrail table)",
            "",
        ]
    return lines[:-1]


def cloudtrail_tags() -> list[str]:
    """Tags of the CloudTrail event types: hsmaudit's own, never the add-on's CIM tags again."""
    lines: list[str] = []
    for name in ("", "_critical", "_high", "_medium", "_cluster", "_backup"):
        lines += [
            f"[eventtype=hsmaudit_cloudtrail{name}]",
            "cloudhsm = enabled",
            "control_plane = enabled",
            "",
        ]
    return lines[:-1]
