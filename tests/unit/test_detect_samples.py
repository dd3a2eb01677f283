"""The rules against real published CloudHSM records (`tests/data/samples`), and against typos.

Each sample is one record from the AWS documentation; every single-event rule must fire exactly on
the records it is about and stay silent on the rest (masked-object sync, successful logins, key
generation, certificate records).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from hsmaudit.detect.compiler import RULES_JSON
from hsmaudit.detect.engine import DetectionConfig, DetectionEngine
from hsmaudit.ops.compiled_rules import PACKAGE_ROOT
from hsmaudit.records.cloudtrail import ACTIONS
from hsmaudit.records.opcodes import CERTIFICATE_OPCODES, OPCODES, USER_TYPE_ABBREVIATIONS
from hsmaudit.records.parse import parse_message

EXPECTED_RULES = {
    "aws-certstore-01-createobject.txt": [],
    "aws-certstore-02-destroyobject.txt": [],
    "aws-doc-02-init-token.txt": [],
    "aws-doc-04-init-done.txt": [],
    "aws-doc-06-login-co-success.txt": [],
    "aws-doc-08-login-fail-157-unknown-user.txt": ["failed-login"],
    "aws-doc-10-create-user-cu.txt": ["user-created"],
    "aws-doc-12-delete-user-co.txt": ["user-deleted"],
    "aws-doc-14-generate-key-pair.txt": [],
    "aws-doc-16-destroy-object-private.txt": ["key-deleted"],
    "aws-doc-18-login-cu-hsm-a.txt": [],
    "aws-doc-20-extract-masked-262152.txt": [],
    "aws-doc-22-insert-masked-262152.txt": [],
    "aws-doc-24-wrap-key.txt": ["key-exported"],
    "aws-doc-26-nist-aes-wrap-import.txt": [],
    "aws-doc-28-extract-masked-11.txt": [],
    "aws-doc-30-share-object-tabs.txt": [],
}


def test_every_sample_is_labelled(samples_dir: Path) -> None:
    assert {p.name for p in samples_dir.glob("aws-*.txt")} == set(EXPECTED_RULES)


@pytest.mark.parametrize(("name", "rules"), EXPECTED_RULES.items())
def test_published_record_fires_exactly_its_rules(samples_dir: Path, name: str, rules: list[str]) -> None:
    stream = "cluster-likphkxygsn" if "certstore" in name else "hsm-nwbbiqbj4jk"
    event = parse_message(
        (samples_dir / name).read_text(), log_group="/aws/cloudhsm/cluster-likphkxygsn", log_stream=stream
    )
    engine = DetectionEngine(DetectionConfig(disabled=frozenset({"hsm-silent"})))
    alerts = engine.process(event) + engine.finalize()
    assert [alert.rule for alert in alerts] == rules
    for alert in alerts:
        assert alert.event_ids == [event.event_id]
        assert alert.cluster_id == "cluster-likphkxygsn"


def literals(tree: dict[str, Any], field: str) -> list[str]:
    found = []
    for key in ("and", "or"):
        for child in tree.get(key, []):
            found += literals(child, field)
    if "not" in tree:
        found += literals(tree["not"], field)
    if tree.get("field") == field and "eq" in tree:
        found.append(tree["eq"])
    return found


def test_every_opcode_and_user_type_in_the_rules_is_a_known_name() -> None:
    # A typo (CN_WRAP_KEYS) would make a rule that silently never fires.
    ruleset = json.loads((PACKAGE_ROOT / RULES_JSON).read_text())
    for rule in ruleset["rules"]:
        for opcode in literals(rule["condition"], "opcode"):
            known = OPCODES.keys() | CERTIFICATE_OPCODES.keys()
            if rule["logsource"] == "cloudtrail":
                known = ACTIONS.keys()  # CloudTrail's eventName is the opcode of a control-plane call
            assert opcode in known, (rule["id"], opcode)
        for field in ("user_type", "target_user_type"):
            for user_type in literals(rule["condition"], field):
                assert user_type in USER_TYPE_ABBREVIATIONS, (rule["id"], user_type)
