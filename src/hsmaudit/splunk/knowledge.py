"""Search-time knowledge derived from the opcode table: the generated blocks of the app's props.conf.

The parser decides `category`, `action` and `severity` from `hsmaudit.records.opcodes`; Splunk must
decide the same for raw-text events (sourcetype `aws:cloudhsm:audit:text`), and the CIM fields
(`action`, `object_category`, `change_type`, ...) must follow the same table for both sourcetypes.
Hand-copying ~60 opcodes into `EVAL-` lines would drift, so this module renders those lines from
the table into marked blocks of `props.conf`; `hsmaudit splunk-app build` renders them into the
package and a test fails when the blocks in the source tree are stale.

The CIM `action` collision (contracts.md §1 `action` is hsmaudit's verb: login, create, delete, ...;
CIM's `action` is success/failure for Authentication and created/deleted/modified/... for Change):
at search time `action` carries CIM's value wherever an event belongs to a data model, and
hsmaudit's verb is kept for every event in `vendor_action` (the CIM name for a vendor's own
action). Events outside the data models keep the verb in `action` as well.

Splunk semantics this relies on (props.conf.spec, "search-time operations sequence"): EXTRACT and
REPORT run first, then KV_MODE, FIELDALIAS, then every EVAL in parallel (an EVAL sees the fields as
they were before any EVAL ran), then lookups, event types and tags.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Final

from hsmaudit.records.event import FIELD_NAMES
from hsmaudit.records.opcodes import CERTIFICATE_OPCODES, CRYPTO_OFFICER_TYPES, OPCODES, OpcodeInfo
from hsmaudit.splunk.errors import KnowledgeError

JSON_SOURCETYPE: Final = "aws:cloudhsm:audit"
TEXT_SOURCETYPE: Final = "aws:cloudhsm:audit:text"

# hsmaudit verb -> CIM Change `action` (CIM 4.x Change data model: created, deleted, modified, read,
# acl_modified, ...). Sharing a key changes who may use it: an ACL change.
CIM_CHANGE_ACTIONS: Final[dict[str, str]] = {
    "create": "created",
    "generate": "created",
    "import": "created",
    "derive": "created",
    "delete": "deleted",
    "modify": "modified",
    "change_password": "modified",
    "approve": "modified",
    "share": "acl_modified",
    "export": "read",
}

# hsmaudit category -> (CIM `change_type`, CIM `object_category`) for the Change data model.
# "AAA" is CIM's change_type for account (authentication/authorisation) changes.
CHANGE_CATEGORIES: Final[dict[str, tuple[str, str]]] = {
    "user_management": ("AAA", "user"),
    "quorum": ("AAA", "quorum"),
    "key_management": ("key_management", "key"),
    "certificate": ("certificate", "certificate"),
}

CIM_APP: Final = "cloudhsm"
CIM_VENDOR_PRODUCT: Final = "AWS CloudHSM"

BLOCK_BEGIN: Final = (
    "# BEGIN GENERATED {name}: rendered by hsmaudit.splunk.knowledge from the opcode table; do not edit"
)
BLOCK_END: Final = "# END GENERATED {name}"
_BLOCK: Final = re.compile(
    r"^# BEGIN GENERATED (?P<name>[a-z_]+):[^\n]*\n(?P<body>.*?)^# END GENERATED (?P=name)[ \t]*$",
    re.MULTILINE | re.DOTALL,
)


def _all_opcodes() -> dict[str, OpcodeInfo]:
    return {**OPCODES, **CERTIFICATE_OPCODES}


def _quote(value: str) -> str:
    """An SPL eval string literal."""
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _in(field: str, values: Iterable[str]) -> str:
    return f"in({field}, " + ", ".join(_quote(v) for v in sorted(values)) + ")"


def _case(branches: list[tuple[str, str]], default: str | None = None) -> str:
    parts = [f"{condition}, {value}" for condition, value in branches]
    if default is not None:
        parts.append(f"true(), {default}")
    return "case(" + ", ".join(parts) + ")"


def _group(key: Callable[[OpcodeInfo], str | None]) -> dict[str, set[str]]:
    """Opcodes grouped by `key(info)`, leaving out opcodes for which it is None."""
    groups: dict[str, set[str]] = {}
    for opcode, info in _all_opcodes().items():
        value = key(info)
        if value is not None:
            groups.setdefault(value, set()).add(opcode)
    return dict(sorted(groups.items()))


def change_opcodes() -> dict[str, set[str]]:
    """CIM object_category -> the opcodes whose events belong to the Change data model."""

    def category_of(info: OpcodeInfo) -> str | None:
        if info.category in CHANGE_CATEGORIES and info.action in CIM_CHANGE_ACTIONS:
            return CHANGE_CATEGORIES[info.category][1]
        return None

    return _group(category_of)


def vendor_action_expression() -> str:
    """hsmaudit's verb from the opcode (the parser's `action`); unknown opcodes are "other"."""
    groups = _group(lambda info: info.action)
    return _case([(_in("opcode", ops), _quote(verb)) for verb, ops in groups.items()], _quote("other"))


def category_expression() -> str:
    """The parser's `category`: TIME_INFO_LOG records are time_sync, else the opcode's category."""
    groups = _group(lambda info: info.category)
    branches = [('log_type=="TIME_INFO_LOG"', _quote("time_sync"))]
    branches += [(_in("opcode", ops), _quote(category)) for category, ops in groups.items()]
    return _case(branches, _quote("other"))


def severity_expression() -> str:
    """The parser's `severity` for a text record (`records.parse._severity`), as one case().

    Order matters: the first true branch wins, so each severity's raising conditions come before
    the base severities below it (the parser takes the maximum).
    """
    officers = _in("user_type", CRYPTO_OFFICER_TYPES)
    target_officers = _in("target_user_type", CRYPTO_OFFICER_TYPES)
    base = _group(lambda info: info.severity)
    # TEXT_SOURCETYPE extracts sequence_no as hex digits without leading zeros: "0" is sequence 0.
    return _case(
        [
            (f'opcode=="CN_LOGIN" AND outcome=="failure" AND {officers}', _quote("critical")),
            (f'opcode=="CN_CHANGE_PSWD" AND ({officers} OR {target_officers})', _quote("critical")),
            ('opcode=="CN_INIT_TOKEN" AND isnotnull(sequence_no) AND sequence_no!="0"', _quote("critical")),
            (_in("opcode", base.get("critical", set())), _quote("critical")),
            ('opcode=="CN_LOGIN" AND outcome=="failure"', _quote("high")),
            (_in("opcode", base.get("high", set())), _quote("high")),
            ('outcome=="failure"', _quote("medium")),
            (_in("opcode", base.get("medium", set())), _quote("medium")),
        ],
        _quote("info"),
    )


Ref = Callable[[str], str]
"""How an expression reads a field: the name itself, or a guard that turns a JSON null into null."""


def plain(field: str) -> str:
    return field


def json_value(field: str) -> str:
    """A field of a JSON event, with a JSON `null` (extracted as the text "null") as a real null."""
    return f'nullif({field}, "null")'


def cim_action_expression(default: str, ref: Ref = plain) -> str:
    """CIM `action`: success/failure for logins, created/deleted/... for changes, else `default`."""
    changes = set().union(*change_opcodes().values())
    by_cim: dict[str, set[str]] = {}
    for opcode, info in _all_opcodes().items():
        if opcode in changes:
            by_cim.setdefault(CIM_CHANGE_ACTIONS[info.action], set()).add(opcode)
    opcode = ref("opcode")
    branches = [(f'{opcode}=="CN_LOGIN"', ref("outcome"))]
    branches += [(_in(opcode, ops), _quote(action)) for action, ops in sorted(by_cim.items())]
    return _case(branches, default)


def cim_lines(action_default: str, ref: Ref = plain) -> list[str]:
    """The CIM Authentication and Change fields, the same for both sourcetypes."""
    groups = change_opcodes()
    user_ops = groups.get("user", set())
    key_ops = groups.get("key", set())
    cert_ops = groups.get("certificate", set())
    opcode, outcome, hsm = ref("opcode"), ref("outcome"), ref("hsm_id")
    target, user = ref("target_user_name"), ref("user_name")
    change_type_of = {category: change_type for change_type, category in CHANGE_CATEGORIES.values()}
    change_type = _case([(_in(opcode, ops), _quote(change_type_of[oc])) for oc, ops in groups.items()])
    object_category = _case([(_in(opcode, ops), _quote(category)) for category, ops in groups.items()])
    target_or_user = f"coalesce({target}, {user})"
    return [
        f"EVAL-action = {cim_action_expression(action_default, ref)}",
        f"EVAL-app = {_quote(CIM_APP)}",
        f"EVAL-vendor_product = {_quote(CIM_VENDOR_PRODUCT)}",
        # No client address is in an audit record: the HSM is both the source and the destination.
        f"EVAL-dest = coalesce({hsm}, host)",
        f"EVAL-src = coalesce({hsm}, host)",
        f"EVAL-dvc = coalesce({hsm}, host)",
        # CIM Change: for account changes `user` is the account changed and `src_user` the actor,
        # which only newer records name (Target User Name); logins: the user who tried to log in.
        f"EVAL-user = {target_or_user}",
        f"EVAL-src_user = if(isnotnull({target}), {user}, null())",
        f"EVAL-signature = {opcode}",
        f"EVAL-command = {opcode}",
        f"EVAL-status = {outcome}",
        f"EVAL-result = {ref('response')}",
        f'EVAL-reason = if({outcome}=="failure", {ref("response")}, null())',
        f"EVAL-change_type = {change_type}",
        f"EVAL-object_category = {object_category}",
        "EVAL-object = "
        + _case(
            [
                (_in(opcode, user_ops), target_or_user),
                (_in(opcode, key_ops), ref("key_handle")),
                (_in(opcode, cert_ops), ref("object_handle")),
            ]
        ),
        "EVAL-object_id = "
        + _case(
            [
                (
                    _in(opcode, user_ops),
                    f"if(isnotnull({target}), coalesce({ref('target_user_id')}, {target}), "
                    f"coalesce({ref('user_id')}, {user}))",
                ),
                (_in(opcode, key_ops), ref("key_handle")),
                (_in(opcode, cert_ops), ref("object_handle")),
            ]
        ),
    ]


# Contract fields that may arrive as JSON null: all but `action`, which the CIM EVAL replaces. (A
# present `extra`/`attributes` is extracted as extra.<label> / attributes{}, never as the bare name.)
JSON_NULLABLE: Final = tuple(name for name in FIELD_NAMES if name != "action")


def json_block() -> list[str]:
    """Generated lines of the `aws:cloudhsm:audit` stanza (events already carry the parser's fields).

    The forwarder may send absent values as JSON `null` (contracts.md §1), which Splunk's JSON
    extraction shows as the text "null"; every contract field is turned back into a real null, so
    `isnull()`, `coalesce()` and `field=*` behave as on compact events. The CIM EVALs run in
    parallel with those (they see the text), so they read every field through the same guard.
    """
    return [
        # FIELDALIAS runs before EVAL: the verb is copied before EVAL-action replaces it.
        "FIELDALIAS-hsmaudit_vendor_action = action AS vendor_action",
        *(f"EVAL-{name} = {json_value(name)}" for name in (*JSON_NULLABLE, "vendor_action")),
        *cim_lines(json_value("action"), json_value),
    ]


def text_block() -> list[str]:
    """Generated lines of the `aws:cloudhsm:audit:text` stanza: the parser's derived fields, then CIM."""
    verb = vendor_action_expression()
    return [
        f"EVAL-vendor_action = {verb}",
        f"EVAL-category = {category_expression()}",
        f"EVAL-severity = {severity_expression()}",
        *cim_lines(verb),
    ]


BLOCKS: Final[dict[str, Callable[[], list[str]]]] = {"json": json_block, "text": text_block}


def render_block(name: str) -> str:
    """One generated block, markers included, as it appears in props.conf."""
    lines = [BLOCK_BEGIN.format(name=name), *BLOCKS[name](), BLOCK_END.format(name=name)]
    return "\n".join(lines)


def render_props(template: str) -> str:
    """props.conf with every generated block re-rendered; everything else is left as written.

    Raises `KnowledgeError` when a block is unknown or missing, so a damaged template cannot ship.
    """
    seen: list[str] = []

    def replace(match: re.Match[str]) -> str:
        name = match.group("name")
        if name not in BLOCKS:
            raise KnowledgeError(f"props.conf: unknown generated block {name!r}")
        seen.append(name)
        return render_block(name)

    rendered = _BLOCK.sub(replace, template)
    missing = sorted(set(BLOCKS) - set(seen))
    if missing or len(seen) != len(set(seen)):
        raise KnowledgeError(
            "props.conf: generated blocks must appear once each; missing "
            f"{', '.join(missing) or 'none'}, found {', '.join(seen) or 'none'}"
        )
    return rendered


def refresh_props(path: Path) -> bool:
    """Re-render the generated blocks of the props.conf at `path`; True when the file changed."""
    current = path.read_text(encoding="utf-8")
    rendered = render_props(current)
    if rendered == current:
        return False
    path.write_text(rendered, encoding="utf-8")
    return True
