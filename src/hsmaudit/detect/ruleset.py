"""The single-event Sigma rules at runtime: compiled conditions -> Python predicates.

`hsmaudit rules compile` stores each rule's condition, as pySigma parsed it (modifiers applied,
lists expanded), in `detect/generated/rules.json`. This module turns that tree into closures once,
so the engine evaluates the same rules Splunk and SQLite run, without importing pySigma or YAML
("written once, run everywhere"; the agreement is tested against the SQLite queries).

Matching follows Sigma: strings compare case-insensitively, wildcards become anchored patterns,
a missing field never matches (so `not x` is true when the field is absent, as in the SQLite
backend's `NOT COALESCE(x, 0)`). Rules are indexed by the opcodes they can match, so an event is
tested only against the few rules that could fire for its opcode.
"""

from __future__ import annotations

import json
import operator
import re
import string
from collections.abc import Callable
from dataclasses import dataclass
from importlib import resources
from typing import Any, Final

from hsmaudit.detect.errors import RuleError
from hsmaudit.records.alert import Alert
from hsmaudit.records.event import FIELD_NAMES, SEVERITY_RANK, HsmEvent, Severity

RULESET_VERSION: Final = 1
LEVEL_SEVERITY: Final[dict[str, Severity]] = {
    "informational": "info",
    "low": "info",
    "medium": "medium",
    "high": "high",
    "critical": "critical",
}
_BY_RANK: Final[dict[int, Severity]] = {rank: name for name, rank in SEVERITY_RANK.items()}  # type: ignore[misc]

Predicate = Callable[[HsmEvent], bool]

# Facts copied into an alert's details when the event has them.
_DETAIL_FIELDS: Final = (
    "opcode",
    "response_code",
    "response",
    "user_type",
    "target_user_name",
    "target_user_type",
    "key_handle",
    "public_key_handle",
    "object_handle",
    "session_handle",
    "sequence_no",
    "reboot_counter",
    "parse_error",
)


def ascii_lower(text: str) -> str:
    """Lower-case A-Z only: SQLite's LIKE and lower() fold ASCII only, and the engine must agree."""
    return text.translate(_ASCII_LOWER)


_ASCII_LOWER: Final = str.maketrans(string.ascii_uppercase, string.ascii_lowercase)


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return ascii_lower(str(value))


def _getter(field: str) -> Callable[[HsmEvent], Any]:
    if field not in FIELD_NAMES:
        raise RuleError(f"unknown field {field!r}")
    return operator.attrgetter(field)


def _leaf(tree: dict[str, Any]) -> Predicate:
    get = _getter(tree["field"])
    if "eq" in tree:
        literal = str(tree["eq"])
        expected = ascii_lower(literal)

        def eq(event: HsmEvent) -> bool:
            value = get(event)
            # Exact match first: parsed values are already in canonical case (the hot path).
            return value == literal or (value is not None and _text(value) == expected)

        return eq
    if "in" in tree:
        options = frozenset(ascii_lower(str(option)) for option in tree["in"])

        def one_of(event: HsmEvent) -> bool:
            value = get(event)
            return value is not None and _text(value) in options

        return one_of
    if "match" in tree:
        pattern = re.compile(tree["match"], re.IGNORECASE | re.DOTALL | re.ASCII)

        def match(event: HsmEvent) -> bool:
            value = get(event)
            return value is not None and pattern.fullmatch(_text(value)) is not None

        return match
    if "regex" in tree:
        regex = re.compile(tree["regex"])

        def search(event: HsmEvent) -> bool:
            value = get(event)
            return value is not None and regex.search(str(value)) is not None

        return search
    if "bool" in tree:
        flag = bool(tree["bool"])
        return lambda event: get(event) is flag
    if "null" in tree:
        return lambda event: get(event) is None
    if "exists" in tree:
        exists = bool(tree["exists"])
        return lambda event: (get(event) is not None) is exists
    if "cmp" in tree:
        number = tree["num"]
        compare: Callable[[Any], bool] = {
            "lt": lambda v: v < number,
            "lte": lambda v: v <= number,
            "gt": lambda v: v > number,
            "gte": lambda v: v >= number,
        }[tree["cmp"]]

        def compared(event: HsmEvent) -> bool:
            value = get(event)
            return isinstance(value, int | float) and not isinstance(value, bool) and compare(value)

        return compared
    if "num" in tree:
        number = tree["num"]

        def equal_number(event: HsmEvent) -> bool:
            value = get(event)
            return not isinstance(value, bool) and value is not None and value == number

        return equal_number
    raise RuleError(f"unknown condition node {sorted(tree)}")


