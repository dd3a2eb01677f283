"""`hsmaudit replay <sqs://… | queue URL | s3://…/firehose-failed/…>`: flags -> ops.recover -> output.

`cli/replay.py` hands a failure-store URL here (`ops.recover.is_failure_store`); our own spool
stays there (`ops.replay`). Output as for the spool: one JSON line per item as it is done (or a
table), then the per-source summary on stderr; exit 1 when anything is left in the store.
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING

import typer

from hsmaudit.cli.output import OutputFormat, fail, stdout_console

if TYPE_CHECKING:
    from rich.table import Table

    from hsmaudit.config import Settings
    from hsmaudit.ops.recover import ItemOutcome


def replay_failure_store(
    where: str,
    settings: Settings,
    *,
    list_only: bool,
    limit: int | None,
    budget: float,
    output: OutputFormat,
    quarantine: str | None,
) -> None:
    """List or replay one failure store; raises `typer.Exit(1)` when something is left."""
    from hsmaudit.aws.spools import open_spool
    from hsmaudit.ops import recover
    from hsmaudit.sinks.hec.envelope import EventEncoder

    store = recover.open_failure_store(where)

    def emit(outcome: ItemOutcome) -> None:
        sys.stdout.write(outcome.as_json() + "\n")
        sys.stdout.flush()

    live = emit if output is not OutputFormat.table else None
    if list_only:
        encoder = EventEncoder(
            event_format=settings.event_format,
            sourcetype=settings.hec_sourcetype,
            index=settings.hec_index,
            include_raw=settings.include_raw,
        )
        outcomes = recover.list_store(store, encoder)
        if live is not None:
            for outcome in outcomes:
                live(outcome)
    else:
        from hsmaudit.aws.runtime import build_client
        from hsmaudit.cli.progress import WorkProgress, stop_on_ctrl_c

        keep = quarantine or settings.spool_location
        client = build_client(settings)
        total = recover.count_items(store)
        if total is not None and limit is not None:
            total = min(total, limit)
        outcomes = []
        interrupted = in_flight = False

        def seen(outcome: ItemOutcome) -> None:
            outcomes.append(outcome)
            bar.advance(items=outcome.accepted, done=1)
            if live is not None:
                live(outcome)

        try:
            delivery = recover.Delivery(client, open_spool(keep) if keep else None, budget=budget)
            with WorkProgress("replay", total=total) as bar, stop_on_ctrl_c(bar) as stop:
                recover.replay_store(store, delivery, limit=limit, progress=seen, stop=lambda: stop.requested)
                interrupted = stop.requested
        except KeyboardInterrupt:
            interrupted = in_flight = True
        finally:
            client.close()
        if interrupted:
            for line in recover.source_summary(outcomes, store.location):
                sys.stderr.write(f"hsmaudit: {line}\n" if not line.startswith(" ") else line + "\n")
            flight = (
                " (the item in flight stays there, an SQS message hidden for its visibility timeout: "
                "HEC may see its events twice)"
                if in_flight
                else ""
            )
            fail(
                f"interrupted: {sum(o.accepted for o in outcomes)} events of {len(outcomes)} items "
                "delivered; "
                f"the rest is left in {store.location}{flight}: run replay again for it",
                130,
            )
    if output is OutputFormat.table:
        stdout_console().print(outcomes_table(outcomes))
    for line in recover.source_summary(outcomes, store.location, listed=list_only):
        sys.stderr.write(f"hsmaudit: {line}\n" if not line.startswith(" ") else line + "\n")
    if not list_only and recover.anything_left(outcomes):
        raise typer.Exit(1)


def outcomes_table(outcomes: list[ItemOutcome]) -> Table:
    """The outcomes as a table for people."""
    from rich.table import Table

    table = Table(header_style="bold")
    for column in ("item", "kind", "status", "events", "accepted", "quarantined", "reason"):
        table.add_column(column, overflow="fold")
    styles = {"delivered": "green", "quarantined": "yellow", "kept": "red", "listed": "", "unreadable": "red"}
    for outcome in outcomes:
        table.add_row(
            outcome.item,
            outcome.kind,
            outcome.status,
            str(outcome.events),
            str(outcome.accepted),
            str(outcome.quarantined),
            outcome.reason,
            style=styles[outcome.status],
        )
    return table
