"""`hsmaudit simulate` through the Typer app: every output shape is an input the parser reads."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from hsmaudit.cli.app import app
from hsmaudit.records.event import event_from_json
from hsmaudit.simulate.emit import parsed_events
from hsmaudit.simulate.scenarios import SCENARIOS, run_scenarios
from hsmaudit.sources.cloudwatch import decode_subscription_event, log_messages
from hsmaudit.sources.files import read_bytes
from hsmaudit.sources.message import LogMessage, parse_log_message

RUNNER = CliRunner()


def invoke(*args: str, columns: int = 80) -> str:
    result = RUNNER.invoke(app, ["simulate", *args], env={"COLUMNS": str(columns)})
    assert result.exit_code == 0, result.output
    return result.stdout


def test_list_names_every_scenario_with_its_alerts_cloudtrail_ones_too() -> None:
    out = invoke("--list")
    blocks = {block.split()[0]: block for block in out.replace("\n ", " ").splitlines()}
    assert list(blocks) == list(SCENARIOS)
    for name, scenario in SCENARIOS.items():
        audit_log, _, cloudtrail = blocks[name].partition("from its CloudTrail calls")
        assert scenario.description in " ".join(audit_log.split())
        for rule in scenario.expected_rules:
            assert rule in audit_log
        for rule in scenario.control_plane_rules:  # what `demo` raises beyond the audit log
            assert rule in cloudtrail
    assert "from its CloudTrail calls (demo): backup-deleted-or-retention-changed" in " ".join(
        blocks["control-plane"].split()
    )


def test_list_fits_the_terminal() -> None:
    assert max(len(line) for line in invoke("--list", columns=80).splitlines()) <= 80
    assert max(len(line) for line in invoke("--list", columns=60).splitlines()) <= 60


def test_cloudwatch_lines_are_subscription_payloads_of_the_simulation() -> None:
    out = invoke("--scenario", "seed", "--seed", "4", "--start", "2026-02-01T10:00:00Z")
    events = []
    for line in out.splitlines():
        [document] = decode_subscription_event(json.loads(line))
        events += [parse_log_message(message) for message in log_messages(document)]
    expected = run_scenarios(["seed"], seed=4, start_usecs=1_769_940_000_000_000)
    assert events == list(parsed_events(expected.records))
    assert events[0].time == "2026-02-01T10:00:00.000000Z"


def test_text_output_parses_without_errors() -> None:
    out = invoke("--format", "text", "--scenario", "key-exported", "--hsms", "2")
    items = list(read_bytes(out.encode(), name="stdin", log_group=None, log_stream=None))
    assert items
    events = [parse_log_message(item) if isinstance(item, LogMessage) else item for item in items]
    assert all(event.parse_error is None for event in events)


def test_events_output_is_json_lines_of_events() -> None:
    out = invoke("--format", "events", "--scenario", "sequence-gap", "--seed", "2")
    events = [event_from_json(line) for line in out.splitlines()]
    assert events == list(parsed_events(run_scenarios(["sequence-gap"], seed=2).records))


def test_bad_input_fails_with_one_line_and_code_2() -> None:
    for args in (["--scenario", "nope"], ["--start", "someday"]):
        result = RUNNER.invoke(app, ["simulate", *args])
        assert result.exit_code == 2
        assert result.stderr.strip().startswith("hsmaudit: ")
