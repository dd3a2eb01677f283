"""`hsmaudit splunk-app`: the Splunk app as an uploadable package.

`hsmaudit splunk-app build` writes `hsmaudit-<version>.tgz` (top directory `hsmaudit/`), ready for
Splunk Web's "Install app from file", `splunk install app`, or Splunk Cloud's private-app upload.
"""

from __future__ import annotations

import json
from pathlib import Path

import typer

from hsmaudit.cli.output import OutputFormat, one_line_errors, stdout_console
from hsmaudit.splunk.errors import SplunkAppError

splunk_app = typer.Typer(
    name="splunk-app",
    help="The hsmaudit Splunk app: dashboards, CIM mapping, alerts. See docs/splunk-app.md.",
    no_args_is_help=True,
)


@splunk_app.command("build")
def build(
    output: Path = typer.Option(
        Path("dist"),
        "--output",
        "-o",
        file_okay=False,
        help="Directory to write hsmaudit-<version>.tgz into (created if missing).",
    ),
    source: Path | None = typer.Option(
        None,
        "--source",
        exists=True,
        file_okay=False,
        help="Build from this app source tree instead of the one installed with hsmaudit.",
    ),
    output_format: OutputFormat = typer.Option(
        OutputFormat.jsonl,
        "--format",
        "-f",
        help="jsonl: one JSON line for machines; table: a summary for people.",
    ),
) -> None:
    """Build the Splunk app package hsmaudit-<version>.tgz (the app id is 'hsmaudit').

    The package is reproducible (the same sources give the same bytes; SOURCE_DATE_EPOCH sets the
    file times) and has what AppInspect expects: one top directory, no hidden or local files.
    Prints the path, version, file count, size and sha256.
    """
    from hsmaudit.splunk.package import build_app

    with one_line_errors(SplunkAppError):
        built = build_app(output, source=source)
    if output_format is OutputFormat.table:
        stdout_console().print(
            f"[bold]{built.path}[/bold]  version {built.version}, {built.files} files, "
            f"{built.size} bytes, sha256 {built.sha256}",
            highlight=False,
        )
        return
    record = {
        "path": str(built.path),
        "version": built.version,
        "files": built.files,
        "bytes": built.size,
        "sha256": built.sha256,
    }
    typer.echo(json.dumps(record, separators=(",", ":")))


def register(app: typer.Typer) -> None:
    """Add the `splunk-app` command group to the hsmaudit CLI."""
    app.add_typer(splunk_app)
