"""props.conf's calculated fields (EVAL-): the text's values converted, the lookup keys, CIM fields.

An EVAL writes only the text's numbers, `time`, private `hsmaudit_*` keys and CIM names, never a
contract field an event may already carry (the package doc says why); `lookup_lines` are the
automatic lookups those keys feed.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Final, NamedTuple

from hsmaudit.booleans import FALSE_WORDS, TRUE_WORDS
from hsmaudit.records.opcodes import CRYPTO_OFFICER_TYPES
from hsmaudit.splunk.knowledge.cim import (
    CIM_APP,
    CIM_VENDOR_PRODUCT,
    REPLICA_BUCKET_USECS,
    change_opcodes,
    cim_opcodes,
)
from hsmaudit.splunk.knowledge.lookups import SEQUENCE_OPCODES
from hsmaudit.splunk.knowledge.names import OPCODE_LOOKUP, STATUS_LOOKUP
from hsmaudit.splunk.knowledge.spl import spl_case, spl_in, spl_quote


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
    officers = spl_in(f("user_type"), CRYPTO_OFFICER_TYPES)
    target_officers = spl_in(f("target_user_type"), CRYPTO_OFFICER_TYPES)
    opcode = f("opcode")
    officer = spl_case(
        [
            (f'{opcode}=="CN_LOGIN" AND {officers}', '"co"'),
            (f'{opcode}=="CN_CHANGE_PSWD" AND ({officers} OR {target_officers})', '"co"'),
        ],
        '"-"',
    )
    later = f'if({spl_in(opcode, SEQUENCE_OPCODES)} AND {reads.sequence_no} > 0, "1", "0")'
    time = f'if({f("log_type")}=="TIME_INFO_LOG", "time", "-")'
    result = f'coalesce({reads.result}, "unknown")'
    # A flagged record is at least medium (the parser's has_error); the lean event indexes parse_error.
    error = f'if(isnotnull({f("parse_error")}), "err", "-")'
    case = f'{result} . "|" . {officer} . "|" . {later} . "|" . {time} . "|" . {error}'
    return [
        f"EVAL-hsmaudit_case = {case}",
        # Only for events of a data model: the CIM action lookup skips every other event (a lookup
        # whose match field is absent does nothing), so their own action is never touched.
        f"EVAL-hsmaudit_cim_case = if({spl_in(opcode, cim_opcodes())}, {case}, null())",
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
        f"EVAL-app = {spl_quote(CIM_APP)}",
        f"EVAL-vendor_product = {spl_quote(CIM_VENDOR_PRODUCT)}",
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
        + spl_case(
            [
                (spl_in(opcode, groups.get("user", set())), target_or_user),
                (spl_in(opcode, groups.get("key", set())), f("key_handle")),
                (spl_in(opcode, groups.get("quorum", set())), quorum_object),
                (spl_in(opcode, groups.get("certificate", set())), f("object_handle")),
            ]
        ),
        "EVAL-object_id = "
        + spl_case(
            [
                (
                    spl_in(opcode, groups.get("user", set())),
                    f"if(isnotnull({target}), coalesce({f('target_user_id')}, {target}), "
                    f"coalesce({f('user_id')}, {user}))",
                ),
                (spl_in(opcode, groups.get("key", set())), f("key_handle")),
                (spl_in(opcode, groups.get("quorum", set())), quorum_object),
                (spl_in(opcode, groups.get("certificate", set())), f("object_handle")),
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
        # CIM's action: OUTPUT replaces the contract verb (kept in vendor_action); see the package doc.
        f"LOOKUP-hsmaudit_b_cim_action = {OPCODE_LOOKUP} opcode hsmaudit_case AS hsmaudit_cim_case "
        "OUTPUT cim_action AS action",
        f"LOOKUP-hsmaudit_c_status = {STATUS_LOOKUP} hsmaudit_status OUTPUTNEW "
        "record_format outcome success status",
    ]
