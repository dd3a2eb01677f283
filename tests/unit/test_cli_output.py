"""`self_command`: the "what next" hints name a command the user can paste."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

from hsmaudit.cli.output import self_command


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
