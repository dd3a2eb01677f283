"""Which fields an SPL search reads, and which macros it calls: a lexical check for the app's searches.

Not an SPL parser: it removes string literals, tokens and macro calls, drops SPL's own words
(commands, functions, options) and the fields the search itself creates (`as x`, `eval x=`,
`streamstats ... as x`), and returns every other name. A name it returns that is not an event
field is a typo or a field the parser never emits. The vocabulary below is SPL's, not ours.
"""

from __future__ import annotations

import re
from typing import Final

from hsmaudit.records.event import FIELD_NAMES

# Splunk's default and internal fields (always present at search time).
SPLUNK_FIELDS: Final = frozenset(
    {"_time", "_raw", "_indextime", "host", "source", "sourcetype", "index", "eventtype", "tag", "linecount"}
)

SPL_COMMANDS: Final = frozenset(
    {
        "search", "where", "eval", "stats", "eventstats", "streamstats", "timechart", "chart", "table", "fields",
        "sort", "dedup", "fillnull", "mvexpand", "bin", "bucket", "head", "tail", "top", "rare", "rename", "convert",
        "fieldformat", "tstats", "lookup", "inputlookup", "rex", "spath", "append", "join", "transaction",
        "accum", "addinfo", "makeresults", "format",
    }
)  # fmt: skip
SPL_FUNCTIONS: Final = frozenset(
    {
        "count", "sum", "min", "max", "avg", "dc", "values", "list", "latest", "earliest", "last", "first", "range",
        "if", "case", "in", "isnull", "isnotnull", "tonumber", "tostring", "coalesce", "md5", "strftime", "strptime",
        "now", "round", "mvappend", "mvcount", "null", "true", "match", "replace", "lower", "upper", "like", "len",
        "substr", "printf", "relative_time", "ctime", "distinct_count", "mvjoin", "mvindex", "split", "nullif",
    }
)  # fmt: skip
SPL_WORDS: Final = frozenset(
    {
        "by", "as", "and", "or", "not", "in", "over", "value", "span", "current", "window", "keepempty",
        "consecutive", "limit", "f", "t", "true", "false", "duration", "sortby", "time_window", "global",
        "allnum", "reset_before", "useother", "usenull", "bins", "desc", "asc", "num", "str", "ip", "auto",
        "outputnew", "output", "prefix", "suffix", "type", "inner", "prestats", "emptystr",
    }
)  # fmt: skip

_STRING = re.compile(r'"(?:[^"\\]|\\.)*"')
_TOKEN = re.compile(r"\$[^$\s]*\$")
_MACRO = re.compile(r"`([A-Za-z0-9_]+)(?:\(([^`]*)\))?`")
_NAME = re.compile(r"(?<![\w.'{}])([A-Za-z_][A-Za-z0-9_]*)(?![\w'(])")
_AS = re.compile(r"\bas\s+([A-Za-z_][A-Za-z0-9_]*)", re.IGNORECASE)
_COMPARED = re.compile(r"\s*(?:[=<>!]|IN\b)")
_EVAL_ASSIGN = re.compile(r"(?:^\s*eval\s+|,\s*)([A-Za-z_][A-Za-z0-9_]*)\s*=(?!=)")


def macro_calls(spl: str) -> list[tuple[str, int]]:
    """(macro name, argument count) of every `macro(...)` call."""
    calls = []
    for name, args in _MACRO.findall(spl):
        count = 0 if not args.strip() else len(re.findall(r',(?=(?:[^"]*"[^"]*")*[^"]*$)', args)) + 1
        calls.append((name, count))
    return calls


def _clean(spl: str) -> str:
    return _TOKEN.sub(" ", _MACRO.sub(" ", _STRING.sub(" ", spl)))


def created_fields(spl: str) -> set[str]:
    """The fields a search creates: `... as x` and `eval x=...`."""
    text = _clean(spl)
    created: set[str] = set(_AS.findall(text))
    for segment in text.split("|"):
        if segment.strip() == "addinfo":  # the search's time range and id on every result
            created.update({"info_min_time", "info_max_time", "info_search_time", "info_sid"})
        if re.match(r"\s*eval\b", segment):
            created.update(_EVAL_ASSIGN.findall(segment))
    return created


def read_fields(spl: str) -> set[str]:
    """The field names a search reads that it did not create itself."""
    text = _clean(spl)
    created = created_fields(spl)
    names = set()
    for number, segment in enumerate(text.split("|")):
        for match in _NAME.finditer(segment):
            word = match.group(1)
            if re.fullmatch(r"[0-9]", word[0]):
                continue
            if number == 0 and not _COMPARED.match(segment, match.end()):
                continue  # a bare term of the base search is looked up in the raw text, not a field
            lowered = word.lower()
            if lowered in SPL_COMMANDS or lowered in SPL_FUNCTIONS or lowered in SPL_WORDS:
                continue
            names.add(word)
    return names - created


def known_fields(props_defined: set[str]) -> set[str]:
    """Fields an hsmaudit event has at search time: the contract's, props' CIM fields, Splunk's own."""
    return set(FIELD_NAMES) | props_defined | SPLUNK_FIELDS


def expand_macros(spl: str, macros: dict[str, dict[str, str]]) -> str:
    """The search with every `macro(...)` call replaced by its definition (arguments substituted)."""

    def expand(match: re.Match[str]) -> str:
        name, args = match.group(1), match.group(2)
        values = [] if args is None or not args.strip() else [a.strip() for a in _split_args(args)]
        stanza = f"{name}({len(values)})" if values else name
        settings = macros[stanza]
        definition = settings["definition"]
        names = [a.strip() for a in settings.get("args", "").split(",") if a.strip()]
        for arg, value in zip(names, values, strict=True):
            definition = definition.replace(f"${arg}$", value)
        return expand_macros(definition, macros)

    return _MACRO.sub(expand, spl)


def _split_args(args: str) -> list[str]:
    return re.findall(r'(?:"(?:[^"\\]|\\.)*"|[^,])+', args)


def output_fields(base: str) -> set[str] | None:
    """The fields a base search hands to its post-processes, or None when it cannot tell.

    A base that ends in `stats ... by a b` yields its aggregates' names and the by-fields; one that
    ends in `fields a b` yields those and Splunk's internal fields (_time, _raw).
    """
    last = _clean(base).rsplit("|", 1)[-1].strip()
    if last.startswith("fields ") and not last.startswith("fields -"):
        return set(re.findall(r"[A-Za-z_]\w*", last.removeprefix("fields "))) | {"_time", "_raw"}
    if last.startswith("stats "):
        body, _, by = last.removeprefix("stats ").partition(" by ")
        outputs = set(_AS.findall(body))
        if re.search(r"(?:^|\s)count(?:\s|$)", body):
            outputs.add("count")
        return outputs | set(re.findall(r"[A-Za-z_]\w*", by))
    return None
