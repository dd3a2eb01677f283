"""Running the local server under uvicorn: in the foreground (`hsmaudit serve`) or in a thread
(`hsmaudit demo`, tests).

uvicorn's access log is off: request lines are not needed locally, and a sender that puts its
token in the URL (which the collector refuses) must not have it written to a log.
"""

from __future__ import annotations

import ipaddress
import threading
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

import uvicorn

if TYPE_CHECKING:
    from starlette.applications import Starlette

LOOPBACK_NAMES = frozenset({"localhost", "ip6-localhost"})


def is_loopback(host: str) -> bool:
    """True for 127.0.0.0/8, ::1 and localhost: addresses no other machine can reach."""
    if host in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _config(app: Starlette, host: str, port: int, log_level: str) -> uvicorn.Config:
    return uvicorn.Config(
        app,
        host=host,
        port=port,
        log_level=log_level,
        access_log=False,
        lifespan="on",
        server_header=False,
        timeout_graceful_shutdown=5,
    )


def serve_forever(app: Starlette, host: str, port: int, *, log_level: str = "warning") -> None:
    """Run until Ctrl-C / SIGTERM (uvicorn handles the signals and shuts down cleanly)."""
    uvicorn.Server(_config(app, host, port, log_level)).run()


@dataclass
class RunningServer:
    """A server running in a background thread; `url` is its base URL (`http://127.0.0.1:PORT`)."""

    server: uvicorn.Server
    thread: threading.Thread
    host: str
    port: int

    @property
    def url(self) -> str:
        """Base URL, with IPv6 hosts in brackets."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    def stop(self) -> None:
        """Ask uvicorn to exit and wait for it (the app's shutdown commits queued writes)."""
        self.server.should_exit = True
        self.thread.join(timeout=15)


def start_in_thread(
    app: Starlette,
    host: str = "127.0.0.1",
    port: int = 0,
    *,
    log_level: str = "warning",
    timeout: float = 15.0,
) -> RunningServer:
    """Start uvicorn in a daemon thread and wait until it listens; port 0 picks a free port."""
    server = uvicorn.Server(_config(app, host, port, log_level))
    # uvicorn installs signal handlers only from the main thread, so a thread is safe here.
    thread = threading.Thread(target=server.run, name="hsmaudit-server", daemon=True)
    thread.start()
    deadline = time.monotonic() + timeout
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError(f"the local server did not start on {host}:{port}")
        time.sleep(0.01)
    sockets = [sock for srv in server.servers for sock in srv.sockets]
    bound_port = sockets[0].getsockname()[1] if sockets else port
    return RunningServer(server=server, thread=thread, host=host, port=bound_port)