def _cost(tree: dict[str, Any]) -> int:
    """Rough evaluation cost, to test cheap and selective leaves of an AND first."""
    if any(key in tree for key in ("bool", "null", "exists")):
        return 0
    if "eq" in tree or "in" in tree or "num" in tree:
        return 1
    if "match" in tree or "regex" in tree:
        return 3
    return 2


def compile_condition(tree: dict[str, Any]) -> Predicate:
    """Turn a condition tree from rules.json into one predicate (raises `RuleError` on bad trees).

    AND operands are reordered cheapest first: the predicates are pure, so order cannot change
    the result, only how soon a non-matching event is rejected.
    """
    if "and" in tree:
        parts = [compile_condition(arg) for arg in sorted(tree["and"], key=_cost)]
        if len(parts) == 1:
            return parts[0]
        if len(parts) == 2:
            first, second = parts
            return lambda event: first(event) and second(event)
        return lambda event: all(part(event) for part in parts)
    if "or" in tree:
        args: list[dict[str, Any]] = tree["or"]
        fields = {arg.get("field") for arg in args}
        if len(fields) == 1 and None not in fields and all(set(arg) == {"field", "eq"} for arg in args):
            # `opcode: [A, B]` arrives as OR of equalities: one set lookup instead.
            return _leaf({"field": args[0]["field"], "in": [arg["eq"] for arg in args]})
        parts = [compile_condition(arg) for arg in args]
        return lambda event: any(part(event) for part in parts)
    if "not" in tree:
        inner = compile_condition(tree["not"])
        return lambda event: not inner(event)
    return _leaf(tree)


@dataclass(frozen=True, slots=True)
class Rule:
    """One single-event rule, ready to run."""

    id: str
    title: str
    severity: Severity
    predicate: Predicate
    opcodes: frozenset[str] | None

    def alert(self, event: HsmEvent) -> Alert:
        """The alert for one matching event: severity is the higher of the rule's and the event's."""
        severity = self.severity
        if event.severity is not None and SEVERITY_RANK[event.severity] > SEVERITY_RANK[severity]:
            severity = event.severity
        details = {name: value for name in _DETAIL_FIELDS if (value := getattr(event, name)) is not None}
        return Alert(
            rule=self.id,
            title=self.title,
            severity=severity,
            time=event.time,
            cluster_id=event.cluster_id,
            hsm_id=event.hsm_id,
            user_name=event.user_name,
            event_ids=[event.event_id] if event.event_id else [],
            details=details,
        )


@dataclass(frozen=True, slots=True)
class Correlation:
    """The event-count correlation (login-brute-force) parameters from its Sigma rule."""

    id: str
    title: str
    severity: Severity
    rules: tuple[str, ...]
    group_by: tuple[str, ...]
    timespan_seconds: int
    threshold: int


@dataclass(frozen=True, slots=True)
class StatefulRule:
    """Title and severity of a stateful detection (sequence-*, hsm-silent)."""

    id: str
    title: str
    severity: Severity


