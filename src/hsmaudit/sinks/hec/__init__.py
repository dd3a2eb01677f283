"""HEC delivery: events -> Splunk HTTP Event Collector, with nothing lost silently.

One concept per module, in the order a record meets them:

- `envelope`: an `HsmEvent` -> one HEC line (`to_hec_event`, `EventEncoder`, the formats).
- `client`: `HecClient` batches, gzips and POSTs lines, retries, polls acks, spools what HEC refuses.
- `policy`: `ConnectionPolicy`, `RetryPolicy`, `AckPolicy`, `BatchPolicy`, the client's settings as values.
- `answers`: an HEC answer (status + JSON body) -> the ackId or the matching `HecError`.
- `report`: `DeliveryReport`, what became of every line of one send.
- `token`: where the token comes from (`TokenProvider`, `StaticToken`).
- `url`: a HEC URL -> origin, event path, ack path.
- `proxy`: the urllib3 `ProxyManager` for an HEC proxy URL.

Import each name from its module (`from hsmaudit.sinks.hec.client import HecClient`): this file
runs for every import of a submodule, on the Lambda's cold start too, so it imports none of them, and
`import hsmaudit.sinks.hec.answers` (the collector's and doctor's table of HEC codes) loads no HEC
client and no urllib3. The names once re-exported from here still resolve, lazily (module
`__getattr__`, PEP 562), for code outside this repository; mypy types them `Any` and the Lambda
package builder (`ops/package.py`) does not follow them, so no module of ours uses them (a test
checks).
"""

from __future__ import annotations

from typing import Any, Final

_NAMES: Final = {
    "answers": "INDEX_CODE RETRYABLE_CODES TOKEN_CODES classify_answer",
    "client": "HELD_BYTES_LIMIT MAX_EVENT_BYTES HecClient",
    "envelope": "CLOUDTRAIL_SOURCETYPE DEFAULT_EVENT_FORMAT DEFAULT_SOURCETYPE EVENT_FORMATS INDEXED_FIELDS "
    "JSON_SOURCETYPE ORIGIN_FIELDS SOURCETYPES TEXT_SOURCETYPE EventEncoder EventFormat event_host hec_time "
    "to_hec_event",
    "policy": "AckPolicy BatchPolicy ConnectionPolicy RetryPolicy",
    "report": "DeliveryReport FailedBatch SpooledBatch",
    "token": "StaticToken TokenProvider",
    "url": "ACK_PATH EVENT_PATH event_url",
}
"""Each submodule and the names once re-exported from it (text: this file is compiled on every
Lambda cold start without bytecode, so it stays short to compile)."""

_MODULE_OF: Final = {name: module for module, names in _NAMES.items() for name in names.split()}


def __getattr__(name: str) -> Any:
    """Import a re-exported name's submodule on first use, and keep the name here."""
    if name not in _MODULE_OF:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    from importlib import import_module

    value = getattr(import_module(f"{__name__}.{_MODULE_OF[name]}"), name)
    globals()[name] = value
    return value
