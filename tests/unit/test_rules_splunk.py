"""The generated `savedsearches.conf`: what AppInspect checks, plus what it does not (SPL sanity).

AppInspect requirements (`docs/reference/splunk.md` §2.4, §3.1): per-stanza
`dispatch.earliest_time` (a `[default]` stanza is not honoured), `dispatch.latest_time`, a cron
cadence of 5 minutes or slower, no real-time searches. AppInspect does not check SPL, so this
module does: balanced quotes and parentheses, known commands only, every search starting from the
`hsmaudit_events` macro, and every field either emitted by the parser (`FIELD_NAMES`, not a hand
list), a Splunk built-in, or created earlier in the same search.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from addonfactory_splunk_conf_parser_lib import TABConfigParser

from hsmaudit.detect.ruleset import load_ruleset
from hsmaudit.ops.compiled_rules import PACKAGE_ROOT, SAVEDSEARCHES
from hsmaudit.records.event import FIELD_NAMES

CONF = PACKAGE_ROOT / SAVEDSEARCHES
SPLUNK_FIELDS = {"_time", "_indextime", "_raw", "host", "source", "sourcetype", "index"}
KNOWN_COMMANDS = {
    "search",
    "dedup",
    "eval",
    "table",
    "sort",
    "streamstats",
    "stats",
    "where",
    "fields",
    "accum",
    "join",
    "addinfo",
}
STATS_FUNCTIONS = {"count", "dc", "values", "last", "latest", "min", "max", "sum", "first", "earliest"}
EVAL_FUNCTIONS = {
    "case",
    "if",
    "in",
    "replace",
    "isnull",
    "isnotnull",
    "coalesce",
    "lower",
    "md5",
    "now",
    "strftime",
    "true",
    "null",
    "relative_time",
}
KEYWORDS = {"AND", "OR", "NOT", "IN", "by", "as", "true", "false", "null"}
REQUIRED_ALERT_KEYS = {
    "search",
    "description",
    "enableSched",
    "cron_schedule",
    "dispatch.earliest_time",
    "dispatch.latest_time",
    "counttype",
    "relation",
    "quantity",
    "alert.track",
    "alert.severity",
    "alert.suppress",
    "alert.suppress.period",
}


def stanzas() -> dict[str, dict[str, str]]:
    parser = TABConfigParser()
    parser.read(str(CONF))
    return {name: dict(parser.items(name)) for name in parser.sections()}


def searches() -> list[tuple[str, str]]:
    return [(name, values["search"]) for name, values in stanzas().items()]


def strip_strings(spl: str) -> str:
    """Replace quoted strings and backtick macros by placeholders (their contents are not SPL fields)."""
    return re.sub(r'"(?:[^"\\]|\\.)*"', '"S"', re.sub(r"`[^`]*`", "MACRO", spl))


def split_pipeline(spl: str) -> list[str]:
    return [segment.strip() for segment in strip_strings(spl).split("|")]


_IDENT = re.compile(r"(?<!\w)([A-Za-z_][A-Za-z0-9_]*)(?!\w)(\s*\()?")


def identifiers(expression: str) -> Iterator[str]:
    """Field names in an eval/where expression: identifiers that are not calls, keywords or numbers."""
    for match in _IDENT.finditer(expression):
        name, call = match.group(1), match.group(2)
        if call:
            assert name in EVAL_FUNCTIONS | STATS_FUNCTIONS, f"unknown function {name}"
            continue
        if name in KEYWORDS or name in {"S", "MACRO"}:
            continue
        yield name


def cloudtrail_macro_fields() -> set[str]:
    """The contract fields `hsmaudit_cloudtrail` defines from the add-on's CloudTrail fields."""
    parser = TABConfigParser()
    parser.read(str(CONF.parent / "macros.conf"))
    definition = parser.get("hsmaudit_cloudtrail", "definition")
    targets = set()
    for segment in split_pipeline(definition)[1:]:
        command, _, rest = segment.partition(" ")
        assert command == "eval", command
        targets |= set(re.findall(r"(?:^|,\s*)([A-Za-z_]\w*)=(?!=)", rest))
    assert targets <= set(FIELD_NAMES), targets - set(FIELD_NAMES)
    return targets


