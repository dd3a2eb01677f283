"""Where the HEC token comes from: the `TokenProvider` plug point and `StaticToken`.

The client reads the token per request (never logs it) and asks for a fresh one once after HEC
answers 401/403; `aws/secrets.py` provides the Secrets Manager / SSM implementations.
"""

from __future__ import annotations

from typing import Protocol

from hsmaudit.sinks.errors import HecTokenError


class TokenProvider(Protocol):
    """Gives the HEC token; `refresh=True` fetches it again (after HEC said 401/403).

    Implementations raise `HecTokenError` when the token cannot be had, with a message that
    names the store and the reason but never the token.
    """

    def token(self, *, refresh: bool = False) -> str:
        """The current token."""
        ...


class StaticToken:
    """A token given directly (`HSMAUDIT_HEC_TOKEN`, for local use); never shown in repr."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        if not value or not value.strip():
            raise HecTokenError("the HEC token is empty")
        self._value = value.strip()

    def token(self, *, refresh: bool = False) -> str:
        """The token (refreshing changes nothing)."""
        return self._value

    def __repr__(self) -> str:
        return "StaticToken(<redacted>)"
