"""What every CLI command shares: JSON lines for machines, tables for people, one-line errors.

contracts.md §3: a failure prints one line saying what and what next, never a traceback or a
token, and exits non-zero.
"""

from __future__ import annotations

import os
import shlex
import shutil
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Literal, NoReturn

import typer

if TYPE_CHECKING:
    from rich.console import Console
    from rich.table import Table


class OutputFormat(StrEnum):
    """How a command prints its results."""

    jsonl = "jsonl"
    table = "table"


def fail(message: str, code: int = 1) -> NoReturn:
    """Print `hsmaudit: <message>` on stderr and exit with `code`."""
    sys.stderr.write(f"hsmaudit: {message}\n")
    sys.stderr.flush()
    raise typer.Exit(code)


def self_command() -> str:
    """How to run this hsmaudit again, for the "what next" hints: `hsmaudit` when that name on
    PATH is this program, else the path it was started by (`.venv/bin/hsmaudit` when the
    virtualenv is not activated, as after the README's first command), so the hint pastes."""
    invoked = sys.argv[0] if sys.argv else ""
    if Path(invoked).name != "hsmaudit":
        return "hsmaudit"  # `python -m hsmaudit.cli` or an embedding: the documented name
    on_path = shutil.which("hsmaudit")
    if on_path and Path(on_path).resolve() == Path(invoked).resolve():
        return "hsmaudit"
    return shlex.quote(invoked)


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


LIVE_STDERR: list[Console] = []
"""The console of the progress bar on screen, if any (`cli.progress` sets it)."""


def stderr_console() -> Console:
    """A Rich console on stderr, for summaries that must not mix with JSON on stdout. While a
    progress bar is drawn it is the bar's console, so a line said meanwhile (HEC went down)
    appears above the bar instead of being written through it."""
    if LIVE_STDERR:
        return LIVE_STDERR[-1]
    from rich.console import Console

    return Console(stderr=True)


def stdout_console() -> Console:
    """A Rich console on stdout, for tables: the terminal's width (or COLUMNS when set); 200
    columns when piped, so cells do not fold in a file."""
    from rich.console import Console

    sized = sys.stdout.isatty() or os.environ.get("COLUMNS", "").isdigit()
    return Console(width=None if sized else 200)


@dataclass(frozen=True, slots=True)
class Column:
    """One column of a table for people, and how it gives way on a narrow terminal.

    `wrap=False` marks what must never be broken (timestamps, rule ids, batch ids, counts: a
    value people copy or compare). `drop` orders what goes when even folding is not enough:
    0 is always shown, otherwise the highest number is dropped first.
    """

    header: str
    drop: int = 0
    wrap: bool = True
    justify: Literal["left", "right"] = "left"
    min_width: int = 8


Row = tuple[Sequence[str], str]
"""A row's cells (plain text, one per column) and its Rich style."""


def fitted_table(
    columns: Sequence[Column], rows: Sequence[Row], *, width: int, title: str | None = None
) -> Table:
    """A table that fits `width` terminal columns: unbreakable columns keep their full width,
    wrapping ones fold, and when that is not enough the least important columns are left out
    (the caption names them). At 80 columns an ISO timestamp or a rule id stays on one line."""
    from rich import box
    from rich.cells import cell_len
    from rich.table import Table

    def natural(index: int) -> int:
        return max([cell_len(columns[index].header), *(cell_len(cells[index]) for cells, _ in rows)])

    def narrowest(index: int) -> int:
        column = columns[index]
        if not column.wrap:
            return natural(index)
        return min(natural(index), max(column.min_width, cell_len(column.header)))

    # A column with nothing in it (no HSM for a file read without its stream) goes first.
    shown = [i for i, column in enumerate(columns) if column.drop == 0 or any(cells[i] for cells, _ in rows)]
    # Rich's default box: one border per column plus one, and one space of padding each side.
    while sum(narrowest(i) for i in shown) + 3 * len(shown) + 1 > width:
        droppable = [i for i in shown if columns[i].drop > 0]
        if not droppable:
            break
        shown.remove(max(droppable, key=lambda i: (columns[i].drop, i)))
    # Dropping in order can overshoot: with a long rule id, severity went to make room that only
    # leaving out hsm and user too gave, and then fitted after all. Give back what fits again,
    # the most important first.
    for index in sorted(set(range(len(columns))) - set(shown), key=lambda i: (columns[i].drop, i)):
        if not any(cells[index] for cells, _ in rows):
            continue
        wider = sorted([*shown, index])
        if sum(narrowest(i) for i in wider) + 3 * len(wider) + 1 <= width:
            shown = wider
    dropped = [
        column.header
        for i, column in enumerate(columns)
        if i not in shown and any(cells[i] for cells, _ in rows)
    ]
    caption = f"not shown at {width} columns: {', '.join(dropped)}" if dropped else None
    table = Table(title=title, caption=caption, header_style="bold", box=box.HEAVY_HEAD)
    for i in shown:
        column = columns[i]
        table.add_column(
            column.header,
            justify=column.justify,
            no_wrap=not column.wrap,
            overflow="fold",
            min_width=narrowest(i),
        )
    for cells, style in rows:
        table.add_row(*(cells[i] for i in shown), style=style)
    return table


SeverityStyle = Callable[[str | None], str]


def severity_style(severity: str | None) -> str:
    """Rich style of a severity: critical events must stand out."""
    return {"critical": "bold white on red", "high": "bold red", "medium": "yellow"}.get(severity or "", "")
