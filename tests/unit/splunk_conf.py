"""Reading the app's .conf files in tests: addonfactory's parser plus the strict checks it lacks.

addonfactory-splunk-conf-parser-lib silently merges duplicate stanzas and keeps the last of
duplicate keys (splunk-hec-and-app.md §3.2), so `strict_problems` reports those, and lines that
are neither comments, stanzas nor `key = value`.
"""

from __future__ import annotations

import re
from pathlib import Path

from addonfactory_splunk_conf_parser_lib import TABConfigParser

from hsmaudit.splunk.package import app_source_dir

APP_DIR = app_source_dir()
DEFAULT_DIR = APP_DIR / "default"

Conf = dict[str, dict[str, str]]

_STANZA = re.compile(r"^\[(?P<name>[^\]]*)\]\s*$")
_SETTING = re.compile(r"^(?P<key>[^=\s][^=]*?)\s*=\s?(?P<value>.*)$")


def read_conf(path: Path) -> Conf:
    """Stanza -> settings, as Splunk's own parser (addonfactory's TABConfigParser) reads them."""
    parser = TABConfigParser()
    parser.read(str(path))
    return {
        section: {key: value for key, value in parser.items(section) if key != "__name__"}
        for section in parser.sections()
    }


def strict_problems(path: Path) -> list[str]:
    """Duplicate stanzas, duplicate keys, junk lines and line continuations (which we never use)."""
    problems: list[str] = []
    stanzas: set[str] = set()
    keys: set[str] = set()
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        where = f"{path.name}:{number}"
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        if line.rstrip().endswith("\\"):
            problems.append(f"{where}: line continuation")
        stanza = _STANZA.match(stripped)
        if stanza:
            name = stanza.group("name")
            if name in stanzas:
                problems.append(f"{where}: duplicate stanza [{name}]")
            stanzas.add(name)
            keys = set()
            continue
        setting = _SETTING.match(line)
        if not setting or line[0].isspace():
            problems.append(f"{where}: not a stanza, comment or setting: {line[:60]!r}")
            continue
        key = setting.group("key")
        if key in keys:
            problems.append(f"{where}: duplicate key {key!r}")
        keys.add(key)
    return problems


def conf_files() -> list[Path]:
    """Every .conf and .meta file the app ships."""
    return sorted([*DEFAULT_DIR.glob("*.conf"), *(APP_DIR / "metadata").glob("*.meta")])
