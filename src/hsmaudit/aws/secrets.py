"""The HEC token from AWS Secrets Manager or SSM Parameter Store, cached with a TTL.

Shaped like Powertools' `parameters/secrets.py` + `parameters/base.py`: the boto3 client is made
on first use (or injected), the value is cached for `ttl` seconds, and `token(refresh=True)`
fetches again (the HEC client calls it once after a 401/403, e.g. after a rotation). boto3 is
imported only when a secret store is actually configured.

The token never appears in a log line, an exception message or a repr: errors name the store,
the secret's id and AWS's error code only.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any, Final

from hsmaudit.aws.clients import aws_client, aws_error_code
from hsmaudit.sinks.errors import HecTokenError

TOKEN_KEYS: Final = ("token", "hec_token", "HEC_TOKEN", "splunk_hec_token")
"""Keys tried, in order, when a secret holds a JSON object rather than the bare token."""


def token_from_secret(secret: str, *, name: str) -> str:
    """The token inside a secret: the bare string, or a JSON object's `token` (or similar) key."""
    text = secret.strip()
    if text.startswith("{"):
        try:
            obj = json.loads(text)
        except ValueError:
            raise HecTokenError(f"{name} looks like JSON but is not valid JSON") from None
        if isinstance(obj, dict):
            for key in TOKEN_KEYS:
                value = obj.get(key)
                if isinstance(value, str) and value.strip():
                    return value.strip()
            strings = [v for v in obj.values() if isinstance(v, str) and v.strip()]
            if len(strings) == 1:
                return strings[0].strip()
        raise HecTokenError(f"{name} is a JSON object without a `token` key")
    if not text:
        raise HecTokenError(f"{name} is empty")
    return text


class _CachedToken:
    """TTL cache around one fetch function; subclasses say where the token lives."""

    store = "token store"

    def __init__(
        self, name: str, *, ttl: float, client: Any = None, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.name = name
        self.ttl = ttl
        self._client = client
        self._clock = clock
        self._value: str | None = None
        self._expires = 0.0
        self.fetches = 0

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.name!r}, ttl={self.ttl:g})"

    def _fetch(self, client: Any) -> str:
        raise NotImplementedError

    def _service(self) -> str:
        raise NotImplementedError

    def token(self, *, refresh: bool = False) -> str:
        """The cached token, fetched when missing, expired or `refresh` is set."""
        now = self._clock()
        if not refresh and self._value is not None and now < self._expires:
            return self._value
        try:
            if self._client is None:
                # 5 s read timeout: a hung secret store must not eat the invocation
                self._client = aws_client(self._service(), read_timeout=5)
            value = self._fetch(self._client)
        except HecTokenError:
            raise
        except Exception as error:  # boundary: botocore raises many types; keep only the code
            code = aws_error_code(error)
            if code == "NoRegionError":
                from hsmaudit.aws.region import NO_REGION_FIX

                raise HecTokenError(
                    f"cannot read the HEC token from {self.store} {self.name}: no AWS Region; {NO_REGION_FIX}"
                ) from None
            raise HecTokenError(f"cannot read the HEC token from {self.store} {self.name} ({code})") from None
        self.fetches += 1
        self._value = value
        self._expires = now + self.ttl
        return value


class SecretsManagerToken(_CachedToken):
    """The token in a Secrets Manager secret (ARN or name)."""

    store = "Secrets Manager secret"

    def _service(self) -> str:
        return "secretsmanager"

    def _fetch(self, client: Any) -> str:
        answer = client.get_secret_value(SecretId=self.name)
        secret = answer.get("SecretString")
        if secret is None:
            binary = answer.get("SecretBinary")
            if binary is None:
                raise HecTokenError(f"{self.store} {self.name} has no value")
            secret = bytes(binary).decode("utf-8", errors="strict")
        return token_from_secret(secret, name=f"{self.store} {self.name}")


class SsmToken(_CachedToken):
    """The token in an SSM parameter (SecureString, decrypted with the caller's KMS rights)."""

    store = "SSM parameter"

    def _service(self) -> str:
        return "ssm"

    def _fetch(self, client: Any) -> str:
        answer = client.get_parameter(Name=self.name, WithDecryption=True)
        value = answer.get("Parameter", {}).get("Value")
        if not isinstance(value, str):
            raise HecTokenError(f"{self.store} {self.name} has no value")
        return token_from_secret(value, name=f"{self.store} {self.name}")
