"""The Sigma rules and their compiler: one file per rule, valid Sigma, fresh generated files."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from hsmaudit.detect.compiler import RULES_JSON, OutputPaths, RuleSource, rule_sources
from hsmaudit.detect.compiler import stale_files as stale_outputs
from hsmaudit.detect.compiler import write_generated as write_outputs
from hsmaudit.detect.errors import RuleError
from hsmaudit.detect.ruleset import compile_condition, load_ruleset, ruleset_from_json
from hsmaudit.ops.compiled_rules import (
    PACKAGE_ROOT,
    SAVEDSEARCHES,
    render_generated,
    stale_files,
    write_generated,
)
from hsmaudit.records.event import FIELD_NAMES, HsmEvent

SIGMA_RULE_IDS = {
    "failed-login",
    "login-brute-force",
    "crypto-officer-created",
    "user-created",
    "user-deleted",
    "password-changed",
    "key-deleted",
    "key-exported",
    "quorum-changed",
    "unparsed-record",
    "hsm-critical-operation",  # added beyond the contract's list ("more may be added")
}
CLOUDTRAIL_RULE_IDS = {
    "hsm-or-cluster-deleted",
    "backup-deleted-or-retention-changed",
    "backup-restored-or-copied",
    "cluster-initialised",
}
CONTRACT_RULE_IDS = (
    SIGMA_RULE_IDS
    | CLOUDTRAIL_RULE_IDS
    | {"sequence-gap", "sequence-reset", "sequence-duplicate", "hsm-silent", "hsm-removed-while-active"}
)


def documents() -> list[tuple[str, dict[str, Any]]]:
    return [(source.rule_id, yaml.safe_load(source.text)) for source in rule_sources()]


def test_generated_files_are_current() -> None:
    # Fails when a rule changed without `hsmaudit rules compile` (or the generated files were edited).
    assert stale_files() == []


def test_every_contract_rule_id_ships_and_sigma_covers_the_expressible_ones() -> None:
    assert {source.rule_id for source in rule_sources()} == SIGMA_RULE_IDS | CLOUDTRAIL_RULE_IDS
    assert set(load_ruleset().rule_ids) == CONTRACT_RULE_IDS


@pytest.mark.parametrize(("rule_id", "document"), documents(), ids=lambda v: v if isinstance(v, str) else "")
def test_rule_has_the_metadata_people_need(rule_id: str, document: dict[str, Any]) -> None:
    assert document["name"] == rule_id
    assert document["level"] in {"informational", "low", "medium", "high", "critical"}
    assert len(document["description"]) > 40
    assert document["falsepositives"]
    assert document["status"] == "stable"
    assert any(tag.startswith("attack.t") for tag in document["tags"])
    if "correlation" not in document:
        service = "cloudtrail" if rule_id in CLOUDTRAIL_RULE_IDS else "cloudhsm"
        assert document["logsource"] == {"product": "aws", "service": service}


def test_rule_uuids_and_titles_are_unique() -> None:
    docs = [document for _, document in documents()]
    assert len({d["id"] for d in docs}) == len(docs)
    assert len({d["title"] for d in docs}) == len(docs)


def test_rules_pass_pysigmas_offline_validators() -> None:
    from sigma.collection import SigmaCollection
    from sigma.plugins import InstalledSigmaPlugins
    from sigma.validation import SigmaValidator

    validators = InstalledSigmaPlugins.autodiscover().validators
    # The ATT&CK / D3FEND tag validators download MITRE data; everything else runs offline.
    offline = [cls for name, cls in validators.items() if name not in {"attacktag", "d3_fendtag"}]
    collection = SigmaCollection.from_yaml("\n---\n".join(source.text for source in rule_sources()))
    assert SigmaValidator(offline).validate_rules(collection) == []


def walk_fields(tree: dict[str, Any]) -> Iterator[str]:
    for key in ("and", "or"):
        for child in tree.get(key, []):
            yield from walk_fields(child)
    if "not" in tree:
        yield from walk_fields(tree["not"])
    if "field" in tree:
        yield tree["field"]


def test_every_field_the_rules_use_is_a_field_the_parser_emits() -> None:
    ruleset = json.loads((PACKAGE_ROOT / RULES_JSON).read_text())
    used = {name for rule in ruleset["rules"] for name in walk_fields(rule["condition"])}
    assert used
    assert used <= set(FIELD_NAMES)
    for correlation in ruleset["correlations"]:
        assert set(correlation["group_by"]) <= set(FIELD_NAMES)


def test_opcode_index_is_conservative() -> None:
    # Every rule that constrains opcode lists them; rules that don't are tried on every event.
    by_id = {rule.id: rule for rule in load_ruleset().rules}
    assert by_id["key-deleted"].opcodes == {"CN_DESTROY_OBJECT", "CN_TOMBSTONE_OBJECT"}
    assert by_id["key-exported"].opcodes == {"CN_WRAP_KEY"}
    assert by_id["unparsed-record"].opcodes is None


def test_lower_case_opcode_still_matches_like_sigma_does() -> None:
    ruleset = load_ruleset()
    event = HsmEvent(opcode="cn_wrap_key", success=True, event_id="x")
    assert [rule.id for rule in ruleset.matching(event)] == ["key-exported"]


# --- the compiler refuses what the engine could not run -----------------------------------------

BAD_FIELD = """
title: Uses a field the parser never emits
id: 0d9bd2b4-51f8-4a4a-9d42-0a2a8e5c0f10
name: bad-field
logsource: {product: aws, service: cloudhsm}
detection:
  selection:
    EventID: 4625
  condition: selection
