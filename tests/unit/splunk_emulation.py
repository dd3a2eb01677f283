"""A small, strict emulation of Splunk's search-time field extraction, for testing the app's props.

It applies a props.conf stanza to one event in Splunk's documented search-time order
(props.conf.spec, "search-time operations sequence"): EXTRACT, REPORT, KV_MODE, FIELDALIAS, EVAL
(all in parallel), LOOKUP; event types and tags are matched by the tests on the result. It
implements what the spec says for each, and *refuses* (EmulationError) what Splunk would not do,
does differently, or documents as undefined, so the app cannot pass by relying on the emulation's
leniency:

* setting names not in props.conf.spec / transforms.conf.spec (Splunk 9.0.1); `KV_MODE = auto`
  (the default, not emulated: every stanza must choose `none` or `json`); `rename`;
* a value wrapped in quotes for a setting that is not an expression (Splunk keeps the quotes);
* EXTRACT: Splunk prepends `(?ms)`; PCRE named groups become Python's; PCRE-only syntax Python
  reads differently (`\\z`, `\\Z`, possessive quantifiers, atomic groups, `\\K`, `\\h`) is refused;
  `in <field>` only reads a default or indexed field (the spec allows EXTRACT-derived fields in a
  lower class too; the app does not need them); an empty capture makes no field; two EXTRACTs
  giving one field different values on one event, or an EXTRACT/REPORT/KV_MODE field that a HEC
  indexed field already has (Splunk would show both values), are refused;
* REPORT: transforms with REGEX and FORMAT `field::$n` pairs; search-time concatenation in FORMAT
  (`x::a$1`) is refused (transforms.conf.spec: "You cannot create concatenated fields with FORMAT
  at search time"), as is a literal value (it needs fields.conf INDEXED_VALUE = false);
* KV_MODE = json: the event's keys (nested keys dotted, arrays as `key{}` multivalue), numbers
  as written, booleans true/false; a JSON null is the text "null" (what the app guards against);
* FIELDALIAS `a AS b` (replaces b; removes b when a is absent) and `a ASNEW b` (keeps an existing
  b); two aliases onto one name, or an alias of a calculated or aliased field, are refused;
* EVAL: every EVAL sees the fields as they were before any EVAL ran; an EVAL that reads a field
  an EVAL or a lookup of the stanza defines is refused (it would read the old value, or nothing),
  and so is an EVAL whose field already exists (a calculated field shadowing an extracted, JSON
  or indexed field, which defeats index-term filtering: issue 11); a null result makes no field;
* LOOKUP: CSV lookups of transforms.conf with `filename`, `max_matches = 1`, optional
  `match_type = WILDCARD(f)`; the first matching row in file order; an event lacking a match field
  is skipped; OUTPUT replaces and clears on no match, OUTPUTNEW writes only absent fields (a
  no-match with an existing output field is refused: the spec is ambiguous); an empty cell writes
  nothing; a lookup fed by another lookup's output (nested automatic lookups) is refused.

The EVAL language subset: string and number literals, field names (bare or 'single-quoted'),
`.` (concatenation), `+ - * / %`, `== = != < > <= >=`, `AND OR NOT`, parentheses, and the functions
case, if, in, coalesce, null, true, isnull, isnotnull, nullif, tonumber, tostring, lower, match,
replace, substr, floor, md5. Null propagates as in Splunk: comparisons and concatenations with
null are null, which `if`/`case` treat as false.
"""

from __future__ import annotations

import csv
import hashlib
import json
import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

Fields = dict[str, Any]
"""Field -> value: a string, or a tuple of strings for a multivalue field."""

Conf = dict[str, dict[str, str]]


class EmulationError(AssertionError):
    """The app uses a construct Splunk would refuse, or that this emulation cannot vouch for."""


# --- setting names (props.conf.spec and transforms.conf.spec of Splunk 9.0.1) --------------