class RuleSet:
    """Every compiled single-event rule, indexed by opcode; plus the correlation and stateful metadata."""

    def __init__(
        self,
        rules: list[Rule],
        correlations: list[Correlation],
        stateful: list[StatefulRule],
        metadata: dict[str, dict[str, Any]],
    ) -> None:
        self.rules = rules
        self.correlations = {c.id: c for c in correlations}
        self.stateful = {s.id: s for s in stateful}
        self.metadata = metadata
        self._any_opcode = [rule for rule in rules if rule.opcodes is None]
        by_opcode: dict[str, list[Rule]] = {}
        for rule in rules:
            for opcode in rule.opcodes or ():
                by_opcode.setdefault(opcode, []).append(rule)
        # Keep the rules' file order within each bucket, unconstrained rules first.
        self._by_opcode = {
            opcode: tuple(self._any_opcode + [r for r in rules if r in matching])
            for opcode, matching in by_opcode.items()
        }
        self._fallback = tuple(self._any_opcode)

    @property
    def rule_ids(self) -> list[str]:
        """Every rule id: single-event, correlation and stateful."""
        return sorted([r.id for r in self.rules] + list(self.correlations) + list(self.stateful))

    def candidates(self, event: HsmEvent) -> tuple[Rule, ...]:
        """The rules that could match this event's opcode (Sigma matches opcodes case-insensitively)."""
        opcode = event.opcode
        if opcode is None:
            return self._fallback
        found = self._by_opcode.get(opcode)
        if found is None:
            found = self._by_opcode.get(opcode.upper(), self._fallback)
        return found

    def matching(self, event: HsmEvent) -> list[Rule]:
        """Every single-event rule the event matches."""
        return [rule for rule in self.candidates(event) if rule.predicate(event)]

    def get(self, rule_id: str) -> Rule:
        """A single-event rule by id (raises `RuleError`)."""
        for rule in self.rules:
            if rule.id == rule_id:
                return rule
        raise RuleError("no such single-event rule", rule=rule_id)


def ruleset_from_json(text: str | bytes) -> RuleSet:
    """Build a rule set from the content of rules.json."""
    try:
        document = json.loads(text)
    except ValueError as error:
        raise RuleError(f"rules.json is not JSON: {error}") from error
    if not isinstance(document, dict) or document.get("version") != RULESET_VERSION:
        raise RuleError("rules.json has an unknown version; run 'hsmaudit rules compile'")
    rules = []
    metadata: dict[str, dict[str, Any]] = {}
    for entry in document["rules"]:
        try:
            predicate = compile_condition(entry["condition"])
        except RuleError as error:
            raise RuleError(str(error), rule=entry.get("id")) from error
        opcodes = entry.get("opcodes")
        rules.append(
            Rule(
                id=entry["id"],
                title=entry["title"],
                severity=entry["severity"],
                predicate=predicate,
                opcodes=frozenset(opcodes) if opcodes is not None else None,
            )
        )
        metadata[entry["id"]] = entry
    correlations = []
    for entry in document.get("correlations", []):
        correlations.append(
            Correlation(
                id=entry["id"],
                title=entry["title"],
                severity=entry["severity"],
                rules=tuple(entry["rules"]),
                group_by=tuple(entry["group_by"]),
                timespan_seconds=int(entry["timespan_seconds"]),
                threshold=int(entry["threshold"]),
            )
        )
        metadata[entry["id"]] = entry
    stateful = []
    for entry in document.get("stateful", []):
        stateful.append(StatefulRule(id=entry["id"], title=entry["title"], severity=entry["severity"]))
        metadata[entry["id"]] = entry
    return RuleSet(rules, correlations, stateful, metadata)


_CACHE: dict[str, RuleSet] = {}


def load_ruleset() -> RuleSet:
    """The shipped rule set (package data `detect/generated/rules.json`), parsed once per process."""
    cached = _CACHE.get("default")
    if cached is None:
        folder = resources.files("hsmaudit.detect.generated")
        try:
            text = folder.joinpath("rules.json").read_text(encoding="utf-8")
        except OSError as error:
            raise RuleError(f"compiled rule set missing ({error}); run 'hsmaudit rules compile'") from error
        cached = _CACHE["default"] = ruleset_from_json(text)
    return cached
