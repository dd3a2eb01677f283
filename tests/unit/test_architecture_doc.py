"""docs/architecture.md is drawn from the code: it names every module, and nothing that is gone.

A move or split (issue 14) that forgets the page fails here, in either direction.
"""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "src" / "hsmaudit"
PAGE = ROOT / "docs" / "architecture.md"

# Backticked source paths on the page: `records/time.py`, `ops/report/`, `sinks/hec/`.
_PATH = re.compile(r"`((?:[a-z_]+/)+(?:[a-z_]+\.py)?)`")


def _modules() -> list[Path]:
    """Every module the page must name: all of layers 0-4 (cli/ is one module per command)."""
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        relative = path.relative_to(PACKAGE)
        if "generated" in relative.parts:
            continue
        if relative.parts[0] == "cli" or path.name in {"__init__.py", "__main__.py", "errors.py"}:
            continue
        found.append(relative)
    return found


def test_the_page_names_every_module() -> None:
    text = PAGE.read_text(encoding="utf-8")
    missing = []
    for relative in _modules():
        if len(relative.parts) >= 3:  # inside a subpackage: the page names the folder
            named = f"{relative.parts[-2]}/" in text
        else:
            named = f"`{relative}`" in text or f"`{relative.name}`" in text
        if not named:
            missing.append(str(relative))
    assert missing == [], f"docs/architecture.md does not name {missing}"


def test_every_path_the_page_names_exists() -> None:
    text = PAGE.read_text(encoding="utf-8")
    gone = []
    for name in _PATH.findall(text):
        if name.startswith("../"):
            continue
        if not (PACKAGE / name).exists() and not (ROOT / name).exists():
            gone.append(name)
    assert gone == [], (
        f"docs/architecture.md names paths that do not exist (under src/hsmaudit or the checkout): {gone}"
    )
