"""Open a spool by location: a directory path (`LocalSpool`) or `s3://bucket/prefix` (`S3Spool`).

The factory lives here, in the layer that composes, so `sinks/` imports nothing above it
(style.md "Who may import whom", rule 4: a factory that picks an implementation by URL lives in
layer 3 or above, never below what it picks). Like the Datadog Forwarder's `retry/__init__.py`,
only the chosen back end is imported: `aws/s3spool.py` (and boto3) load only for an `s3://`
location, so the Lambda's cold import does not grow.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Final

from hsmaudit.sinks.spool import LocalSpool, Spool


def _open_s3(location: str) -> Spool:
    from hsmaudit.aws.s3spool import S3Spool

    return S3Spool.from_url(location)


def _open_local(location: str) -> Spool:
    return LocalSpool(location)


SPOOLS: Final[dict[str, Callable[[str], Spool]]] = {"local": _open_local, "s3": _open_s3}
"""Spool back ends by name; each takes a location (`/dir` or `s3://bucket/prefix`)."""


def open_spool(location: str) -> Spool:
    """Open the spool at a directory path or an `s3://bucket/prefix` URL."""
    kind = "s3" if location.startswith("s3://") else "local"
    return SPOOLS[kind](location)
