"""The delivery options `send` and `backfill` share, resolved through `hsmaudit.config`.

Precedence is config.py's: flags > `HSMAUDIT_*` environment > config file > defaults, the same
for every command and the Lambda. Flags here carry the names `config.SETTINGS` gives them; the
HEC token has no flag on purpose (a flag shows in `ps` and shell history): set
`HSMAUDIT_HEC_TOKEN`, or a Secrets Manager / SSM reference.

Destination choice: `--db PATH` (local store) or `--out FILE|-` (JSON lines), else HEC.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

from hsmaudit.cli.output import fail
from hsmaudit.ops.destination import Destination, HecDestination, JsonlDestination, StoreDestination

if TYPE_CHECKING:
    from hsmaudit.config import Settings
    from hsmaudit.sinks.hec import HecClient, TokenProvider

REGION: Any = typer.Option(
    None, "--region", help="AWS Region (default: AWS_REGION, else AWS_DEFAULT_REGION, else your profile's)."
)
PROFILE: Any = typer.Option(None, "--profile", help="AWS profile from ~/.aws/config (default: AWS_PROFILE).")
DB: Any = typer.Option(
    None, "--db", help="Write into this local SQLite store instead of HEC (created if missing)."
)
OUT: Any = typer.Option(
    None, "--out", help="Write JSON lines (one event each) to this file ('-': stdout) instead of HEC."
)
HEC_URL: Any = typer.Option(
    None,
    "--hec-url",
    help="HEC URL (env HSMAUDIT_HEC_URL). The token comes from HSMAUDIT_HEC_TOKEN or a secret store.",
)
INDEX: Any = typer.Option(
    None, "--index", help="Splunk index (env HSMAUDIT_HEC_INDEX; default: the token's)."
)
EVENT_FORMAT: Any = typer.Option(
    None,
    "--event-format",
    help="HEC event format: lean (the record text, licence = the logs' size; default) or json "
    "(env HSMAUDIT_EVENT_FORMAT).",
)
SOURCETYPE: Any = typer.Option(
    None,
    "--sourcetype",
    help="Splunk sourcetype (env HSMAUDIT_HEC_SOURCETYPE; default aws:cloudhsm:audit:text for lean, "
    "aws:cloudhsm:audit for json).",
)
ACK: Any = typer.Option(
    None,
    "--ack/--no-ack",
    help="Wait for indexer acknowledgement (env HSMAUDIT_HEC_ACK; the token must have it on).",
)
CA_BUNDLE: Any = typer.Option(
    None,
    "--ca-bundle",
    help="PEM file of CAs to trust for HEC, e.g. for a self-signed Splunk (env HSMAUDIT_HEC_CA_BUNDLE).",
)
SPOOL_DIR: Any = typer.Option(
    None, "--spool-dir", help="Keep what HEC refuses here for 'hsmaudit replay' (env HSMAUDIT_SPOOL_DIR)."
)
RAW: Any = typer.Option(
    None,
    "--raw/--no-raw",
    help="json format and --out: include each record's raw text (env HSMAUDIT_INCLUDE_RAW).",
)
CONFIG: Any = typer.Option(
    None,
    "--config",
    help="Config file (TOML; default: HSMAUDIT_CONFIG, else config.toml in ~/.config/hsmaudit).",
)


@dataclass(frozen=True)
class DeliveryOptions:
    """The delivery flags as given (None: not given, so environment or config file decide)."""

    db: Path | None = None
    out: str | None = None
    hec_url: str | None = None
    index: str | None = None
    event_format: str | None = None
    sourcetype: str | None = None
    ack: bool | None = None
    ca_bundle: Path | None = None
    spool_dir: Path | None = None
    raw: bool | None = None
    config: Path | None = None

    def flags(self) -> dict[str, Any]:
        """Setting name -> flag value, for `config.load_settings`."""
        return {
            "hec_url": self.hec_url,
            "hec_index": self.index,
            "event_format": self.event_format,
            "hec_sourcetype": self.sourcetype,
            "hec_ack": self.ack,
            "hec_ca_bundle": str(self.ca_bundle) if self.ca_bundle is not None else None,
            "spool_dir": str(self.spool_dir) if self.spool_dir is not None else None,
            "include_raw": self.raw,
        }


def resolve_settings(options: DeliveryOptions) -> Settings:
    """Settings with the one precedence: flags > environment > config file > defaults."""
    from hsmaudit.config import load_settings

    return load_settings(options.flags(), config_path=str(options.config) if options.config else None)


def token_provider(settings: Settings) -> TokenProvider:
    """Where the HEC token comes from, exactly as the Lambda resolves it (secret store first)."""
    from hsmaudit.aws.runtime import token_provider as lambda_token_provider

    return lambda_token_provider(settings)


def hec_client(settings: Settings) -> HecClient:
    """The Lambda's `HecClient`, built by the Lambda's own factory from the resolved settings."""
    from hsmaudit.aws.runtime import build_client
    from hsmaudit.config import ConfigError

    if not settings.hec_url:
        raise ConfigError("no HEC URL: give --hec-url or set HSMAUDIT_HEC_URL (or use --db / --out)")
    return build_client(settings)


def destination_key(options: DeliveryOptions) -> str:
    """What the options deliver to, as a stable string for backfill's checkpoint.

    `hec <origin><path> index=<index>` (the index is part of it: another index is another
    place), `db <absolute path>`, `out <absolute path>` (`out -` for stdout). Nothing is opened.
    """
    if options.db is not None:
        return f"db {options.db.expanduser().resolve()}"
    if options.out is not None:
        return "out -" if options.out == "-" else f"out {Path(options.out).expanduser().resolve()}"
    settings = resolve_settings(options)
    if not settings.hec_url:
        return "hec (no URL)"
    from urllib.parse import urlsplit

    from hsmaudit.sinks.hec import event_url

    try:
        origin, path, _ = event_url(settings.hec_url)
        parts = urlsplit(origin)
        port = parts.port
    except ValueError:
        return "hec (invalid URL)"
    # host and port only: credentials in the URL must not end up in a checkpoint file
    where = f"{parts.scheme}://{parts.hostname}" + (f":{port}" if port else "")
    return f"hec {where}{path} index={settings.hec_index or '(the token default)'}"


def open_destination(options: DeliveryOptions) -> Destination:
    """The destination the options name: --db, --out, or HEC (with the configured spool)."""
    if options.db is not None and options.out is not None:
        fail("give either --db or --out, not both", 2)
    settings = resolve_settings(options)
    if options.db is not None:
        from hsmaudit.store.database import EventStore

        return StoreDestination(EventStore(options.db), str(options.db))
    if options.out is not None:
        return JsonlDestination(options.out, include_raw=settings.include_raw)
    quiet_library_logs()
    if not settings.hec_verify:
        import urllib3

        from hsmaudit.cli.output import stderr_console

        # Said once below, not once per request by urllib3.
        urllib3.disable_warnings(urllib3.exceptions.InsecureRequestWarning)

        stderr_console().print(
            "hsmaudit: warning: TLS certificate verification of HEC is OFF (HSMAUDIT_HEC_VERIFY=false); "
            "trust the certificate with --ca-bundle instead",
            style="yellow",
            highlight=False,
        )
    client = hec_client(settings)
    spool = None
    if settings.spool_location:
        from hsmaudit.aws.spools import open_spool

        spool = open_spool(settings.spool_location)
    return HecDestination(client, spool=spool, on_block=say_blocked)


def say_blocked(reason: str) -> None:
    """The circuit breaker opened: say so when it happens, not only in the final summary."""
    from hsmaudit.cli.output import stderr_console

    stderr_console().print(
        f"hsmaudit: {reason}. Not retrying: the rest of this run goes straight to the spool",
        style="yellow",
        highlight=False,
        soft_wrap=True,
    )


def quiet_library_logs() -> None:
    """The HEC client logs for the Lambda (CloudWatch); on a terminal the summary says it all.

    Without a handler, Python's last-resort handler would print those records on stderr next to
    the command's own one-line error.
    """
    import logging

    library = logging.getLogger("hsmaudit")
    if not library.handlers:
        library.addHandler(logging.NullHandler())
        library.propagate = False


@contextmanager
def delivery_errors() -> Iterator[None]:
    """One line and a non-zero exit for configuration, HEC, spool and store errors."""
    from hsmaudit.cli.output import one_line_errors
    from hsmaudit.config import ConfigError
    from hsmaudit.sinks.errors import SinkError
    from hsmaudit.store.errors import StoreError

    with one_line_errors(ConfigError, SinkError, StoreError, ValueError):
        yield
