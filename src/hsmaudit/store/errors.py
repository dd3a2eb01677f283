"""The store's one exception family.

```
StoreError               the local SQLite store cannot be opened, read or written
├── StoreSchemaError     the file is not an hsmaudit store (or a newer schema version)
└── StoreDataError       a value SQLite cannot bind (lone surrogate, >64-bit int): deterministic,
                         retrying the same rows fails the same way; the transaction was rolled back
```
"""

from __future__ import annotations

from hsmaudit.errors import HsmauditError


class StoreError(HsmauditError):
    """The local store failed; the message names the file and what to do next."""


class StoreSchemaError(StoreError):
    """The database file does not hold an hsmaudit store this version can use."""


class StoreDataError(StoreError):
    """The rows hold a value the store cannot write; the same rows fail again, so do not retry."""
