"""The generated SPL, executed by a small model of Splunk's search language, agrees with the engine.

No Splunk server is available offline, so this module interprets the subset of SPL that
`savedsearches.conf` uses (base-search terms, `dedup`, `eval`, `sort`, `streamstats`, `stats`,
`where`, `table`) following Splunk's documented semantics: results start newest first, `OR` binds
tighter than the implicit `AND`, field values compare case-insensitively in the base search,
`streamstats` accumulates in the current result order, `values()` is sorted and distinct. Every
labelled scenario is then run through the real generated searches and compared with the Python
engine: the same records fire the single-event rules, the same users and attempts fire the brute
force, the same positions fire the sequence checks.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable
from typing import Any

import pytest
from addonfactory_splunk_conf_parser_lib import TABConfigParser

from hsmaudit.detect.engine import DetectionConfig, detect_events
from hsmaudit.detect.folding import FOLDED_RULES
from hsmaudit.detect.ruleset import load_ruleset
from hsmaudit.ops.compiled_rules import PACKAGE_ROOT
from hsmaudit.records.event import HsmEvent, event_to_dict

from .splunk_scheduler import SEARCH_INFO, relative_time
from .test_detect_builder import Cluster
from .test_detect_scenarios import SCENARIOS, Scenario
from .test_rules_splunk import stanzas

Row = dict[str, Any]

# --- values ---------------------------------------------------------------------------------


def splunk_row(event: HsmEvent) -> Row:
    """An event as Splunk's JSON extraction shows it: booleans as "true"/"false", nulls absent."""
    row: Row = {}
    for name, value in event_to_dict(event).items():
        if value is None or isinstance(value, dict | list):
            continue
        row[name] = ("true" if value else "false") if isinstance(value, bool) else value
    row["_time"] = (event.usecs or 0) / 1_000_000
    row["_indextime"] = row["_time"]
    row["_raw"] = event.raw
    row["host"] = event.hsm_id or event.log_stream
    row["source"] = event.log_group
    return row


