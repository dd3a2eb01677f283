"""`cli.delivery_options` in-process (Typer's runner, no subprocess): the delivery flags a command
gets from `with_delivery_flags`, the `--out -` / `--json` check, and the exit codes of
`delivery_errors`. The real `send` and `backfill` help is held by `integration/test_cli_docs.py`.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from hsmaudit.cli import delivery_options as opts
from hsmaudit.config import ConfigError
from hsmaudit.ops.destination import DeliveryOptions, DestinationChoiceError


def app_receiving(received: list[tuple[str, DeliveryOptions, bool]]) -> typer.Typer:
    app = typer.Typer()

    @app.command()
    @opts.with_delivery_flags
    def command(
        name: str = typer.Option("x", "--name"),
        delivery: DeliveryOptions = opts.DELIVERY,
        json_summary: bool = typer.Option(False, "--json"),
    ) -> None:
        received.append((name, delivery, json_summary))

    return app


def test_the_flags_arrive_as_one_delivery_options_and_the_others_as_themselves() -> None:
    received: list[tuple[str, DeliveryOptions, bool]] = []
    result = CliRunner().invoke(
        app_receiving(received),
        ["--name", "n", "--db", "s.sqlite", "--no-ack", "--index", "audit", "--raw", "--json"],
    )
    assert result.exit_code == 0, result.output
    assert received == [("n", DeliveryOptions(db=Path("s.sqlite"), index="audit", ack=False, raw=True), True)]


def test_flags_not_given_stay_none_so_the_environment_decides() -> None:
    received: list[tuple[str, DeliveryOptions, bool]] = []
    result = CliRunner().invoke(app_receiving(received), [])
    assert result.exit_code == 0, result.output
    assert received == [("x", DeliveryOptions(), False)]


def test_help_lists_every_delivery_flag_where_the_parameter_stood() -> None:
    result = CliRunner().invoke(app_receiving([]), ["--help"], env={"COLUMNS": "200", "NO_COLOR": "1"})
    assert result.exit_code == 0
    flags = [word for word in result.output.split() if word.startswith("--") and word != "--help"]
    names = [flag.split("/")[0] for flag in flags]
    expected = ["--name", "--db", "--out", "--hec-url", "--index", "--event-format", "--sourcetype"]
    expected += ["--ack", "--ca-bundle", "--spool-dir", "--raw", "--config", "--json"]
    assert [name for name in names if name in expected] == expected


def test_a_command_without_the_marker_is_refused_when_defined() -> None:
    def command(name: str = "x") -> None:
        del name

    with pytest.raises(TypeError, match="command has no parameter defaulting to DELIVERY"):
        opts.with_delivery_flags(command)


def test_stdout_wanted_twice_exits_2() -> None:
    opts.check_stdout("-", False)
    opts.check_stdout("events.jsonl", True)
    with pytest.raises(typer.Exit) as caught:
        opts.check_stdout("-", True)
    assert caught.value.exit_code == 2


@pytest.mark.parametrize(
    ("error", "code"),
    [(DestinationChoiceError("give either --db or --out, not both"), 2), (ConfigError("no HEC URL"), 1)],
)
def test_delivery_errors_print_one_line_with_the_exit_code(
    error: Exception, code: int, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(typer.Exit) as caught, opts.delivery_errors():
        raise error
    assert caught.value.exit_code == code
    assert capsys.readouterr().err == f"hsmaudit: {error}\n"
