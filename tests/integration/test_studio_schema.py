"""The Dashboard Studio view against Splunk's own definition schema.

`tests/interop/node/validate-studio.js` builds the schema the way the Studio editor does:
`createSchemaBasedOnDicts` of `@splunk/dashboard-definition` (29.x) with the option schemas of the
real inputs (`@splunk/dashboard-inputs`), data sources (`@splunk/datasources`) and visualizations
(`@splunk/visualization-schemas`), checked with Ajv. The packages are pinned in
tests/interop/node/package-lock.json and installed by `scripts/setup` (`npm ci`).

The broken definitions prove the check can fail: the legacy single-`layout` form (what the view
was before) and a wrong option type are reported, under the paths Splunk's schema names.

Token values resolved by Studio's own `replaceTokens` (`@splunk/dashboard-utils`) show that no
value set through an input, a click or a URL becomes SPL: it arrives as one quoted literal.
"""

from __future__ import annotations

import copy
import json
import shutil
import subprocess
import xml.etree.ElementTree as ET  # the app's own view, not untrusted input
from pathlib import Path
from typing import Any

import pytest

from hsmaudit.splunk.package import app_source_dir
from hsmaudit.splunk.studio import LAYOUT_ID, STUDIO_VIEW

NODE_DIR = Path(__file__).resolve().parents[1] / "interop" / "node"
PACKAGES = ("@splunk/dashboard-definition", "@splunk/dashboard-inputs", "@splunk/datasources",
            "@splunk/visualization-schemas")  # fmt: skip


def validate(definitions: dict[str, dict[str, Any]], tokens: dict[str, str] | None = None) -> dict[str, Any]:
    """The validator's report for `definitions` (name -> definition), queries resolved with `tokens`."""
    node = shutil.which("node")
    if node is None or not all((NODE_DIR / "node_modules" / name).is_dir() for name in PACKAGES):
        pytest.fail("node and tests/interop/node/node_modules are needed: run scripts/setup (npm ci)")
    result = subprocess.run(
        [node, str(NODE_DIR / "validate-studio.js")],
        input=json.dumps({"definitions": definitions, "tokens": tokens}), capture_output=True, text=True,
        timeout=120,
            check=False, cwd=NODE_DIR,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
    report: dict[str, Any] = json.loads(result.stdout)
    return report


def shipped_definition() -> dict[str, Any]:
    root = ET.parse(app_source_dir() / STUDIO_VIEW).getroot()
    definition: dict[str, Any] = json.loads(root.findtext("definition") or "")
    return definition


def legacy_layout(definition: dict[str, Any]) -> dict[str, Any]:
    """The same definition in the legacy form: one `layout` with its own type and structure."""
    legacy = copy.deepcopy(definition)
    current = legacy["layout"]["layoutDefinitions"][LAYOUT_ID]
    legacy["layout"] = {
        "type": current["type"],
        "options": current["options"],
        "globalInputs": legacy["layout"]["globalInputs"],
        "structure": current["structure"],
    }
    return legacy


HOSTILE = 'x" OR index=* | delete | search "\\'


def hostile_tokens(definition: dict[str, Any]) -> dict[str, str]:
    """A hostile value in every dropdown token, as a crafted URL or a clicked value could set it."""
    tokens = {
        item["options"]["token"]: HOSTILE
        for item in definition["inputs"].values()
        if item["type"] == "input.dropdown"
    }
    return tokens | {"time_tok.earliest": "-24h@h", "time_tok.latest": "now"}


@pytest.fixture(scope="module")
def report() -> dict[str, Any]:
    shipped = shipped_definition()
    wrong_option = copy.deepcopy(shipped)
    single = next(v for v in wrong_option["visualizations"].values() if v["type"] == "splunk.singlevalue")
    single.setdefault("options", {})["underLabel"] = 5
    return validate(
        {"shipped": shipped, "legacy": legacy_layout(shipped), "wrong_option": wrong_option},
        hostile_tokens(shipped),
    )


def test_the_validator_uses_splunks_29x_packages_and_their_types(report: dict[str, Any]) -> None:
    assert report["packages"]["@splunk/dashboard-definition"].split(".")[0] == "29"
    assert set(PACKAGES) <= set(report["packages"])
    types = report["types"]
    assert {"input.dropdown", "input.timerange"} <= set(types["inputs"])
    assert {"ds.search", "ds.chain"} <= set(types["dataSources"])
    assert {"splunk.singlevalue", "splunk.bar", "splunk.pie", "splunk.table"} <= set(types["visualizations"])


def test_the_shipped_studio_view_has_no_schema_errors(report: dict[str, Any]) -> None:
    result = report["results"]["shipped"]
    assert result["count"] == 0, json.dumps(result["errors"], indent=1)


def test_the_legacy_single_layout_form_is_rejected_under_layout(report: dict[str, Any]) -> None:
    result = report["results"]["legacy"]
    assert result["count"] > 0
    assert all(error["path"].startswith("/layout") for error in result["errors"]), result["errors"]
    missing = {error["params"].get("missingProperty") for error in result["errors"]}
    assert {"tabs", "layoutDefinitions"} <= missing


def test_a_visualization_option_of_the_wrong_type_is_rejected(report: dict[str, Any]) -> None:
    result = report["results"]["wrong_option"]
    assert result["count"] > 0
    assert all(error["path"].startswith("/visualizations/") for error in result["errors"]), result["errors"]
    assert any(error["path"].endswith("/options/underLabel") for error in result["errors"])


def test_studio_resolves_every_filter_token_to_one_quoted_literal(report: dict[str, Any]) -> None:
    # GIVEN a hostile value in every dropdown token, resolved by Studio's own token replacement
    queries = report["results"]["shipped"]["queries"]
    # THEN each value is one JSON-quoted literal (quotes and backslash escaped), never bare SPL
    quoted = json.dumps(HOSTILE)
    used = 0
    for name, query in queries.items():
        assert "$" not in query.replace("$$", ""), f"{name}: unresolved token in {query[:80]}"
        used += query.count(quoted)
        assert HOSTILE not in query.replace(quoted, ""), f"{name}: the value is not quoted: {query[:120]}"
    assert used >= 4, "every dropdown token is used"
