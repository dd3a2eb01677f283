"""The independent HEC sink (`<repo>/../shared/tools/hec_sink.py`, written by another team), in-process.

Optional: CI lays it beside the checkout; `load_hec_sink()` skips the calling test when it is
absent (`tests/conftest.py`'s `require_hec_sink`). Only cross-checks use it (`start_sink`,
`start_hec[independent]` in `conftest.py`).
"""

from __future__ import annotations

import importlib.util
import json
import sys
import threading
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

from ..conftest import require_hec_sink
from .fault_hec import TOKEN, FaultHec


def load_hec_sink() -> ModuleType:
    """Import the independent sink by path (skips the test when it is absent)."""
    spec = importlib.util.spec_from_file_location("hec_sink", require_hec_sink())
    assert spec is not None and spec.loader is not None
    module = sys.modules.get("hec_sink")
    if module is None:
        module = importlib.util.module_from_spec(spec)
        sys.modules["hec_sink"] = module
        spec.loader.exec_module(module)
    return module


@dataclass
class SharedSink:
    """A running shared sink and the file of events it kept."""

    sink: Any
    kept: Path

    @property
    def url(self) -> str:
        return str(self.sink.url)

    def stats(self) -> dict[str, Any]:
        return dict(self.sink.stats())

    def events(self) -> list[dict[str, Any]]:
        if not self.kept.exists():
            return []
        return [json.loads(line) for line in self.kept.read_text(encoding="utf-8").splitlines() if line]


def start_shared_sink(kept: Path, **options: Any) -> SharedSink:
    """Start the shared sink on 127.0.0.1:0 with fault options, keeping its events in `kept`."""
    module = load_hec_sink()
    # The sink writes an answer's headers and body in two sends; with Nagle on, the body waits
    # for the client's delayed ACK (~40 ms a request). TCP_NODELAY on its side only (a subclass,
    # the shared module is untouched) keeps the tests fast without changing what it answers.
    nodelay_handler = type("NoDelayHandler", (module.Handler,), {"disable_nagle_algorithm": True})
    options.setdefault("token", TOKEN)
    args = module.build_parser().parse_args([])
    for key, value in {"port": 0, "keep_events": str(kept), **options}.items():
        setattr(args, key, value)
    server = module.SinkServer((args.host, args.port), nodelay_handler, args)
    # a short poll interval: shutdown() waits for it, and every test stops its sinks
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    return SharedSink(module.RunningSink(server, thread), kept)


HecServer = FaultHec | SharedSink
"""Either HEC: both have `url`, `stats()` (same counter names) and `events()`."""
