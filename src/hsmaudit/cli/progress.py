"""Progress on long work, and Ctrl-C that stops cleanly: what `send`, `replay`, `parse` and
`detect` share (`backfill` draws one bar per stream, in its own module).

A bar goes to stderr only when stderr is a terminal: a pipe, a file or CI gets nothing, so
stdout stays JSON lines and logs stay clean. The first Ctrl-C asks the command to stop after the
piece of work in flight (one delivery, one spooled batch), so it can say exactly what was
delivered and what was not; a second Ctrl-C stops at once.
"""

from __future__ import annotations

import os
import signal
import sys
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Final

from hsmaudit.cli.output import LIVE_STDERR, stderr_console

if TYPE_CHECKING:
    from types import FrameType

    from rich.progress import Progress, Task, TaskID

    from hsmaudit.records.event import HsmEvent

LARGE_INPUT_BYTES: Final = 1 << 20
"""`parse` and `detect` draw a bar only for inputs at least this large (1 MiB, ~1,000 records):
below that they finish before a bar would be read."""


def stderr_is_terminal() -> bool:
    """Whether a person is watching stderr (a bar there would be seen, not logged)."""
    return sys.stderr.isatty() and os.environ.get("TERM") != "dumb"


def input_bytes(paths: Sequence[str]) -> int | None:
    """The total size of the input files; None when one is stdin or cannot be sized."""
    total = 0
    for path in paths:
        try:
            stat = Path(path).stat()
        except OSError:
            return None
        if not Path(path).is_file():
            return None
        total += stat.st_size
    return total


class WorkProgress:
    """One Rich bar on stderr: items done, items per second, share done and ETA.

    `total` is in the bar's own unit (input bytes, batches); `items` are what people count
    (events). Without a terminal it draws nothing and costs next to nothing.
    """

    def __init__(self, description: str, *, total: int | None, unit: str = "events", enabled: bool = True):
        self.description = description
        self.total = total
        self.unit = unit
        self.enabled = enabled and stderr_is_terminal()
        self.items = 0
        self.done = 0
        self._progress: Progress | None = None
        self._task: TaskID | None = None
        self._started = False

    def __enter__(self) -> WorkProgress:
        # single use: a second `with` (detect: sorting, then detecting) draws nothing more
        if self.enabled and not self._started:
            self._started = True
            self._progress = _rich_progress(self.unit)
            self._progress.start()
            LIVE_STDERR.append(self._progress.console)
            self._task = self._progress.add_task(self.description, total=self.total, items=0)
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Take the bar off the screen (before a table is printed); safe to call twice."""
        if self._progress is not None:
            self._progress.stop()
            if self._progress.console in LIVE_STDERR:
                LIVE_STDERR.remove(self._progress.console)
            self._progress = None

    def advance(self, *, items: int = 0, done: int = 0) -> None:
        """Count `items` more, and `done` more of `total`."""
        self.items += items
        self.done += done
        self._refresh()

    def reach(self, done: int) -> None:
        """Set how much of `total` is done (e.g. at the end of an input file)."""
        self.done = max(self.done, done)
        self._refresh()

    def note(self, description: str) -> None:
        """Change the words in front of the bar (e.g. 'stopping after the batch in flight')."""
        self.description = description
        if self._progress is not None and self._task is not None:
            self._progress.update(self._task, description=description)

    def _refresh(self) -> None:
        if self._progress is not None and self._task is not None:
            completed = min(self.done, self.total) if self.total is not None else self.done
            self._progress.update(self._task, completed=completed, items=self.items)


def input_progress(description: str, paths: Sequence[str]) -> WorkProgress:
    """A bar over the input files' bytes for `parse`/`detect`, drawn only for large inputs and
    when the output goes elsewhere than the terminal (there the lines themselves show progress)."""
    size = input_bytes(paths)
    large = size is not None and size >= LARGE_INPUT_BYTES
    return WorkProgress(description, total=size, enabled=large and not sys.stdout.isatty())


def tracked(events: Iterable[HsmEvent], bar: WorkProgress, *, count: bool = True) -> Iterator[HsmEvent]:
    """The events, advancing `bar` by each record's size (and by one item, with `count`) as
    they pass. `send` counts items itself, once HEC has them."""
    for event in events:
        bar.advance(items=1 if count else 0, done=len(event.raw) if event.raw else 0)
        yield event


def _rich_progress(unit: str) -> Progress:
    from rich.progress import BarColumn, Progress, ProgressColumn, TextColumn, TimeRemainingColumn
    from rich.text import Text

    class ItemsColumn(ProgressColumn):
        """Items so far and items per second (the bar measures `total`'s unit)."""

        def render(self, task: Task) -> Text:
            items = int(task.fields.get("items", 0))
            elapsed = task.elapsed or 0.0
            rate = items / elapsed if elapsed > 0 else 0.0
            return Text(f"{items:,} {unit} {rate:,.0f}/s", style="cyan")

    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(bar_width=24),
        TextColumn("{task.percentage:>5.1f}%"),
        ItemsColumn(),
        TextColumn("ETA"),
        TimeRemainingColumn(compact=True),
        console=stderr_console(),
        transient=True,
        # stdout is the command's output (JSON lines): never captured into the bar's stream;
        # a line written to stderr meanwhile is printed above the bar
        redirect_stdout=False,
        redirect_stderr=True,
    )


@dataclass
class StopRequest:
    """Set by the first Ctrl-C: finish the piece of work in flight, then stop and report."""

    requested: bool = False


@contextmanager
def stop_on_ctrl_c(bar: WorkProgress | None = None) -> Iterator[StopRequest]:
    """First Ctrl-C (SIGINT): ask to stop after the work in flight (the bar says so); a second
    raises KeyboardInterrupt at once. The previous handler is restored on the way out."""
    stop = StopRequest()

    def handler(signum: int, frame: FrameType | None) -> None:
        if stop.requested:
            raise KeyboardInterrupt
        stop.requested = True
        if bar is not None:
            bar.note(f"{bar.description}: stopping after the work in flight (Ctrl-C again: now)")

    previous = signal.signal(signal.SIGINT, handler)
    try:
        yield stop
    finally:
        signal.signal(signal.SIGINT, previous)
