"""Search-time knowledge derived from the opcode table: props.conf blocks, lookup tables, event types.

The parser decides `category`, `action`, `severity`, `outcome` and `success` from
`hsmaudit.records.opcodes` (`records.severity.derive`); Splunk must decide the same for events that
carry only the record text (the lean HEC event, raw text sent any other way, the published
recipe's `aws:cloudwatch:cloudhsm`). Hand-copying ~60 opcodes would drift, so this package renders:

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

One concept per module: `names` (sourcetypes, lookups), `cim` (which opcodes belong to which data
model, and as what), `spl` (eval literals), `lookups` (the two CSV tables), `extractions`
(props.conf's regexes), `evals` (the EVALs and automatic lookups), `props` (each sourcetype's
block), `eventtypes` (the eventtypes.conf and tags.conf blocks), `blocks` (the BEGIN/END markers,
rendering the blocks into the conf files and refreshing the app's tree). Every public name of the
former `knowledge.py` is re-exported here; this package is not on the Lambda path.
"""

from __future__ import annotations

from hsmaudit.splunk.knowledge.blocks import (
    BLOCK_BEGIN,
    BLOCK_END,
    BLOCKS,
    refresh_knowledge,
    render_block,
    render_conf,
    render_generated,
    render_props,
)
from hsmaudit.splunk.knowledge.cim import (
    CHANGE_CATEGORIES,
    CIM_APP,
    CIM_CHANGE_ACTIONS,
    CIM_VENDOR_PRODUCT,
    REPLICA_BUCKET_USECS,
    change_opcodes,
    cim_opcodes,
)
from hsmaudit.splunk.knowledge.evals import (
    JSON_READS,
    TEXT_READS,
    TEXT_USECS,
    Reads,
    cim_lines,
    key_lines,
    lookup_lines,
    text_conversions,
    utc_time_expression,
)
from hsmaudit.splunk.knowledge.eventtypes import (
    CHANGE_EVENTTYPES,
    CLOUDTRAIL_BASE,
    HSM_SOURCETYPES,
    change_eventtypes,
    cloudtrail_eventtypes,
    cloudtrail_tags,
)
from hsmaudit.splunk.knowledge.extractions import (
    ORIGIN_ALIASES,
    ORIGIN_EXTRACTIONS,
    TEXT_EXTRACTIONS,
)
from hsmaudit.splunk.knowledge.lookups import (
    OFFICER_OPCODES,
    OPCODE_COLUMNS,
    RESULTS,
    SEQUENCE_OPCODES,
    STATUS_COLUMNS,
    TIME_KINDS,
    UNKNOWN_OPCODE_PROBE,
    Case,
    cases,
    lookup_tables,
    opcode_rows,
    render_csv,
    status_rows,
)
from hsmaudit.splunk.knowledge.names import (
    CLOUDTRAIL_SOURCETYPE,
    JSON_SOURCETYPE,
    LOOKUP_FILES,
    OPCODE_LOOKUP,
    RECIPE_SOURCETYPE,
    STATUS_LOOKUP,
    TEXT_SOURCETYPE,
)
from hsmaudit.splunk.knowledge.props import (
    json_block,
    text_block,
)

__all__ = [
    "BLOCKS",
    "BLOCK_BEGIN",
    "BLOCK_END",
    "CHANGE_CATEGORIES",
    "CHANGE_EVENTTYPES",
    "CIM_APP",
    "CIM_CHANGE_ACTIONS",
    "CIM_VENDOR_PRODUCT",
    "CLOUDTRAIL_BASE",
    "CLOUDTRAIL_SOURCETYPE",
    "HSM_SOURCETYPES",
    "JSON_READS",
    "JSON_SOURCETYPE",
    "LOOKUP_FILES",
    "OFFICER_OPCODES",
    "OPCODE_COLUMNS",
    "OPCODE_LOOKUP",
    "ORIGIN_ALIASES",
    "ORIGIN_EXTRACTIONS",
    "RECIPE_SOURCETYPE",
    "REPLICA_BUCKET_USECS",
    "RESULTS",
    "SEQUENCE_OPCODES",
    "STATUS_COLUMNS",
    "STATUS_LOOKUP",
    "TEXT_EXTRACTIONS",
    "TEXT_READS",
    "TEXT_SOURCETYPE",
    "TEXT_USECS",
    "TIME_KINDS",
    "UNKNOWN_OPCODE_PROBE",
    "Case",
    "Reads",
    "cases",
    "change_eventtypes",
    "change_opcodes",
    "cim_lines",
    "cim_opcodes",
    "cloudtrail_eventtypes",
    "cloudtrail_tags",
    "json_block",
    "key_lines",
    "lookup_lines",
    "lookup_tables",
    "opcode_rows",
    "refresh_knowledge",
    "render_block",
    "render_conf",
    "render_csv",
    "render_generated",
    "render_props",
    "status_rows",
    "text_block",
    "text_conversions",
    "utc_time_expression",
]
