"""What every doctor probe returns: one `CheckResult` per check, for the CLI to print.

The HEC probe (`ops.hec_probe`) and the AWS checks (`ops.aws_checks`) share it, so it lives
below both; `cli/doctor.py` only prints results and counts the failures.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Status = Literal["ok", "fail", "warn", "skip"]


@dataclass(frozen=True)
class CheckResult:
    """One check: an id (`aws.credentials`), a status and one line for people (plus what to do)."""

    check: str
    status: Status
    summary: str
    fix: str | None = None

    def line(self) -> str:
        """`summary` and `fix` as the one line the CLI prints."""
        return f"{self.summary}: {self.fix}" if self.fix else self.summary
