"""Record text for tests that need many distinct, valid CloudHSM records (a CO login each)."""

from __future__ import annotations


def login_record(sequence_no: int, usecs: int = 1_513_717_277_140_812) -> str:
    """A classic successful CO login record; distinct per sequence number, parses clean."""
    return (
        f"Time: 12/19/17 21:01:17.140812, usecs:{usecs}\n"
        f"Sequence No : 0x{sequence_no:x}\n"
        "Reboot counter : 0x107\n"
        "Command Type(hex) : CN_MGMT_CMD (0x0)\n"
        "Opcode : CN_LOGIN (0xd)\n"
        "Session Handle : 0x1004001\n"
        "Response : 0:HSM Return: SUCCESS\n"
        "Log type : MGMT_USER_DETAILS_LOG (2)\n"
        "User Name : admin\n"
        "User Type : CN_CRYPTO_OFFICER (2)\n"
    )
