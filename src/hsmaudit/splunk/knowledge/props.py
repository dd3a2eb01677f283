"""The generated props.conf blocks: each sourcetype's search-time lines, in Splunk's order."""

from __future__ import annotations

from hsmaudit.splunk.knowledge.evals import (
    JSON_READS,
    TEXT_READS,
    cim_lines,
    key_lines,
    lookup_lines,
    text_conversions,
)
from hsmaudit.splunk.knowledge.extractions import ORIGIN_ALIASES, ORIGIN_EXTRACTIONS, TEXT_EXTRACTIONS


def text_block() -> list[str]:
    """Search-time lines of the text sourcetypes (lean, raw text, the recipe's)."""
    return [
        "KV_MODE = none",
        *(f"EXTRACT-{name} = {regex}" for name, regex in TEXT_EXTRACTIONS),
        *(f"EXTRACT-{name} = {regex}" for name, regex in ORIGIN_EXTRACTIONS),
        f"FIELDALIAS-hsmaudit_origin = {ORIGIN_ALIASES}",
        *text_conversions(),
        *key_lines(TEXT_READS),
        *cim_lines(TEXT_READS),
        *lookup_lines(),
    ]


def json_block() -> list[str]:
    """Search-time lines of `aws:cloudhsm:audit`: its JSON keys are the fields; CIM and origin added."""
    return [
        "KV_MODE = json",
        *(f"EXTRACT-{name} = {regex}" for name, regex in ORIGIN_EXTRACTIONS),
        # FIELDALIAS runs before lookups: the JSON verb is kept before the CIM lookup replaces action.
        f"FIELDALIAS-hsmaudit_origin = {ORIGIN_ALIASES} action ASNEW vendor_action",
        *key_lines(JSON_READS),
        *cim_lines(JSON_READS),
        *lookup_lines(),
    ]
