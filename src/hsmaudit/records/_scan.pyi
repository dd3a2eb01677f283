"""Type stub of the C extension built from `_scan.c` (see its header)."""

from types import NotImplementedType
from typing import Any

# Groups 1-9 are always str, 10-13 str or None, as with `re.Match.groups()` (typed the same way).
def scan(message: str, /) -> tuple[Any, ...] | NotImplementedType | None: ...
def lean(
    message: str,
    cluster_id: str | None,
    hsm_id: str | None,
    statics: dict[Any, Any],
    /,
) -> tuple[int, str] | NotImplementedType | None: ...
def lean_lines(
    entries: list[Any],
    start: int,
    cluster_id: str | None,
    hsm_id: str | None,
    statics: dict[Any, Any],
    before_text: bytes,
    before_id: bytes,
    reboot: int | None,
    sequence: int | None,
    /,
) -> tuple[bytes, int, int | None, int | None, int]: ...
def blake2b_128(data: bytes, /) -> str: ...
