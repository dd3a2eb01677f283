"""`hsmaudit package`: build the Lambda deployment zip, reproducibly.

Flags -> ops -> output: the builder is `hsmaudit.ops.package` (which hsmaudit code and which pinned
wheels go in, optional bytecode, the deterministic zip and its digests); this module resolves the
checkout's defaults, calls `build_lambda_zip` and prints its `PackageResult` as one JSON line or a
table.
"""

from __future__ import annotations

import json
import sys
from dataclasses import asdict
from pathlib import Path

import typer

from hsmaudit.cli.output import OutputFormat, fail, one_line_errors, stdout_console, write_lines
from hsmaudit.ops.package import (
    DEFAULT_PYTHON_VERSION,
    REQUIREMENTS_FILE,
    Arch,
    Compiled,
    PackageError,
    PackageResult,
    build_lambda_zip,
    default_output,
    find_interpreter,
    find_project_root,
)


def _print_result(result: PackageResult, output_format: OutputFormat) -> None:
    if output_format is OutputFormat.jsonl:
        write_lines(iter([json.dumps(asdict(result), sort_keys=True).encode()]))
        return
    from rich.table import Table

    table = Table(show_header=False)
    for key in ("path", "sha256", "bytes", "files", "arch", "runtime", "bytecode", "compiled"):
        table.add_row(key, str(getattr(result, key)))
    table.add_row("hsmaudit modules", ", ".join(m.removeprefix("hsmaudit.") for m in result.modules))
    stdout_console().print(table)


def package_command(
    output: Path | None = typer.Option(
        None,
        "--output",
        "-o",
        help="Where to write the zip. Default: dist/hsmaudit-lambda-<arch>.zip in the checkout "
        "(the CodeUri of deploy/template.yaml for arm64).",
        dir_okay=False,
    ),
    arch: Arch = typer.Option(Arch.arm64, "--arch", help="Lambda architecture the wheels are for."),
    python_version: str = typer.Option(
        DEFAULT_PYTHON_VERSION,
        "--python-version",
        help="CPython version of the Lambda runtime (the template's Runtime, python3.14).",
    ),
    requirements: Path | None = typer.Option(
        None,
        "--requirements",
        "-r",
        help="Pinned, hashed requirements of the Lambda. "
        "Default: deploy/requirements-lambda.txt of the checkout.",
        exists=True,
        dir_okay=False,
    ),
    ca_bundle: Path | None = typer.Option(
        None,
        "--ca-bundle",
        help="PEM CA certificates of a privately signed HEC, added as hec-ca.pem "
        "(then deploy with HecCaBundle=/var/task/hec-ca.pem).",
        exists=True,
        dir_okay=False,
    ),
    compile_code: bool = typer.Option(
        False,
        "--compile",
        help="Add bytecode compiled by a CPython of --python-version (python3.X on PATH, or "
        "--compile-with): halves the handler's cold import. Off by default, so the zip does not "
        "depend on the build machine.",
    ),
    compile_with: str | None = typer.Option(
        None, "--compile-with", help="The CPython to compile with (implies --compile)."
    ),
    compiled: Compiled = typer.Option(
        Compiled.auto,
        "--compiled",
        help="Add the parser's C match built for --arch by Debian's cross compiler (gcc-aarch64-linux-gnu "
        "for arm64, gcc for x86_64, with libpython3.11-dev for that architecture): auto when they are "
        "installed (the result's compiled says whether it went in), yes (fail without them), no.",
    ),
    output_format: OutputFormat = typer.Option(
        OutputFormat.jsonl,
        "--format",
        "-f",
        help="jsonl: one JSON line (path, sha256, size); table: for people.",
    ),
) -> None:
    """Build the Lambda deployment zip for deploy/template.yaml, reproducibly.

    It holds the hsmaudit code the two handlers import and the pinned wheels for the Lambda platform.

    pip fetches the wheels from PyPI and checks their hashes; no boto3 (the runtime has it).

    Two builds of the same checkout give the same bytes. Next: cd deploy && sam deploy --guided
    """
    with one_line_errors(PackageError, OSError):
        root = find_project_root()
        if requirements is None:
            if root is None:
                fail(f"no {REQUIREMENTS_FILE} here or above; run in the checkout or pass --requirements", 2)
            requirements = root / REQUIREMENTS_FILE
        if output is None:
            output = default_output(root or Path.cwd(), arch)
        interpreter = None
        if compile_code or compile_with:
            interpreter = find_interpreter(python_version, compile_with)
        result = build_lambda_zip(
            output,
            requirements=requirements,
            arch=arch,
            python_version=python_version,
            ca_bundle=ca_bundle,
            compile_with=interpreter,
            compiled=compiled,
        )
        if not result.compiled and compiled is Compiled.auto:
            sys.stderr.write(
                f"hsmaudit: the parser's C match is not in the zip (the Lambda runs it as a regex): "
                f"{result.compiled_note}\n"
            )
        _print_result(result, output_format)


def register(app: typer.Typer) -> None:
    """Add `hsmaudit package` to the app."""
    app.command("package")(package_command)
