"""Opcode, user-type and response tables: what each CloudHSM command means and how much it matters.

Source: `docs/reference/cloudhsm-records.md` §§4-6 (AWS "HSM audit log reference", 2018,
2023 and current tables). The severity column follows that reference's criticality judgement:
C -> critical, H -> high, I -> info. Opcodes missing here are still accepted by the parser
(category `other`, severity `info`): new firmware adds commands without telling anyone.
"""

from __future__ import annotations

from typing import Final, NamedTuple

from hsmaudit.records.event import Category, Severity


class OpcodeInfo(NamedTuple):
    """What one opcode does: its category, a verb for `action`, and its base severity."""

    category: Category
    action: str
    severity: Severity


OPCODES: Final[dict[str, OpcodeInfo]] = {
    # §4.1 login / session
    "CN_LOGIN": OpcodeInfo("login", "login", "info"),
    "CN_LOGOUT": OpcodeInfo("login", "logout", "info"),
    "CN_APP_FINALIZE": OpcodeInfo("session", "close", "info"),
    "CN_CLOSE_SESSION": OpcodeInfo("session", "close", "info"),
    "CN_SESSION_CLOSE": OpcodeInfo("session", "close", "info"),  # docs' prose alias of CN_CLOSE_SESSION
    "CN_CLOSE_PARTITION_SESSIONS": OpcodeInfo("session", "close", "info"),
    "CN_AUTHORIZE_SESSION": OpcodeInfo("session", "authorize", "info"),  # Azure Cloud HSM vocabulary
    "CN_ENCRYPT_SESSION_V2": OpcodeInfo("session", "encrypt", "info"),  # hsm2m.medium, unverified
    # §4.2 user management (user fields name the target user)
    "CN_CREATE_USER": OpcodeInfo("user_management", "create", "high"),
    "CN_CREATE_CO": OpcodeInfo("user_management", "create", "critical"),
    "CN_CREATE_APPLIANCE_USER": OpcodeInfo("user_management", "create", "high"),
    "CN_DELETE_USER": OpcodeInfo("user_management", "delete", "critical"),
    "CN_CHANGE_PSWD": OpcodeInfo("user_management", "change_password", "high"),
    "CN_LIST_USERS": OpcodeInfo("user_management", "list", "info"),
    # §4.2 quorum (M of N)
    "CN_SET_M_VALUE": OpcodeInfo("quorum", "modify", "critical"),
    "CN_APPROVE_TOKEN": OpcodeInfo("quorum", "approve", "high"),
    "CN_DELETE_TOKEN": OpcodeInfo("quorum", "delete", "high"),
    "CN_GET_TOKEN": OpcodeInfo("quorum", "request", "medium"),
    "CN_LIST_TOKENS": OpcodeInfo("quorum", "list", "info"),
    # §4.3 key management (records carry key handles)
    "CN_GENERATE_KEY": OpcodeInfo("key_management", "generate", "high"),
    "CN_GENERATE_KEY_PAIR": OpcodeInfo("key_management", "generate", "high"),
    "CN_CREATE_OBJECT": OpcodeInfo("key_management", "import", "high"),
    "CN_MODIFY_OBJECT": OpcodeInfo("key_management", "modify", "high"),
    "CN_DESTROY_OBJECT": OpcodeInfo("key_management", "delete", "critical"),
    "CN_TOMBSTONE_OBJECT": OpcodeInfo("key_management", "delete", "critical"),
    "CN_SHARE_OBJECT": OpcodeInfo("key_management", "share", "high"),
    "CN_WRAP_KEY": OpcodeInfo("key_management", "export", "critical"),
    "CN_UNWRAP_KEY": OpcodeInfo("key_management", "import", "high"),
    "CN_DERIVE_KEY": OpcodeInfo("key_management", "derive", "high"),
    "CN_NIST_AES_WRAP": OpcodeInfo("key_management", "wrap", "info"),
    "CN_FIND_OBJECTS_USING_COUNT": OpcodeInfo("key_management", "list", "info"),
    "CN_FIND_OBJECTS_FROM_INDEX": OpcodeInfo("key_management", "list", "info"),
    "CN_GET_OBJECT_INFO": OpcodeInfo("key_management", "read", "info"),
    "CN_GET_ATTRIBUTE_VALUE": OpcodeInfo("key_management", "read", "info"),
    # §4.3 cluster synchronisation of keys: copies, not new keys and not exports
    "CN_EXTRACT_MASKED_OBJECT_USER": OpcodeInfo("key_sync", "sync", "info"),
    "CN_INSERT_MASKED_OBJECT_USER": OpcodeInfo("key_sync", "sync", "info"),
    # §4.4 cloning, backup, certificate authentication
    "CN_CLONE_SOURCE_INIT": OpcodeInfo("cluster", "clone", "info"),
    "CN_CLONE_SOURCE_STAGE1": OpcodeInfo("cluster", "clone", "info"),
    "CN_CLONE_TARGET_INIT": OpcodeInfo("cluster", "clone", "info"),
    "CN_CLONE_TARGET_STAGE1": OpcodeInfo("cluster", "clone", "info"),
    "CN_BACKUP_BEGIN": OpcodeInfo("backup", "backup", "info"),
    "CN_BACKUP_END": OpcodeInfo("backup", "backup", "info"),
    "CN_RESTORE_BEGIN": OpcodeInfo("backup", "restore", "high"),
    "CN_RESTORE_END": OpcodeInfo("backup", "restore", "high"),
    "CN_STORE_KBK_SHARE": OpcodeInfo("backup", "store", "high"),
    "CN_CERT_AUTH_STORE_CERT": OpcodeInfo("cluster", "store", "high"),
    "CN_CERT_AUTH_VALIDATE_PEER_CERTS": OpcodeInfo("cluster", "validate", "info"),
    "CN_CERT_AUTH_SOURCE_KEY_EXCHANGE": OpcodeInfo("cluster", "key_exchange", "info"),
    "CN_CERT_AUTH_TARGET_KEY_EXCHANGE": OpcodeInfo("cluster", "key_exchange", "info"),
    # §4.5 HSM instance
    "CN_INIT_TOKEN": OpcodeInfo("cluster", "initialize", "info"),  # raised to critical past sequence 0
    "CN_INIT_DONE": OpcodeInfo("cluster", "initialize", "info"),
    "CN_GEN_KEY_ENC_KEY": OpcodeInfo("cluster", "generate", "info"),
    "CN_GEN_PSWD_ENC_KEY": OpcodeInfo("cluster", "generate", "info"),
    "CN_SET_NODEID": OpcodeInfo("cluster", "modify", "info"),
    "CN_ZEROIZE": OpcodeInfo("cluster", "zeroize", "critical"),
    "CN_FIPS_RAND": OpcodeInfo("other", "random", "info"),
    "CN_TOKEN_INFO": OpcodeInfo("cluster", "read", "info"),
    "CN_PARTITION_INFO": OpcodeInfo("cluster", "read", "info"),
}

