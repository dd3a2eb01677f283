"""What people see in an 80-column terminal, through the real console script (COLUMNS=80).

Tables keep what must not be broken (timestamps, rule ids, batch and stream ids) on one line and
leave out the least important columns, naming them; help has no Typer type noise (`<bool>`,
`<str>`); a short flag means the same in every command.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import typer
from rich.cells import cell_len

from hsmaudit.cli.app import app
from hsmaudit.sinks.spool import LocalSpool

from .test_cli_docs import command_paths, help_text
from .test_cli_harness import Moto, make_cluster, moto, run_cli
from .test_replay_cli import fill

__all__ = ["moto"]  # fixture used by name

NARROW = {"COLUMNS": "80"}


def widest(text: str) -> int:
    return max(cell_len(line) for line in text.splitlines())


def cells_of(text: str) -> list[list[str]]:
    """The cells of every body row of a Rich table (`│ a │ b │`)."""
    return [
        [cell.strip() for cell in line.strip().strip("│").split("│")]
        for line in text.splitlines()
        if line.startswith("│")
    ]


@pytest.mark.parametrize("path", command_paths())
def test_help_fits_80_columns_without_type_noise(path: str) -> None:
    text = help_text(path)  # the console script at COLUMNS=80, as docs/cli.md shows it
    assert widest(text) <= 80
    noise = re.findall(r"<(?:bool|str|path|int|float|list\[str\]|int range|float range|file|dir)>", text)
    assert noise == [], f"'hsmaudit {path} --help' shows {noise}"
    assert not re.search(r"\[\d+<=x|x>=", text), "ranges squeeze the help column"


def test_f_is_format_in_every_command_and_follow_has_no_short_flag() -> None:
    root = typer.main.get_command(app)
    meanings: dict[str, set[str]] = {}

    def walk(command: object) -> None:
        for param in getattr(command, "params", ()):
            if param.param_type_name != "option":
                continue
            for short in (opt for opt in param.opts if not opt.startswith("--")):
                meanings.setdefault(short, set()).update(opt for opt in param.opts if opt.startswith("--"))
        for sub in getattr(command, "commands", {}).values():
            walk(sub)

    walk(root)
    assert meanings["-f"] == {"--format"}
    assert meanings["-c"] == {"--cluster"} and meanings["-g"] == {"--log-group"}
    assert meanings["-o"] <= {"--output", "--out"}  # where the result is written
    (follow,) = [p for p in root.commands["tail"].params if "--follow" in p.opts]  # type: ignore[attr-defined]
    assert follow.opts == ["--follow"]


def test_parse_table_at_80_columns_keeps_each_timestamp_whole(samples_dir: Path) -> None:
    paths = sorted(str(p) for p in samples_dir.glob("aws-*.txt"))
    jsonl = run_cli("parse", *paths, env=NARROW)
    times = [line.split('"time":"', 1)[1].split('"', 1)[0] for line in jsonl.stdout.splitlines()]
    result = run_cli("parse", "--format", "table", *paths, env=NARROW)
    assert result.returncode == 0, result.stderr
    assert widest(result.stdout) <= 80
    rows = cells_of(result.stdout)
    header = result.stdout.splitlines()[1]
    assert [c.strip() for c in header.strip("┃").split("┃")][:2] == ["time", "opcode"]
    # every event's time on one line, in its own cell, in order; no cell holds a piece of one
    assert [row[0] for row in rows if row[0]] == times
    assert "not shown at 80 columns:" in result.stdout  # what was left out is named
    wide = run_cli("parse", "--format", "table", *paths, env={"COLUMNS": "160"})
    assert "not shown" not in wide.stdout and "severity" in wide.stdout


def test_parse_table_names_user_types_short_so_a_user_stays_whole(samples_dir: Path) -> None:
    """'admin (CN_CRYPTO_OFFICER)' folded at 80 columns and left ')' alone on the next line."""
    result = run_cli(
        "parse", "--format", "table", str(samples_dir / "aws-doc-06-login-co-success.txt"), env=NARROW
    )
    assert result.returncode == 0, result.stderr
    (row,) = cells_of(result.stdout)
    assert "admin (CO)" in row


def test_rules_list_at_80_columns_never_breaks_a_rule_id() -> None:
    ids = run_cli("rules", "list", "--format", "jsonl").stdout
    rule_ids = re.findall(r'"rule":"([a-z0-9-]+)"', ids)
    result = run_cli("rules", "list", env=NARROW)
    assert result.returncode == 0, result.stderr
    assert widest(result.stdout) <= 80
    assert [row[0] for row in cells_of(result.stdout) if row[0]] == rule_ids


def test_detect_table_at_80_columns_keeps_times_and_rule_ids_whole(samples_dir: Path) -> None:
    paths = sorted(str(p) for p in samples_dir.glob("aws-*.txt"))
    result = run_cli("detect", "--format", "table", *paths, env=NARROW)
    assert result.returncode == 0, result.stderr
    assert widest(result.stdout) <= 80
    rows = [row for row in cells_of(result.stdout) if row[0]]
    assert rows
    assert all(re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z", row[0]) for row in rows)
    known = set(re.findall(r'"rule":"([a-z0-9-]+)"', run_cli("rules", "list", "-f", "jsonl").stdout))
    assert {row[2] for row in rows} <= known


def test_backfill_summary_at_80_columns_keeps_stream_delivered_spooled_done(
    moto: Moto, tmp_path: Path
) -> None:
    cluster = make_cluster(moto, hsms=2, records=5)
    result = run_cli(
        "backfill", "--cluster", cluster.cluster_id, "--since", "2d", "--db", str(tmp_path / "e.sqlite3"),
        "--checkpoint", str(tmp_path / "cp.json"), "--no-progress",
        env={**moto.env, **NARROW},
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert widest(result.stderr) <= 80
    header = next(line for line in result.stderr.splitlines() if line.startswith("┃"))
    columns = [c.strip() for c in header.strip("┃").split("┃")]
    assert {"stream", "delivered", "spooled", "done"} <= set(columns)
    rows = cells_of(result.stderr)
    assert sorted(row[columns.index("stream")] for row in rows) == sorted(cluster.streams)
    assert {row[columns.index("delivered")] for row in rows} == {"5"}


def test_replay_list_at_80_columns_keeps_batch_ids_whole(tmp_path: Path) -> None:
    fill(LocalSpool(tmp_path))
    result = run_cli("replay", str(tmp_path), "--list", "--format", "table", env=NARROW)
    assert result.returncode == 0, result.stderr
    assert widest(result.stdout) <= 80
    batch_ids = sorted(LocalSpool(tmp_path).list())
    assert sorted(row[0] for row in cells_of(result.stdout) if row[0]) == batch_ids
