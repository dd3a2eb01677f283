"""The root of every hsmaudit exception: `except HsmauditError` catches any error of ours.

Layer 0 (stdlib only, imports nothing): each package keeps its own family in its `errors.py`
(style.md, "Errors"), and each family's base also derives from this class, so a boundary (the
handlers, a CLI command, a server request) can tell our errors from a bug in one clause. Classes
keep their other bases too (`ConfigError` is still a `ValueError`), so every existing `except` works.

    HsmauditError
    ├── ConfigError (ValueError)               config
    ├── SourceError, CheckpointError, ...      sources/
    ├── SinkError, ...                         sinks/
    ├── DetectError, DetectStoreError          detect/
    ├── StoreError, FilterError (ValueError)   store/
    ├── ForwarderError, LogsError, ...         aws/
    ├── HecRequestError, ...                   server/
    ├── SplunkAppError                         splunk/
    └── ReportInputError, TimeSpecError, BackfillOptionError (ValueError), DeliveryError, PackageError,
        DetectOptionError (ValueError), DestinationChoiceError (ValueError),
        SpoolLocationError, DemoStartError                                                    ops/
"""

from __future__ import annotations


class HsmauditError(Exception):
    """Base class of every exception hsmaudit defines."""
