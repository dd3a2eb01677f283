"""The report as JSON text, the form `hsmaudit report --check` reads back."""

from __future__ import annotations

import json
from typing import Any


def render_json(report: dict[str, Any]) -> str:
    """The report as indented JSON (sorted keys: byte-identical for the same data)."""
    return json.dumps(report, indent=2, sort_keys=True, ensure_ascii=False) + "\n"
