"""docs/cli.md is tested against the real CLI (like sqlite-utils' tests/test_docs.py).

Every command and subcommand of `hsmaudit` has a section in docs/cli.md with its `--help` output,
taken from the real console script at 80 columns, as people see it. When a command or option
changes, refresh the blocks with

    .venv/bin/python -m tests.integration.test_cli_docs

which rewrites only the text between the `<!-- help: ... -->` markers (and appends a section for
a new command); the prose around them is written by hand.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import typer

from hsmaudit.cli.app import app

REPO = Path(__file__).resolve().parents[2]
DOCS = REPO / "docs" / "cli.md"
HSMAUDIT = str(Path(sys.executable).with_name("hsmaudit"))
BLOCK = re.compile(
    r"<!-- help: (?P<name>[a-z0-9_ -]+) -->\n```text\n(?P<body>.*?)```\n<!-- /help -->", re.DOTALL
)


def command_paths() -> list[str]:
    """Every command path, groups' subcommands included (`rules list`)."""
    root = typer.main.get_command(app)  # a click group (Typer vendors click: duck-type it)
    assert hasattr(root, "commands")
    paths: list[str] = []

    def walk(group: Any, prefix: str) -> None:
        for name, command in sorted(group.commands.items()):
            if getattr(command, "hidden", False):
                continue
            path = f"{prefix}{name}"
            paths.append(path)
            if hasattr(command, "commands"):
                walk(command, f"{path} ")

    walk(root, "")
    return paths


@cache
def help_text(path: str) -> str:
    """`hsmaudit <path> --help` from the console script as a user sees it in an 80-column
    terminal (Rich panels; colour off, trailing blanks trimmed)."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("HSMAUDIT_", "AWS_", "TYPER_")) and k not in ("FORCE_COLOR", "TERM")
    }
    env.update({"COLUMNS": "80", "NO_COLOR": "1"})
    result = subprocess.run(
        [HSMAUDIT, *path.split(), "--help"], capture_output=True, text=True, timeout=60, check=False, env=env
    )
    assert result.returncode == 0, f"hsmaudit {path} --help failed: {result.stderr}"
    return "\n".join(line.rstrip() for line in result.stdout.splitlines()).strip("\n") + "\n"


def documented_blocks(text: str) -> dict[str, str]:
    return {match.group("name"): match.group("body") for match in BLOCK.finditer(text)}


def render_block(path: str) -> str:
    return f"<!-- help: {path} -->\n```text\n{help_text(path)}```\n<!-- /help -->"


def refresh(text: str) -> str:
    """docs/cli.md with every help block regenerated and a section added for each new command."""
    paths = command_paths()
    text = BLOCK.sub(
        lambda m: render_block(m.group("name")) if m.group("name") in paths else m.group(0), text
    )
    known = documented_blocks(text)
    for path in paths:
        if path not in known:
            level = "##" if " " not in path else "###"
            text = text.rstrip("\n") + f"\n\n{level} hsmaudit {path}\n\n{render_block(path)}\n"
    return text


# ---------------------------------------------------------------------------------------- tests

REFRESH = "run `.venv/bin/python -m tests.integration.test_cli_docs` to refresh docs/cli.md"


def test_every_command_has_a_section_with_its_help() -> None:
    text = DOCS.read_text()
    blocks = documented_blocks(text)
    for path in command_paths():
        assert re.search(rf"^#+ hsmaudit {re.escape(path)}$", text, re.MULTILINE), (
            f"no section for {path}; {REFRESH}"
        )
        assert path in blocks, f"no help block for {path}; {REFRESH}"


@pytest.mark.parametrize("path", command_paths())
def test_each_commands_help_in_the_docs_is_current(path: str) -> None:
    blocks = documented_blocks(DOCS.read_text())
    assert blocks.get(path) == help_text(path), (
        f"docs/cli.md shows stale help for 'hsmaudit {path}'; {REFRESH}"
    )


@pytest.mark.parametrize("path", command_paths())
def test_each_command_explains_itself(path: str) -> None:
    text = help_text(path)
    assert text.startswith(" Usage: hsmaudit ")
    description = text.split("\n\n", 2)[1].strip()
    assert len(description) > 20, f"'hsmaudit {path} --help' says too little: {description!r}"


@pytest.mark.parametrize("path", command_paths())
def test_each_commands_description_wraps_to_the_terminal(path: str) -> None:
    """A docstring's own line breaks must not reach the screen: at 80 columns every line of a
    paragraph but its last is nearly full (a hard break gave "... quarantined," then "payload")."""
    text = help_text(path)
    description = text.split("\n╭", 1)[0].split("\n", 1)[1]  # below Usage, above the first panel
    for paragraph in re.split(r"\n\s*\n", description.strip("\n")):
        lines = paragraph.splitlines()
        for line in lines[:-1]:
            assert len(line) >= 60, f"'hsmaudit {path} --help' breaks a line early: {line!r}"


def test_the_docs_name_no_command_that_does_not_exist() -> None:
    documented = set(documented_blocks(DOCS.read_text()))
    assert documented <= set(command_paths())


def test_an_unknown_command_fails_with_a_pointer_to_help() -> None:
    result = subprocess.run([HSMAUDIT, "backfil"], capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 2
    assert "No such command" in result.stderr


if __name__ == "__main__":
    DOCS.write_text(refresh(DOCS.read_text()))
    print(f"refreshed {DOCS}")
