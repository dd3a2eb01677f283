"""Search-time knowledge derived from the opcode table: props.conf blocks, lookup tables, event types.

The parser decides `category`, `action`, `severity`, `outcome` and `success` from
`hsmaudit.records.opcodes` (`records.severity.derive`); Splunk must decide the same for events that
carry only the record text (the lean HEC event, raw text sent any other way, the published
recipe's `aws:cloudwatch:cloudhsm`). Hand-copying ~60 opcodes would drift, so this module renders:

* `lookups/hsmaudit_opcodes.csv`: (opcode, case) -> category, verb, severity, CIM fields, computed
  by calling the parser's own `derive` for every opcode and case, so the table *is* the code's
  answer; `lookups/hsmaudit_status.csv`: (record format, result) -> record_format, outcome,
  success, CIM status;
* the generated blocks of props.conf: the text sourcetypes' extractions and, for every sourcetype,
  the private `hsmaudit_*` keys those lookups match on and the CIM calculated fields;
* the generated block of eventtypes.conf: CloudTrail CloudHSM calls (Splunk Add-on for AWS,
  sourcetype `aws:cloudtrail`) by severity, from `hsmaudit.records.cloudtrail.ACTIONS`.

No calculated field (EVAL-) or REPORT writes a contract field that an event may already carry as
JSON or as a HEC indexed field: a calculated field of the same name replaces it at search time and
Splunk cannot look the search term up in the index any more (issue 11). Contract fields that the
text does not print (`category`, `severity`, `outcome`, `success`, `record_format`, `cluster_id`,
`hsm_id`, ...) are therefore written only by `LOOKUP ... OUTPUTNEW` and `FIELDALIAS ... ASNEW`,
which leave a field that exists alone (props.conf.spec). EVALs write only the text's numbers
(`sequence_no` from private hex digits), `time`, private `hsmaudit_*` keys and CIM names.

The one deliberate exception is CIM's `action`: data models read `action`, and CIM's values
(success/failure, created/deleted/...) are not hsmaudit's verb (login, create, ...). As the
Splunk Add-on for AWS does for CloudTrail, an automatic lookup OUTPUTs CIM's `action`; hsmaudit's
verb stays in `vendor_action` (a FIELDALIAS ASNEW of the JSON `action`, else the lookup).

Splunk semantics this relies on (props.conf.spec, "search-time operations sequence"): EXTRACT,
REPORT, KV_MODE, FIELDALIAS, then every EVAL in parallel (an EVAL sees the fields as they were
before any EVAL ran), then lookups (never fed by another automatic lookup), event types, tags.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Final, NamedTuple

from hsmaudit.booleans import FALSE_WORDS, TRUE_WORDS
from hsmaudit.records.cloudtrail import ACTIONS as CLOUDTRAIL_ACTIONS
from hsmaudit.records.cloudtrail import EVENT_SOURCE as CLOUDTRAIL_EVENT_SOURCE
from hsmaudit.records.opcodes import CERTIFICATE_OPCODES, CRYPTO_OFFICER_TYPES, OPCODES, OpcodeInfo
from hsmaudit.records.severity import derive
from hsmaudit.splunk.errors import KnowledgeError

JSON_SOURCETYPE: Final = "aws:cloudhsm:audit"
TEXT_SOURCETYPE: Final = "aws:cloudhsm:audit:text"
RECIPE_SOURCETYPE: Final = "aws:cloudwatch:cloudhsm"
"""What the published recipe (Splunk's CloudWatch Logs Lambda blueprint) sends: the record text."""
CLOUDTRAIL_SOURCETYPE: Final = "aws:cloudtrail"
"""The Splunk Add-on for AWS's CloudTrail sourcetype; the add-on owns its extractions."""

OPCODE_LOOKUP: Final = "hsmaudit_opcodes"
STATUS_LOOKUP: Final = "hsmaudit_status"
LOOKUP_FILES: Final[dict[str, str]] = {
    OPCODE_LOOKUP: "lookups/hsmaudit_opcodes.csv",
    STATUS_LOOKUP: "lookups/hsmaudit_status.csv",
}

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
REPLICA_BUCKET_USECS: Final = 5_000_000
"""cluster_action_id's time bucket: the brute-force rule's replica window (detect/bruteforce.py)."""

BLOCK_BEGIN: Final = "# BEGIN GENERATED {name}: rendered by hsmaudit.splunk.knowledge; do not edit"
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


def cim_opcodes() -> set[str]:
    """Opcodes whose events belong to a data model: logins (Authentication) and changes (Change)."""
    return {"CN_LOGIN", *set().union(*change_opcodes().values())}


def change_opcodes() -> dict[str, set[str]]:
    """CIM object_category -> the opcodes whose events belong to the Change data model."""

    def category_of(info: OpcodeInfo) -> str | None:
        if info.category in CHANGE_CATEGORIES and info.action in CIM_CHANGE_ACTIONS:
            return CHANGE_CATEGORIES[info.category][1]
        return None

    return _group(category_of)


# --- the lookup tables ----------------------------------------------------------------------

RESULTS: Final = ("success", "failure", "unknown")
TIME_KINDS: Final = ("-", "time")
"""`time` for TIME_INFO_LOG records (category time_sync), else `-`."""
OFFICER_OPCODES: Final = frozenset({"CN_LOGIN", "CN_CHANGE_PSWD"})
"""Opcodes whose severity depends on whether a crypto officer is involved (`derive`)."""
SEQUENCE_OPCODES: Final = frozenset({"CN_INIT_TOKEN"})
"""Opcodes whose severity depends on whether the record is past sequence 0 (`derive`)."""
UNKNOWN_OPCODE_PROBE: Final = "CN_HSMAUDIT_UNKNOWN"


class Case(NamedTuple):
    """What besides the opcode decides a record's derived fields; `key` is `hsmaudit_case`."""

    result: str
    officer: bool
    later: bool
    time: str
    error: bool = False

    @property
    def key(self) -> str:
        officer, later, error = (
            "co" if self.officer else "-",
            "1" if self.later else "0",
            "err" if self.error else "-",
        )
        return f"{self.result}|{officer}|{later}|{self.time}|{error}"


def cases(opcode: str | None) -> list[Case]:
    """The cases the `hsmaudit_case` EVAL can produce for `opcode` (None: any unknown opcode)."""
    officers = (False, True) if opcode is None or opcode in OFFICER_OPCODES else (False,)
    laters = (False, True) if opcode is None or opcode in SEQUENCE_OPCODES else (False,)
    return [
        Case(result, officer, later, time, error)
        for result in RESULTS
        for officer in officers
        for later in laters
        for time in TIME_KINDS
        for error in (False, True)
    ]


OPCODE_COLUMNS: Final = (
    "opcode",
    "hsmaudit_case",
    "category",
    "vendor_action",
    "verb",
    "severity",
    "cim_action",
    "change_type",
    "object_category",
)


def _opcode_row(opcode: str, case: Case, probe: str) -> dict[str, str]:
    officer_type = "CN_CRYPTO_OFFICER" if case.officer else "CN_CRYPTO_USER"
    success = {"success": True, "failure": False}.get(case.result)
    _outcome, category, verb, severity = derive(
        probe,
        success,
        officer_type,
        None,
        "TIME_INFO_LOG" if case.time == "time" else None,
        case.later,
        case.error,
    )
    info = _all_opcodes().get(probe)
    change = None
    if info is not None and info.category in CHANGE_CATEGORIES and info.action in CIM_CHANGE_ACTIONS:
        change = CHANGE_CATEGORIES[info.category]
    if probe == "CN_LOGIN" and case.result != "unknown":
        cim_action = case.result
    elif change is not None:
        cim_action = CIM_CHANGE_ACTIONS[verb]
    else:
        cim_action = verb
    return {
        "opcode": opcode,
        "hsmaudit_case": case.key,
        "category": category,
        "vendor_action": verb,
        "verb": "" if probe in cim_opcodes() else verb,
        "severity": severity,
        "cim_action": cim_action,
        "change_type": change[0] if change else "",
        "object_category": change[1] if change else "",
    }


def opcode_rows() -> list[dict[str, str]]:
    """Every row of hsmaudit_opcodes.csv: known opcodes first, then `*` rows for unknown opcodes.

    The lookup matches `opcode` with WILDCARD and takes the first match in file order
    (transforms.conf.spec `max_matches`), so the `*` rows only answer for opcodes not listed.
    """
    rows = [_opcode_row(opcode, case, opcode) for opcode in sorted(_all_opcodes()) for case in cases(opcode)]
    for name, (category, verb, severity) in sorted(CLOUDTRAIL_ACTIONS.items()):
        # CloudTrail calls sent as hsmaudit JSON events (record_format cloudtrail): their own fields.
        for case in cases(name):
            rows.append(
                {
                    "opcode": name, "hsmaudit_case": case.key, "category": category,
                    "vendor_action": verb, "verb": verb, "severity": severity, "cim_action": verb,
                    "change_type": "", "object_category": "",
                }
            )  # fmt: skip
    rows += [_opcode_row("*", case, UNKNOWN_OPCODE_PROBE) for case in cases(None)]
    return rows


STATUS_COLUMNS: Final = ("hsmaudit_status", "record_format", "outcome", "success", "status")


def status_rows() -> list[dict[str, str]]:
    """hsmaudit_status.csv: `<record format>|<result>` -> record_format, outcome, success, status."""
    rows = []
    for record_format in ("text", "certificate", "cloudtrail"):
        for result in RESULTS:
            known = result != "unknown"
            rows.append(
                {
                    "hsmaudit_status": f"{record_format}|{result}",
                    "record_format": record_format,
                    "outcome": result if known else "",
                    "success": ("true" if result == "success" else "false") if known else "",
                    "status": result if known else "",
                }
            )
    return rows


def render_csv(columns: Iterable[str], rows: Iterable[dict[str, str]]) -> str:
    """A Splunk lookup CSV: header row, LF line ends, minimal quoting."""
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=list(columns), lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return out.getvalue()


def lookup_tables() -> dict[str, str]:
    """App-relative path -> content of every generated lookup table."""
    return {
        LOOKUP_FILES[OPCODE_LOOKUP]: render_csv(OPCODE_COLUMNS, opcode_rows()),
        LOOKUP_FILES[STATUS_LOOKUP]: render_csv(STATUS_COLUMNS, status_rows()),
    }


# --- props.conf: extractions of the record text -------------------------------------------

_SEP = "[ \\t]*:[ \\t]*"
"""CloudHSM's label separators: " : ", ": " or TABs before ": " (reference §2)."""
_EOL = "[ \\t\\r]*$"
_CODE = "(?:[ \\t]* \\([ \\t]*(?<{name}>0[xX][0-9a-fA-F]+|\\d+)[ \\t]*\\))?"


def _line(label: str) -> str:
    return f"^[ \\t]*{label}{_SEP}"


def _rest(name: str) -> str:
    """The rest of the line, trimmed; [^\\r\\n] because Splunk runs EXTRACTs with (?ms)."""
    return f"(?<{name}>[^\\r\\n]*[^ \\t\\r\\n])"


def _enum(label: str, name: str, code: str) -> str:
    return _line(label) + f"(?<{name}>[^\\s(]+)" + _CODE.format(name=code) + _EOL


# (class, regex) of the inline extractions of the text sourcetypes. Fields whose text needs
# converting are extracted under a private hsmaudit_* name and converted by an EVAL of the
# contract name; fields that the text does not print are never EXTRACTed under their own name.
TEXT_EXTRACTIONS: Final[tuple[tuple[str, str], ...]] = (
    ("hsmaudit_time", _line("Time") + "(?<hsmaudit_mm>\\d\\d)/(?<hsmaudit_dd>\\d\\d)/(?<hsmaudit_yy>\\d\\d) "
     "(?<hsmaudit_hms>\\d\\d:\\d\\d:\\d\\d\\.\\d{6})"),
    ("hsmaudit_usecs", _line("Time") + "[^\\r\\n]*?usecs?[ \\t]*:[ \\t]*(?<hsmaudit_usecs>\\d+)"),
    ("hsmaudit_version_no", _line("Version No") + _rest("version_no")),
    ("hsmaudit_sequence_no", _line("Sequence No") + "0[xX](?<hsmaudit_sequence_hex>[0-9a-fA-F]+)" + _EOL),
    ("hsmaudit_reboot_counter", _line("Reboot counter") + "0[xX](?<hsmaudit_reboot_hex>[0-9a-fA-F]+)" + _EOL),
    ("hsmaudit_command_type", _enum("Command Type\\(hex\\)", "command_type", "hsmaudit_command_type_code")),
    ("hsmaudit_opcode", _enum("Opcode", "opcode", "hsmaudit_opcode_code")),
    ("hsmaudit_session_handle",
     _line("Session Handle") + "0[xX]0*(?<hsmaudit_session_hex>[0-9a-fA-F]+)" + _EOL),
    ("hsmaudit_response", _line("Response") + "0*(?<response_code>\\d+)[ \\t]*:[ \\t]*HSM "
     "(?<hsmaudit_response_kind>Return|Error):(?:[ \\t]*" + _rest("response") + ")?" + _EOL),
    ("hsmaudit_log_type", _enum("Log type", "log_type", "hsmaudit_log_type_code")),
    ("hsmaudit_user_name", _line("User Name") + _rest("user_name")),
    ("hsmaudit_user_type", _enum("User Type", "user_type", "hsmaudit_user_type_code")),
    ("hsmaudit_user_id", _line("User id") + _rest("user_id")),
    ("hsmaudit_target_user_name", _line("Target User Name") + _rest("target_user_name")),
    ("hsmaudit_target_user_type",
     _enum("Target User Type", "target_user_type", "hsmaudit_target_user_type_code")),
    ("hsmaudit_target_user_id", _line("Target User id") + _rest("target_user_id")),
    # A handle of 0 means "no key in this slot" and makes no field, as in the JSON events.
    ("hsmaudit_key_handle", _line("(?:Priv/Secret )?Key Handle") + "0*(?<key_handle>[1-9]\\d*)" + _EOL),
    ("hsmaudit_public_key_handle", _line("Public Key Handle") + "0*(?<public_key_handle>[1-9]\\d*)" + _EOL),
    ("hsmaudit_mechanism", _line("Mechanism") + "(?<mechanism>\\d+)" + _EOL),
    # Lines of newer records (CloudHSM audit format reference, sections 2.2 and 2.3).
    ("hsmaudit_mfa_enabled", _line("Mfa enabled") + "(?<hsmaudit_mfa>\\S+)" + _EOL),
    ("hsmaudit_operation", _enum("Operation", "operation", "hsmaudit_operation_code")),
    ("hsmaudit_number_of_users", _line("Number of Users") + "0*(?<number_of_users>\\d+)" + _EOL),
    ("hsmaudit_user_ids", _line("UserIDs") + _rest("user_ids")),
    ("hsmaudit_local_time",
     _line("local time") + "[^\\r\\n]*?usecs?[ \\t]*:[ \\t]*(?<local_time_usecs>\\d+)"),
    ("hsmaudit_host_time", _line("host time") + "[^\\r\\n]*?usecs?[ \\t]*:[ \\t]*(?<host_time_usecs>\\d+)"),
    ("hsmaudit_propagation_delay", _line("propagation delay") + "[^\\r\\n]*?usecs?[ \\t]*:[ \\t]*"
     "(?<propagation_delay_usecs>\\d+)"),
    # Certificate-storage records are one JSON object (reference §8.1). The app reads their four keys
    # with regexes rather than KV_MODE=json, which would also turn every text record's nothing into
    # nothing and every future JSON line into fields of unknown names.
    ("hsmaudit_cert_opcode", '"op_code"\\s*:\\s*"(?<opcode>[^"\\\\]*)"'),
    ("hsmaudit_cert_handle", '"object_handle"\\s*:\\s*(?<object_handle>\\d+)'),
    ("hsmaudit_cert_response", '"response"\\s*:\\s*"(?<response>[^"\\\\]*)"'),
    ("hsmaudit_cert_timestamp", '"timestamp"\\s*:\\s*(?<hsmaudit_cert_ms>\\d+)'),
)  # fmt: skip

# Where a record came from, for every sourcetype: the log group /aws/cloudhsm/<cluster-id> in
# `source` (our forwarder, the AWS add-on's "region:group:stream" sources, a recipe blueprint told
# to send it) and the HSM's log stream in `host`. Extracted under private names and aliased with
# ASNEW, so a HEC indexed or JSON cluster_id/hsm_id is never replaced.
ORIGIN_EXTRACTIONS: Final[tuple[tuple[str, str], ...]] = (
    ("hsmaudit_origin_group",
     "(?<hsmaudit_log_group>/aws/cloudhsm/(?<hsmaudit_cluster_id>cluster-[A-Za-z0-9]+))"
     "(?![A-Za-z0-9]) in source"),
    ("hsmaudit_origin_hsm", "^(?<hsmaudit_hsm_id>hsm-[A-Za-z0-9]+)$ in host"),
    ("hsmaudit_origin_stream", "^(?<hsmaudit_log_stream>(?:hsm|cluster)-[A-Za-z0-9]+)$ in host"),
)  # fmt: skip
ORIGIN_ALIASES: Final = (
    "hsmaudit_cluster_id ASNEW cluster_id hsmaudit_log_group ASNEW log_group "
    "hsmaudit_hsm_id ASNEW hsm_id hsmaudit_log_stream ASNEW log_stream"
)


def _spl_words(words: tuple[str, ...]) -> str:
    """`"yes", "true", ...`: the word set as the arguments of SPL's `in(...)`, in the set's order."""
    return ", ".join(f'"{word}"' for word in words)


def _hex(field: str) -> str:
    return f"tonumber({field}, 16)"


def _auto_int(field: str) -> str:
    """Decimal, or hex with 0x: the parser's `_int_auto`."""
    return f'if(match({field}, "^0[xX]"), tonumber(substr({field}, 3), 16), tonumber({field}, 10))'


TEXT_USECS: Final = "coalesce(tonumber(hsmaudit_usecs), tonumber(hsmaudit_cert_ms) * 1000)"
"""usecs of a text record, or a certificate record's ms timestamp in microseconds."""


def _pad(expression: str, width: int) -> str:
    return f'substr("{"0" * width}" . tostring({expression}), -{width})'


def utc_time_expression(ms: str) -> str:
    """ISO-8601 UTC with 6 fractional digits of an epoch-milliseconds field, as eval arithmetic.

    Splunk's strftime() formats in the searching user's time zone, so it cannot label a time as
    UTC. This is the civil-from-days calendar for 2000-03-01 .. 2100-02-28 (every fourth year a
    leap year), counted from 2000-03-01 (day 11017 of the epoch) in 1461-day cycles.
    """
    days = f"(floor({ms} / 86400000) - 11017)"
    cycle = f"({days} % 1461)"
    year_of_cycle = f"floor(({cycle} - floor({cycle} / 1460)) / 365)"
    day_of_year = f"({cycle} - 365 * {year_of_cycle})"
    month_index = f"floor((5 * {day_of_year} + 2) / 153)"
    day = f"({day_of_year} - floor((153 * {month_index} + 2) / 5) + 1)"
    month = f"({month_index} + if({month_index} < 10, 3, -9))"
    year = f"(2000 + 4 * floor({days} / 1461) + {year_of_cycle} + if({month} <= 2, 1, 0))"
    hours = f"(floor({ms} / 3600000) % 24)"
    minutes = f"(floor({ms} / 60000) % 60)"
    seconds = f"(floor({ms} / 1000) % 60)"
    return (
        f'tostring({year}) . "-" . {_pad(month, 2)} . "-" . {_pad(day, 2)} . "T" . {_pad(hours, 2)} . ":" . '
        f'{_pad(minutes, 2)} . ":" . {_pad(seconds, 2)} . "." . {_pad(f"{ms} % 1000", 3)} . "000Z"'
    )


def text_conversions() -> list[str]:
    """EVALs giving the contract's values for fields the text prints in another form."""
    return [
        # The Time: text is UTC with a two-digit year (20YY); certificate records: their ms timestamp.
        "EVAL-time = coalesce("
        + '"20" . hsmaudit_yy . "-" . hsmaudit_mm . "-" . hsmaudit_dd . "T" . hsmaudit_hms . "Z", '
        + utc_time_expression("tonumber(hsmaudit_cert_ms)")
        + ")",
        f"EVAL-sequence_no = {_hex('hsmaudit_sequence_hex')}",
        f"EVAL-reboot_counter = {_hex('hsmaudit_reboot_hex')}",
        f"EVAL-command_type_code = {_auto_int('hsmaudit_command_type_code')}",
        f"EVAL-opcode_code = {_auto_int('hsmaudit_opcode_code')}",
        f"EVAL-log_type_code = {_auto_int('hsmaudit_log_type_code')}",
        f"EVAL-user_type_code = {_auto_int('hsmaudit_user_type_code')}",
        f"EVAL-target_user_type_code = {_auto_int('hsmaudit_target_user_type_code')}",
        f"EVAL-operation_code = {_auto_int('hsmaudit_operation_code')}",
        'EVAL-session_handle = "0x" . lower(hsmaudit_session_hex)',
        f'EVAL-mfa_enabled = case(in(lower(hsmaudit_mfa), {_spl_words(TRUE_WORDS)}), "true", '
        f'in(lower(hsmaudit_mfa), {_spl_words(FALSE_WORDS)}), "false")',
        f"EVAL-usecs = {TEXT_USECS}",
    ]


class Reads(NamedTuple):
    """How a stanza's private EVALs read the record: the expressions they need, per sourcetype."""

    record_format: str
    result: str
    sequence_no: str
    usecs: str
    field: Callable[[str], str]


def _plain(field: str) -> str:
    return field


def _json_value(field: str) -> str:
    """A JSON field; a JSON null (which other senders may send) reads as null, never as "null"."""
    return f'nullif({field}, "null")'


TEXT_READS: Final = Reads(
    record_format='case(isnotnull(hsmaudit_response_kind) OR isnotnull(hsmaudit_sequence_hex), "text", '
    'isnotnull(hsmaudit_cert_ms), "certificate")',
    result='case(hsmaudit_response_kind=="Return" AND tonumber(response_code)==0, "success", '
    'isnotnull(hsmaudit_response_kind), "failure", isnotnull(hsmaudit_cert_ms) AND isnotnull(response), '
    'if(response=="OK", "success", "failure"))',
    sequence_no=_hex("hsmaudit_sequence_hex"),
    usecs=TEXT_USECS,
    field=_plain,
)
JSON_READS: Final = Reads(
    record_format=_json_value("record_format"),
    result=_json_value("outcome"),
    sequence_no=_json_value("sequence_no"),
    usecs=_json_value("usecs"),
    field=_json_value,
)


def key_lines(reads: Reads) -> list[str]:
    """The private keys the lookups match on (EVALs, so the lookups can read them)."""
    f = reads.field
    officers = _in(f("user_type"), CRYPTO_OFFICER_TYPES)
    target_officers = _in(f("target_user_type"), CRYPTO_OFFICER_TYPES)
    opcode = f("opcode")
    officer = _case(
        [
            (f'{opcode}=="CN_LOGIN" AND {officers}', '"co"'),
            (f'{opcode}=="CN_CHANGE_PSWD" AND ({officers} OR {target_officers})', '"co"'),
        ],
        '"-"',
    )
    later = f'if({_in(opcode, SEQUENCE_OPCODES)} AND {reads.sequence_no} > 0, "1", "0")'
    time = f'if({f("log_type")}=="TIME_INFO_LOG", "time", "-")'
    result = f'coalesce({reads.result}, "unknown")'
    # A flagged record is at least medium (the parser's has_error); the lean event indexes parse_error.
    error = f'if(isnotnull({f("parse_error")}), "err", "-")'
    case = f'{result} . "|" . {officer} . "|" . {later} . "|" . {time} . "|" . {error}'
    return [
        f"EVAL-hsmaudit_case = {case}",
        # Only for events of a data model: the CIM action lookup skips every other event (a lookup
        # whose match field is absent does nothing), so their own action is never touched.
        f"EVAL-hsmaudit_cim_case = if({_in(opcode, cim_opcodes())}, {case}, null())",
        f'EVAL-hsmaudit_status = {reads.record_format} . "|" . {result}',
    ]


def cim_lines(reads: Reads) -> list[str]:
    """The CIM Authentication and Change fields that are not lookup outputs, and the fold key.

    CIM names only: none of them is a contract field. `src` is left unset: an audit record names
    no client address, and the HSM is the destination (CIM: `dest` is where the action happened).
    """
    f = reads.field
    groups = change_opcodes()
    opcode = f("opcode")
    target, user = f("target_user_name"), f("user_name")
    target_or_user = f"coalesce({target}, {user})"
    quorum_object = f'"quorum:" . {opcode}'
    return [
        f"EVAL-app = {_quote(CIM_APP)}",
        f"EVAL-vendor_product = {_quote(CIM_VENDOR_PRODUCT)}",
        f"EVAL-dest = coalesce({f('hsm_id')}, {f('cluster_id')}, host)",
        f"EVAL-dvc = coalesce({f('hsm_id')}, {f('cluster_id')}, host)",
        # CIM Change: for account changes `user` is the account changed and `src_user` the actor,
        # which only newer records name (Target User Name); logins: the user who tried to log in.
        f"EVAL-user = {target_or_user}",
        f"EVAL-src_user = if(isnotnull({target}), {user}, null())",
        f"EVAL-signature = {opcode}",
        f"EVAL-command = {opcode}",
        f"EVAL-result = {f('response')}",
        f'EVAL-reason = if({reads.result}=="failure", {f("response")}, null())',
        "EVAL-object = "
        + _case(
            [
                (_in(opcode, groups.get("user", set())), target_or_user),
                (_in(opcode, groups.get("key", set())), f("key_handle")),
                (_in(opcode, groups.get("quorum", set())), quorum_object),
                (_in(opcode, groups.get("certificate", set())), f("object_handle")),
            ]
        ),
        "EVAL-object_id = "
        + _case(
            [
                (
                    _in(opcode, groups.get("user", set())),
                    f"if(isnotnull({target}), coalesce({f('target_user_id')}, {target}), "
                    f"coalesce({f('user_id')}, {user}))",
                ),
                (_in(opcode, groups.get("key", set())), f("key_handle")),
                (_in(opcode, groups.get("quorum", set())), quorum_object),
                (_in(opcode, groups.get("certificate", set())), f("object_handle")),
            ]
        ),
        # One value for the copies of one cluster action that every HSM records (a login, a user
        # or quorum command): cluster, lower-case user, user type, opcode, response code and the
        # replica window the brute-force rule folds copies in (docs/splunk-app.md, "Folding copies").
        "EVAL-cluster_action_id = md5("
        + ' . "|" . '.join(
            [
                f'coalesce({f("cluster_id")}, "")',
                f'lower(coalesce({target_or_user}, ""))',
                f'coalesce({f("user_type")}, "")',
                f'coalesce({opcode}, "")',
                f'coalesce({f("response_code")}, "")',
                f'coalesce(tostring(floor({reads.usecs} / {REPLICA_BUCKET_USECS})), "")',
            ]
        )
        + ")",
    ]


def lookup_lines() -> list[str]:
    """The automatic lookups, the same for every sourcetype.

    `action` is written by at most one of them per event: the verb (OUTPUTNEW, a column that is
    empty for data-model opcodes) outside the data models, CIM's value (OUTPUT) inside them.
    """
    derived = "category vendor_action severity change_type object_category verb AS action"
    return [
        f"LOOKUP-hsmaudit_a_opcode = {OPCODE_LOOKUP} opcode hsmaudit_case OUTPUTNEW {derived}",
        # CIM's action: OUTPUT replaces the contract verb (kept in vendor_action); see the module doc.
        f"LOOKUP-hsmaudit_b_cim_action = {OPCODE_LOOKUP} opcode hsmaudit_case AS hsmaudit_cim_case "
        "OUTPUT cim_action AS action",
        f"LOOKUP-hsmaudit_c_status = {STATUS_LOOKUP} hsmaudit_status OUTPUTNEW "
        "record_format outcome success status",
    ]


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


# --- eventtypes.conf: CloudTrail CloudHSM calls ---------------------------------------------

HSM_SOURCETYPES: Final = f'(sourcetype="aws:cloudhsm:audit*" OR sourcetype="{RECIPE_SOURCETYPE}")'
CHANGE_EVENTTYPES: Final[dict[str, tuple[str, str]]] = {
    # object_category -> (event type, description)
    "user": ("hsmaudit_account_change", "CloudHSM user management (CIM Change, Account_Management)"),
    "key": ("hsmaudit_key_change", "CloudHSM key management (CIM Change)"),
    "quorum": ("hsmaudit_quorum_change", "CloudHSM quorum changes (CIM Change)"),
    "certificate": ("hsmaudit_certificate_change", "CloudHSM certificate-storage changes (CIM Change)"),
}


def change_eventtypes() -> list[str]:
    """The Change event types, one per CIM object_category, each naming its opcodes."""
    lines: list[str] = []
    for category, opcodes in change_opcodes().items():
        name, description = CHANGE_EVENTTYPES[category]
        names = ", ".join(_quote(opcode) for opcode in sorted(opcodes))
        lines += [
            f"[{name}]",
            f"search = {HSM_SOURCETYPES} opcode IN ({names})",
            f"description = {description}",
            "",
        ]
    return lines[:-1]


CLOUDTRAIL_BASE: Final = f'sourcetype="{CLOUDTRAIL_SOURCETYPE}" eventSource="{CLOUDTRAIL_EVENT_SOURCE}"'


def cloudtrail_eventtypes() -> list[str]:
    """Event types of the AWS add-on's CloudTrail events for CloudHSM, by the ACTIONS table."""
    lines = [
        "[hsmaudit_cloudtrail]",
        f"search = {CLOUDTRAIL_BASE}",
        "description = CloudHSM control-plane calls recorded by CloudTrail (Splunk Add-on for AWS)",
        "",
    ]
    by_severity: dict[str, set[str]] = {}
    by_category: dict[str, set[str]] = {}
    for name, (category, _verb, severity) in CLOUDTRAIL_ACTIONS.items():
        by_severity.setdefault(severity, set()).add(name)
        by_category.setdefault(category, set()).add(name)
    for severity in ("critical", "high", "medium"):
        names = ", ".join(_quote(n) for n in sorted(by_severity.get(severity, ())))
        lines += [
            f"[hsmaudit_cloudtrail_{severity}]",
            f"search = {CLOUDTRAIL_BASE} eventName IN ({names})",
            f"description = CloudHSM control-plane calls of severity {severity} "
            "(hsmaudit's CloudTrail table)",
            "",
        ]
    for category in ("cluster", "backup"):
        names = ", ".join(_quote(n) for n in sorted(by_category.get(category, ())))
        lines += [
            f"[hsmaudit_cloudtrail_{category}]",
            f"search = {CLOUDTRAIL_BASE} eventName IN ({names})",
            f"description = CloudHSM {category} control-plane calls (hsmaudit's CloudTrail table)",
            "",
        ]
    return lines[:-1]


def cloudtrail_tags() -> list[str]:
    """Tags of the CloudTrail event types: hsmaudit's own, never the add-on's CIM tags again."""
    lines: list[str] = []
    for name in ("", "_critical", "_high", "_medium", "_cluster", "_backup"):
        lines += [
            f"[eventtype=hsmaudit_cloudtrail{name}]",
            "cloudhsm = enabled",
            "control_plane = enabled",
            "",
        ]
    return lines[:-1]


# --- rendering ------------------------------------------------------------------------------

BLOCKS: Final[dict[str, dict[str, Callable[[], list[str]]]]] = {
    "default/props.conf": {"json": json_block, "text": text_block, "recipe": text_block},
    "default/eventtypes.conf": {"cim": change_eventtypes, "cloudtrail": cloudtrail_eventtypes},
    "default/tags.conf": {"cloudtrail": cloudtrail_tags},
}


def render_block(name: str, file: str = "default/props.conf") -> str:
    """One generated block, markers included, as it appears in its conf file."""
    lines = [BLOCK_BEGIN.format(name=name), *BLOCKS[file][name](), BLOCK_END.format(name=name)]
    return "\n".join(lines)


def render_conf(template: str, file: str = "default/props.conf") -> str:
    """A conf file with every generated block re-rendered; everything else is left as written.

    Raises `KnowledgeError` when a block is unknown or missing, so a damaged template cannot ship.
    """
    blocks = BLOCKS[file]
    seen: list[str] = []

    def replace(match: re.Match[str]) -> str:
        name = match.group("name")
        if name not in blocks:
            raise KnowledgeError(f"{file}: unknown generated block {name!r}")
        seen.append(name)
        return render_block(name, file)

    rendered = _BLOCK.sub(replace, template)
    missing = sorted(set(blocks) - set(seen))
    if missing or len(seen) != len(set(seen)):
        raise KnowledgeError(
            f"{file}: generated blocks must appear once each; missing "
            f"{', '.join(missing) or 'none'}, found {', '.join(seen) or 'none'}"
        )
    return rendered


def render_props(template: str) -> str:
    """props.conf with its generated blocks re-rendered."""
    return render_conf(template, "default/props.conf")


def render_generated(relative: str, data: bytes) -> bytes:
    """The packaged content of an app file: generated blocks and lookup tables re-rendered."""
    if relative in BLOCKS:
        return render_conf(data.decode("utf-8"), relative).encode("utf-8")
    tables = lookup_tables()
    if relative in tables:
        return tables[relative].encode("utf-8")
    return data


def refresh_knowledge(root: Path) -> list[str]:
    """Re-render the generated blocks and lookup tables under the app root; the files changed."""
    changed = []
    for relative in BLOCKS:
        path = root / relative
        current = path.read_text(encoding="utf-8")
        rendered = render_conf(current, relative)
        if rendered != current:
            path.write_text(rendered, encoding="utf-8")
            changed.append(relative)
    for relative, content in lookup_tables().items():
        path = root / relative
        if not path.is_file() or path.read_text(encoding="utf-8") != content:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(content, encoding="utf-8")
            changed.append(relative)
    return changed