level: high
"""

KEYWORDS = """
title: Keyword search
id: 0d9bd2b4-51f8-4a4a-9d42-0a2a8e5c0f11
name: keywords
logsource: {product: aws, service: cloudhsm}
detection:
  keywords:
    - CN_LOGIN
  condition: keywords
level: high
"""

WRONG_NAME = BAD_FIELD.replace("name: bad-field", "name: other-name")

CASED = """
title: Cased
id: 0d9bd2b4-51f8-4a4a-9d42-0a2a8e5c0f12
name: cased
logsource: {product: aws, service: cloudhsm}
detection:
  selection:
    opcode|cased: CN_LOGIN
  condition: selection
level: high
"""


@pytest.mark.parametrize(
    ("rule_id", "text", "message"),
    [
        ("bad-field", BAD_FIELD, "not an event field"),
        ("keywords", KEYWORDS, "keyword searches need a field"),
        ("bad-field", WRONG_NAME, "must equal the file name"),
        ("cased", CASED, "cased"),
    ],
)
def test_compiler_rejects_rules_the_engine_cannot_run(rule_id: str, text: str, message: str) -> None:
    with pytest.raises(RuleError, match=message):
        render_generated([*rule_sources(), RuleSource(rule_id, text)])


def test_write_generated_rewrites_stale_files_and_removes_orphans(tmp_path: Path) -> None:
    orphan = tmp_path / "detect/generated/sqlite/removed-rule.sql"
    orphan.parent.mkdir(parents=True)
    orphan.write_text("SELECT 1")
    changed = write_generated(tmp_path)
    assert "detect/generated/sqlite/removed-rule.sql" in changed
    assert not orphan.exists()
    assert stale_files(tmp_path) == []
    (tmp_path / RULES_JSON).write_text("{}")
    assert stale_files(tmp_path) == [RULES_JSON]
    assert write_generated(tmp_path) == [RULES_JSON]


def test_compiler_writes_where_the_caller_says(tmp_path: Path) -> None:
    # detect/ does not know the Splunk app's layout: every output path is the caller's.
    paths = OutputPaths(rules_json="a/rules.json", sqlite_dir="b/sql", savedsearches="c/alerts.conf")
    changed = write_outputs(tmp_path, paths)
    assert {"a/rules.json", "c/alerts.conf", "b/sql/failed-login.sql"} <= set(changed)
    assert all(path.startswith(("a/", "b/sql/", "c/")) for path in changed)
    assert stale_outputs(tmp_path, paths) == []
    assert (tmp_path / "c/alerts.conf").read_text() == (PACKAGE_ROOT / SAVEDSEARCHES).read_text()


def test_ruleset_rejects_an_unknown_version_and_bad_trees() -> None:
    with pytest.raises(RuleError, match="unknown version"):
        ruleset_from_json('{"version": 99, "rules": []}')
    with pytest.raises(RuleError, match="unknown field"):
        compile_condition({"field": "no_such_field", "eq": "x"})
    with pytest.raises(RuleError, match="unknown condition node"):
        compile_condition({"field": "opcode", "frobnicate": 1})


def test_wildcards_and_comparisons_evaluate_like_sigma() -> None:
    match = compile_condition({"field": "opcode", "match": "CN_.*_KEY"})
    assert match(HsmEvent(opcode="cn_wrap_key"))
    assert not match(HsmEvent(opcode="CN_WRAP_KEY_PAIR"))
    assert not match(HsmEvent())
    at_least = compile_condition({"field": "response_code", "cmp": "gte", "num": 157})
    assert at_least(HsmEvent(response_code=163))
    assert not at_least(HsmEvent(response_code=0))
    assert not compile_condition({"not": {"field": "user_name", "eq": "x"}})(HsmEvent(user_name="X"))
    assert compile_condition({"not": {"field": "user_name", "eq": "x"}})(HsmEvent())


def test_runtime_engine_does_not_import_pysigma_or_yaml() -> None:
    code = (
        "import sys\n"
        "from hsmaudit.detect.engine import DetectionEngine\n"
        "from hsmaudit.detect.sqlite import detect_store\n"
        "from hsmaudit.records.event import HsmEvent\n"
        "DetectionEngine().process(HsmEvent(opcode='CN_LOGIN', success=False, event_id='x', usecs=1))\n"
        "heavy = sorted(m for m in sys.modules if m.split('.')[0] in {'sigma', 'yaml', 'typer', 'rich'})\n"
        "print(','.join(heavy))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert result.stdout.strip() == ""