CERTIFICATE_OPCODES: Final[dict[str, OpcodeInfo]] = {
    # §8.1 certificate-storage JSON records (Client SDK 5 PKCS #11 certificate store)
    "CreateObject": OpcodeInfo("certificate", "create", "info"),
    "DestroyObject": OpcodeInfo("certificate", "delete", "medium"),
    "SetAttributeValues": OpcodeInfo("certificate", "modify", "medium"),
}

UNKNOWN_OPCODE: Final = OpcodeInfo("other", "other", "info")

LOGIN_OPCODE: Final = "CN_LOGIN"
KEY_GENERATION_OPCODES: Final = frozenset({"CN_GENERATE_KEY", "CN_GENERATE_KEY_PAIR"})
KEY_DELETION_OPCODES: Final = frozenset({"CN_DESTROY_OBJECT", "CN_TOMBSTONE_OBJECT"})
KEY_EXPORT_OPCODES: Final = frozenset({"CN_WRAP_KEY"})
KEY_SYNC_OPCODES: Final = frozenset({"CN_EXTRACT_MASKED_OBJECT_USER", "CN_INSERT_MASKED_OBJECT_USER"})
USER_CREATION_OPCODES: Final = frozenset({"CN_CREATE_USER", "CN_CREATE_CO", "CN_CREATE_APPLIANCE_USER"})
QUORUM_OPCODES: Final = frozenset({"CN_SET_M_VALUE", "CN_APPROVE_TOKEN", "CN_DELETE_TOKEN", "CN_GET_TOKEN"})

# §6: user types. Cavium's array (Unknown, CU, CO, PCO, HMCO, AU, PRECO) confirms the numbering.
CRYPTO_OFFICER_TYPES: Final = frozenset({"CN_CRYPTO_OFFICER", "CN_CRYPTO_PRE_OFFICER"})
USER_TYPE_ABBREVIATIONS: Final[dict[str, str]] = {
    "CN_CRYPTO_USER": "CU",
    "CN_CRYPTO_OFFICER": "CO",
    "CN_APPLIANCE_USER": "AU",
    "CN_CRYPTO_PRE_OFFICER": "PRECO",
}

# §5: response codes of failed logins, by reason.
BAD_PASSWORD_CODES: Final = frozenset({163})
UNKNOWN_USER_CODES: Final = frozenset({157, 206})

TIME_INFO_LOG_TYPE: Final = "TIME_INFO_LOG"


def opcode_info(opcode: str | None) -> OpcodeInfo:
    """Look an opcode up in both tables; unknown ones are `other`/`info`, never an error."""
    if opcode is None:
        return UNKNOWN_OPCODE
    return OPCODES.get(opcode) or CERTIFICATE_OPCODES.get(opcode) or UNKNOWN_OPCODE
