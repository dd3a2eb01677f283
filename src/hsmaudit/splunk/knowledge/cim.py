"""The CIM mapping: which hsmaudit verbs and categories belong to which data model, and as what.

One table decides it for the lookup rows (`lookups`), the CIM EVALs (`evals`) and the Change event
types (`eventtypes`), so the three cannot disagree.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Final

from hsmaudit.records.opcodes import CERTIFICATE_OPCODES, OPCODES, OpcodeInfo

# hsmaudit verb -> CIM Change `action` (CIM 4.x Change data model: created, deleted, modified, read,
# acl_modified, ...). Sharing a key changes who may use it: an ACL change.
CIM_CHANGE_ACTIONS: Final[dict[str, str]] = {
    "create": "created",
    "generate": "created",
    "import": "created",
    "derive": "created",
    "delete": "deleted",
    "modify": "modified",
    "change_password": "modified",
    "approve": "modified",
    "share": "acl_modified",
    "export": "read",
}

# hsmaudit category -> (CIM `change_type`, CIM `object_category`) for the Change data model.
# "AAA" is CIM's change_type for account (authentication/authorisation) changes.
CHANGE_CATEGORIES: Final[dict[str, tuple[str, str]]] = {
    "user_management": ("AAA", "user"),
    "quorum": ("AAA", "quorum"),
    "key_management": ("key_management", "key"),
    "certificate": ("certificate", "certificate"),
}

CIM_APP: Final = "cloudhsm"
CIM_VENDOR_PRODUCT: Final = "AWS CloudHSM"
REPLICA_BUCKET_USECS: Final = 5_000_000
"""cluster_action_id's time bucket: the brute-force rule's replica window (detect/bruteforce.py)."""


def all_opcodes() -> dict[str, OpcodeInfo]:
    """Every opcode the parser knows, text and certificate records alike."""
    return {**OPCODES, **CERTIFICATE_OPCODES}


def _group(key: Callable[[OpcodeInfo], str | None]) -> dict[str, set[str]]:
    """Opcodes grouped by `key(info)`, leaving out opcodes for which it is None."""
    groups: dict[str, set[str]] = {}
    for opcode, info in all_opcodes().items():
        value = key(info)
        if value is not None:
            groups.setdefault(value, set()).add(opcode)
    return dict(sorted(groups.items()))


def cim_opcodes() -> set[str]:
    """Opcodes whose events belong to a data model: logins (Authentication) and changes (Change)."""
    return {"CN_LOGIN", *set().union(*change_opcodes().values())}


def change_opcodes() -> dict[str, set[str]]:
    """CIM object_category -> the opcodes whose events belong to the Change data model."""

    def category_of(info: OpcodeInfo) -> str | None:
        if info.category in CHANGE_CATEGORIES and info.action in CIM_CHANGE_ACTIONS:
            return CHANGE_CATEGORIES[info.category][1]
        return None

    return _group(category_of)
