"""`FaultHec`: the HEC of our own that every delivery test runs against, and its tokens.

It answers as HEC does (token required, gzip, channels and acks, health) and makes the faults tests
need: every Nth request or the first N fail, latency, 429 with Retry-After, slow answers past the
client's timeout, connection resets, `invalid-event-number` mid-batch, acks that never or only
later arrive. It records the exact bytes of every line it accepted, so tests count events and
compare them byte for byte, and keeps the counters tests assert on (`stats()`, named as the
independent sink names them). Fixtures in `conftest.py` start and stop it.
"""

from __future__ import annotations

import gzip
import json
import socket
import ssl
import struct
import threading
import time
from collections import Counter
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

TOKEN = "tok-7c1f2b9e-SECRET-4d1a"
"""A token distinctive enough that any leak into logs or output is found by a substring search."""
OTHER_TOKEN = "tok-0a9b8c7d-ROTATED-5e6f"
CLI_TOKEN = "test-token"
"""The token the CLI tests' HEC accepts (not a secret; tests assert it is never printed)."""


Action = Any  # "ok" | "reset" | ("status", http, body, headers) | ("sleep", seconds)


class FaultHec:
    """An HEC whose answers a test scripts request by request.

    `script` holds one action per event POST (then `default`): `"ok"`; `"reset"` (close the
    socket with RST, no answer); `("sleep", s)` (answer nothing for s seconds, then close);
    `("status", http, body, headers)`. `poison` makes the server behave as HEC does for a bad
    event: accept the events before it, answer 400 with `invalid-event-number`. `ack` is
    `"instant"`, `"never"` or an int (polls before an ackId is reported indexed).

    `fail_every`/`fail_first` answer every Nth or the first N event POSTs with `fail_status`
    (503: "Server is busy", code 9, retryable) after reading them, as a busy indexer does;
    `latency` delays every event POST's answer by that many seconds. The attributes may change
    while the server runs.
    """

    def __init__(
        self,
        *,
        token: str = TOKEN,
        ssl_context: ssl.SSLContext | None = None,
        fail_every: int = 0,
        fail_first: int = 0,
        fail_status: int = 503,
        latency: float = 0.0,
    ) -> None:
        self.token = token
        self.fail_every = fail_every
        self.fail_first = fail_first
        self.fail_status = fail_status
        self.latency = latency
        self.counters: Counter[str] = Counter()
        self.script: list[Action] = []
        self.default: Action = "ok"
        self.poison: Callable[[dict[str, Any]], bool] | None = None
        self.ack: str | int = "instant"
        self.lock = threading.Lock()
        self.accepted: list[bytes] = []
        self.requests = 0
        self.ack_polls = 0
        self.channels: set[str] = set()
        self._next_ack = 0
        self._ack_polls_seen: dict[int, int] = {}
        self._acked_pending: set[int] = set()
        fault = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True  # see shared_sink.start_shared_sink: no 40 ms delayed-ACK stalls

            def setup(self) -> None:
                super().setup()
                with fault.lock:
                    fault.counters["connections"] += 1

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                if self.path.startswith("/services/collector/health"):
                    self._answer(200, {"text": "HEC is healthy", "code": 17})
                else:
                    self._answer(
                        404, {"text": "The requested URL was not found on this server.", "code": 404}
                    )

            def _answer(
                self, status: int, body: dict[str, Any], headers: dict[str, str] | None = None
            ) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                for key, value in (headers or {}).items():
                    self.send_header(key, value)
                self.end_headers()
                self.wfile.write(data)

            def do_POST(self) -> None:
                raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                is_ack = self.path.startswith("/services/collector/ack")
                if not is_ack:
                    with fault.lock:  # every event POST counts, refused ones too (as in the sink)
                        fault.requests += 1
                authorization = self.headers.get("Authorization")
                if not authorization:
                    self._answer(401, {"text": "Token is required", "code": 2})
                    return
                if authorization != f"Splunk {fault.token}":
                    with fault.lock:
                        fault.counters["auth_failures"] += 1
                    self._answer(403, {"text": "Invalid token", "code": 4})
                    return
                channel = self.headers.get("X-Splunk-Request-Channel")
                if is_ack:
                    self._answer(200, {"acks": fault._ack_answer(json.loads(raw)["acks"])})
                    return
                gzipped = self.headers.get("Content-Encoding") == "gzip"
                body = gzip.decompress(raw) if gzipped else raw
                if not body.strip():
                    self._answer(400, {"text": "No data", "code": 5})
                    return
                lines = body.split(b"\n")
                action = fault._next_action(channel, gzipped=gzipped)
                if fault.latency:
                    time.sleep(fault.latency)
                if action == "reset":
                    self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                    self.close_connection = True
                    self.connection.close()
                    return
                if isinstance(action, tuple) and action[0] == "sleep":
                    time.sleep(action[1])
                    self.close_connection = True
                    return
                if isinstance(action, tuple) and action[0] == "status":
                    _, status, answer, headers = action
                    self._answer(status, answer, headers)
                    return
                if fault.poison is not None:
                    for index, line in enumerate(lines):
                        if fault.poison(json.loads(line)):
                            with fault.lock:
                                fault.accepted.extend(lines[:index])
                            self._answer(
                                400, {"text": "Invalid data format", "code": 6, "invalid-event-number": index}
                            )
                            return
                problem = fault._invalid_event(lines)
                if problem is not None:
                    self._answer(400, problem)
                    return
                answer: dict[str, Any] = {"text": "Success", "code": 0}
                with fault.lock:
                    fault.accepted.extend(lines)
                    if channel:
                        answer["ackId"] = fault._next_ack
                        fault._next_ack += 1
                        fault.counters["acks_issued"] += 1
                self._answer(200, answer)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        scheme = "http"
        if ssl_context is not None:
            self.server.socket = ssl_context.wrap_socket(self.server.socket, server_side=True)
            scheme = "https"
        self.thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self.thread.start()
        self.url = f"{scheme}://127.0.0.1:{self.server.server_address[1]}"

    def _next_action(self, channel: str | None, *, gzipped: bool) -> Action:
        """The scripted answer to this event POST; an injected failure first when one is due."""
        with self.lock:
            self.counters["gzip_requests"] += gzipped
            if channel:
                self.channels.add(channel)
            action = self.script.pop(0) if self.script else self.default
            due = (self.fail_first and self.requests <= self.fail_first) or (
                self.fail_every and self.requests % self.fail_every == 0
            )
            if not due:
                return action
            self.counters["injected_failures"] += 1
        text, code = ("Server is busy", 9) if self.fail_status == 503 else ("Internal server error", 8)
        return ("status", self.fail_status, {"text": text, "code": code}, {})

    @staticmethod
    def _invalid_event(lines: list[bytes]) -> dict[str, Any] | None:
        """HEC's 400 answer for the first line that is not an event object, or None."""
        for index, line in enumerate(lines):
            try:
                event = json.loads(line)
            except ValueError:
                return {"text": "Invalid data format", "code": 6, "invalid-event-number": index}
            if not isinstance(event, dict) or "event" not in event:
                return {"text": "Event field is required", "code": 12, "invalid-event-number": index}
            if event["event"] in (None, ""):
                return {"text": "Event field cannot be blank", "code": 13, "invalid-event-number": index}
        return None

    def _ack_answer(self, ids: list[int]) -> dict[str, bool]:
        with self.lock:
            self.ack_polls += 1
            out = {}
            for ack_id in ids:
                seen = self._ack_polls_seen.get(ack_id, 0) + 1
                self._ack_polls_seen[ack_id] = seen
                if self.ack == "never":
                    out[str(ack_id)] = False
                elif self.ack == "instant":
                    out[str(ack_id)] = True
                else:
                    out[str(ack_id)] = seen > int(self.ack)
            return out

    def events(self) -> list[dict[str, Any]]:
        """Accepted envelopes, decoded."""
        with self.lock:
            return [json.loads(line) for line in self.accepted]

    def stats(self) -> dict[str, int]:
        """The counters tests assert on, named as the independent sink names them."""
        with self.lock:
            return {
                "connections": self.counters["connections"],
                "requests": self.requests,
                "events": len(self.accepted),
                "gzip_requests": self.counters["gzip_requests"],
                "injected_failures": self.counters["injected_failures"],
                "auth_failures": self.counters["auth_failures"],
                "acks_issued": self.counters["acks_issued"],
            }

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def closed_port_url() -> str:
    """An http URL on 127.0.0.1 where nothing listens (HEC down)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return f"http://127.0.0.1:{port}"
