"""What the CLI shares: `self_command` (hints the user can paste) and `fitted_table`."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

from hsmaudit.cli.output import fitted_table, self_command


def console_script(folder: Path) -> Path:
    folder.mkdir(parents=True)
    script = folder / "hsmaudit"
    script.write_text("#!/bin/sh\n")
    script.chmod(0o755)
    return script


def test_bare_name_when_path_finds_this_program(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    script = console_script(tmp_path / "venv" / "bin")
    monkeypatch.setattr(sys, "argv", [str(script), "demo"])
    monkeypatch.setenv("PATH", str(script.parent))
    assert self_command() == "hsmaudit"


def test_the_path_run_when_hsmaudit_is_not_on_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    console_script(tmp_path / "my venv" / "bin")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "argv", [str(Path("my venv", "bin", "hsmaudit")), "demo"])
    monkeypatch.setenv("PATH", os.defpath)
    assert self_command() == "'my venv/bin/hsmaudit'"  # quoted: it pastes into a shell


def test_the_path_run_when_path_finds_another_hsmaudit(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    mine = console_script(tmp_path / "checkout" / ".venv" / "bin")
    console_script(tmp_path / "elsewhere")
    monkeypatch.setattr(sys, "argv", [str(mine), "send"])
    monkeypatch.setenv("PATH", str(tmp_path / "elsewhere"))
    assert self_command() == str(mine)


def test_the_documented_name_when_not_started_as_hsmaudit(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "argv", ["-m"])
    assert self_command() == "hsmaudit"


def test_a_table_gives_back_a_dropped_column_that_fits_after_all() -> None:
    """Detect's columns with a long rule id at 80 columns: severity was dropped first, then hsm
    and user had to go too, and severity would have fitted in the room they left."""
    from rich.console import Console

    from hsmaudit.cli.detect import ALERT_COLUMNS

    row = (
        "2026-12-02T03:26:09.000000Z", "high", "backup-deleted-or-retention-changed", "cluster-ieqh746yng7",
        "hsm-5sb2glshv3m", "HsmAdmin/ops-admin", '{"backup_id": "backup-gqb5zozap3k"}',
    )  # fmt: skip
    console = Console(width=80, record=True, color_system=None)
    console.print(fitted_table(ALERT_COLUMNS, [(row, "")], width=80))
    text = console.export_text()
    assert max(len(line) for line in text.splitlines()) <= 80
    header = [cell.strip() for cell in text.splitlines()[1].strip("┃").split("┃")]
    assert header == ["time", "severity", "rule"]
    assert "not shown at 80 columns: cluster, hsm, user, details" in " ".join(text.split())
