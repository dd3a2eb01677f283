"""A small, strict emulation of Splunk's search-time field extraction, for testing the app's props.

It implements exactly what the app's props.conf and transforms.conf use, and fails loudly on
anything else, so a new construct in the app cannot slip through untested:

* `EXTRACT-x = <regex>` and `EXTRACT-x = <regex> in <field>`: PCRE named groups `(?<name>...)`
  become Python's `(?P<name>...)`; a group that did not take part in the match makes no field;
* `REPORT-x = a, b` with transforms `REGEX` + `FORMAT = field::text$1 ...` (literal text allowed);
* `KV_MODE = json`: the event's JSON keys; booleans are "true"/"false" and numbers are their text;
* `FIELDALIAS-x = a AS b`;
* `EVAL-x = <expr>`: every EVAL sees the fields as they were before any EVAL ran (props.conf.spec),
  then all results are applied; a null result removes the field.

The EVAL language subset: string and number literals, field names, `.` (concatenation), `+ - * /`,
`== = != < > <= >=`, `AND OR NOT`, parentheses, and the functions case, if, in, coalesce, null,
true, isnull, isnotnull, nullif, tonumber, lower, match, replace. Null propagates as in Splunk: comparisons
and concatenations with null are null, which `if`/`case` treat as false.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

Fields = dict[str, str]


class EmulationError(AssertionError):
    """The app uses a construct this emulation does not implement (extend the emulation)."""


def pcre_to_python(regex: str) -> str:
    """Splunk PCRE named groups `(?<name>` -> Python `(?P<name>`; lookbehinds are left alone."""
    return re.sub(r"\(\?<(?![=!])", "(?P<", regex)


def extract(stanza: dict[str, str], raw: str, fields: Fields) -> None:
    """Apply every EXTRACT- of a props stanza to `raw` (or to the named field) in place."""
    for key in sorted(k for k in stanza if k.startswith("EXTRACT-")):
        value = stanza[key]
        source_field = None
        match_in = re.fullmatch(r"(.*\S)\s+in\s+(\w+)", value)
        if match_in:
            value, source_field = match_in.group(1), match_in.group(2)
        target = raw if source_field is None else fields.get(source_field)
        if target is None:
            continue
        match = re.search(pcre_to_python(value), target)
        if match:
            for name, text in match.groupdict().items():
                if text is not None:
                    fields[name] = text


def report(stanza: dict[str, str], transforms: dict[str, dict[str, str]], raw: str, fields: Fields) -> None:
    """Apply every REPORT- of a props stanza (transforms with REGEX and FORMAT) in place."""
    for key in sorted(k for k in stanza if k.startswith("REPORT-")):
        for name in (part.strip() for part in stanza[key].split(",")):
            transform = transforms[name]
            unknown = set(transform) - {"REGEX", "FORMAT"}
            if unknown:
                raise EmulationError(f"transform {name}: unsupported settings {sorted(unknown)}")
            match = re.search(pcre_to_python(transform["REGEX"]), raw)
            if not match:
                continue
            for pair in transform["FORMAT"].split():
                field, _, template = pair.partition("::")
                groups = ("", *match.groups())
                fields[field] = re.sub(r"\$(\d)", lambda m, g=groups: g[int(m.group(1))] or "", template)


def json_fields(event: dict[str, Any]) -> Fields:
    """What KV_MODE=json makes of an event: text values, nested keys dotted, a JSON null as "null"."""
    out: Fields = {}

    def walk(prefix: str, value: Any) -> None:
        if value is None:
            out[prefix] = "null"
            return
        if isinstance(value, dict):
            for key, item in value.items():
                walk(f"{prefix}.{key}" if prefix else key, item)
        elif isinstance(value, list):
            for item in value:
                walk(prefix + "{}", item)
        elif isinstance(value, bool):
            out[prefix] = "true" if value else "false"
        else:
            out[prefix] = str(value)

    walk("", event)
    return out


def alias_and_eval(stanza: dict[str, str], fields: Fields) -> Fields:
    """FIELDALIAS then every EVAL (in parallel), as Splunk orders them; returns the new fields."""
    out = dict(fields)
    for key in sorted(k for k in stanza if k.startswith("FIELDALIAS-")):
        for source, target in re.findall(r"(\w+)\s+AS\s+(\w+)", stanza[key]):
            if source in out:
                out[target] = out[source]
    before = dict(out)
    results: dict[str, str | None] = {}
    for key in sorted(k for k in stanza if k.startswith("EVAL-")):
        results[key.removeprefix("EVAL-")] = to_text(evaluate(stanza[key], before))
    for field, value in results.items():
        if value is None:
            out.pop(field, None)
        else:
            out[field] = value
    return out


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
      | (?P<number>\d+(?:\.\d+)?)
      | (?P<op>==|!=|<=|>=|[=<>().,+\-*/])
      | (?P<word>[A-Za-z_][A-Za-z0-9_]*)
    )""",
    re.VERBOSE,
)


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
        items.append((kind, match.group(kind)))
        position = match.end()
    return items


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


def _additive(t: _Tokens) -> Node:
    left = _primary(t)
    while True:
        item = t.peek()
        if not (item and item[0] == "op" and item[1] in "+-*/"):
            return left
        op = t.take()[1]
        right = _primary(t)

        def arith(f: Fields, a: Node = left, b: Node = right, op: str = op) -> Any:
            x, y = _number(a(f)), _number(b(f))
            if x is None or y is None:
                return None
            return {"+": x + y, "-": x - y, "*": x * y, "/": x / y if y else None}[op]

        left = arith


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


def _tonumber(value: Any, base: Any = 10) -> Any:
    if value is None:
        return None
    try:
        return int(str(value), int(base))
    except ValueError:
        try:
            return float(value) if int(base) == 10 else None
        except ValueError:
            return None


def _function(name: str, args: list[Node]) -> Node:
    lname = name.lower()
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
        return lambda f: None if head(f) is None else str(head(f)) in {str(r(f)) for r in rest}
    if lname == "coalesce":
        return lambda f: next((v for v in (a(f) for a in args) if v is not None), None)
    if lname == "nullif":
        return lambda f: None if args[0](f) is None or str(args[0](f)) == str(args[1](f)) else args[0](f)
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
    if lname == "lower":
        return lambda f: None if args[0](f) is None else str(args[0](f)).lower()
    if lname == "match":
        return lambda f: (
            None if args[0](f) is None else re.search(pcre_to_python(args[1](f)), str(args[0](f))) is not None
        )
    if lname == "replace":

        def replace(f: Fields) -> Any:
            value = args[0](f)
            if value is None:
                return None
            replacement = re.sub(r"\\(\d)", r"\\g<\1>", args[2](f))
            return re.sub(pcre_to_python(args[1](f)), replacement, str(value))

        return replace
    raise EmulationError(f"EVAL function {name}() is not emulated")
