"""Where `hsmaudit rules compile` writes: detect's rule set and queries, the Splunk app's alerts.

The compiler (`detect/compiler/`) renders the files and takes their places as parameters; this
layer composes detect/ with the Splunk app's layout (`splunk/hsmaudit_app/`), which detect/ may
not know. Paths are relative to `PACKAGE_ROOT`, the source tree the command regenerates.
"""

from __future__ import annotations

from pathlib import Path
from typing import Final

from hsmaudit.detect.compiler import (
    RULES_JSON,
    SQLITE_DIR,
    OutputPaths,
    RuleSource,
)
from hsmaudit.detect.compiler import render_generated as render_files
from hsmaudit.detect.compiler import stale_files as stale_outputs
from hsmaudit.detect.compiler import write_generated as write_outputs

PACKAGE_ROOT: Final = Path(__file__).resolve().parent.parent
"""`src/hsmaudit`: generated paths below are relative to it."""

SAVEDSEARCHES: Final = "splunk/hsmaudit_app/default/savedsearches.conf"
"""The Splunk app's scheduled alerts, generated from the Sigma rules."""

COMPILED_RULES: Final = OutputPaths(rules_json=RULES_JSON, sqlite_dir=SQLITE_DIR, savedsearches=SAVEDSEARCHES)
"""Every place the command writes, relative to `PACKAGE_ROOT`."""


def render_generated(sources: list[RuleSource] | None = None) -> dict[str, str]:
    """Every generated file of the shipped (or the given) rules: path under `src/hsmaudit` -> content."""
    return render_files(COMPILED_RULES, sources)


def stale_files(root: Path = PACKAGE_ROOT) -> list[str]:
    """Generated files under `root` that are missing or differ from what the rules produce now."""
    return stale_outputs(root, COMPILED_RULES)


def write_generated(root: Path = PACKAGE_ROOT) -> list[str]:
    """Regenerate every file under `root`; returns the paths that changed (deleted rules' SQL removed)."""
    return write_outputs(root, COMPILED_RULES)
