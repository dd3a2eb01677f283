"""`hsmaudit simulate`: realistic CloudHSM audit activity, for demos, tests and load.

Output shapes: CloudWatch Logs subscription payloads (one `{"awslogs":…}` JSON object per line,
what the Lambda receives), raw record text, or parsed events as JSON lines. All of them are
inputs `hsmaudit parse`, `detect` and `send` read. Same `--seed` and `--start`: same bytes.
"""

from __future__ import annotations

import json
import shutil
import sys
import textwrap
from collections.abc import Iterable
from enum import StrEnum
from typing import TYPE_CHECKING

import typer

from hsmaudit.cli.output import fail, stderr_console, write_lines

if TYPE_CHECKING:
    from hsmaudit.simulate.scenarios import Scenario


class SimulateFormat(StrEnum):
    """What `hsmaudit simulate` prints."""

    cloudwatch = "cloudwatch"
    text = "text"
    events = "events"


def parse_start(text: str | None) -> int | None:
    """`--start`: ISO-8601 (UTC if no zone) or `now` -> usecs; None keeps the simulator's default."""
    if text is None:
        return None
    if text.strip().lower() == "now":
        import time

        return time.time_ns() // 1000
    from hsmaudit.store.query import FilterError, parse_time

    try:
        return parse_time(text, name="--start")
    except FilterError as error:
        fail(str(error), 2)


def scenario_list(scenarios: Iterable[Scenario], *, width: int) -> str:
    """Each scenario, what it does and the alerts it must raise, wrapped to `width` under its
    name. The alerts its CloudTrail calls raise are named apart: `hsmaudit demo` delivers those
    calls, `simulate` prints only the audit log."""
    items = list(scenarios)
    indent = " " * (max(len(item.name) for item in items) + 2)
    width = max(width, len(indent) + 30)
    blocks = []
    for item in items:
        alerts = ", ".join(sorted(item.expected_rules)) or "none"
        if item.control_plane_rules:
            alerts += f"; from its CloudTrail calls (demo): {', '.join(sorted(item.control_plane_rules))}"
        lines = textwrap.wrap(
            item.description, width, initial_indent=item.name.ljust(len(indent)), subsequent_indent=indent
        )
        lines += textwrap.wrap(
            f"alerts: {alerts}",
            width,
            initial_indent=indent,
            subsequent_indent=indent + "  ",
            break_on_hyphens=False,
        )
        blocks.append("\n".join(lines))
    return "\n".join(blocks)


def register(app: typer.Typer) -> None:
    """Add `simulate` to the app."""

    @app.command("simulate")
    def simulate(
        scenario: list[str] = typer.Option(
            None, "--scenario", "-s", help="Scenario to play (repeatable; default: all). See --list."
        ),
        hsms: int = typer.Option(3, "--hsms", min=1, max=32, help="HSMs in the cluster."),
        seed: int = typer.Option(
            1, "--seed", help="Random seed: the same seed and start give the same output."
        ),
        start: str | None = typer.Option(
            None,
            "--start",
            help="Time of the first record: ISO-8601 (UTC) or 'now'. Default 2026-01-05T08:00:00Z.",
        ),
        cluster_id: str | None = typer.Option(
            None, "--cluster-id", help="Cluster id (default: derived from the seed)."
        ),
        output: SimulateFormat = typer.Option(
            SimulateFormat.cloudwatch,
            "--format",
            "-f",
            help="cloudwatch payloads, raw record text, or parsed events.",
        ),
        batch_size: int = typer.Option(50, "--batch-size", min=1, help="Log events per CloudWatch payload."),
        list_scenarios: bool = typer.Option(
            False, "--list", help="List the scenarios and the alerts each must raise."
        ),
    ) -> None:
        """Simulate a CloudHSM cluster's audit logs (replicated logins, key sync, attacks, gaps).

        Prints to stdout; a summary (records, expected alerts) goes to stderr.
        """
        from hsmaudit.simulate.emit import parsed_events, raw_text, subscription_events
        from hsmaudit.simulate.scenarios import SCENARIOS, run_scenarios

        if list_scenarios:
            typer.echo(scenario_list(SCENARIOS.values(), width=shutil.get_terminal_size().columns))
            return
        names = scenario or list(SCENARIOS)
        left_out = ""
        if not scenario and hsms < 2:
            # Every scenario but one works with a single HSM; the default set must not refuse the
            # value the option offers. Said on stderr, so the output stays clean.
            names = [name for name in names if name != "hsm-silent"]
            left_out = "; hsm-silent left out (it needs at least 2 HSMs)"
        try:
            simulation = run_scenarios(
                names,
                seed=seed,
                hsms=hsms,
                start_usecs=parse_start(start),
                cluster_id=cluster_id,
            )
        except ValueError as error:
            fail(str(error), 2)
        records = simulation.records
        if output is SimulateFormat.cloudwatch:
            write_lines(
                json.dumps(payload, separators=(",", ":")).encode()
                for payload in subscription_events(records, batch_size=batch_size)
            )
        elif output is SimulateFormat.text:
            sys.stdout.write(raw_text(records))
            sys.stdout.flush()
        else:
            from hsmaudit.records.event import event_to_json

            write_lines(event_to_json(event) for event in parsed_events(records))
        sim = simulation.simulator
        expected = ", ".join(sorted(simulation.expected_rules)) or "none"
        stderr_console().print(
            f"hsmaudit: simulated {len(records)} records from {len(sim.hsms)} HSMs of {sim.cluster_id} "
            f"({', '.join(simulation.scenarios)}); expected alerts: {expected}{left_out}",
            highlight=False,
        )
