"""The real local collector (`hsmaudit serve`'s app) over a store, on 127.0.0.1:0, for tests.

The integration tests post HEC requests to it (the `collector` fixture in
`integration/conftest.py`, or `start_collector()` for their own settings); the browser tests look
at its dashboard over a filled store (`serve_store()`, the `dashboard` fixture). Server modules
are imported here, so a tier pays for Starlette only when it starts a collector.
"""

from __future__ import annotations

import gzip
import json
import sqlite3
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import urllib3

from hsmaudit.server.app import CollectorSettings, create_app
from hsmaudit.server.run import RunningServer, start_in_thread
from hsmaudit.store.database import EventStore

TOKEN = "collector-test-token-SECRET-91f3"
HTTP = urllib3.PoolManager(retries=False, timeout=15)


@dataclass
class Collector:
    """A running collector and its store file."""

    server: RunningServer
    store: EventStore
    db: Path

    @property
    def url(self) -> str:
        return self.server.url

    def post(
        self,
        path: str,
        body: bytes | str,
        *,
        token: str | None = TOKEN,
        headers: dict[str, str] | None = None,
        gzip_body: bool = False,
    ) -> tuple[int, dict[str, Any]]:
        data = body.encode() if isinstance(body, str) else body
        sent = dict(headers or {})
        if token is not None:
            sent.setdefault("Authorization", f"Splunk {token}")
        if gzip_body:
            data = gzip.compress(data)
            sent["Content-Encoding"] = "gzip"
        response = HTTP.request("POST", self.url + path, body=data, headers=sent)
        return response.status, json.loads(response.data)

    def api(self, path: str) -> dict[str, object]:
        """GET a dashboard API path; it must answer 200 with a JSON object."""
        response = urllib3.request("GET", self.url + path, timeout=10)
        assert response.status == 200
        data: dict[str, object] = json.loads(response.data)
        return data

    def count(self) -> int:
        with sqlite3.connect(self.db) as connection:
            return int(connection.execute("SELECT count(*) FROM events").fetchone()[0])

    def stop(self) -> None:
        """Stop the server, then close the store."""
        self.server.stop()
        self.store.close()


def serve_store(store: EventStore, db: Path, *, token: str = TOKEN, **settings: Any) -> Collector:
    """Start the collector over an open store (already filled, for the dashboard)."""
    server = start_in_thread(create_app(store, CollectorSettings(token=token, **settings)))
    return Collector(server=server, store=store, db=db)


def start_collector(tmp_path: Path, **settings: Any) -> Collector:
    """The collector over a fresh store in `tmp_path`, accepting `TOKEN`."""
    db = tmp_path / "collector.sqlite3"
    return serve_store(EventStore(db), db, **settings)
