"""SPL eval literals: the quoting and the `in()`/`case()` calls every generated expression uses."""

from __future__ import annotations

from collections.abc import Iterable


def spl_quote(value: str) -> str:
    """An SPL eval string literal."""
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def spl_in(field: str, values: Iterable[str]) -> str:
    return f"in({field}, " + ", ".join(spl_quote(v) for v in sorted(values)) + ")"


def spl_case(branches: list[tuple[str, str]], default: str | None = None) -> str:
    parts = [f"{condition}, {value}" for condition, value in branches]
    if default is not None:
        parts.append(f"true(), {default}")
    return "case(" + ", ".join(parts) + ")"
