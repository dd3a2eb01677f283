"""The names Splunk knows hsmaudit's data by: the sourcetypes and the app's lookups."""

from __future__ import annotations

from typing import Final

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
