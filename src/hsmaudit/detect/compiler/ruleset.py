"""Phase 2: each rule's `rules.json` entry for the Python engine (`detect/ruleset.py` reads it).

A single-event rule's condition becomes the small JSON tree `ruleset.compile_condition` turns
into predicates (modifiers applied by pySigma, fields checked against `FIELD_NAMES`); a
correlation keeps its count, window and grouping; the stateful detections are listed with
their metadata (`STATEFUL_META`, which the Splunk stanzas use too).
"""

from __future__ import annotations

import re
from typing import Any, Final

from hsmaudit.detect.compiler.parsing import RuleSource, sigma_collection
from hsmaudit.detect.compiler.targets import LOGSOURCE_MACROS
from hsmaudit.detect.control_plane import DEFAULT_ACTIVE_WINDOW_USECS
from hsmaudit.detect.errors import RuleError
from hsmaudit.detect.ruleset import LEVEL_SEVERITY
from hsmaudit.detect.silence import DEFAULT_SILENT_AFTER_USECS
from hsmaudit.records.event import FIELD_NAMES


def _condition_tree(node: Any, rule_id: str) -> dict[str, Any]:
    """pySigma's parsed condition -> the JSON tree `ruleset.compile_condition` understands."""
    from sigma.conditions import (
        ConditionAND,
        ConditionFieldEqualsValueExpression,
        ConditionNOT,
        ConditionOR,
    )
    from sigma.types import (
        SigmaBool,
        SigmaCasedString,
        SigmaCompareExpression,
        SigmaExists,
        SigmaNull,
        SigmaNumber,
        SigmaRegularExpression,
        SigmaString,
    )

    if isinstance(node, ConditionAND):
        return {"and": [_condition_tree(arg, rule_id) for arg in node.args]}
    if isinstance(node, ConditionOR):
        return {"or": [_condition_tree(arg, rule_id) for arg in node.args]}
    if isinstance(node, ConditionNOT):
        return {"not": _condition_tree(node.args[0], rule_id)}
    if not isinstance(node, ConditionFieldEqualsValueExpression):
        raise RuleError(
            f"unsupported condition {type(node).__name__} (keyword searches need a field)", rule=rule_id
        )
    field_name = node.field
    if field_name not in FIELD_NAMES:
        raise RuleError(
            f"field {field_name!r} is not an event field (records.event.FIELD_NAMES)", rule=rule_id
        )
    value = node.value
    if isinstance(value, SigmaCasedString):
        raise RuleError("the |cased modifier is not supported", rule=rule_id)
    if isinstance(value, SigmaString):
        if value.contains_special():
            return {"field": field_name, "match": _wildcard_regex(value)}
        return {"field": field_name, "eq": str(value)}
    if isinstance(value, SigmaBool):
        return {"field": field_name, "bool": value.boolean}
    if isinstance(value, SigmaNumber):
        return {"field": field_name, "num": value.number}
    if isinstance(value, SigmaNull):
        return {"field": field_name, "null": True}
    if isinstance(value, SigmaExists):
        return {"field": field_name, "exists": value.exists}
    if isinstance(value, SigmaCompareExpression):
        return {"field": field_name, "cmp": value.op.name.lower(), "num": value.number.number}
    if isinstance(value, SigmaRegularExpression):
        return {"field": field_name, "regex": value.regexp}
    raise RuleError(f"unsupported value type {type(value).__name__} on {field_name}", rule=rule_id)


def _wildcard_regex(value: Any) -> str:
    from sigma.types import SpecialChars

    parts: list[str] = []
    for part in value.s:
        if part == SpecialChars.WILDCARD_MULTI:
            parts.append(".*")
        elif part == SpecialChars.WILDCARD_SINGLE:
            parts.append(".")
        elif isinstance(part, str):
            parts.append(re.escape(part))
        else:  # placeholders and other specials have no meaning on our events
            raise RuleError(f"unsupported special character in {value!r}")
    return "".join(parts)


