"""The delivery options `send` and `backfill` share (Typer options), and how their errors print.

The flags' values go to `ops.destination.DeliveryOptions`, which resolves them through
`hsmaudit.config` (flags > `HSMAUDIT_*` environment > config file > defaults) and picks the
destination: `--db PATH` (local store) or `--out FILE|-` (JSON lines), else HEC. Flags here carry
the names `config.SETTINGS` gives them; the HEC token has no flag on purpose (a flag shows in `ps`
and shell history): set `HSMAUDIT_HEC_TOKEN`, or a Secrets Manager / SSM reference.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Final

import typer

from hsmaudit.cli.output import fail
from hsmaudit.ops import destination as ops_destination
from hsmaudit.ops.destination import DeliveryOptions, Destination, DestinationChoiceError

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


DELIVERY_FLAGS: Final[tuple[tuple[str, Any, Any], ...]] = (
    ("db", Path | None, DB),
    ("out", str | None, OUT),
    ("hec_url", str | None, HEC_URL),
    ("index", str | None, INDEX),
    ("event_format", str | None, EVENT_FORMAT),
    ("sourcetype", str | None, SOURCETYPE),
    ("ack", bool | None, ACK),
    ("ca_bundle", Path | None, CA_BUNDLE),
    ("spool_dir", Path | None, SPOOL_DIR),
    ("raw", bool | None, RAW),
    ("config", Path | None, CONFIG),
)
"""The flags of `DeliveryOptions`, in the order `--help` lists them: (parameter, type, option)."""


class _DeliveryFlagsHere:
    """The default that marks where `with_delivery_flags` puts the delivery flags."""


DELIVERY: Any = _DeliveryFlagsHere()


def with_delivery_flags(command: Callable[..., None]) -> Callable[..., None]:
    """Give a Typer command every delivery flag in place of its `name: DeliveryOptions = DELIVERY`
    parameter, and call it with the flags' values as that one `DeliveryOptions`.

    Typer reads a command's options from its signature: without this, `send` and `backfill` would
    each declare the eleven flags and copy them into `DeliveryOptions` one by one.
    """
    signature = inspect.signature(command, eval_str=True)
    parameters: list[inspect.Parameter] = []
    target = ""
    for parameter in signature.parameters.values():
        if parameter.default is DELIVERY:
            target = parameter.name
            parameters += [
                inspect.Parameter(name, parameter.kind, default=option, annotation=annotation)
                for name, annotation, option in DELIVERY_FLAGS
            ]
        else:
            parameters.append(parameter)
    if not target:
        raise TypeError(f"{command.__name__} has no parameter defaulting to DELIVERY")

    @functools.wraps(command)
    def with_flags(**values: Any) -> None:
        flags = {name: values.pop(name) for name, _, _ in DELIVERY_FLAGS}
        command(**values, **{target: DeliveryOptions(**flags)})

    with_flags.__signature__ = signature.replace(parameters=parameters)  # type: ignore[attr-defined]
    with_flags.__annotations__ = {parameter.name: parameter.annotation for parameter in parameters}
    return with_flags


def check_stdout(out: str | None, json_summary: bool) -> None:
    """`--out -` and `--json` both want stdout: exit 2 before anything is read or sent."""
    if out == "-" and json_summary:
        fail("--out - and --json both want stdout; write the events to a file", 2)


def open_destination(options: DeliveryOptions) -> Destination:
    """`ops.destination.open_destination`, saying on stderr when TLS verification is off and when
    the circuit breaker opens."""
    return ops_destination.open_destination(options, on_unverified=say_unverified, on_block=say_blocked)


def say_unverified() -> None:
    """HSMAUDIT_HEC_VERIFY=false: said once here, not once per request by urllib3."""
    import urllib3

    from hsmaudit.cli.output import stderr_console

    urllib3.disable_warnings(urllib3.exceptions.InsecureRequestWarning)
    stderr_console().print(
        "hsmaudit: warning: TLS certificate verification of HEC is OFF (HSMAUDIT_HEC_VERIFY=false); "
        "trust the certificate with --ca-bundle instead",
        style="yellow",
        highlight=False,
    )


def say_blocked(reason: str) -> None:
    """The circuit breaker opened: say so when it happens, not only in the final summary."""
    from hsmaudit.cli.output import stderr_console

    stderr_console().print(
        f"hsmaudit: {reason}. Not retrying: the rest of this run goes straight to the spool",
        style="yellow",
        highlight=False,
        soft_wrap=True,
    )


@contextmanager
def delivery_errors() -> Iterator[None]:
    """One line and a non-zero exit for configuration, HEC, spool and store errors (exit 2 when
    the options name two destinations)."""
    from hsmaudit.cli.output import one_line_errors
    from hsmaudit.config import ConfigError
    from hsmaudit.sinks.errors import SinkError
    from hsmaudit.store.errors import StoreError

    with one_line_errors(ConfigError, SinkError, StoreError, ValueError):
        try:
            yield
        except DestinationChoiceError as error:  # a ValueError, but a usage error: exit 2
            fail(str(error), 2)