def number(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return float(value)
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def compare(left: Any, op: str, right: Any) -> bool:
    if left is None or right is None:
        return False
    a, b = number(left), number(right)
    if a is None or b is None:
        a, b = str(left), str(right)  # type: ignore[assignment]
    return {"<": a < b, "<=": a <= b, ">": a > b, ">=": a >= b, "==": a == b, "=": a == b, "!=": a != b}[op]  # type: ignore[operator]


# --- tokens -------------------------------------------------------------------------------------

TOKEN = re.compile(
    r'\s*(?:(?P<str>"(?:[^"\\]|\\.)*")|(?P<field>\'[^\']+\')|(?P<num>\d+(?:\.\d+)?)|(?P<op>>=|<=|==|!=|[=<>(),.+\-*])|(?P<word>[A-Za-z_*][\w*]*))'
)


def tokens(text: str) -> list[tuple[str, str]]:
    found, position = [], 0
    text = text.strip()
    while position < len(text):
        match = TOKEN.match(text, position)
        assert match is not None, f"cannot tokenise {text[position:]!r}"
        kind = match.lastgroup
        assert kind is not None
        found.append((kind, match.group(kind)))
        position = match.end()
    return found


# --- eval / where expressions (Pratt parser) ----------------------------------------------------

Expr = Callable[[Row], Any]
FUNCTIONS: dict[str, Callable[..., Any]] = {
    "coalesce": lambda *values: next((v for v in values if v is not None), None),
    "lower": lambda value: None if value is None else str(value).lower(),
    "isnull": lambda value: value is None,
    "isnotnull": lambda value: value is not None,
    "in": lambda value, *options: value is not None and value in options,
    "md5": lambda value: hashlib.md5(str(value).encode()).hexdigest(),
    "true": lambda: True,
    "null": lambda: None,
    "relative_time": lambda moment, modifier: (
        None if moment is None else relative_time(modifier, float(moment))
    ),
    "replace": lambda value, pattern, replacement: (
        None if value is None else re.sub(pattern, replacement, str(value))
    ),
}
BINDING = {
    "OR": 1,
    "AND": 2,
    "==": 3,
    "=": 3,
    "!=": 3,
    "<": 3,
    "<=": 3,
    ">": 3,
    ">=": 3,
    ".": 4,
    "+": 4,
    "-": 4,
}


class ExpressionParser:
    def __init__(self, text: str) -> None:
        self.items = tokens(text)
        self.position = 0

    def peek(self) -> tuple[str, str] | None:
        return self.items[self.position] if self.position < len(self.items) else None

    def take(self) -> tuple[str, str]:
        item = self.items[self.position]
        self.position += 1
        return item

    def parse(self, power: int = 0) -> Expr:
        left = self.prefix()
        while (item := self.peek()) is not None and BINDING.get(item[1], 0) > power:
            operator = self.take()[1]
            right = self.parse(BINDING[operator])
            left = self.binary(operator, left, right)
        return left

    def prefix(self) -> Expr:
        kind, text = self.take()
        if kind == "str":
            value = text[1:-1]
            return lambda row: value
        if kind == "num":
            literal = float(text)
            return lambda row: literal
        if kind == "field":  # eval's 'quoted.field.name' (names with dots, as KV_MODE=json makes)
            name = text[1:-1]
            return lambda row: row.get(name)
        if text == "(":
            inner = self.parse()
            assert self.take()[1] == ")"
            return inner
        if text == "NOT":
            inner = self.parse(3)
            return lambda row: not inner(row)
        if text == "-":
            inner = self.parse(5)
            return lambda row: -inner(row)
        if (following := self.peek()) is not None and following[1] == "(":
            self.take()
            arguments: list[Expr] = []
            while self.peek() is not None and self.peek()[1] != ")":  # type: ignore[index]
                arguments.append(self.parse())
                if self.peek() is not None and self.peek()[1] == ",":  # type: ignore[index]
                    self.take()
            self.take()
            if text == "if":
                condition, then, otherwise = arguments
                return lambda row: then(row) if condition(row) else otherwise(row)
            if text == "case":
                pairs = list(zip(arguments[::2], arguments[1::2], strict=True))
                return lambda row: next((value(row) for test, value in pairs if test(row)), None)
            if text not in FUNCTIONS:
                raise AssertionError(f"eval function {text}() is not modelled")
            function = FUNCTIONS[text]
            return lambda row: function(*(argument(row) for argument in arguments))
        return lambda row: row.get(text)

    @staticmethod
    def binary(operator: str, left: Expr, right: Expr) -> Expr:
        if operator == "OR":
            return lambda row: bool(left(row)) or bool(right(row))
        if operator == "AND":
            return lambda row: bool(left(row)) and bool(right(row))
        if operator == ".":

            def concatenate(row: Row) -> str:
                a, b = left(row), right(row)  # each side once: chains are long
                return ("" if a is None else fmt(a)) + ("" if b is None else fmt(b))

            return concatenate
        if operator in {"+", "-"}:

            def arithmetic(row: Row) -> Any:
                a, b = number(left(row)), number(right(row))
                if a is None or b is None:
                    return None
                return a + b if operator == "+" else a - b

            return arithmetic
        return lambda row: compare(left(row), operator, right(row))


def fmt(value: Any) -> str:
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


# --- base search ---------------------------------------------------------------------------------


def base_matcher(text: str) -> Callable[[Row], bool]:
    """Base-search terms: implicit AND, OR binds tighter, NOT, parentheses, field=value|*|IN(...)."""
    items = tokens(text)
    position = 0

    def peek() -> str | None:
        return items[position][1] if position < len(items) else None

    def take() -> tuple[str, str]:
        nonlocal position
        position += 1
        return items[position - 1]

    def conjunction() -> Callable[[Row], bool]:
        parts = []
        while peek() not in (None, ")"):
            parts.append(disjunction())
        return lambda row: all(part(row) for part in parts)

    def disjunction() -> Callable[[Row], bool]:
        parts = [negation()]
        while peek() == "OR":
            take()
            parts.append(negation())
        return lambda row: any(part(row) for part in parts)

    def negation() -> Callable[[Row], bool]:
        if peek() == "NOT":
            take()
            inner = negation()
            return lambda row: not inner(row)
        return term()

    def term() -> Callable[[Row], bool]:
        if peek() == "(":
            take()
            inner = conjunction()
            assert take()[1] == ")"
            return inner
        kind, field = take()
        if peek() not in {"=", "!=", "<", ">", "<=", ">=", "IN", "("}:
            # A bare term: Splunk looks it up in the index's term list, i.e. in the raw text.
            assert kind == "word", f"unexpected {field!r} in the base search"
            return lambda row: raw_has_term(row.get("_raw"), field)
        operator = take()[1]
        if operator == "!=":
            raise AssertionError("!= in the base search is not modelled")
        if operator == "IN":
            raise AssertionError("unreachable")
        if field and operator == "(":
            raise AssertionError(f"unexpected call {field}")
        if operator in {">=", "<=", ">", "<"}:
            limit = take()[1]
            return lambda row: compare(row.get(field), operator, limit)
        kind, value = take()
        if kind == "str":
            value = value[1:-1]
        return lambda row: matches(row.get(field), value)

    # `field IN (a, b)` -> (field=a OR field=b), rewritten before parsing
    rewritten: list[tuple[str, str]] = []
    index = 0
    while index < len(items):
        if index + 2 < len(items) and items[index + 1] == ("word", "IN") and items[index + 2][1] == "(":
            field = items[index][1]
            close = next(j for j in range(index, len(items)) if items[j][1] == ")")
            values = [item for item in items[index + 3 : close] if item[1] != ","]
            rewritten.append(("op", "("))
            for n, value in enumerate(values):
                if n:
                    rewritten.append(("word", "OR"))
                rewritten += [("word", field), ("op", "="), value]
            rewritten.append(("op", ")"))
            index = close + 1
        else:
            rewritten.append(items[index])
            index += 1
    items = rewritten
    matcher = conjunction()
    assert position == len(items), items[position:]
    return matcher


def raw_has_term(raw: Any, term: str) -> bool:
    """The term occurs in the raw text between breakers (case-insensitive, as the lexicon is)."""
    if raw is None:
        return False
    return (
        re.search(rf"(?<![A-Za-z0-9_]){re.escape(term)}(?![A-Za-z0-9_])", str(raw), re.IGNORECASE) is not None
    )


def matches(value: Any, pattern: str) -> bool:
    if pattern == "*":
        return value is not None
    if value is None:
        return False
    regex = "".join(".*" if part == "*" else re.escape(part) for part in re.split(r"(\*)", pattern))
    return re.fullmatch(regex, fmt(value), re.IGNORECASE) is not None


# --- commands -------------------------------------------------------------------------------------


def flatten(value: Any, prefix: str = "") -> Row:
    """A JSON object as KV_MODE=json shows it: nested keys joined with dots, JSON null absent."""
    row: Row = {}
    if isinstance(value, dict):
        for key, inner in value.items():
            row.update(flatten(inner, f"{prefix}{key}."))
    elif value is not None and not isinstance(value, list):
        row[prefix[:-1]] = ("true" if value else "false") if isinstance(value, bool) else value
    return row


def cloudtrail_row(event: HsmEvent) -> Row:
    """A CloudHSM CloudTrail record as the Splunk Add-on for AWS indexes it (aws:cloudtrail)."""
    row = flatten(json.loads(event.raw or "{}"))
    row.update({"_time": (event.usecs or 0) / 1_000_000, "sourcetype": "aws:cloudtrail", "index": "main"})
    return row


def macro_definition(name: str) -> str:
    parser = TABConfigParser()
    parser.read(str(PACKAGE_ROOT / "splunk/hsmaudit_app/default/macros.conf"))
    return str(parser.get(name, "definition"))


def run_search(spl: str, events: list[HsmEvent] | list[Row]) -> list[Row]:
    """Run a search over events (parsed events, or rows as Splunk shows them, e.g. with _indextime)."""
    if spl.startswith("`hsmaudit_cloudtrail`"):
        spl = macro_definition("hsmaudit_cloudtrail") + spl.removeprefix("`hsmaudit_cloudtrail`")
        rows = [
            cloudtrail_row(event)
            for event in events
            if isinstance(event, HsmEvent) and event.record_format == "cloudtrail"
        ]
    else:
        spl = spl.replace("`hsmaudit_events`", "")
        rows = [splunk_row(event) if isinstance(event, HsmEvent) else dict(event) for event in events]
    segments = split_pipes(spl)
    if segments[0].strip() == "":  # a generating command first (`| tstats ...`)
        command, _, rest = segments[1].strip().partition(" ")
        assert command in GENERATING, f"generating command {command!r} is not modelled"
        rows = GENERATING[command](rows, rest)
        segments = segments[1:]
    else:
        match = base_matcher(segments[0].strip())
        rows = sorted((row for row in rows if match(row)), key=lambda row: -row["_time"])  # newest first
    for segment in segments[1:]:
        command, _, rest = segment.strip().partition(" ")
        if command == "join":
            rows = join(rows, rest, events)
            continue
        if command not in COMMANDS:
            raise AssertionError(f"SPL command {command!r} is not modelled")
        rows = COMMANDS[command](rows, rest)
    return rows


def join(rows: list[Row], rest: str, events: list[HsmEvent] | list[Row]) -> list[Row]:
    """`join type=inner FIELD [search ...]`: the subsearch's fields overwrite (Splunk's default)."""
    options, _, subsearch = rest.partition("[")
    assert subsearch.endswith("]") and subsearch.startswith("search "), rest
    words = options.split()
    assert words[0] == "type=inner" and len(words) == 2, "the model joins inner on one field"
    field = words[1]
    right = {row.get(field): row for row in run_search(subsearch[len("search ") : -1], events)}
    return [{**row, **right[row[field]]} for row in rows if row.get(field) in right]


def split_pipes(spl: str) -> list[str]:
    parts, current, quoted, depth = [], "", False, 0
    for char in spl:
        if char == '"':
            quoted = not quoted
        if not quoted:
            depth += {"[": 1, "]": -1}.get(char, 0)
        if char == "|" and not quoted and depth == 0:
            parts.append(current)
            current = ""
        else:
            current += char
    return [*parts, current]


def dedup(rows: list[Row], rest: str) -> list[Row]:
    keep_empty = "keepempty=true" in rest
    fields = [f for f in rest.replace("keepempty=true", "").split() if f]
    assert fields and all(re.fullmatch(r"[A-Za-z_]\w*", f) for f in fields), f"dedup {rest!r} is not modelled"
    seen, kept = set(), []
    for row in rows:
        key = tuple(row.get(f) for f in fields)
        if any(value is None for value in key):
            if keep_empty:
                kept.append(row)
            continue
        if key not in seen:
            seen.add(key)
            kept.append(row)
    return kept


def evaluate(rows: list[Row], rest: str) -> list[Row]:
    assignments = re.split(r",\s*(?=[A-Za-z_]\w*\s*=[^=])", rest)
    compiled = [
        (target.strip(), ExpressionParser(expression).parse())
        for target, _, expression in (a.partition("=") for a in assignments)
    ]
    for row in rows:
        for target, expression in compiled:
            row[target] = expression(row)
    return rows


def where(rows: list[Row], rest: str) -> list[Row]:
    expression = ExpressionParser(rest).parse()
    return [row for row in rows if expression(row)]


def sort_rows(rows: list[Row], rest: str) -> list[Row]:
    words = rest.split()
    # `sort 0 a b`: ascending, no limit. A bare `sort a` stops at 10,000 results; +/- and
    # functions such as num() are not modelled.
    assert words[:1] == ["0"], f"sort without 0 truncates at 10,000 results: sort {rest}"
    fields = words[1:]
    assert fields and all(re.fullmatch(r"[A-Za-z_]\w*", f) for f in fields), f"sort {rest!r} is not modelled"

    def key(row: Row) -> tuple[Any, ...]:
        parts: list[Any] = []
        for field in fields:
            value = row.get(field)
            numeric = number(value)
            parts.append(
                (0, numeric, "") if numeric is not None else (1, 0.0, "" if value is None else str(value))
            )
        return tuple(parts)

    return sorted(rows, key=key)


AGGREGATION = re.compile(r"(\w+)(?:\((\w+)\))?\s+as\s+(\w+)")


MAX_STREAM_WINDOW = 10_000
"""limits.conf [stats] max_stream_window: the largest window, and the silent cap without one."""


def streamstats(rows: list[Row], rest: str) -> list[Row]:
    options = dict(re.findall(r"\b(current|window|time_window)=(\S+)", rest))
    rest = re.sub(r"\b(current|window|time_window)=\S+", "", rest)
    # Without window/time_window Splunk silently stops at max_stream_window events: refuse that.
    assert "window" in options or "time_window" in options, f"streamstats without a window: {rest}"
    assert 0 < int(options.get("window", "1")) <= MAX_STREAM_WINDOW, options
    if "time_window" in options:
        assert re.fullmatch(r"\d+s", options["time_window"]), options  # the only span form modelled
        times = [row["_time"] for row in rows]
        assert times in (sorted(times), sorted(times, reverse=True)), "time_window needs time-sorted input"
    aggregations_text, _, by = rest.partition(" by ")
    aggregations = AGGREGATION.findall(aggregations_text)
    assert AGGREGATION.sub("", aggregations_text).strip() == "", f"streamstats {rest!r} is not modelled"
    group_fields = by.split()
    include_current = options.get("current", "t") != "f"
    window = int(options.get("window", "0"))
    span = float(options["time_window"].rstrip("s")) if "time_window" in options else None
    history: dict[tuple[Any, ...], list[Row]] = {}
    for row in rows:
        group = tuple(row.get(f) for f in group_fields)
        seen = history.setdefault(group, [])
        if include_current:
            seen.append(row)
        if window:
            pool = seen[-window:]
        elif span is not None:  # rows are in time order: walk back while inside the window
            start = len(seen)
            while start > 0 and seen[start - 1]["_time"] >= row["_time"] - span:
                start -= 1
            pool = seen[start:]
        else:
            pool = seen
        results = {alias: aggregate(function, argument, pool) for function, argument, alias in aggregations}
        if not include_current:
            seen.append(row)
        row.update(results)
    return rows


def aggregate(function: str, argument: str, pool: list[Row]) -> Any:
    values = [row.get(argument) for row in pool if row.get(argument) is not None] if argument else pool
    if function == "count":
        return len(values)
    if not values:
        return None
    if function == "first":  # the first value in the current result order
        return values[0]
    if function in {"last", "latest"}:
        return values[-1] if function == "last" else max(pool, key=lambda r: r["_time"]).get(argument)
    if function == "sum":
        return sum(number(v) or 0 for v in values)
    if function == "values":
        return sorted({fmt(v) for v in values})
    if function == "dc":
        return len({fmt(v) for v in values})
    if function in {"min", "max"}:
        return (min if function == "min" else max)(values, key=lambda v: number(v) or 0)
    raise AssertionError(function)


def stats(rows: list[Row], rest: str) -> list[Row]:
    aggregations_text, _, by = rest.partition(" by ")
    assert AGGREGATION.sub("", aggregations_text).strip() == "", f"stats {rest!r} is not modelled"
    group_fields = by.split()
    groups: dict[tuple[Any, ...], list[Row]] = {}
    for row in rows:
        key = tuple(row.get(f) for f in group_fields)
        if any(value is None for value in key):
            continue  # stats drops results whose by-fields are null
        groups.setdefault(key, []).append(row)
    out = []
    for key, pool in groups.items():
        result = dict(zip(group_fields, key, strict=True))
        for function, argument, alias in AGGREGATION.findall(aggregations_text):
            result[alias] = aggregate(function, argument, pool)
        out.append(result)
    return out


INDEXED = frozenset({"_time", "_indextime", "host", "source", "sourcetype", "index"})
"""Fields tstats can read on every hsmaudit sourcetype: Splunk's index-time metadata. (Lean events
index event_id/cluster_id/hsm_id too, JSON events do not, so an alert cannot rely on them.)"""


def tstats(rows: list[Row], rest: str) -> list[Row]:
    """`tstats <aggregations> where <terms> by <fields>` over index-time fields only."""
    aggregations_text, found, condition = rest.strip().partition(" where ")
    assert found, f"tstats {rest!r} is not modelled (a where clause is)"
    where, _, by = condition.partition(" by ")
    aggregations = AGGREGATION.findall(aggregations_text)
    assert aggregations and AGGREGATION.sub("", aggregations_text).strip() == "", rest
    for function, argument, _alias in aggregations:
        assert argument in INDEXED | {""}, f"tstats cannot read {argument!r}: not an indexed field"
        assert function in {"count", "latest", "earliest", "min", "max", "dc", "values"}, function
    where = where.replace("`hsmaudit_events`", "").strip()
    for field in re.findall(r"([A-Za-z_]\w*)\s*(?:=|IN\b)", where):
        assert field in INDEXED, f"tstats where {field}: not an indexed field"
    selected = base_matcher(where) if where else (lambda row: True)
    group_fields = by.split()
    for field in group_fields:
        assert field in INDEXED, f"tstats by {field}: not an indexed field"
    return stats([row for row in rows if selected(row)], f"{aggregations_text} by {' '.join(group_fields)}")


def accum(rows: list[Row], rest: str) -> list[Row]:
    """`accum x [as y]`: a running total in result order; a row without a number keeps no total."""
    match = re.fullmatch(r"\s*(\w+)(?:\s+as\s+(\w+))?\s*", rest)
    assert match, f"accum {rest!r} is not modelled"
    source, target = match.group(1), match.group(2) or match.group(1)
    total = 0.0
    for row in rows:
        value = number(row.get(source))
        if value is None:
            continue
        total += value
        row[target] = total
    return rows


def table(rows: list[Row], rest: str) -> list[Row]:
    fields = rest.split()
    return [{f: row.get(f) for f in fields} for row in rows]


GENERATING: dict[str, Callable[[list[Row], str], list[Row]]] = {"tstats": tstats}


def addinfo(rows: list[Row], rest: str) -> list[Row]:
    """`addinfo`: the search's earliest and latest time on every result."""
    assert rest.strip() == "", f"addinfo {rest!r} is not modelled"
    assert SEARCH_INFO, "addinfo outside a scheduled run: no time range is modelled"
    for row in rows:
        row.update(SEARCH_INFO)
    return rows


def fields(rows: list[Row], rest: str) -> list[Row]:
    """`fields a b` keeps those (and _time, _raw, as Splunk does); `fields - a b` removes them."""
    names = rest.split()
    assert names and all(re.fullmatch(r"[A-Za-z_]\w*", n) for n in names if n != "-"), f"fields {rest!r}"
    if names[0] == "-":
        drop = set(names[1:])
        return [{k: v for k, v in row.items() if k not in drop} for row in rows]
    keep = set(names) | {"_time", "_raw"}
    return [{k: v for k, v in row.items() if k in keep} for row in rows]


COMMANDS: dict[str, Callable[[list[Row], str], list[Row]]] = {
    "addinfo": addinfo,
    "fields": fields,
    "accum": accum,
    "search": lambda rows, rest: [row for row in rows if base_matcher(rest)(row)],
    "dedup": dedup,
    "eval": evaluate,
    "where": where,
    "sort": sort_rows,
    "streamstats": streamstats,
    "stats": stats,
    "table": table,
}

# --- the comparison ------------------------------------------------------------------------------

RUN_WINDOW = re.compile(
    r' \| addinfo \| where first_indexed >= relative_time\(info_max_time, "[^"]+"\)'
    r' AND first_indexed < relative_time\(info_max_time, "[^"]+"\)'
)
"""A folded rule's "first copy indexed in this run's index window": scheduling, not selection. The
scenarios here run each search once over everything, so it is left out; test_splunk_alerts runs
the searches as scheduled, with it."""


def unscheduled(spl: str) -> str:
    return RUN_WINDOW.sub("", spl)


SEARCHES = {
    name.removeprefix("hsmaudit - "): unscheduled(values["search"]) for name, values in stanzas().items()
}
SINGLE = [rule.id for rule in load_ruleset().rules]


def python_alerts(scenario: Scenario) -> list[Any]:
    config = DetectionConfig(disabled=frozenset({"hsm-silent"}))
    return list(detect_events(scenario.events, config))


@pytest.mark.parametrize("build", SCENARIOS, ids=lambda f: f.__name__)
def test_single_event_searches_select_the_records_the_engine_alerts_on(build: Callable[[], Scenario]) -> None:
    scenario = build()
    alerts = python_alerts(scenario)
    # In Splunk a CloudTrail event's id is CloudTrail's own eventID (the add-on's _raw is not ours).
    splunk_id = {e.event_id: (e.extra or {}).get("eventID", e.event_id) for e in scenario.events}
    for rule in SINGLE:
        rows = run_search(SEARCHES[rule], scenario.events)
        for row in rows:
            assert row["rule"] == rule
        if rule in FOLDED_RULES:
            # one row per cluster action, naming every copy (the engine's alert has them in order)
            actions = {tuple(sorted(a.event_ids)): a for a in alerts if a.rule == rule}
            assert sorted(tuple(row["event_ids"]) for row in rows) == sorted(actions), rule
            for row in rows:
                alert = actions[tuple(row["event_ids"])]
                assert (row["hsm_id"], row["copies"], row["alert_severity"]) == (
                    alert.hsm_id,
                    len(alert.event_ids),
                    alert.severity,
                ), rule
                assert row["hsms"] == alert.details["hsms"], rule
            continue
        assert sorted(row["event_id"] for row in rows) == sorted(
            splunk_id[a.event_ids[0]] for a in alerts if a.rule == rule
        ), rule
        severities = {splunk_id[a.event_ids[0]]: a.severity for a in alerts if a.rule == rule}
        assert {row["event_id"]: row["alert_severity"] for row in rows} == severities, rule


@pytest.mark.parametrize("build", SCENARIOS, ids=lambda f: f.__name__)
def test_brute_force_search_fires_for_the_same_users_and_attempts(build: Callable[[], Scenario]) -> None:
    scenario = build()
    python = [a for a in python_alerts(scenario) if a.rule == "login-brute-force"]
    rows = run_search(SEARCHES["login-brute-force"], scenario.events)
    # Splunk emits a row for every attempt while the count holds (alert suppression collapses
    # them); the first row of each user is the engine's alert.
    first: dict[str, Row] = {}
    for row in rows:
        first.setdefault(str(row["user_name"]).lower(), row)
    assert sorted(first) == sorted((a.user_name or "").lower() for a in python)
    for alert in python:
        row = first[(alert.user_name or "").lower()]
        assert row["failed_attempts"] == alert.details["failed_attempts"]
        assert row["event_ids"] == sorted(alert.event_ids)


@pytest.mark.parametrize("build", SCENARIOS, ids=lambda f: f.__name__)
def test_sequence_searches_fire_where_the_engine_does(build: Callable[[], Scenario]) -> None:
    scenario = build()
    alerts = python_alerts(scenario)
    gaps = run_search(SEARCHES["sequence-gap"], scenario.events)
    assert sorted(
        (row["hsm_id"], int(row["previous_sequence_no"]) + 1, int(row["missing"])) for row in gaps
    ) == sorted(
        (a.hsm_id, a.details["expected_sequence_no"], a.details["missing"])
        for a in alerts
        if a.rule == "sequence-gap"
    )
    resets = run_search(SEARCHES["sequence-reset"], scenario.events)
    assert sorted(row["hsm_id"] for row in resets) == sorted(
        a.hsm_id for a in alerts if a.rule == "sequence-reset"
    )
    duplicates = run_search(SEARCHES["sequence-duplicate"], scenario.events)
    assert sorted((row["stream"], row["sequence_no"]) for row in duplicates) == sorted(
        (a.hsm_id, a.details["sequence_no"]) for a in alerts if a.rule == "sequence-duplicate"
    )


def test_the_model_knows_splunk_precedence_and_nulls() -> None:
    row = {"a": "x", "b": "y"}
    assert base_matcher('a="X" b="z" OR b="y"')(row)  # OR binds tighter than AND
    assert not base_matcher("NOT a=*")(row)
    assert base_matcher("NOT c=*")(row)
    assert ExpressionParser('coalesce(c, "d") . "-" . lower(a)').parse()(row) == "d-x"
    assert dedup([{"e": None}, {"e": None}, {"e": 1}, {"e": 1}], "keepempty=true e") == [
        {"e": None},
        {"e": None},
        {"e": 1},
    ]


@pytest.mark.parametrize("build", SCENARIOS, ids=lambda f: f.__name__)
def test_silence_search_finds_the_hsms_the_engine_does(
    build: Callable[[], Scenario], monkeypatch: pytest.MonkeyPatch
) -> None:
    scenario = build()
    # Splunk's now() is the search's wall clock: give it the engine's clock for this scenario.
    clock = scenario.now_usecs or max((e.usecs or 0) for e in scenario.events)
    monkeypatch.setitem(FUNCTIONS, "now", lambda: clock / 1_000_000)
    monkeypatch.setitem(FUNCTIONS, "strftime", lambda value, _format: value)
    rows = run_search(SEARCHES["hsm-silent"], scenario.events)
    silent = sorted(
        a.hsm_id for a in detect_events(scenario.events, now_usecs=clock) if a.rule == "hsm-silent"
    )
    assert sorted(row["hsm_id"] for row in rows) == silent


@pytest.mark.parametrize("build", SCENARIOS, ids=lambda f: f.__name__)
def test_removed_while_active_search_finds_the_deletions_the_engine_does(
    build: Callable[[], Scenario],
) -> None:
    scenario = build()
    splunk_id = {e.event_id: (e.extra or {}).get("eventID") for e in scenario.events}
    rows = run_search(SEARCHES["hsm-removed-while-active"], scenario.events)
    python = [a for a in python_alerts(scenario) if a.rule == "hsm-removed-while-active"]
    assert sorted((row["hsm_id"], row["deletion_event_id"]) for row in rows) == sorted(
        (a.hsm_id, splunk_id[a.event_ids[0]]) for a in python
    )
    for row, alert in zip(rows, python, strict=False):
        assert (
            row["seconds_from_last_record_to_deletion"]
            == alert.details["seconds_from_last_record_to_deletion"]
        )


def test_cloudtrail_macro_maps_every_action_as_the_parser_does() -> None:
    from hsmaudit.records.cloudtrail import ACTIONS

    cluster = Cluster()
    events = [cluster.api_call(name) for name in ACTIONS]
    events.append(cluster.api_call("CreateCluster", {"sourceBackupId": "backup-1"}))
    events.append(cluster.api_call("DeleteHsm", {"hsmId": "hsm-x"}, error="AccessDeniedException"))
    rows = {row["event_id"]: row for row in run_search("`hsmaudit_cloudtrail`", events)}
    assert len(rows) == len(events)
    for event in events:
        row = rows[(event.extra or {})["eventID"]]
        for name in (
            "opcode",
            "category",
            "action",
            "severity",
            "outcome",
            "cluster_id",
            "hsm_id",
            "response",
        ):
            assert row.get(name) == getattr(event, name), (event.opcode, name)
        assert row["success"] == ("true" if event.success else "false")
        assert row["user_name"].endswith(event.user_name.split("/")[-1])  # type: ignore[union-attr]
