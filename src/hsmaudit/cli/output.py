"""What every CLI command shares: JSON lines for machines, tables for people, one-line errors.

contracts.md §3: a failure prints one line saying what and what next, never a traceback or a
token, and exits non-zero.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from enum import StrEnum
from typing import TYPE_CHECKING, NoReturn

import typer

if TYPE_CHECKING:
    from rich.console import Console


class OutputFormat(StrEnum):
    """How a command prints its results."""

    jsonl = "jsonl"
    table = "table"


def fail(message: str, code: int = 1) -> NoReturn:
    """Print `hsmaudit: <message>` on stderr and exit with `code`."""
    sys.stderr.write(f"hsmaudit: {message}\n")
    sys.stderr.flush()
    raise typer.Exit(code)


@contextmanager
def one_line_errors(*expected: type[Exception]) -> Iterator[None]:
    """Turn the expected error families (and broken pipes, Ctrl-C) into one line and an exit code."""
    try:
        yield
    except BrokenPipeError:
        # `hsmaudit parse big.log | head`: the reader left; that is not our failure.
        sys.stderr.close()
        raise typer.Exit(0) from None
    except KeyboardInterrupt:
        fail("interrupted", 130)
    except expected as error:
        fail(str(error))


def write_lines(lines: Iterator[bytes], *, flush_each: bool = False) -> int:
    """Write JSON lines to stdout; returns how many were written."""
    out = sys.stdout.buffer
    count = 0
    for line in lines:
        out.write(line)
        out.write(b"\n")
        count += 1
        if flush_each:
            out.flush()
    out.flush()
    return count


def stderr_console() -> Console:
    """A Rich console on stderr, for summaries that must not mix with JSON on stdout."""
    from rich.console import Console

    return Console(stderr=True)


def stdout_console() -> Console:
    """A Rich console on stdout, for tables (wide when piped, so cells do not fold)."""
    from rich.console import Console

    return Console(width=None if sys.stdout.isatty() else 200)


SeverityStyle = Callable[[str | None], str]


def severity_style(severity: str | None) -> str:
    """Rich style of a severity: critical events must stand out."""
    return {"critical": "bold white on red", "high": "bold red", "medium": "yellow"}.get(severity or "", "")
