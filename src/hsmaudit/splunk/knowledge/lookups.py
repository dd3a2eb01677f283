"""The generated lookup tables: hsmaudit_opcodes.csv and hsmaudit_status.csv.

Their rows are computed by calling the parser's own `derive` for every opcode and case, so the
table *is* the code's answer.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable
from typing import Final, NamedTuple

from hsmaudit.records.cloudtrail import ACTIONS as CLOUDTRAIL_ACTIONS
from hsmaudit.records.severity import derive
from hsmaudit.splunk.knowledge.cim import CHANGE_CATEGORIES, CIM_CHANGE_ACTIONS, all_opcodes, cim_opcodes
from hsmaudit.splunk.knowledge.names import LOOKUP_FILES, OPCODE_LOOKUP, STATUS_LOOKUP

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
    info = all_opcodes().get(probe)
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
    rows = [_opcode_row(opcode, case, opcode) for opcode in sorted(all_opcodes()) for case in cases(opcode)]
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