PROPS_SETTINGS = frozenset(
    {
        "ADD_EXTRA_TIME_FIELDS", "ANNOTATE_PUNCT", "AUTO_KV_JSON", "BREAK_ONLY_BEFORE", "BREAK_ONLY_BEFORE_DATE",
        "CHARSET", "CHECK_FOR_HEADER", "CHECK_METHOD", "DATETIME_CONFIG", "DEPTH_LIMIT",
        "DETERMINE_TIMESTAMP_DATE_WITH_SYSTEM_TIME", "EVENT_BREAKER", "EVENT_BREAKER_ENABLE", "FIELD_DELIMITER",
        "FIELD_HEADER_REGEX", "FIELD_NAMES", "FIELD_QUOTE", "HEADER_FIELD_ACCEPTABLE_SPECIAL_CHARACTERS",
        "HEADER_FIELD_DELIMITER", "HEADER_FIELD_LINE_NUMBER", "HEADER_FIELD_QUOTE", "HEADER_MODE",
        "INDEXED_EXTRACTIONS", "JSON_TRIM_BRACES_IN_ARRAY_NAMES", "KV_MODE", "KV_TRIM_SPACES", "LB_CHUNK_BREAKER",
        "LB_CHUNK_BREAKER_TRUNCATE", "LEARN_MODEL", "LEARN_SOURCETYPE", "LINE_BREAKER", "LINE_BREAKER_LOOKBEHIND",
        "MATCH_LIMIT", "MAX_DAYS_AGO", "MAX_DAYS_HENCE", "MAX_DIFF_SECS_AGO", "MAX_DIFF_SECS_HENCE", "MAX_EVENTS",
        "MAX_TIMESTAMP_LOOKAHEAD", "METRIC-SCHEMA-TRANSFORMS", "METRICS_PROTOCOL", "MISSING_VALUE_REGEX",
        "MUST_BREAK_AFTER", "MUST_NOT_BREAK_AFTER", "MUST_NOT_BREAK_BEFORE", "NO_BINARY_CHECK", "PREAMBLE_REGEX",
        "PREFIX_SOURCETYPE", "ROUTE_EVENTS_OLDER_THAN", "SEGMENTATION", "SHOULD_LINEMERGE", "STATSD-DIM-TRANSFORMS",
        "STATSD_EMIT_SINGLE_MEASUREMENT_FORMAT", "TIMESTAMP_FIELDS", "TIME_FORMAT", "TIME_PREFIX", "TRUNCATE", "TZ",
        "TZ_ALIAS", "category", "description", "detect_trailing_nulls", "force_local_processing", "given_type",
        "initCrcLength", "invalid_cause", "is_valid", "maxDist", "priority", "pulldown_type", "rename", "sourcetype",
        "termFrequencyWeightedDist", "unarchive_cmd", "unarchive_sourcetype",
    }
)  # fmt: skip
PROPS_CLASSES = ("EXTRACT-", "REPORT-", "TRANSFORMS-", "FIELDALIAS-", "EVAL-", "LOOKUP-", "SEDCMD-", "RULESET-",
                 "RULESET_DESC-", "SEGMENTATION-")  # fmt: skip
TRANSFORMS_SETTINGS = frozenset(
    {
        "CAN_OPTIMIZE", "CLEAN_KEYS", "CLONE_SOURCETYPE", "DEFAULT_VALUE", "DELIMS", "DEPTH_LIMIT", "DEST_KEY",
        "FIELDS", "FORMAT", "INGEST_EVAL", "KEEP_EMPTY_VALS", "LOOKAHEAD", "MATCH_LIMIT", "MV_ADD", "REGEX",
        "REPEAT_MATCH", "SOURCE_KEY", "STOP_PROCESSING_IF", "WRITE_META", "allow_caching", "batch_index_query",
        "cache_size", "case_sensitive_match", "check_permission", "collection", "default_match", "external_cmd",
        "external_type", "feature_id_element", "fields_list", "filename", "filter", "index_fields_list",
        "match_type", "max_ext_batch", "max_matches", "max_offset_secs", "min_matches", "min_offset_secs",
        "python.version", "replicate", "reverse_lookup_honor_case_sensitive_match", "time_field", "time_format",
    }
)  # fmt: skip
EVENTTYPES_SETTINGS = frozenset({"color", "description", "disabled", "priority", "search", "tags"})

# Settings read at index time (or by the UI): the emulation checks their names, not their effect.
_NOT_SEARCH_TIME = PROPS_SETTINGS - {"KV_MODE", "AUTO_KV_JSON", "KV_TRIM_SPACES", "rename", "MATCH_LIMIT",
                                     "DEPTH_LIMIT"}  # fmt: skip
_EXPRESSION_KEYS = (
    "EVAL-",
    "EXTRACT-",
    "SEDCMD-",
    "LINE_BREAKER",
    "TIME_PREFIX",
    "BREAK_ONLY_BEFORE",
    "MUST_",
    "EVENT_BREAKER",
    "PREAMBLE_REGEX",
    "FIELD_HEADER_REGEX",
    "REGEX",
)
"""Settings whose value is a regex or an expression, where quotes are part of the syntax."""
DEFAULT_FIELDS = frozenset(
    {"host", "source", "sourcetype", "index", "_raw", "_time", "linecount", "splunk_server"}
)


