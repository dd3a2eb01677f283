"""The `hsmaudit` command: one Typer app, one module per command group.

Each command module exposes `register(app)`; this module only assembles them, so adding a
command is one new module and one line in `COMMAND_MODULES`.
"""

from __future__ import annotations

import importlib
from typing import Any, Final

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


_VALUE_LABELS: Final[dict[str, str]] = {
    "str": "TEXT",
    "list[str]": "TEXT",
    "path": "PATH",
    "file": "FILE",
    "dir": "DIR",
    "int": "INTEGER",
    "int range": "INTEGER",
    "float": "NUMBER",
    "float range": "NUMBER",
}


def _plain_metavars(command: Any) -> None:
    """Help without Typer's type noise: a flag shows no `<bool>`, a value a word (`TEXT`, `PATH`,
    `[jsonl|table]`), an argument only its name. Metavars a command sets itself are kept."""
    for param in getattr(command, "params", ()):
        if param.param_type_name == "argument":
            if param.metavar is None:
                param.metavar = param.name.upper()
            # its name is its label: no type column beside it
            setattr(param, "display_type_rich", lambda ctx: None)  # noqa: B010 (an instance override)
            continue
        # "[1<=x<=10000]" beside the type squeezes the help into a sliver at 80 columns; the help
        # says the limits where they matter, and a value outside them is refused with the range.
        setattr(param, "_get_number_range_help_str", lambda: None)  # noqa: B010 (an instance override)
        if param.metavar is not None:
            continue
        if getattr(param, "is_flag", False):
            param.metavar = ""
            continue
        label = str(param.display_type_rich(None)).strip("<>")
        param.metavar = _VALUE_LABELS.get(label, f"[{label}]" if "|" in label else label.upper())
    get_help_option = getattr(command, "get_help_option", None)
    if get_help_option is not None:
        # --help is made per invocation, not declared: tidy it as it is made
        def help_option(ctx: Any, made: Any = get_help_option) -> Any:
            option = made(ctx)
            if option is not None:
                option.metavar = ""
            return option

        setattr(command, "get_help_option", help_option)  # noqa: B010 (an instance override)
    for sub in getattr(command, "commands", {}).values():
        _plain_metavars(sub)


def reflow(text: str) -> str:
    """Each paragraph of a help text as one line. Typer's Rich help keeps a docstring's line
    breaks, so a paragraph wrapped at 100 columns in the source printed ragged at 80 (a line of
    one word, then a full one). Paragraphs that are lists (`- `, `* `) or start with `\\b` keep
    their lines; text after `\\f` (hidden from help) is left as it is."""
    shown, cut, hidden = text.partition("\f")

    def join(paragraph: str) -> str:
        lines = paragraph.splitlines()
        if paragraph.startswith("\b") or any(line.lstrip().startswith(("- ", "* ")) for line in lines):
            return paragraph
        return " ".join(line.strip() for line in lines if line.strip())

    return "\n\n".join(join(paragraph) for paragraph in shown.split("\n\n")) + cut + hidden


def _reflow_help(command: Any) -> None:
    """Reflow the help of `command` and of every subcommand (see `reflow`)."""
    if getattr(command, "help", None):
        command.help = reflow(command.help)
    for sub in getattr(command, "commands", {}).values():
        _reflow_help(sub)


def main() -> None:
    """Console-script entry point."""
    command = typer.main.get_command(app)
    _plain_metavars(command)
    _reflow_help(command)
    command()
