"""The detection package's one exception family.

```
DetectError                 anything the detections cannot do
├── RuleError               a Sigma rule or the compiled rule set is invalid (carries the rule id)
└── DetectStoreError        the local SQLite store cannot be read for detection
```

Bad *events* are never errors here: a record the parser could not read is an `unparsed-record`
alert, not an exception.
"""

from __future__ import annotations

from hsmaudit.errors import HsmauditError


class DetectError(HsmauditError):
    """Base of every error raised by `hsmaudit.detect`."""


class RuleError(DetectError):
    """A rule (or the compiled rule set) cannot be used; says which rule and why."""

    def __init__(self, message: str, *, rule: str | None = None) -> None:
        self.rule = rule
        super().__init__(f"rule {rule}: {message}" if rule else message)


class DetectStoreError(DetectError):
    """The SQLite store given to `hsmaudit detect --db` cannot be used for detection."""
