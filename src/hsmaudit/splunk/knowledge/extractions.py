"""props.conf's inline extractions: the record text's fields, and a record's origin, by regex."""

from __future__ import annotations

from typing import Final

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
