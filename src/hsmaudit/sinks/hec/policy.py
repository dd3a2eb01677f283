"""The HEC client's policies: how it connects, retries, batches and waits for acks, as values.

Where it sits: `HecClient` (client.py) takes one of each; `aws/runtime.build_client` makes them
from `Settings`, tests and benchmarks state only what they change (`RetryPolicy(max_attempts=1)`).
Frozen, so one client's policy is never changed under it by another; msgspec Structs rather than
dataclasses because msgspec is on the Lambda's path already and four Struct classes cost the cold
start a tenth of a millisecond where four slotted dataclasses cost two. Defaults come from
`hsmaudit.defaults`, the one place `config` reads too. A policy that cannot work raises
`ValueError` when it is made (`build_client` turns that into a `ConfigError`).
"""

from __future__ import annotations

from typing import Final

import msgspec

from hsmaudit import defaults

DEFAULT_GZIP_LEVEL: Final = 1
"""gzip level of request bodies: on lean batches level 1 takes half the CPU of level 6 for about
10% more bytes (`benchmarks/handler_bench.py --gzip-levels`). Not a setting."""


class ConnectionPolicy(msgspec.Struct, frozen=True):
    """How requests reach HEC.

    Args:
        timeout: seconds per request (connect and read), further bounded by the run's deadline.
        verify: verify TLS certificates (on by default; turning it off logs a warning).
        ca_bundle: a PEM file of CA certificates to trust instead of the system store.
        proxy: an HTTP(S) proxy URL (`http://[user:password@]proxy:3128`) for HEC requests; https
            HEC URLs are tunnelled with CONNECT, so TLS stays end to end. Not read from
            `HTTPS_PROXY`: the setting names the proxy for HEC explicitly. Never in the repr (it
            may carry a password).
    """

    timeout: float = defaults.HEC_TIMEOUT
    verify: bool = defaults.HEC_VERIFY
    ca_bundle: str | None = None
    proxy: str | None = None

    def __repr__(self) -> str:
        proxy = "'<set>'" if self.proxy else "None"
        return (
            f"ConnectionPolicy(timeout={self.timeout!r}, verify={self.verify!r}, "
            f"ca_bundle={self.ca_bundle!r}, proxy={proxy})"
        )


class RetryPolicy(msgspec.Struct, frozen=True):
    """How often a batch is retried on a retryable failure (HEC 8/9/18-20, 429, 5xx, timeouts).

    Args:
        max_attempts: tries per batch before it is spooled (and the run's circuit opens).
        backoff_base, backoff_cap: full-jitter exponential backoff: before try n+1 sleep
            U(0, min(cap, base*2^(n-1))); a server's Retry-After is honoured up to `backoff_cap`.
    """

    max_attempts: int = defaults.HEC_MAX_ATTEMPTS
    backoff_base: float = defaults.HEC_BACKOFF_BASE
    backoff_cap: float = defaults.HEC_BACKOFF_CAP

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")


class AckPolicy(msgspec.Struct, frozen=True):
    """Indexer acknowledgement (docs/reference/splunk.md §1.7).

    Args:
        enabled: poll `/services/collector/ack` and count a batch only once it is indexed.
        timeout: seconds to wait for an ack before resending once, then spooling.
        poll_interval: seconds between ack polls (Splunk suggests 10 s; a Lambda pays for it).
    """

    enabled: bool = defaults.HEC_ACK
    timeout: float = defaults.HEC_ACK_TIMEOUT
    poll_interval: float = defaults.HEC_ACK_POLL_INTERVAL


class BatchPolicy(msgspec.Struct, frozen=True):
    """How lines become requests (reference §1.10: HEC's limits apply to uncompressed bytes).

    Args:
        max_events: lines per request at most.
        max_bytes: uncompressed body bytes per request at most, up to HEC's 5 MiB `maxEventSize`.
        gzip_level: compression level of request bodies (`DEFAULT_GZIP_LEVEL`).
    """

    max_events: int = defaults.BATCH_MAX_EVENTS
    max_bytes: int = defaults.BATCH_MAX_BYTES
    gzip_level: int = DEFAULT_GZIP_LEVEL

    def __post_init__(self) -> None:
        if self.max_events < 1:
            raise ValueError("max_events must be at least 1")
        if not 1 <= self.max_bytes <= defaults.HEC_MAX_EVENT_BYTES:
            raise ValueError(f"max_bytes must be between 1 and {defaults.HEC_MAX_EVENT_BYTES}")
