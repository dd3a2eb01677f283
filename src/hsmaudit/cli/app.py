"""The `hsmaudit` command: one Typer app, one module per command group.

Each command module exposes `register(app)`; this module only assembles them, so adding a
command is one new module and one line in `COMMAND_MODULES`.
"""

from __future__ import annotations

import importlib
from typing import Final

import typer

from hsmaudit import __version__

COMMAND_MODULES: Final[tuple[str, ...]] = (
    "parse",
    "package",
    "backfill",
    "send",
    "doctor",
    "tail",
    "detect",
    "replay",
    "splunk_app",
    "serve",
    "simulate",
    "demo",
    "report",
)

app = typer.Typer(
    name="hsmaudit",
    help="Ship AWS CloudHSM audit logs to Splunk HEC (or a local store) and watch them for critical events.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode="rich",
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"hsmaudit {__version__}")
        raise typer.Exit


@app.callback()
def _root(
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Print the version and exit."
    ),
) -> None:
    """hsmaudit: CloudHSM audit logs, parsed, checked and delivered without loss."""


for _name in COMMAND_MODULES:
    importlib.import_module(f"hsmaudit.cli.{_name}").register(app)


def main() -> None:
    """Console-script entry point."""
    app()