def props_problems(stanza: Mapping[str, str]) -> list[str]:
    """Setting names props.conf.spec does not know, and values whose quotes Splunk would keep."""
    problems = []
    for key, value in stanza.items():
        if key not in PROPS_SETTINGS and not key.startswith(PROPS_CLASSES):
            problems.append(f"unknown props.conf setting {key!r}")
        if not key.startswith(_EXPRESSION_KEYS) and re.fullmatch(r'\s*(["\']).*\1\s*', value):
            problems.append(f"{key}: the value is quoted, and Splunk keeps quotes in .conf values")
    return problems


def transforms_problems(stanza: Mapping[str, str]) -> list[str]:
    problems = [
        f"unknown transforms.conf setting {key!r}" for key in stanza if key not in TRANSFORMS_SETTINGS
    ]
    problems += [
        f"{key}: the value is quoted, and Splunk keeps quotes in .conf values"
        for key, value in stanza.items()
        if not key.startswith(_EXPRESSION_KEYS) and re.fullmatch(r'\s*(["\']).*\1\s*', value)
    ]
    return problems


# --- regexes --------------------------------------------------------------------------------

_PCRE_ONLY = re.compile(r"\\[zZKhHRX]|\(\?>|[*+?}]\+|\\k<|\(\?\||\(\?P>|\(\?R\)|\\Q|\\E")


def pcre_to_python(regex: str) -> str:
    """Splunk PCRE -> Python: named groups `(?<name>` become `(?P<name>`; PCRE-only syntax is refused."""
    match = _PCRE_ONLY.search(regex.replace("\\\\", ""))
    if match:
        raise EmulationError(
            f"PCRE construct {match.group()!r} has no identical Python meaning: {regex[:60]!r}"
        )
    return re.sub(r"\(\?<(?![=!])", "(?P<", regex)


def compile_extract(regex: str) -> re.Pattern[str]:
    """An EXTRACT regex as Splunk runs it: `(?ms)` prepended (props.conf.spec)."""
    return re.compile("(?ms)" + pcre_to_python(regex))


_IN_FIELD = re.compile(r"^(?P<regex>.*\S)\s+in\s+(?P<field>[A-Za-z0-9_]+)$", re.DOTALL)


def split_extract(value: str) -> tuple[str, str | None]:
    """`<regex> in <field>` -> (regex, field); a plain regex -> (regex, None)."""
    match = _IN_FIELD.match(value)
    if match:
        return match.group("regex"), match.group("field")
    return value, None


def extract_names(value: str) -> set[str]:
    regex, _ = split_extract(value)
    return set(re.findall(r"\(\?<([A-Za-z_]\w*)>", regex))


# --- the event and the app -------------------------------------------------------------------


@dataclass(frozen=True)
class Event:
    """One indexed event: its text, default fields and HEC indexed fields."""

    raw: str
    sourcetype: str
    host: str | None = None
    source: str | None = None
    indexed: Mapping[str, str] = field(default_factory=dict)


@dataclass
class App:
    """The app's search-time configuration: props, transforms and its lookup files."""

    props: Conf
    transforms: Conf
    lookups_dir: Path
    _tables: dict[str, tuple[list[str], list[dict[str, str]]]] = field(default_factory=dict)

    def table(self, name: str) -> tuple[list[str], list[dict[str, str]]]:
        if name not in self._tables:
            transform = self.transforms.get(name)
            if transform is None:
                raise EmulationError(f"LOOKUP of {name!r}: no such transforms.conf stanza")
            problems = transforms_problems(transform)
            if problems:
                raise EmulationError(f"[{name}]: {problems}")
            unknown = set(transform) - {"filename", "match_type", "max_matches", "case_sensitive_match"}
            if unknown or "filename" not in transform:
                raise EmulationError(
                    f"[{name}]: only CSV lookups with filename are emulated, not {sorted(unknown)}"
                )
            if transform.get("max_matches") != "1":
                raise EmulationError(
                    f"[{name}]: max_matches must be 1 (the default is 100 matches, multivalue)"
                )
            if transform.get("case_sensitive_match", "true") != "true":
                raise EmulationError(f"[{name}]: only case-sensitive matching is emulated")
            path = self.lookups_dir / transform["filename"]
            if "/" in transform["filename"] or not path.is_file():
                raise EmulationError(f"[{name}]: lookup file {transform['filename']!r} is not in lookups/")
            with path.open(encoding="utf-8", newline="") as handle:
                reader = csv.DictReader(handle)
                self._tables[name] = (list(reader.fieldnames or []), list(reader))
        return self._tables[name]

    def search_time(self, event: Event) -> Fields:
        """The fields Splunk gives `event` at search time."""
        stanza = self.props.get(event.sourcetype)
        if stanza is None:
            raise EmulationError(f"no props.conf stanza [{event.sourcetype}]")
        return apply_stanza(self, stanza, event)


