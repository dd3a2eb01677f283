"""`hsmaudit serve`: the local HEC-compatible collector and dashboard (contracts.md §3).

Binds 127.0.0.1 unless told otherwise (and warns when told otherwise). The token comes from
`--token`, else `HSMAUDIT_HEC_TOKEN`; without either, a fresh one is generated and printed once,
at startup, to the operator's terminal. It is never written to a log.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Final

import typer

from hsmaudit.cli.output import fail, one_line_errors, stderr_console
from hsmaudit.config import HSMAUDIT_DB, HSMAUDIT_HEC_TOKEN

DEFAULT_DB: Final = Path(".hsmaudit") / "hsmaudit.sqlite3"

DB_HELP: Final = f"SQLite store file (created if missing). Env: {HSMAUDIT_DB}."


def resolve_token(token: str | None) -> tuple[str, bool]:
    """(token, generated?): the flag, else `HSMAUDIT_HEC_TOKEN`, else a new GUID."""
    from hsmaudit.server.hec import new_token

    if token:
        return token, False
    from_env = os.environ.get(HSMAUDIT_HEC_TOKEN)
    if from_env:
        return from_env, False
    return new_token(), True


def warn_if_exposed(host: str) -> None:
    """Say so when the server is reachable from other machines."""
    from hsmaudit.server.run import is_loopback

    if not is_loopback(host):
        stderr_console().print(
            f"hsmaudit: warning: listening on {host}, reachable from other machines over plain HTTP; "
            "anyone with the token can write audit events, anyone who can connect can read the dashboard",
            style="bold yellow",
            highlight=False,
        )


def check_port_free(host: str, port: int) -> None:
    """Fail with one line when the address is taken (uvicorn would log a traceback-like error)."""
    import socket

    if port == 0:
        return
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as error:
            fail(f"cannot listen on {host}:{port}: {error.strerror or error}; choose another --port")


def register(app: typer.Typer) -> None:
    """Add `serve` to the app."""

    @app.command("serve")
    def serve(
        host: str = typer.Option("127.0.0.1", "--host", help="Address to listen on (loopback by default)."),
        port: int = typer.Option(
            8088, "--port", min=0, max=65535, help="Port (8088 is Splunk HEC's; 0 picks one)."
        ),
        db: Path = typer.Option(DEFAULT_DB, "--db", envvar=HSMAUDIT_DB, help=DB_HELP),
        token: str | None = typer.Option(
            None,
            "--token",
            help=f"HEC token senders must present. Env: {HSMAUDIT_HEC_TOKEN}. Else generated, shown once.",
            show_default=False,
        ),
        max_content_length: int = typer.Option(
            32 * 1024 * 1024,
            "--max-content-length",
            min=1024,
            help="Largest request body (decompressed), bytes.",
        ),
        max_concurrent_decodes: int = typer.Option(
            2,
            "--max-concurrent-decodes",
            min=1,
            help="Requests decompressed and decoded at once (worker threads); others wait.",
        ),
        ack: bool = typer.Option(
            True, "--ack/--no-ack", help="Indexer acknowledgement for requests with a channel."
        ),
        detect: bool = typer.Option(
            True, "--detect/--no-detect", help="Run the detections on stored events."
        ),
        synchronous: str = typer.Option(
            "full",
            "--synchronous",
            help="SQLite fsync policy: 'full' (an acknowledged event survives power loss) or 'normal' "
            "(survives a crash of hsmaudit, not of the machine; faster).",
        ),
    ) -> None:
        """Run the local HEC-compatible collector and dashboard: send events to it like to Splunk.

        HEC endpoints under /services/collector (event, raw, health, ack); the dashboard at /;
        the numbers as JSON at /api/summary. Events are committed to the SQLite store before the
        collector answers success. Stop with Ctrl-C.
        """
        from hsmaudit.server.app import CollectorSettings, allowed_hosts_for, create_app
        from hsmaudit.server.detections import DetectionTailer
        from hsmaudit.server.run import serve_forever
        from hsmaudit.store.database import EventStore
        from hsmaudit.store.errors import StoreError

        secret, generated = resolve_token(token)
        warn_if_exposed(host)
        check_port_free(host, port)
        mode = synchronous.strip().upper()
        if mode not in ("FULL", "NORMAL"):
            fail("--synchronous must be 'full' or 'normal'", 2)
        with one_line_errors(StoreError, OSError):
            store = EventStore(db, synchronous="FULL" if mode == "FULL" else "NORMAL")
        app_ = create_app(
            store,
            CollectorSettings(
                token=secret,
                max_content_length=max_content_length,
                ack=ack,
                max_concurrent_decodes=max_concurrent_decodes,
            ),
            allowed_hosts=allowed_hosts_for(host),
        )
        tailer = DetectionTailer(store) if detect else None
        shown = f"[{host}]" if ":" in host else host
        console = stderr_console()
        console.print(f"hsmaudit: store {db}", highlight=False)
        console.print(f"hsmaudit: dashboard  http://{shown}:{port}/", highlight=False)
        console.print(f"hsmaudit: HEC        http://{shown}:{port}/services/collector/event", highlight=False)
        if generated:
            # Shown once, to the operator who started the server; never logged.
            console.print(
                f"hsmaudit: HEC token  {secret}  (generated; keep one with --token or {HSMAUDIT_HEC_TOKEN})",
                highlight=False,
            )
        sys.stderr.flush()
        if tailer is not None:
            tailer.start()
        try:
            serve_forever(app_, host, port)
        except OSError as error:
            fail(f"cannot listen on {host}:{port}: {error.strerror or error}")
        finally:
            if tailer is not None:
                tailer.stop()
            store.close()