def _opcodes(tree: dict[str, Any]) -> set[str] | None:
    """Opcodes a rule can possibly match (None = any): lets the engine skip most rules per event."""
    if "and" in tree:
        constrained = [s for s in (_opcodes(arg) for arg in tree["and"]) if s is not None]
        if not constrained:
            return None
        result = constrained[0]
        for other in constrained[1:]:
            result = result & other
        return result
    if "or" in tree:
        sets = [_opcodes(arg) for arg in tree["or"]]
        if any(s is None for s in sets):
            return None
        return set().union(*(s for s in sets if s is not None))
    if tree.get("field") == "opcode" and "eq" in tree:
        return {str(tree["eq"]).upper()}
    return None


def _header(rule_id: str, rule: Any, *, default_level: str) -> dict[str, Any]:
    """What every `rules.json` entry starts with, single-event rule or correlation, in this order."""
    level = rule.level.name.lower() if rule.level else default_level
    return {
        "id": rule_id,
        "uuid": str(rule.id),
        "title": rule.title,
        "level": level,
        "severity": LEVEL_SEVERITY[level],
        "description": " ".join((rule.description or "").split()),
        "tags": [str(tag) for tag in rule.tags],
        "falsepositives": list(rule.falsepositives or []),
    }


def rule_entry(source: RuleSource) -> dict[str, Any]:
    rule = sigma_collection([source.text]).rules[0]
    conditions = rule.detection.parsed_condition
    if len(conditions) != 1:
        raise RuleError("exactly one condition is supported", rule=source.rule_id)
    tree = _condition_tree(conditions[0].parsed, source.rule_id)
    opcodes = _opcodes(tree)
    return {
        **_header(source.rule_id, rule, default_level="medium"),
        "opcodes": sorted(opcodes) if opcodes is not None else None,
        "logsource": _logsource(rule, source.rule_id),
        "condition": tree,
    }


def _logsource(rule: Any, rule_id: str) -> str:
    """`cloudhsm` (the HSM audit records) or `cloudtrail` (the CloudHSM API calls in CloudTrail)."""
    service = rule.logsource.service if rule.logsource is not None else None
    if service not in LOGSOURCE_MACROS:
        raise RuleError(f"logsource service must be one of {sorted(LOGSOURCE_MACROS)}", rule=rule_id)
    return str(service)


def correlation_entry(source: RuleSource, texts: list[str]) -> dict[str, Any]:
    rule = sigma_collection(texts)[source.rule_id]
    condition = rule.condition
    if rule.type.name.lower() != "event_count" or condition.op.name.lower() != "gte":
        raise RuleError(
            "only event_count correlations with a gte condition are supported", rule=source.rule_id
        )
    return {
        **_header(source.rule_id, rule, default_level="high"),
        "type": "event_count",
        "rules": [reference.reference for reference in rule.rules],
        "group_by": list(rule.group_by or []),
        "timespan_seconds": rule.timespan.seconds,
        "threshold": condition.count,
    }


STATEFUL_META: Final[dict[str, dict[str, Any]]] = {
    "sequence-gap": {
        "title": "CloudHSM audit sequence gap",
        "severity": "critical",
        "description": "Sequence numbers of one HSM stream skipped values within one reboot counter: "
        "records were lost or removed.",
    },
    "sequence-reset": {
        "title": "CloudHSM audit sequence reset",
        "severity": "critical",
        "description": "An HSM stream's sequence number went back without its reboot counter rising.",
    },
    "sequence-duplicate": {
        "title": "CloudHSM audit sequence duplicate",
        "severity": "critical",
        "description": "Two different records claim the same (HSM, reboot counter, sequence number).",
    },
    "hsm-removed-while-active": {
        "title": "CloudHSM HSM deleted while its audit stream was active",
        "severity": "critical",
        "description": "A successful DeleteHsm call (CloudTrail) for an HSM that wrote audit records "
        f"less than {DEFAULT_ACTIVE_WINDOW_USECS // 60_000_000} minutes before it (or after it): "
        "an HSM in use, not drained, was removed with its copy of the audit trail.",
    },
    "hsm-silent": {
        "title": "CloudHSM stopped logging",
        "severity": "high",
        "description": "An HSM that was logging has sent no audit record for "
        f"{DEFAULT_SILENT_AFTER_USECS // 3_600_000_000} hour(s).",
    },
}
