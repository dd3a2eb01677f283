"""Outcome, category, action and severity of a record: a pure function of a few of its fields.

The Splunk app's lookups are generated from this same function (`splunk/knowledge/lookups.py`),
so Splunk and the parser decide alike for every opcode and case.
"""

from __future__ import annotations

import functools
from typing import Final

from hsmaudit.records.event import SEVERITY_RANK, Category, Outcome, Severity
from hsmaudit.records.opcodes import CRYPTO_OFFICER_TYPES, TIME_INFO_LOG_TYPE, opcode_info


@functools.lru_cache(maxsize=4096)
def derive(
    opcode: str | None,
    success: bool | None,
    user_type: str | None,
    target_user_type: str | None,
    log_type: str | None,
    past_first_record: bool,
    has_error: bool,
) -> tuple[Outcome | None, Category, str, Severity]:
    """(outcome, category, action, severity): a pure function of few values, so it is cached."""
    info = opcode_info(opcode)
    category: Category = "time_sync" if log_type == TIME_INFO_LOG_TYPE else info.category
    outcome: Outcome | None = None if success is None else ("success" if success else "failure")
    rank = SEVERITY_RANK[info.severity]
    if opcode == "CN_LOGIN" and success is False:
        # A failed crypto-officer login is an attack on the keys to the kingdom.
        rank = max(rank, SEVERITY_RANK["critical" if user_type in CRYPTO_OFFICER_TYPES else "high"])
    elif opcode == "CN_CHANGE_PSWD" and (
        user_type in CRYPTO_OFFICER_TYPES or target_user_type in CRYPTO_OFFICER_TYPES
    ):
        rank = max(rank, SEVERITY_RANK["critical"])
    elif opcode == "CN_INIT_TOKEN" and past_first_record:
        # Initialisation is the first record of a new HSM; later in a stream it re-initialises one.
        rank = max(rank, SEVERITY_RANK["critical"])
    elif success is False:
        rank = max(rank, SEVERITY_RANK["medium"])
    if has_error:
        rank = max(rank, SEVERITY_RANK["medium"])
    return outcome, category, info.action, SEVERITY_BY_RANK[rank]


SEVERITY_BY_RANK: Final[dict[int, Severity]] = {0: "info", 1: "medium", 2: "high", 3: "critical"}