def check_fields(spl: str) -> tuple[set[str], set[str]]:
    """(fields used, fields defined) of one search; raises on use-before-definition."""
    defined: set[str] = set()
    used: set[str] = set()
    if spl.startswith("`hsmaudit_cloudtrail`"):
        defined |= cloudtrail_macro_fields()
    for subsearch in re.findall(r"\[search ([^\]]*)\]", spl):
        sub_used, sub_defined = check_fields(subsearch)
        used |= sub_used
        defined |= sub_defined
    spl = re.sub(r"\[search [^\]]*\]", "", spl)
    segments = split_pipeline(spl)
    base, commands = segments[0], segments[1:]

    def use(names: Iterator[str] | list[str]) -> None:
        for name in names:
            assert name in set(FIELD_NAMES) | SPLUNK_FIELDS | defined, (
                f"field {name!r} is neither emitted nor defined"
            )
            used.add(name)

    if base == "" and commands[0].startswith("tstats "):  # `| tstats ... where MACRO ... by ...`
        aggregations, _, rest = commands[0].removeprefix("tstats ").partition(" where ")
        where, _, by = rest.partition(" by ")
        assert where.startswith("MACRO"), where
        indexed = {"_time", "_indextime", "host", "source", "sourcetype", "index"}
        for function, argument, alias in re.findall(r"(\w+)(?:\((\w+)\))?\s+as\s+(\w+)", aggregations):
            assert function in STATS_FUNCTIONS and argument in indexed | {""}, (function, argument)
            defined.add(alias)
        assert set(re.findall(r"([A-Za-z_]\w*)\s*=", where)) | set(by.split()) <= indexed, rest
        use(by.split())
        commands = commands[1:]
    else:
        assert base.startswith("MACRO"), base
        use(re.findall(r"([A-Za-z_][A-Za-z0-9_]*)\s*(?:=|!=|>=|<=|>|<|\s+IN\s*\()", base))
    for segment in commands:
        command, _, rest = segment.partition(" ")
        assert command in KNOWN_COMMANDS, f"unknown command {command!r}"
        options = dict(re.findall(r"\b(keepempty|current|window|time_window)=(\S+)", rest))
        rest = re.sub(r"\b(keepempty|current|window|time_window)=\S+", "", rest)
        if command == "eval":
            for assignment in re.split(r",\s*(?=[A-Za-z_]\w*\s*=[^=])", rest):
                target, _, expression = assignment.partition("=")
                use(list(identifiers(expression)))
                defined.add(target.strip())
        elif command == "where":
            use(list(identifiers(rest)))
        elif command == "search":
            use(re.findall(r"([A-Za-z_][A-Za-z0-9_]*)\s*(?:=|!=|>=|<=|>|<|\s+IN\s*\()", rest))
        elif command == "join":
            use([name for name in rest.split() if not name.startswith("type=")])
        elif command in {"stats", "streamstats"}:
            aggregations, _, by = rest.partition(" by ")
            for function, argument, alias in re.findall(r"(\w+)(?:\((\w+)\))?\s+as\s+(\w+)", aggregations):
                assert function in STATS_FUNCTIONS, function
                if argument:
                    use([argument])
                defined.add(alias)
            use(by.split())
        elif command in {"table", "dedup", "fields"}:
            use([name for name in re.split(r"[\s,]+", rest) if name and name != "-"])
        elif command == "addinfo":
            defined.update({"info_min_time", "info_max_time", "info_search_time", "info_sid"})
        elif command == "accum":
            source, _, target = rest.partition(" as ")
            use([source.strip()])
            defined.add(target.strip() or source.strip())
        elif command == "sort":
            use([name.lstrip("+-") for name in rest.split() if not name.isdigit()])
        assert all(value for value in options.values())
    return used, defined


