"""Events -> CloudHSM record text: the inverse of the parser, for the simulator and the tests.

The text follows `docs/reference/cloudhsm-records.md` §2: a `Time:` line, the skeleton
lines, then the detail lines of the log type, with one of the three separator spellings.
"""

from __future__ import annotations

from typing import Final, Literal

from hsmaudit.records.event import HsmEvent
from hsmaudit.records.time import format_times

Separator = Literal["space", "colon", "tabs"]
SEPARATORS: Final[tuple[Separator, ...]] = ("space", "colon", "tabs")

# Column widths of the TAB-padded style seen in a live stream (alphagov 2019): 1-3 TABs.
_TABS: Final[dict[str, str]] = {
    "Sequence No": "\t\t",
    "Reboot counter": "\t",
    "Command Type(hex)": "\t",
    "Opcode": "\t\t\t",
    "Session Handle": "\t",
    "Response": "\t\t",
    "Log type": "\t\t",
    "User Name": "\t\t",
    "User Type": "\t\t",
    "Priv/Secret Key Handle": "\t",
    "Public Key Handle": "\t",
}


def _line(label: str, value: str, separator: Separator) -> str:
    if separator == "space":
        return f"{label} : {value}"
    if separator == "colon":
        return f"{label}: {value}"
    return f"{label}{_TABS.get(label, chr(9))}: {value}"


def _enum(name: str | None, code: int | None, *, hex_code: bool) -> str:
    if code is None:
        return name or ""
    return f"{name} (0x{code:x})" if hex_code else f"{name} ({code})"


def render_text_record(event: HsmEvent, separator: Separator = "space") -> str:
    """Render a classic text record (no trailing newline, as CloudWatch delivers it).

    Requires `usecs`, `sequence_no`, `reboot_counter`, `opcode`, `response_code` and `log_type`.
    """
    if event.usecs is None or event.sequence_no is None or event.reboot_counter is None:
        raise ValueError("a text record needs usecs, sequence_no and reboot_counter")
    _, time_text = format_times(event.usecs)
    kind = "HSM Return" if event.success else "HSM Error"
    lines = [
        f"Time: {time_text}, usecs:{event.usecs}",
        _line("Sequence No", f"0x{event.sequence_no:x}", separator),
        _line("Reboot counter", f"0x{event.reboot_counter:x}", separator),
        _line(
            "Command Type(hex)",
            _enum(event.command_type or "CN_MGMT_CMD", event.command_type_code, hex_code=True),
            separator,
        ),
        _line("Opcode", _enum(event.opcode, event.opcode_code, hex_code=True), separator),
        _line("Session Handle", event.session_handle or "0x0", separator),
        _line("Response", f"{event.response_code or 0}:{kind}: {event.response or ''}".rstrip(), separator),
        _line("Log type", _enum(event.log_type, event.log_type_code, hex_code=False), separator),
    ]
    if event.log_type == "MGMT_USER_DETAILS_LOG" or event.user_name is not None:
        lines.append(_line("User Name", event.user_name or "", separator))
        lines.append(
            _line("User Type", _enum(event.user_type, event.user_type_code, hex_code=False), separator)
        )
    if event.target_user_name is not None:
        lines.append(_line("Target User Name", event.target_user_name, separator))
        if event.target_user_type is not None:
            lines.append(
                _line(
                    "Target User Type",
                    _enum(event.target_user_type, event.target_user_type_code, hex_code=False),
                    separator,
                )
            )
    if event.log_type == "MGMT_KEY_DETAILS_LOG" or event.key_handle is not None:
        lines.append(_line("Priv/Secret Key Handle", str(event.key_handle or 0), separator))
        lines.append(_line("Public Key Handle", str(event.public_key_handle or 0), separator))
    return "\n".join(lines)