# --- the search-time sequence -----------------------------------------------------------------


def _set_once(fields: Fields, name: str, value: Any, indexed: Mapping[str, str], where: str) -> None:
    if name in indexed:
        raise EmulationError(f"{where}: {name} is also a HEC indexed field; Splunk would show both values")
    if name in fields and fields[name] != value:
        raise EmulationError(f"{where}: {name} set twice on one event ({fields[name]!r}, {value!r})")
    fields[name] = value


def apply_stanza(app: App, stanza: Mapping[str, str], event: Event) -> Fields:
    problems = props_problems(stanza)
    if problems:
        raise EmulationError(f"[{event.sourcetype}]: {problems}")
    if "rename" in stanza:
        raise EmulationError("rename is not emulated (the app gives every sourcetype its own stanza)")
    kv_mode = stanza.get("KV_MODE", "auto")
    if kv_mode not in ("none", "json"):
        raise EmulationError(f"KV_MODE = {kv_mode} is not emulated; set none or json")
    fields: Fields = {"sourcetype": event.sourcetype, "_raw": event.raw}
    for name, value in (("host", event.host), ("source", event.source)):
        if value is not None:
            fields[name] = value
    for name, value in event.indexed.items():
        if name in DEFAULT_FIELDS:
            raise EmulationError(f"HEC indexed field {name!r} reuses a default field")
        fields[name] = value
    indexed = dict(event.indexed)
    before_extract = set(DEFAULT_FIELDS) | set(indexed)
    _extract(stanza, event, fields, indexed, before_extract)
    _report(app, stanza, event, fields, indexed)
    if kv_mode == "json":
        for name, value in json_fields(event.raw).items():
            _set_once(fields, name, value, indexed, "KV_MODE=json")
    _alias(stanza, fields)
    _eval(stanza, fields)
    _lookup(app, stanza, fields)
    fields.pop("_raw", None)
    return fields


def _classes(stanza: Mapping[str, str], prefix: str) -> list[tuple[str, str]]:
    return sorted(
        (key.removeprefix(prefix), value) for key, value in stanza.items() if key.startswith(prefix)
    )


def _extract(
    stanza: Mapping[str, str], event: Event, fields: Fields, indexed: Mapping[str, str], readable: set[str]
) -> None:
    for name, value in _classes(stanza, "EXTRACT-"):
        regex, source_field = split_extract(value)
        if source_field is not None and source_field not in readable:
            raise EmulationError(
                f"EXTRACT-{name}: 'in {source_field}' reads neither a default nor an indexed field"
            )
        target = event.raw if source_field is None else fields.get(source_field)
        if not isinstance(target, str):
            continue
        pattern = compile_extract(regex)
        if not pattern.groupindex:
            raise EmulationError(f"EXTRACT-{name}: no named capturing group")
        match = pattern.search(target)
        if match:
            for group, text in match.groupdict().items():
                if text:
                    _set_once(fields, group, text, indexed, f"EXTRACT-{name}")


def _report(
    app: App, stanza: Mapping[str, str], event: Event, fields: Fields, indexed: Mapping[str, str]
) -> None:
    for key, value in _classes(stanza, "REPORT-"):
        for name in (part.strip() for part in value.split(",")):
            transform = app.transforms.get(name)
            if transform is None:
                raise EmulationError(f"REPORT-{key}: no transform {name}")
            problems = transforms_problems(transform)
            unknown = set(transform) - {"REGEX", "FORMAT"}
            if problems or unknown:
                raise EmulationError(f"transform {name}: {problems or sorted(unknown)} not emulated")
            pattern = re.compile(pcre_to_python(transform["REGEX"]))
            match = pattern.search(event.raw)
            if not match:
                continue
            groups = ("", *match.groups())
            for pair in transform.get("FORMAT", "").split():
                out, sep, template = pair.partition("::")
                if not sep or not re.fullmatch(r"\$\d", template):
                    raise EmulationError(
                        f"transform {name}: FORMAT {pair!r} is not field::$n (search-time FORMAT cannot "
                        "concatenate, and a literal value needs fields.conf INDEXED_VALUE = false)"
                    )
                text = groups[int(template[1:])]
                if text:
                    _set_once(fields, out, text, indexed, f"transform {name}")
            for group, text in match.groupdict().items():
                if text:
                    _set_once(fields, group, text, indexed, f"transform {name}")


