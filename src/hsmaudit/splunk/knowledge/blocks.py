"""The generated blocks in the app's conf files and the lookup tables: rendering and refreshing.

A generated block runs from its BEGIN marker to its END marker; everything outside the blocks is
written by hand and left as it is.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Final

from hsmaudit.splunk.errors import KnowledgeError
from hsmaudit.splunk.knowledge.eventtypes import change_eventtypes, cloudtrail_eventtypes, cloudtrail_tags
from hsmaudit.splunk.knowledge.lookups import lookup_tables
from hsmaudit.splunk.knowledge.props import json_block, text_block

BLOCK_BEGIN: Final = "# BEGIN GENERATED {name}: rendered by hsmaudit.splunk.knowledge; do not edit"
BLOCK_END: Final = "# END GENERATED {name}"
_BLOCK: Final = re.compile(
    r"^# BEGIN GENERATED (?P<name>[a-z_]+):[^\n]*\n(?P<body>.*?)^# END GENERATED (?P=name)[ \t]*$",
    re.MULTILINE | re.DOTALL,
)

BLOCKS: Final[dict[str, dict[str, Callable[[], list[str]]]]] = {
    "default/props.conf": {"json": json_block, "text": text_block, "recipe": text_block},
    "default/eventtypes.conf": {"cim": change_eventtypes, "cloudtrail": cloudtrail_eventtypes},
    "default/tags.conf": {"cloudtrail": cloudtrail_tags},
}


def render_block(name: str, file: str = "default/props.conf") -> str:
    """One generated block, markers included, as it appears in its conf file."""
    lines = [BLOCK_BEGIN.format(name=name), *BLOCKS[file][name](), BLOCK_END.format(name=name)]
    return "\n".join(lines)


def render_conf(template: str, file: str = "default/props.conf") -> str:
    """A conf file with every generated block re-rendered; everything else is left as written.

    Raises `KnowledgeError` when a block is unknown or missing, so a damaged template cannot ship.
    """
    blocks = BLOCKS[file]
    seen: list[str] = []

    def replace(match: re.Match[str]) -> str:
        name = match.group("name")
        if name not in blocks:
            raise KnowledgeError(f"{file}: unknown generated block {name!r}")
        seen.append(name)
        return render_block(name, file)

    rendered = _BLOCK.sub(replace, template)
    missing = sorted(set(blocks) - set(seen))
    if missing or len(seen) != len(set(seen)):
        raise KnowledgeError(
            f"{file}: generated blocks must appear once each; missing "
            f"{', '.join(missing) or 'none'}, found {', '.join(seen) or 'none'}"
        )
    return rendered


def render_props(template: str) -> str:
    """props.conf with its generated blocks re-rendered."""
    return render_conf(template, "default/props.conf")


def render_generated(relative: str, data: bytes) -> bytes:
    """The packaged content of an app file: generated blocks and lookup tables re-rendered."""
    if relative in BLOCKS:
        return render_conf(data.decode("utf-8"), relative).encode("utf-8")
    tables = lookup_tables()
    if relative in tables:
        return tables[relative].encode("utf-8")
    return data


def refresh_knowledge(root: Path) -> list[str]:
    """Re-render the generated blocks and lookup tables under the app root; the files changed."""
    changed = []
    for relative in BLOCKS:
        path = root / relative
        current = path.read_text(encoding="utf-8")
        rendered = render_conf(current, relative)
        if rendered != current:
            path.write_text(rendered, encoding="utf-8")
            changed.append(relative)
    for relative, content in lookup_tables().items():
        path = root / relative
        if not path.is_file() or path.read_text(encoding="utf-8") != content:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(content, encoding="utf-8")
            changed.append(relative)
    return changed
