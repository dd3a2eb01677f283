"""`hsmaudit report`: an auditor-ready account of a period, from the events alone.

What an assessor asks of an HSM audit trail (PCI DSS v4 requirement 10) is answered from the data,
section by section; the same data gives the same report and the same digests. One concept per
module, in the order a report is made:

- `period`: `Period`, what the report covers.
- `inputs`: the events, from the local store or Splunk exports (`ReportInputError`).
- `build`: `build_report`, the sections as plain JSON data.
- `pci`: `PCI_SECTIONS`, the PCI DSS v4 requirements and the sections evidencing them.
- `digests`: `data_digest`, `report_digest`, `compare_digests` (`hsmaudit report --check`).
- `html_page`: `render_html`, the printable page.
- `json_text`: `render_json`.

This package re-exports the names the CLI and the tests import from `hsmaudit.ops.report`.
"""

from __future__ import annotations

from hsmaudit.detect.silence import DEFAULT_SILENT_AFTER_USECS
from hsmaudit.ops.report.build import (
    DAY_USECS,
    REPORT_FORMAT,
    RETENTION_DAYS_AT_HAND,
    RETENTION_DAYS_REQUIRED,
    build_report,
)
from hsmaudit.ops.report.digests import compare_digests, data_digest, report_digest
from hsmaudit.ops.report.html_page import render_html
from hsmaudit.ops.report.inputs import (
    ReportInputError,
    events_from_splunk_export,
    events_from_store,
    iter_inputs,
)
from hsmaudit.ops.report.json_text import render_json
from hsmaudit.ops.report.pci import PCI_SECTIONS
from hsmaudit.ops.report.period import Period

__all__ = [
    "DAY_USECS",
    "DEFAULT_SILENT_AFTER_USECS",
    "PCI_SECTIONS",
    "REPORT_FORMAT",
    "RETENTION_DAYS_AT_HAND",
    "RETENTION_DAYS_REQUIRED",
    "Period",
    "ReportInputError",
    "build_report",
    "compare_digests",
    "data_digest",
    "events_from_splunk_export",
    "events_from_store",
    "iter_inputs",
    "render_html",
    "render_json",
    "report_digest",
]