def json_fields(raw: str) -> Fields:
    """What KV_MODE=json makes of an event: nested keys dotted, arrays key{}, a JSON null as "null"."""
    try:
        document = json.loads(raw, parse_int=str, parse_float=str, parse_constant=str)
    except ValueError:
        return {}  # props.conf.spec: json mode extracts nothing from data that is not JSON
    if not isinstance(document, dict):
        return {}
    out: dict[str, list[str]] = {}

    def walk(prefix: str, value: Any) -> None:
        if isinstance(value, dict):
            for key, item in value.items():
                walk(f"{prefix}.{key}" if prefix else key, item)
        elif isinstance(value, list):
            for item in value:
                walk(prefix + "{}", item)
        elif value is None:
            out.setdefault(prefix, []).append("null")
        elif isinstance(value, bool):
            out.setdefault(prefix, []).append("true" if value else "false")
        else:
            out.setdefault(prefix, []).append(str(value))

    walk("", document)
    return {key: values[0] if len(values) == 1 else tuple(values) for key, values in out.items()}


_ALIAS = re.compile(r"(\S+)\s+(AS|ASNEW)\s+(\S+)", re.IGNORECASE)


def aliases(stanza: Mapping[str, str]) -> list[tuple[str, str, str]]:
    """(source, AS|ASNEW, target) of every FIELDALIAS, in class order."""
    out: list[tuple[str, str, str]] = []
    for key, value in _classes(stanza, "FIELDALIAS-"):
        found = _ALIAS.findall(value)
        if _ALIAS.sub("", value).strip():
            raise EmulationError(f"FIELDALIAS-{key}: not '<field> AS|ASNEW <field>' pairs: {value!r}")
        out += [(source, mode.upper(), target) for source, mode, target in found]
    return out


def eval_targets(stanza: Mapping[str, str]) -> set[str]:
    return {key.removeprefix("EVAL-") for key in stanza if key.startswith("EVAL-")}


def lookup_specs(
    stanza: Mapping[str, str],
) -> list[tuple[str, str, list[tuple[str, str]], str, list[tuple[str, str]]]]:
    """(class, table, [(table field, event field)], OUTPUT|OUTPUTNEW, [(table field, event field)])."""
    specs = []
    for key, value in _classes(stanza, "LOOKUP-"):
        words = value.split()
        if not words:
            raise EmulationError(f"LOOKUP-{key}: empty")
        table, rest = words[0], words[1:]
        mode = next((w for w in rest if w in ("OUTPUT", "OUTPUTNEW")), None)
        if mode is None:
            raise EmulationError(f"LOOKUP-{key}: name the output fields (OUTPUT or OUTPUTNEW)")
        split = rest.index(mode)
        specs.append((key, table, _pairs(rest[:split], key), mode, _pairs(rest[split + 1 :], key)))
    return specs


def _pairs(words: list[str], key: str) -> list[tuple[str, str]]:
    pairs: list[tuple[str, str]] = []
    index = 0
    while index < len(words):
        name = words[index].rstrip(",")
        if index + 2 < len(words) + 1 and index + 1 < len(words) and words[index + 1].upper() == "AS":
            pairs.append((name, words[index + 2].rstrip(",")))
            index += 3
        else:
            pairs.append((name, name))
            index += 1
    if not pairs:
        raise EmulationError(f"LOOKUP-{key}: no fields")
    return pairs


def lookup_outputs(stanza: Mapping[str, str]) -> set[str]:
    return {event_field for *_, outputs in lookup_specs(stanza) for _table_field, event_field in outputs}


def _alias(stanza: Mapping[str, str], fields: Fields) -> None:
    pairs = aliases(stanza)
    targets = [target for _s, _m, target in pairs]
    duplicated = {t for t in targets if targets.count(t) > 1}
    if duplicated:
        raise EmulationError(f"FIELDALIAS: two aliases onto {sorted(duplicated)}; only one would take effect")
    # props.conf.spec: aliases run after extraction and before EVAL and lookups, so an alias of a
    # calculated field (or of another alias) reads nothing; an alias of a field a lookup later
    # replaces reads the event's own value, which is what FIELDALIAS-... action ASNEW vendor_action wants.
    late = {s for s, _m, _t in pairs} & (eval_targets(stanza) | set(targets))
    if late:
        raise EmulationError(f"FIELDALIAS of {sorted(late)}: calculated or alias fields cannot be aliased")
    before = dict(fields)
    for source, mode, target in pairs:
        if source in before:
            if mode == "AS" or target not in before:
                fields[target] = before[source]
        elif mode == "AS":
            fields.pop(target, None)


