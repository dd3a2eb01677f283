"""The app's .conf files: they parse, say what we mean, and use only fields the parser emits."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from hsmaudit import __version__
from hsmaudit.records.cloudtrail import ACTIONS as CLOUDTRAIL_ACTIONS
from hsmaudit.records.event import FIELD_NAMES
from hsmaudit.records.opcodes import (
    CERTIFICATE_OPCODES,
    KEY_DELETION_OPCODES,
    KEY_GENERATION_OPCODES,
    OPCODES,
    QUORUM_OPCODES,
    USER_CREATION_OPCODES,
)
from hsmaudit.splunk.errors import KnowledgeError
from hsmaudit.splunk.knowledge import (
    BLOCKS,
    CLOUDTRAIL_SOURCETYPE,
    JSON_SOURCETYPE,
    OPCODE_LOOKUP,
    RECIPE_SOURCETYPE,
    TEXT_SOURCETYPE,
    lookup_tables,
    opcode_rows,
    render_block,
    render_conf,
    render_props,
)
from hsmaudit.splunk.package import APP_ID, splunk_version
from tests.unit.splunk_conf import APP_DIR, DEFAULT_DIR, conf_files, read_conf, strict_problems
from tests.unit.splunk_emulation import (
    EVENTTYPES_SETTINGS,
    aliases,
    extract_names,
    lookup_specs,
    parse_expression,
    pcre_to_python,
    props_problems,
    split_extract,
    transforms_problems,
)
from tests.unit.splunk_emulation import read_fields as eval_reads
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
# hsmaudit's own search-time fields beyond the contract: the fold key of cluster actions
# (docs/splunk-app.md) and the private hsmaudit_* keys the lookups match on.
APP_FIELDS = frozenset({"cluster_action_id"})
SOURCETYPES = (JSON_SOURCETYPE, TEXT_SOURCETYPE, RECIPE_SOURCETYPE)


def private(name: str) -> bool:
    return name.startswith("hsmaudit_")


def props_defined_fields() -> set[str]:
    """Public field names props.conf creates with EVAL-, FIELDALIAS- and LOOKUP-."""
    defined: set[str] = set()
    for stanza in PROPS.values():
        defined |= {key.removeprefix("EVAL-") for key in stanza if key.startswith("EVAL-")}
        defined |= {target for _s, _m, target in aliases(stanza)}
        defined |= {event_field for *_, outs in lookup_specs(stanza) for _t, event_field in outs}
    return {name for name in defined if not private(name)}


KNOWN = known_fields(props_defined_fields())


@pytest.mark.parametrize("path", conf_files(), ids=lambda p: p.name)
def test_every_conf_file_parses_without_duplicates_or_junk(path: Path) -> None:
    assert read_conf(path), f"{path.name} has no stanzas"
    assert strict_problems(path) == []


def test_every_setting_is_one_splunks_spec_files_know() -> None:
    # props.conf.spec / transforms.conf.spec / eventtypes.conf.spec of Splunk 9.0.1
    for name, stanza in PROPS.items():
        assert props_problems(stanza) == [], name
    for name, stanza in TRANSFORMS.items():
        assert transforms_problems(stanza) == [], name
    for name, stanza in EVENTTYPES.items():
        assert set(stanza) <= EVENTTYPES_SETTINGS, name
    for name, stanza in TAGS.items():
        assert set(stanza.values()) <= {"enabled", "disabled"}, name


def test_the_generated_blocks_and_lookup_tables_are_up_to_date() -> None:
    for file, blocks in BLOCKS.items():
        source = (APP_DIR / file).read_text(encoding="utf-8")
        assert render_conf(source, file) == source, f"{file} stale: run `.venv/bin/python -m hsmaudit.splunk`"
        for name in blocks:
            assert render_block(name, file) in source
    for relative, content in lookup_tables().items():
        assert (APP_DIR / relative).read_text(encoding="utf-8") == content, f"{relative} stale"


def test_the_opcode_lookup_is_what_the_parser_derives() -> None:
    # The CSV the app ships, read back, gives the parser's category, verb and severity for every
    # opcode and case (the rows are computed by records.severity.derive; this reads the shipped file).
    import csv

    from hsmaudit.records.severity import derive as _derive

    with (APP_DIR / "lookups" / "hsmaudit_opcodes.csv").open(encoding="utf-8", newline="") as handle:
        shipped = list(csv.DictReader(handle))
    assert shipped == opcode_rows()
    for row in shipped:
        if row["opcode"] in CLOUDTRAIL_ACTIONS:
            continue
        opcode = row["opcode"] if row["opcode"] != "*" else "CN_NOT_IN_THE_TABLE"
        assert opcode in {*OPCODES, *CERTIFICATE_OPCODES} or row["opcode"] == "*"
        result, officer, later, time, error = row["hsmaudit_case"].split("|")
        success = {"success": True, "failure": False}.get(result)
        user_type = "CN_CRYPTO_OFFICER" if officer == "co" else "CN_CRYPTO_USER"
        _o, category, verb, severity = _derive(
            opcode,
            success,
            user_type,
            None,
            "TIME_INFO_LOG" if time == "time" else None,
            later == "1",
            error == "err",
        )
        assert (row["category"], row["vendor_action"], row["severity"]) == (category, verb, severity), row
    assert TRANSFORMS[OPCODE_LOOKUP]["match_type"] == "WILDCARD(opcode)"
    assert shipped[-1]["opcode"] == "*" and all(row["opcode"] != "*" for row in shipped[: -len(
        [r for r in shipped if r["opcode"] == "*"])])  # fmt: skip


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
                regex = split_extract(value)[0] if key.startswith("EXTRACT-") else value
                re.compile(pcre_to_python(regex))
                # Splunk runs EXTRACTs with (?s): "." would run into the next line.
                assert not re.search(r"(?<!\\)\.[*+]", regex), f"{key}: use [^\\r\\n] instead of ."
    for transform in TRANSFORMS.values():
        if "REGEX" in transform:
            re.compile(pcre_to_python(transform["REGEX"]))


def test_extractions_yield_only_contract_fields() -> None:
    for stanza in PROPS.values():
        for key, value in stanza.items():
            if key.startswith("EXTRACT-"):
                names = {name for name in extract_names(value) if not private(name)}
                assert extract_names(value), key
                assert names <= set(FIELD_NAMES), f"{key}: {names - set(FIELD_NAMES)}"
            if key.startswith("REPORT-"):
                for name in (part.strip() for part in value.split(",")):
                    assert name in TRANSFORMS, f"{key}: no transform {name}"
    for name, transform in TRANSFORMS.items():
        fields = {pair.partition("::")[0] for pair in transform.get("FORMAT", "").split()}
        assert fields <= set(FIELD_NAMES), f"{name}: {fields - set(FIELD_NAMES)}"


def test_evals_and_aliases_define_contract_or_cim_fields_and_read_known_fields() -> None:
    assert props_defined_fields() <= set(FIELD_NAMES) | CIM_VOCABULARY | APP_FIELDS
    for stanza in PROPS.values():
        extracted = {
            name
            for key, value in stanza.items()
            if key.startswith("EXTRACT-")
            for name in extract_names(value)
        }
        for key, value in stanza.items():
            if key.startswith("EVAL-"):
                parse_expression(value)  # the emulated subset: fails on anything untested
                reads = {name for name in eval_reads(value) if not (private(name) and name in extracted)}
                assert reads <= KNOWN, f"{key}: {reads - KNOWN}"
        for source, _mode, _target in aliases(stanza):
            assert source in KNOWN or (private(source) and source in extracted), source


def test_every_sourcetype_defines_the_same_cim_fields() -> None:
    def cim(stanza: dict[str, str]) -> set[str]:
        defined = {k.removeprefix("EVAL-") for k in stanza if k.startswith("EVAL-")}
        defined |= {event_field for *_, outs in lookup_specs(stanza) for _t, event_field in outs}
        return defined & (CIM_VOCABULARY | APP_FIELDS)

    assert cim(PROPS[JSON_SOURCETYPE]) == cim(PROPS[TEXT_SOURCETYPE]) == cim(PROPS[RECIPE_SOURCETYPE])
    assert {"action", "user", "dest", "app", "signature", "object", "object_category", "object_id", "status",
            "change_type", "vendor_action", "cluster_action_id"} <= cim(PROPS[JSON_SOURCETYPE])  # fmt: skip
    # src only when known: an audit record names no client address (the HSM is dest).
    assert "src" not in cim(PROPS[JSON_SOURCETYPE])
    # The recipe's sourcetype has the text sourcetype's search-time knowledge, line for line.
    search_time = ("KV_MODE", "EXTRACT-", "FIELDALIAS-", "EVAL-", "LOOKUP-", "REPORT-")

    def knowledge(stanza: dict[str, str]) -> dict[str, str]:
        return {k: v for k, v in stanza.items() if k.startswith(search_time)}

    assert knowledge(PROPS[RECIPE_SOURCETYPE]) == knowledge(PROPS[TEXT_SOURCETYPE])


def test_the_base_macro_covers_every_sourcetype_and_the_index() -> None:
    definition = MACROS["hsmaudit_events"]["definition"]
    for sourcetype in SOURCETYPES:
        assert f'sourcetype="{sourcetype}"' in definition
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
        if name.startswith("hsmaudit_cloudtrail"):
            # The Splunk Add-on for AWS's own fields; hsmaudit adds no extraction to its sourcetype.
            assert settings["search"].startswith(f'sourcetype="{CLOUDTRAIL_SOURCETYPE}" eventSource=')
            check_spl(settings["search"], f"eventtypes.conf [{name}]", {"eventSource", "eventName"})
        else:
            assert (
                f'(sourcetype="aws:cloudhsm:audit*" OR sourcetype="{RECIPE_SOURCETYPE}")'
                in settings["search"]
            )
            check_spl(settings["search"], f"eventtypes.conf [{name}]")
        assert f"eventtype={name}" in TAGS, f"{name} has no tags"
    assert CLOUDTRAIL_SOURCETYPE not in PROPS
    for stanza in TAGS:
        assert stanza.removeprefix("eventtype=") in EVENTTYPES, stanza
    assert TAGS["eventtype=hsmaudit_login"] == {"authentication": "enabled"}
    assert TAGS["eventtype=hsmaudit_login_privileged"] == {
        "authentication": "enabled",
        "privileged": "enabled",
    }
    assert TAGS["eventtype=hsmaudit_account_change"] == {"change": "enabled", "account": "enabled"}
    assert all(tags.get("change") == "enabled" for name, tags in TAGS.items() if "change" in name)
    for name, tags in TAGS.items():
        if "cloudtrail" in name:  # never the add-on's CIM tags a second time
            assert tags == {"cloudhsm": "enabled", "control_plane": "enabled"}, name


def test_saved_searches_start_from_the_base_macro_and_use_known_fields() -> None:
    path = DEFAULT_DIR / "savedsearches.conf"
    if not path.exists():
        pytest.skip("savedsearches.conf is generated by the detections compiler and not there yet")
    searches = read_conf(path)
    assert searches
    for name, settings in searches.items():
        assert settings["search"].startswith(("`hsmaudit_events`", "`hsmaudit_cloudtrail`", "| tstats ")), (
            name
        )
        assert settings.get("dispatch.earliest_time"), (
            f"{name}: AppInspect needs dispatch.earliest_time per stanza"
        )
        check_spl(settings["search"], f"savedsearches.conf [{name}]")


FIELDS = read_conf(DEFAULT_DIR / "fields.conf")


def test_fields_that_are_not_words_of_the_text_are_searched_by_value() -> None:
    # HEC indexed fields of the lean event and fields taken from host/source are not words of
    # _raw: fields.conf must tell Splunk not to look for their value there (INDEXED_VALUE = false).
    from hsmaudit.sinks.hec.envelope import INDEXED_FIELDS

    not_in_raw = {*INDEXED_FIELDS, "log_group", "log_stream"}
    for name, settings in FIELDS.items():
        assert settings == {"INDEXED_VALUE": "false"}, name
    assert set(FIELDS) == not_in_raw