def test_conf_parses_with_one_stanza_per_rule_id_plus_the_dedup_report() -> None:
    names = set(stanzas())
    expected = {f"hsmaudit - {rule_id}" for rule_id in load_ruleset().rule_ids}
    assert names == expected | {"hsmaudit - duplicate-events"}


def test_no_stray_lines_or_duplicate_keys() -> None:
    # ksconf's caveat: a bare line containing '=' parses as a key; so every line must be a
    # comment, a blank, a stanza header or a known key.
    keys_seen: dict[str, set[str]] = {}
    current = None
    for line in CONF.read_text().splitlines():
        if not line or line.startswith("#"):
            continue
        if line.startswith("["):
            current = line.strip("[]")
            assert current not in keys_seen
            keys_seen[current] = set()
            continue
        key, sep, _ = line.partition(" = ")
        assert sep and current is not None, line
        assert re.fullmatch(r"[a-z_A-Z.]+", key), line
        assert key not in keys_seen[current], f"duplicate {key} in {current}"
        keys_seen[current].add(key)


@pytest.mark.parametrize(("name", "values"), stanzas().items(), ids=lambda v: v if isinstance(v, str) else "")
def test_every_stanza_carries_its_own_schedule_and_dispatch_window(name: str, values: dict[str, str]) -> None:
    required = REQUIRED_ALERT_KEYS if name != "hsmaudit - duplicate-events" else {"search", "cron_schedule"}
    assert required <= set(values), required - set(values)
    assert not values["dispatch.earliest_time"].startswith("rt")
    minute = values["cron_schedule"].split()[0]
    step = int(minute.split("/")[1]) if "/" in minute else 60
    assert step >= 5  # check_for_gratuitous_cron_scheduling: at most 12 runs an hour
    if "alert.severity" in values:
        assert values["alert.severity"] in {"2", "3", "4", "5", "6"}


@pytest.mark.parametrize(("name", "spl"), searches(), ids=lambda v: v if isinstance(v, str) else "")
def test_search_starts_from_the_macro_and_is_balanced(name: str, spl: str) -> None:
    assert spl.startswith(("`hsmaudit_events` ", "`hsmaudit_cloudtrail` | search ", "| tstats "))
    assert spl.count('"') % 2 == 0
    assert spl.count("`") in {2, 4}  # the removed-while-active join reads both macros
    unquoted = strip_strings(spl)
    depth = 0
    for char in unquoted:
        depth += {"(": 1, ")": -1}.get(char, 0)
        assert depth >= 0
    assert depth == 0


@pytest.mark.parametrize(("name", "spl"), searches(), ids=lambda v: v if isinstance(v, str) else "")
def test_search_uses_only_fields_the_parser_emits_or_it_defines(name: str, spl: str) -> None:
    used, _ = check_fields(spl)
    assert used & set(FIELD_NAMES)


def test_field_checker_catches_a_field_the_parser_never_emits() -> None:
    with pytest.raises(AssertionError, match="EventCode"):
        check_fields('`hsmaudit_events` opcode="CN_LOGIN" | stats count by EventCode')
    with pytest.raises(AssertionError, match="unknown command"):
        check_fields("`hsmaudit_events` | rex field=raw x")


def test_brute_force_uses_a_sliding_window_not_fixed_bins() -> None:
    spl = stanzas()["hsmaudit - login-brute-force"]["search"]
    assert "streamstats time_window=600s" in spl
    assert "bin _time" not in spl
    assert "where failed_attempts >= 5" in spl


def test_single_event_searches_count_each_record_once_and_late_records_too() -> None:
    for name, values in stanzas().items():
        if "dispatch.index_earliest" in values:
            assert "| eval alert_key=coalesce(event_id, md5(_raw)) | dedup alert_key |" in values["search"], (
                name
            )
            assert values["dispatch.index_latest"] == "-1m@m"


def test_generated_conf_is_inside_the_splunk_app_package_data() -> None:
    assert Path(CONF).is_file()
    assert CONF.parent.name == "default"
    assert CONF.parent.parent.name == "hsmaudit_app"