def _eval(stanza: Mapping[str, str], fields: Fields) -> None:
    targets = eval_targets(stanza)
    # A lookup output that nothing before EVAL can produce (no EXTRACT, alias or JSON key) only
    # exists after the lookups ran: an EVAL reading it always reads null.
    if stanza.get("KV_MODE") == "json":
        late: set[str] = set()
    else:
        early = {name for _k, value in _classes(stanza, "EXTRACT-") for name in extract_names(value)}
        early |= {target for _s, _m, target in aliases(stanza)}
        late = lookup_outputs(stanza) - early
    before = dict(fields)
    results: dict[str, Any] = {}
    for key, expression in _classes(stanza, "EVAL-"):
        if key in before:
            raise EmulationError(
                f"EVAL-{key}: a calculated field shadows the event's own {key!r} (extracted, JSON or indexed)"
            )
        reads = read_fields(expression)
        if reads & targets:
            raise EmulationError(
                f"EVAL-{key} reads {sorted(reads & targets)}, which EVALs define: every EVAL sees the values "
                "from before any EVAL ran"
            )
        if reads & late:
            raise EmulationError(
                f"EVAL-{key} reads lookup output {sorted(reads & late)}: lookups run after EVAL"
            )
        results[key] = to_text(evaluate(expression, before))
    for name, value in results.items():
        if value is None:
            fields.pop(name, None)
        else:
            fields[name] = value


def _wildcard(pattern: str) -> re.Pattern[str]:
    return re.compile("".join(".*" if c == "*" else re.escape(c) for c in pattern), re.DOTALL)


def _lookup(app: App, stanza: Mapping[str, str], fields: Fields) -> None:
    specs = lookup_specs(stanza)
    outputs = lookup_outputs(stanza)
    before = dict(fields)
    for key, table, inputs, mode, outs in specs:
        nested = {event_field for _t, event_field in inputs} & outputs
        if nested:
            raise EmulationError(
                f"LOOKUP-{key} matches on {sorted(nested)}, another lookup's output (nested)"
            )
        columns, rows = app.table(table)
        missing = [t for t, _e in inputs + outs if t not in columns]
        if missing:
            raise EmulationError(f"LOOKUP-{key}: {table} has no column {missing}")
        wildcards = set(re.findall(r"WILDCARD\((\w+)\)", app.transforms[table].get("match_type", "")))
        values = [before.get(event_field) for _t, event_field in inputs]
        if any(v is None for v in values):
            continue
        if any(isinstance(v, tuple) for v in values):
            raise EmulationError(f"LOOKUP-{key}: multivalue input is not emulated")
        row = next(
            (
                r
                for r in rows
                if all(
                    (_wildcard(r[t]).fullmatch(v) is not None) if t in wildcards else r[t] == v
                    for (t, _e), v in zip(inputs, values, strict=True)
                )
            ),
            None,
        )
        for table_field, event_field in outs:
            if row is None:
                if mode == "OUTPUT":
                    fields.pop(event_field, None)
                elif event_field in before:
                    raise EmulationError(
                        f"LOOKUP-{key}: no row, and OUTPUTNEW's effect on {event_field} is undefined"
                    )
                continue
            value = row[table_field]
            if mode == "OUTPUTNEW" and event_field in before:
                continue
            if value == "":
                if mode == "OUTPUT":
                    fields.pop(event_field, None)
                continue
            fields[event_field] = value


def to_text(value: Any) -> str | None:
    """A Splunk field value as text: numbers without a trailing .0, booleans are not field values."""
    if value is None:
        return None
    if isinstance(value, bool):
        raise EmulationError("an EVAL produced a boolean; Splunk fields hold text and numbers")
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


# --- the EVAL expression language ---------------------------------------------------------

_TOKEN = re.compile(
    r"""\s*(?:
        (?P<string>"(?:[^"\\]|\\.)*")
      | (?P<quoted>'[^']+')
      | (?P<number>\d+(?:\.\d+)?)
      | (?P<op>==|!=|<=|>=|[=<>().,+\-*/%])
      | (?P<word>[A-Za-z_][A-Za-z0-9_.{}]*)
    )""",
    re.VERBOSE,
)
_KEYWORDS = frozenset({"AND", "OR", "NOT"})


@dataclass
class _Tokens:
    items: list[tuple[str, str]]
    position: int = 0

    def peek(self) -> tuple[str, str] | None:
        return self.items[self.position] if self.position < len(self.items) else None

    def take(self) -> tuple[str, str]:
        item = self.items[self.position]
        self.position += 1
        return item

    def accept(self, kind: str, text: str | None = None) -> bool:
        item = self.peek()
        if item and item[0] == kind and (text is None or item[1].upper() == text.upper()):
            self.position += 1
            return True
        return False

    def expect(self, kind: str, text: str) -> None:
        if not self.accept(kind, text):
            raise EmulationError(f"expected {text!r} at token {self.position}: {self.peek()}")


