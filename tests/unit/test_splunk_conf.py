"""The app's .conf files: they parse, say what we mean, and use only fields the parser emits."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from hsmaudit import __version__
from hsmaudit.records.event import FIELD_NAMES
from hsmaudit.records.opcodes import (
    KEY_DELETION_OPCODES,
    KEY_GENERATION_OPCODES,
    QUORUM_OPCODES,
    USER_CREATION_OPCODES,
)
from hsmaudit.splunk.errors import KnowledgeError
from hsmaudit.splunk.knowledge import BLOCKS, JSON_SOURCETYPE, TEXT_SOURCETYPE, render_block, render_props
from hsmaudit.splunk.package import APP_ID, splunk_version
from tests.unit.splunk_conf import APP_DIR, DEFAULT_DIR, conf_files, read_conf, strict_problems
from tests.unit.splunk_emulation import parse_expression, pcre_to_python
from tests.unit.splunk_spl import known_fields, macro_calls, read_fields

PROPS = read_conf(DEFAULT_DIR / "props.conf")
TRANSFORMS = read_conf(DEFAULT_DIR / "transforms.conf")
MACROS = read_conf(DEFAULT_DIR / "macros.conf")
EVENTTYPES = read_conf(DEFAULT_DIR / "eventtypes.conf")
TAGS = read_conf(DEFAULT_DIR / "tags.conf")

# The CIM fields (Authentication and Change data models, CIM 4.x) hsmaudit maps, plus vendor_action,
# where the event's own verb goes. This is CIM's vocabulary, not a copy of ours.
CIM_VOCABULARY = frozenset(
    {
        "action", "app", "dest", "dvc", "src", "src_user", "user", "signature", "signature_id", "reason",
        "status", "result", "command", "change_type", "object", "object_category", "object_id",
        "vendor_product", "vendor_action",
    }
)  # fmt: skip


def props_defined_fields() -> set[str]:
    """Field names props.conf creates with EVAL- and FIELDALIAS-."""
    defined: set[str] = set()
    for stanza in PROPS.values():
        for key, value in stanza.items():
            if key.startswith("EVAL-"):
                defined.add(key.removeprefix("EVAL-"))
            elif key.startswith("FIELDALIAS-"):
                defined.update(re.findall(r"\bAS\s+(\w+)", value))
    return defined


KNOWN = known_fields(props_defined_fields())


@pytest.mark.parametrize("path", conf_files(), ids=lambda p: p.name)
def test_every_conf_file_parses_without_duplicates_or_junk(path: Path) -> None:
    assert read_conf(path), f"{path.name} has no stanzas"
    assert strict_problems(path) == []


def test_the_generated_props_blocks_are_up_to_date() -> None:
    source = (DEFAULT_DIR / "props.conf").read_text(encoding="utf-8")
    assert render_props(source) == source, "stale: run `.venv/bin/python -m hsmaudit.splunk`"
    for name in BLOCKS:
        assert render_block(name) in source


def test_props_with_a_missing_or_unknown_block_is_refused() -> None:
    source = (DEFAULT_DIR / "props.conf").read_text(encoding="utf-8")
    without_text = source.replace(render_block("text"), "")
    with pytest.raises(KnowledgeError, match="missing text"):
        render_props(without_text)
    unknown = source + "\n# BEGIN GENERATED bogus: x\n# END GENERATED bogus\n"
    with pytest.raises(KnowledgeError, match="unknown generated block 'bogus'"):
        render_props(unknown)


def test_app_conf_and_manifest_name_the_app_and_the_package_version() -> None:
    app = read_conf(DEFAULT_DIR / "app.conf")
    version = splunk_version(__version__)
    assert app["id"]["name"] == app["package"]["id"] == APP_ID == APP_DIR.name.removesuffix("_app")
    assert app["id"]["version"] == app["launcher"]["version"] == version
    manifest = json.loads((APP_DIR / "app.manifest").read_text(encoding="utf-8"))
    assert manifest["info"]["id"] == {"group": None, "name": APP_ID, "version": version}
    assert app["package"]["check_for_updates"] == "false"


def test_default_meta_lets_everyone_read_and_only_admins_write() -> None:
    path = APP_DIR / "metadata" / "default.meta"
    meta = read_conf(path)
    # configparser drops the global stanza "[]", so read it by hand: its settings precede the next stanza.
    global_stanza = path.read_text(encoding="utf-8").split("\n[]\n", 1)[1].split("\n[", 1)[0]
    assert "access = read : [ * ], write : [ admin, sc_admin ]" in global_stanza.splitlines()
    for knowledge in ("props", "transforms", "eventtypes", "tags", "macros"):
        assert meta[knowledge]["export"] == "system", knowledge


def test_json_sourcetype_extracts_json_at_search_time_only() -> None:
    stanza = PROPS[JSON_SOURCETYPE]
    assert stanza["KV_MODE"] == "json"
    assert "INDEXED_EXTRACTIONS" not in stanza  # with KV_MODE=json every field would be extracted twice
    assert stanza["TZ"] == "UTC"


def test_every_props_regex_compiles_and_reads_lines_without_dot() -> None:
    for stanza in PROPS.values():
        for key, value in stanza.items():
            if key.startswith("EXTRACT-") or key in ("LINE_BREAKER", "TIME_PREFIX"):
                regex = re.sub(r"\s+in\s+\w+$", "", value) if key.startswith("EXTRACT-") else value
                re.compile(pcre_to_python(regex))
                # Splunk runs EXTRACTs with (?s): "." would run into the next line.
                assert not re.search(r"(?<!\\)\.[*+]", regex), f"{key}: use [^\\r\\n] instead of ."
    for transform in TRANSFORMS.values():
        re.compile(pcre_to_python(transform["REGEX"]))


def test_extractions_yield_only_contract_fields() -> None:
    for stanza in PROPS.values():
        for key, value in stanza.items():
            if key.startswith("EXTRACT-"):
                names = set(re.findall(r"\(\?<([A-Za-z_]\w*)>", value))
                assert names, key
                assert names <= set(FIELD_NAMES), f"{key}: {names - set(FIELD_NAMES)}"
            if key.startswith("REPORT-"):
                for name in (part.strip() for part in value.split(",")):
                    assert name in TRANSFORMS, f"{key}: no transform {name}"
    for name, transform in TRANSFORMS.items():
        fields = {pair.partition("::")[0] for pair in transform["FORMAT"].split()}
        assert fields <= set(FIELD_NAMES), f"{name}: {fields - set(FIELD_NAMES)}"


def test_evals_and_aliases_define_contract_or_cim_fields_and_read_known_fields() -> None:
    assert props_defined_fields() <= set(FIELD_NAMES) | CIM_VOCABULARY
    for stanza in PROPS.values():
        for key, value in stanza.items():
            if key.startswith("EVAL-"):
                parse_expression(value)  # the emulated subset: fails on anything untested
                assert read_fields(value) <= KNOWN, f"{key}: {read_fields(value) - KNOWN}"
            if key.startswith("FIELDALIAS-"):
                for source, _target in re.findall(r"(\w+)\s+AS\s+(\w+)", value):
                    assert source in KNOWN, key


def test_both_sourcetypes_define_the_same_cim_fields() -> None:
    def cim(stanza: dict[str, str]) -> set[str]:
        return {k.removeprefix("EVAL-") for k in stanza if k.startswith("EVAL-")} & CIM_VOCABULARY

    assert cim(PROPS[JSON_SOURCETYPE]) | {"vendor_action"} == cim(PROPS[TEXT_SOURCETYPE]) | {"vendor_action"}
    assert {"action", "user", "src", "dest", "app", "signature", "object", "object_category", "object_id", "status",
            "change_type"} <= cim(PROPS[JSON_SOURCETYPE])  # fmt: skip


def test_the_base_macro_covers_both_sourcetypes_and_the_index() -> None:
    definition = MACROS["hsmaudit_events"]["definition"]
    assert f'sourcetype="{JSON_SOURCETYPE}"' in definition
    assert f'sourcetype="{TEXT_SOURCETYPE}"' in definition
    assert re.match(r"index=", definition)


def _macro_opcodes(name: str) -> set[str]:
    return set(re.findall(r'"(CN_[A-Z_]+)"', MACROS[name]["definition"]))


def test_panel_macros_use_the_parsers_opcode_sets() -> None:
    assert _macro_opcodes("hsmaudit_key_generation") == KEY_GENERATION_OPCODES
    assert _macro_opcodes("hsmaudit_key_deletion") == KEY_DELETION_OPCODES
    assert _macro_opcodes("hsmaudit_user_management") == (
        USER_CREATION_OPCODES | QUORUM_OPCODES | {"CN_DELETE_USER", "CN_CHANGE_PSWD"}
    )
    assert "CN_INSERT_MASKED_OBJECT_USER" not in MACROS["hsmaudit_key_generation"]["definition"]


def test_macro_arguments_are_declared_and_used() -> None:
    for stanza, settings in MACROS.items():
        match = re.fullmatch(r"(\w+)\((\d+)\)", stanza)
        args = [a.strip() for a in settings.get("args", "").split(",") if a.strip()]
        if match:
            assert len(args) == int(match.group(2)), stanza
            for arg in args:
                assert f"${arg}$" in settings["definition"], f"{stanza}: ${arg}$ unused"
        else:
            assert not args, stanza
        assert settings.get("description"), f"{stanza}: no description"


def defined_macros() -> dict[str, int]:
    out = {}
    for stanza in MACROS:
        match = re.fullmatch(r"(\w+)(?:\((\d+)\))?", stanza)
        assert match, stanza
        out[match.group(1)] = int(match.group(2) or 0)
    return out


def check_spl(spl: str, where: str, extra_known: frozenset[str] | set[str] = frozenset()) -> None:
    """Every macro it calls exists with that many arguments; every field it reads is known."""
    macros = defined_macros()
    for name, count in macro_calls(spl):
        assert macros.get(name) == count, f"{where}: macro `{name}` with {count} argument(s) is not defined"
    unknown = read_fields(spl) - KNOWN - extra_known
    assert not unknown, f"{where}: unknown fields {sorted(unknown)}"


# Fields of the Splunk Add-on for AWS's aws:cloudtrail events (CloudTrail record contents, as
# KV_MODE=json names them) that `hsmaudit_cloudtrail` reads; the dotted ones are quoted in eval.
CLOUDTRAIL_ADDON_FIELDS = frozenset({"eventSource", "eventName", "eventID", "errorCode"})


def test_macro_definitions_use_known_fields() -> None:
    for stanza, settings in MACROS.items():
        args = {a.strip() for a in settings.get("args", "").split(",") if a.strip()}
        if stanza == "hsmaudit_cloudtrail":
            args |= CLOUDTRAIL_ADDON_FIELDS
        check_spl(settings["definition"], f"macros.conf [{stanza}]", args)


def test_eventtypes_are_tagged_for_cim_and_use_known_fields() -> None:
    for name, settings in EVENTTYPES.items():
        assert name.startswith("hsmaudit_"), name
        assert "|" not in settings["search"], f"{name}: event types cannot contain pipes"
        assert 'sourcetype="aws:cloudhsm:audit*"' in settings["search"]
        check_spl(settings["search"], f"eventtypes.conf [{name}]")
        assert f"eventtype={name}" in TAGS, f"{name} has no tags"
    for stanza in TAGS:
        assert stanza.removeprefix("eventtype=") in EVENTTYPES, stanza
    assert TAGS["eventtype=hsmaudit_login"] == {"authentication": "enabled"}
    assert TAGS["eventtype=hsmaudit_login_privileged"] == {
        "authentication": "enabled",
        "privileged": "enabled",
    }
    assert TAGS["eventtype=hsmaudit_account_change"] == {"change": "enabled", "account": "enabled"}
    assert all(tags.get("change") == "enabled" for name, tags in TAGS.items() if "change" in name)


def test_saved_searches_start_from_the_base_macro_and_use_known_fields() -> None:
    path = DEFAULT_DIR / "savedsearches.conf"
    if not path.exists():
        pytest.skip("savedsearches.conf is generated by the detections compiler and not there yet")
    searches = read_conf(path)
    assert searches
    for name, settings in searches.items():
        assert settings["search"].startswith(("`hsmaudit_events`", "`hsmaudit_cloudtrail`")), name
        assert settings.get("dispatch.earliest_time"), (
            f"{name}: AppInspect needs dispatch.earliest_time per stanza"
        )
        check_spl(settings["search"], f"savedsearches.conf [{name}]")
