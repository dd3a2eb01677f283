"""Rule compiler: Sigma YAML -> Python rule set, SQLite queries and Splunk `savedsearches.conf`.

Compile time only (the `sigma` extra): the runtime engine reads what this writes and never imports
pySigma. One command, `hsmaudit rules compile`, regenerates every file below; a test fails when
any of them is stale. Where each file goes is the caller's (`OutputPaths`; the command's are in
`ops/compiled_rules.py`):

- the rule set (`detect/generated/rules.json`, `ruleset`): each rule's condition as pySigma parsed
  it (modifiers applied), as a small JSON tree the engine turns into predicates;
- the SQLite queries (`detect/generated/sqlite/<rule>.sql`, `sqlite`): pySigma SQLite backend over
  table `events` (columns named as the event fields); `failed-login-attempts.sql`: a reviewed
  hand-written view that folds a failed login's per-HSM copies into one attempt (`bruteforce.py`),
  filtered by the compiled failed-login rule; `login-brute-force.sql`: pySigma's SQLite correlation
  (sliding window with window functions) over that view;
- the Splunk app's `savedsearches.conf` (`spl`, `savedsearches`): pySigma Splunk backend for
  single-event rules; reviewed hand-written SPL for the brute force (the backend's `bin _time` fixed
  bins miss bursts across a bin edge, `docs/reference/splunk.md` §4.2) and the stateful detections.

Phases follow pySigma's `Backend.convert_rule`, one module each: parse (`parsing`, collect every
rule's errors), check fields against `FIELD_NAMES` and build the rule set (`ruleset`), convert per
target (`sqlite`, `spl`, `savedsearches`), render (`outputs`). Pipelines mutate rules in place
(`splunk.md` §4.4), so every conversion re-parses the YAML.
"""

from __future__ import annotations

from hsmaudit.detect.compiler.outputs import (
    RULES_JSON,
    SQLITE_DIR,
    OutputPaths,
    render_generated,
    stale_files,
    write_generated,
)
from hsmaudit.detect.compiler.parsing import RuleSource, rule_sources
from hsmaudit.detect.compiler.savedsearches import final_fields

__all__ = [
    "RULES_JSON",
    "SQLITE_DIR",
    "OutputPaths",
    "RuleSource",
    "final_fields",
    "render_generated",
    "rule_sources",
    "stale_files",
    "write_generated",
]
