"""Phase 1: the shipped Sigma rule files, parsed with every rule's errors collected.

A rule file's Sigma `name` must equal its file stem; correlation rules are told apart from
single-event rules here. Pipelines mutate rules in place (`splunk.md` §4.4), so every later
conversion re-parses the YAML through `sigma_collection`.
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib import resources
from typing import Any

from hsmaudit.detect.errors import RuleError


@dataclass(frozen=True, slots=True)
class RuleSource:
    """One rule file: its id (file stem = Sigma `name`) and YAML text."""

    rule_id: str
    text: str


def rule_sources() -> list[RuleSource]:
    """Every shipped rule, sorted by id (package data `detect/rules/<rule-id>.yml`)."""
    folder = resources.files("hsmaudit.detect").joinpath("rules")
    sources = [
        RuleSource(entry.name.removesuffix(".yml"), entry.read_text(encoding="utf-8"))
        for entry in folder.iterdir()
        if entry.name.endswith(".yml")
    ]
    return sorted(sources, key=lambda source: source.rule_id)


def sigma_collection(texts: list[str]) -> Any:
    from sigma.collection import SigmaCollection

    return SigmaCollection.from_yaml("\n---\n".join(texts))


@dataclass(frozen=True, slots=True)
class ParsedRules:
    single: dict[str, RuleSource]
    correlations: dict[str, RuleSource]


def parse_sources(sources: list[RuleSource]) -> ParsedRules:
    from sigma.correlations import SigmaCorrelationRule
    from sigma.exceptions import SigmaError

    single: dict[str, RuleSource] = {}
    correlations: dict[str, RuleSource] = {}
    errors: list[str] = []
    texts = {source.rule_id: source.text for source in sources}
    for source in sources:
        try:
            rule = sigma_collection([source.text]).rules[0]
        except SigmaError as error:
            if "not found in rule collection" not in str(error):
                errors.append(f"{source.rule_id}: {error}")
                continue
            rule = sigma_collection([*texts.values()])[source.rule_id]
        if rule.name != source.rule_id:
            errors.append(f"{source.rule_id}: Sigma name {rule.name!r} must equal the file name")
            continue
        if isinstance(rule, SigmaCorrelationRule):
            correlations[source.rule_id] = source
        else:
            single[source.rule_id] = source
    if errors:
        raise RuleError("; ".join(errors))
    return ParsedRules(single, correlations)