def tokenize(expression: str) -> list[tuple[str, str]]:
    items: list[tuple[str, str]] = []
    position = 0
    while position < len(expression):
        if expression[position:].strip() == "":
            break
        match = _TOKEN.match(expression, position)
        if not match or match.end() == position:
            raise EmulationError(f"cannot tokenize EVAL at {expression[position : position + 30]!r}")
        kind = match.lastgroup
        assert kind is not None
        text = match.group(kind)
        if kind == "quoted":
            kind, text = "field", text[1:-1]
        items.append((kind, text))
        position = match.end()
    return items


def read_fields(expression: str) -> set[str]:
    """The field names an EVAL expression reads (bare words that are not functions or keywords)."""
    items = tokenize(expression)
    names = set()
    for index, (kind, text) in enumerate(items):
        if kind == "field":
            names.add(text)
        elif kind == "word" and text.upper() not in _KEYWORDS:
            following = items[index + 1] if index + 1 < len(items) else None
            if following != ("op", "("):
                names.add(text)
    return names


Node = Callable[[Fields], Any]


def parse_expression(expression: str) -> Node:
    tokens = _Tokens(tokenize(expression))
    node = _or(tokens)
    if tokens.peek() is not None:
        raise EmulationError(f"unexpected {tokens.peek()} in EVAL {expression[:60]!r}")
    return node


def evaluate(expression: str, fields: Fields) -> Any:
    return parse_expression(expression)(fields)


def _truth(value: Any) -> bool:
    return value is True


def _either(a: Node, b: Node) -> Node:
    return lambda f: _truth(a(f)) or _truth(b(f))


def _both(a: Node, b: Node) -> Node:
    return lambda f: _truth(a(f)) and _truth(b(f))


def _joined(a: Node, b: Node) -> Node:
    def join(f: Fields) -> Any:
        x, y = a(f), b(f)
        return None if x is None or y is None else f"{to_text(x)}{to_text(y)}"

    return join


def _or(t: _Tokens) -> Node:
    left = _and(t)
    while t.accept("word", "OR"):
        left = _either(left, _and(t))
    return left


def _and(t: _Tokens) -> Node:
    left = _not(t)
    while t.accept("word", "AND"):
        left = _both(left, _not(t))
    return left


def _not(t: _Tokens) -> Node:
    if t.accept("word", "NOT"):
        inner = _not(t)
        return lambda f: None if inner(f) is None else not _truth(inner(f))
    return _compare(t)


def _number(value: Any) -> float | None:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return None
    return None


def _compare(t: _Tokens) -> Node:
    left = _concat(t)
    item = t.peek()
    if item and item[0] == "op" and item[1] in ("==", "=", "!=", "<", ">", "<=", ">="):
        op = t.take()[1]
        right = _concat(t)

        def compare(f: Fields, a: Node = left, b: Node = right, op: str = op) -> Any:
            x, y = a(f), b(f)
            if x is None or y is None:
                return None
            if isinstance(x, tuple) or isinstance(y, tuple):
                raise EmulationError("comparison of a multivalue field is not emulated")
            nx, ny = _number(x), _number(y)
            if nx is not None and ny is not None:
                x, y = nx, ny
            else:
                x, y = str(x), str(y)
            return {
                "==": x == y,
                "=": x == y,
                "!=": x != y,
                "<": x < y,
                ">": x > y,
                "<=": x <= y,
                ">=": x >= y,
            }[op]

        return compare
    return left


def _concat(t: _Tokens) -> Node:
    left = _additive(t)
    while t.accept("op", "."):
        left = _joined(left, _additive(t))
    return left


def _arith(op: str) -> Callable[[Node, Node], Node]:
    def build(a: Node, b: Node) -> Node:
        def arith(f: Fields) -> Any:
            x, y = _number(a(f)), _number(b(f))
            if x is None or y is None:
                return None
            if op == "%":
                return math.fmod(x, y) if y else None
            return {"+": x + y, "-": x - y, "*": x * y, "/": x / y if y else None}[op]

        return arith

    return build


def _additive(t: _Tokens) -> Node:
    """`+ -` bind less tightly than `* / %` (Splunk's eval operator precedence)."""
    left = _multiplicative(t)
    while True:
        item = t.peek()
        if not (item and item[0] == "op" and item[1] in "+-"):
            return left
        op = t.take()[1]
        left = _arith(op)(left, _multiplicative(t))


def _multiplicative(t: _Tokens) -> Node:
    left = _unary(t)
    while True:
        item = t.peek()
        if not (item and item[0] == "op" and item[1] in "*/%"):
            return left
        op = t.take()[1]
        left = _arith(op)(left, _unary(t))


