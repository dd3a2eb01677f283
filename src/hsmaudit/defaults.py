"""The default of every setting, stated once; and HEC's request size limit.

Layer 0 (stdlib only, imports nothing), because both sides need it: `config` (layer 1: the
`SETTINGS` table, whose defaults `docs/configuration.md` shows, and the `Settings` fields) and the
HEC client's policies (`sinks/hec/policy.py`, layer 2, what `HecClient` uses when built without
settings) read their defaults here. Each constant is named after its setting, upper-cased; a unit
test (`tests/unit/test_defaults.py`) holds the three in step. On the Lambda's cold path: constants only.
"""

from __future__ import annotations

from typing import Final

HEC_MAX_EVENT_BYTES: Final = 5 * 1024 * 1024
"""HEC's default per-event `maxEventSize`, 5 MiB (inputs.conf [http]; docs/reference/splunk.md
§1.10): no request of ours is larger, and no batch cap may be set above it."""

# -- the HEC envelope (contracts.md §2)
EVENT_FORMAT: Final = "lean"
INCLUDE_RAW: Final = True

# -- the connection to HEC
HEC_VERIFY: Final = True
HEC_TIMEOUT: Final = 5.0
HEC_TOKEN_TTL: Final = 300.0

# -- retries of one batch (full-jitter exponential backoff)
HEC_MAX_ATTEMPTS: Final = 5
HEC_BACKOFF_BASE: Final = 0.5
HEC_BACKOFF_CAP: Final = 8.0

# -- indexer acknowledgement
HEC_ACK: Final = False
HEC_ACK_TIMEOUT: Final = 60.0
HEC_ACK_POLL_INTERVAL: Final = 2.0  # Splunk suggests 10 s; a Lambda pays for every second it waits

# -- batches: Splunk's own collectors cap requests at 1-2 MiB (sinks/batch.py)
BATCH_MAX_EVENTS: Final = 500
BATCH_MAX_BYTES: Final = 1024 * 1024

# -- the invocation, the spool, metrics, logs, the auto-subscribe function
TIME_RESERVE: Final = 2.0
SPOOL_PREFIX: Final = "hsmaudit/spool/"
METRICS: Final = True
METRICS_NAMESPACE: Final = "hsmaudit"
LOG_LEVEL: Final = "INFO"
SUBSCRIBE_FILTER_NAME: Final = "hsmaudit"
