"""Phase 5: every generated file rendered, checked against the tree, or written.

Where the files go is the caller's: `OutputPaths` names each one relative to a root the composing
layer supplies (`ops/compiled_rules.py`), so detect/ knows its own package data and nothing of the
Splunk app's layout.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from hsmaudit.detect.compiler.parsing import RuleSource, parse_sources, rule_sources
from hsmaudit.detect.compiler.ruleset import STATEFUL_META, correlation_entry, rule_entry
from hsmaudit.detect.compiler.savedsearches import render_savedsearches
from hsmaudit.detect.compiler.spl import splunk_single
from hsmaudit.detect.compiler.sqlite import sqlite_attempts_view, sqlite_correlation, sqlite_single
from hsmaudit.detect.compiler.targets import ATTEMPTS_VIEW, GENERATED_NOTE
from hsmaudit.detect.errors import RuleError
from hsmaudit.detect.ruleset import RULESET_VERSION

RULES_JSON: Final = "detect/generated/rules.json"
"""The rule set the Python engine loads (package data `hsmaudit.detect.generated`), relative to
`src/hsmaudit`."""

SQLITE_DIR: Final = "detect/generated/sqlite"
"""The queries `detect/sqlite.py` runs (package data), relative to `src/hsmaudit`."""


@dataclass(frozen=True, slots=True)
class OutputPaths:
    """Where each generated file goes, relative to the root given to `stale_files`/`write_generated`."""

    rules_json: str
    sqlite_dir: str
    savedsearches: str


def render_generated(paths: OutputPaths, sources: list[RuleSource] | None = None) -> dict[str, str]:
    """Every generated file: path relative to the root (as `paths` names it) -> content."""
    sources = sources if sources is not None else rule_sources()
    parsed = parse_sources(sources)
    texts = [source.text for source in sources]
    entries = [rule_entry(source) for source in parsed.single.values()]
    correlations = [correlation_entry(source, texts) for source in parsed.correlations.values()]
    if [c["id"] for c in correlations] != ["login-brute-force"]:
        raise RuleError("the engine implements exactly one correlation, login-brute-force")
    correlation = correlations[0]
    if correlation["rules"] != ["failed-login"] or correlation["group_by"] != ["cluster_id", "user_name"]:
        raise RuleError("must count failed-login grouped by cluster_id, user_name", rule=correlation["id"])

    files: dict[str, str] = {}
    ruleset = {
        "version": RULESET_VERSION,
        "note": GENERATED_NOTE,
        "rules": entries,
        "correlations": correlations,
        "stateful": [{"id": rule_id, **meta} for rule_id, meta in sorted(STATEFUL_META.items())],
    }
    files[paths.rules_json] = json.dumps(ruleset, indent=2, sort_keys=False) + "\n"

    single_sql = {source.rule_id: sqlite_single(source) for source in parsed.single.values()}
    for rule_id, query in single_sql.items():
        files[f"{paths.sqlite_dir}/{rule_id}.sql"] = f"-- {GENERATED_NOTE}\n{query}\n"
    files[f"{paths.sqlite_dir}/failed-login-attempts.sql"] = sqlite_attempts_view(single_sql["failed-login"])
    files[f"{paths.sqlite_dir}/{correlation['id']}.sql"] = (
        f"-- {GENERATED_NOTE}\n-- Runs over the {ATTEMPTS_VIEW} view (failed-login-attempts.sql).\n"
        f"{sqlite_correlation(parsed.correlations[correlation['id']], texts)}\n"
    )

    single_spl = {source.rule_id: splunk_single(source) for source in parsed.single.values()}
    files[paths.savedsearches] = render_savedsearches(entries, correlation, single_spl)
    return files


def stale_files(root: Path, paths: OutputPaths) -> list[str]:
    """Generated files that are missing or differ from what the rules produce now."""
    files = render_generated(paths)
    stale = []
    for relative, content in files.items():
        path = root / relative
        if not path.is_file() or path.read_text(encoding="utf-8") != content:
            stale.append(relative)
    stale += [
        str(path.relative_to(root))
        for path in sorted((root / paths.sqlite_dir).glob("*.sql"))
        if str(path.relative_to(root)) not in files
    ]
    return stale


def write_generated(root: Path, paths: OutputPaths) -> list[str]:
    """Regenerate every file; returns the paths that changed. Removes SQL files of deleted rules."""
    files = render_generated(paths)
    changed = []
    for relative, content in files.items():
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        if not path.is_file() or path.read_text(encoding="utf-8") != content:
            path.write_text(content, encoding="utf-8")
            changed.append(relative)
    for path in sorted((root / paths.sqlite_dir).glob("*.sql")):
        relative = str(path.relative_to(root))
        if relative not in files:
            path.unlink()
            changed.append(relative)
    return changed