def _unary(t: _Tokens) -> Node:
    if t.accept("op", "-"):
        inner = _unary(t)
        return lambda f: None if _number(inner(f)) is None else -(_number(inner(f)) or 0)
    return _primary(t)


def _primary(t: _Tokens) -> Node:
    kind, text = t.take()
    if kind == "string":
        value = json.loads(text)
        return lambda f: value
    if kind == "number":
        number = float(text) if "." in text else int(text)
        return lambda f: number
    if kind == "op" and text == "(":
        inner = _or(t)
        t.expect("op", ")")
        return inner
    if kind == "field":
        return lambda f: f.get(text)
    if kind == "word":
        if t.accept("op", "("):
            args: list[Node] = []
            if not t.accept("op", ")"):
                args.append(_or(t))
                while t.accept("op", ","):
                    args.append(_or(t))
                t.expect("op", ")")
            return _function(text, args)
        return lambda f: f.get(text)
    raise EmulationError(f"unexpected token {text!r}")


EXACT_INTEGER_LIMIT = 2**53
"""Splunk's eval numbers are doubles: integers beyond 2**53 lose precision (refused here)."""


def _tonumber(value: Any, base: Any = 10) -> Any:
    if value is None:
        return None
    try:
        number = int(str(value), int(base))
        if abs(number) > EXACT_INTEGER_LIMIT:
            raise EmulationError(
                f"tonumber({value!r}) exceeds 2**53: Splunk's double would not keep it exact"
            )
        return number
    except ValueError:
        try:
            return float(value) if int(base) == 10 else None
        except ValueError:
            return None


def _text(value: Any) -> str | None:
    if isinstance(value, tuple):
        raise EmulationError("a multivalue field in a string function is not emulated")
    return None if value is None else str(to_text(value))


def _function(name: str, args: list[Node]) -> Node:  # noqa: C901
    lname = name.lower()
    if name != lname:
        raise EmulationError(f"EVAL function {name}(): Splunk's eval functions are lower case")
    if lname == "case":
        if len(args) % 2:
            raise EmulationError("case() needs condition/value pairs")
        pairs = list(zip(args[::2], args[1::2], strict=True))
        return lambda f: next((value(f) for condition, value in pairs if _truth(condition(f))), None)
    if lname == "if":
        condition, yes, no = args
        return lambda f: yes(f) if _truth(condition(f)) else no(f)
    if lname == "in":
        head, *rest = args
        return lambda f: None if head(f) is None else _text(head(f)) in {_text(r(f)) for r in rest}
    if lname == "coalesce":
        return lambda f: next((v for v in (a(f) for a in args) if v is not None), None)
    if lname == "nullif":
        return lambda f: None if args[0](f) is None or _text(args[0](f)) == _text(args[1](f)) else args[0](f)
    if lname == "null":
        return lambda f: None
    if lname == "true":
        return lambda f: True
    if lname == "isnull":
        return lambda f: args[0](f) is None
    if lname == "isnotnull":
        return lambda f: args[0](f) is not None
    if lname == "tonumber":
        return lambda f: _tonumber(args[0](f), args[1](f) if len(args) > 1 else 10)
    if lname == "tostring":
        if len(args) != 1:
            raise EmulationError("tostring() with a format is not emulated")
        return lambda f: _text(args[0](f))
    if lname == "lower":
        return lambda f: None if args[0](f) is None else str(_text(args[0](f))).lower()
    if lname == "md5":
        return lambda f: (
            None if args[0](f) is None else hashlib.md5(str(_text(args[0](f))).encode()).hexdigest()
        )
    if lname == "floor":
        return lambda f: None if _number(args[0](f)) is None else math.floor(_number(args[0](f)) or 0)
    if lname == "substr":

        def substr(f: Fields) -> Any:
            value = _text(args[0](f))
            start = _number(args[1](f))
            if value is None or start is None:
                return None
            begin = int(start) - 1 if start > 0 else len(value) + int(start)
            if len(args) > 2:
                length = _number(args[2](f))
                return None if length is None else value[begin : begin + int(length)]
            return value[begin:]

        return substr
    if lname == "match":
        return lambda f: (
            None
            if args[0](f) is None
            else re.search(pcre_to_python(args[1](f)), str(_text(args[0](f)))) is not None
        )
    if lname == "replace":

        def replace(f: Fields) -> Any:
            value = args[0](f)
            if value is None:
                return None
            replacement = re.sub(r"\\(\d)", r"\\g<\1>", args[2](f))
            return re.sub(pcre_to_python(args[1](f)), replacement, str(_text(value)))

        return replace
    raise EmulationError(f"EVAL function {name}() is not emulated")
