"""Errors of the sources layer: input that cannot even be unwrapped into log messages.

Tree:
    SourceError
    ├── SourceDecodeError   bad base64, bad gzip, bad JSON, wrong envelope shape
    └── CheckpointError     (sources/checkpoint.py) a backfill's read position cannot be read,
                            written, or belongs to another job

A record whose *content* is bad is not an error here: it becomes an event with `parse_error`.
These errors are for transports that cannot be opened at all, and always name the input.
"""

from __future__ import annotations

from hsmaudit.errors import HsmauditError


class SourceError(HsmauditError):
    """Base class of every sources-layer error."""


class SourceDecodeError(SourceError):
    """An envelope or file could not be decoded; the message names the input and the reason."""
