"""What a warm Lambda container keeps: settings, the HEC client (its pool and channel), the spool.

Nothing here runs at import. `get_runtime()` builds everything on the first invocation from the
environment and caches it for the container's life (style.md: "no work at import"; Powertools'
`DEFAULT_PROVIDERS` with `clear_caches()`); tests and the demo call `build_runtime(settings)` or
`clear_runtime()` to start over.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hsmaudit.aws.spools import open_spool
from hsmaudit.config import ConfigError, Settings, load_settings
from hsmaudit.sinks.hec.client import HecClient
from hsmaudit.sinks.hec.envelope import EventEncoder
from hsmaudit.sinks.hec.policy import AckPolicy, BatchPolicy, ConnectionPolicy, RetryPolicy
from hsmaudit.sinks.hec.token import StaticToken, TokenProvider
from hsmaudit.sinks.spool import Spool

logger = logging.getLogger("hsmaudit.aws")


@dataclass(frozen=True, slots=True)
class Runtime:
    """The per-container objects the handlers use."""

    settings: Settings
    client: HecClient | None
    spool: Spool | None


def token_provider(settings: Settings) -> TokenProvider:
    """Where the token comes from: Secrets Manager > SSM > `HSMAUDIT_HEC_TOKEN` (local use)."""
    if settings.hec_token_secret_arn:
        from hsmaudit.aws.secrets import SecretsManagerToken

        return SecretsManagerToken(settings.hec_token_secret_arn, ttl=settings.hec_token_ttl)
    if settings.hec_token_ssm_parameter:
        from hsmaudit.aws.secrets import SsmToken

        return SsmToken(settings.hec_token_ssm_parameter, ttl=settings.hec_token_ttl)
    if settings.hec_token:
        return StaticToken(settings.hec_token)
    # No --token flag on purpose (a flag shows in `ps` and shell history), so the message names
    # every way there is: the variable for local use, the two secret stores for AWS.
    raise ConfigError(
        "no HEC token configured: set HSMAUDIT_HEC_TOKEN (local use), or keep it in a secret store "
        "and set HSMAUDIT_HEC_TOKEN_SECRET_ARN (Secrets Manager) or HSMAUDIT_HEC_TOKEN_SSM_PARAMETER "
        "(SSM); the config file's hec_token_secret_arn / hec_token_ssm_parameter work too"
    )


def build_client(settings: Settings, token: TokenProvider | None = None) -> HecClient:
    """An `HecClient` from settings (raises `ConfigError` when the URL or token is missing)."""
    if not settings.hec_url:
        # the Lambda reads only its environment; the CLI's replay also takes the flag or the file
        raise ConfigError(
            "no HEC URL configured: set HSMAUDIT_HEC_URL (on the command line: or give --hec-url, "
            "or hec_url in the config file)"
        )
    if settings.hec_ca_bundle:
        check_ca_bundle(settings.hec_ca_bundle)
    try:
        return HecClient(
            settings.hec_url,
            token or token_provider(settings),
            connection=ConnectionPolicy(
                timeout=settings.hec_timeout,
                verify=settings.hec_verify,
                ca_bundle=settings.hec_ca_bundle,
                proxy=settings.hec_proxy,
            ),
            retry=RetryPolicy(
                max_attempts=settings.hec_max_attempts,
                backoff_base=settings.hec_backoff_base,
                backoff_cap=settings.hec_backoff_cap,
            ),
            acks=AckPolicy(
                enabled=settings.hec_ack,
                timeout=settings.hec_ack_timeout,
                poll_interval=settings.hec_ack_poll_interval,
            ),
            batch=BatchPolicy(max_events=settings.batch_max_events, max_bytes=settings.batch_max_bytes),
            encoder=EventEncoder(
                event_format=settings.event_format,
                sourcetype=settings.hec_sourcetype,
                index=settings.hec_index,
                include_raw=settings.include_raw,
            ),
        )
    except ValueError as error:
        raise ConfigError(str(error)) from None


def check_ca_bundle(path: str) -> None:
    """A CA bundle that is missing or holds no certificate is configuration, said at once.

    Left to urllib3, it surfaces at the first connection as a TLS failure and is retried like a
    network fault, once per attempt and batch, with a reason that hides the typo.
    """
    import ssl

    fix = "give the PEM file of the CA that signed HEC's certificate (--ca-bundle / HSMAUDIT_HEC_CA_BUNDLE)"
    file = Path(path).expanduser()
    if not file.is_file():
        what = "is a directory" if file.is_dir() else "does not exist"
        raise ConfigError(f"the HEC CA bundle {path} {what}: {fix}")
    try:
        ssl.create_default_context(cafile=str(file))
    except (ssl.SSLError, OSError, ValueError) as error:
        reason = getattr(error, "reason", None) or type(error).__name__
        raise ConfigError(f"the HEC CA bundle {path} holds no usable certificate ({reason}): {fix}") from None


def build_runtime(settings: Settings, *, need_client: bool = True) -> Runtime:
    """Client and spool for these settings; the Firehose handler needs no client."""
    client = build_client(settings) if need_client else None
    location = settings.spool_location
    spool = open_spool(location) if location else None
    return Runtime(settings=settings, client=client, spool=spool)


_RUNTIMES: dict[str, Runtime] = {}


def get_runtime(kind: str, *, environ: Mapping[str, str] | None = None) -> Runtime:
    """The cached runtime of this container for a handler kind (`subscription`, `firehose`)."""
    runtime = _RUNTIMES.get(kind)
    if runtime is None:
        settings = load_settings(environ=os.environ if environ is None else environ)
        logging.getLogger("hsmaudit").setLevel(settings.log_level)
        runtime = build_runtime(settings, need_client=kind != "firehose")
        _RUNTIMES[kind] = runtime
        _warn_about_durability(settings, kind, env=os.environ if environ is None else environ)
        logger.info(
            "hsmaudit: %s handler ready (ack=%s, spool=%s, token from %s)",
            kind,
            settings.hec_ack,
            settings.spool_location or "none",
            settings.token_source,
        )
    return runtime


def _warn_about_durability(settings: Settings, kind: str, *, env: Mapping[str, str]) -> None:
    """Say at cold start when a refusal by HEC could only be kept by AWS retries or by /tmp."""
    if settings.spool_location is None:
        logger.warning(
            "hsmaudit: no spool configured (set HSMAUDIT_SPOOL_BUCKET): events HEC does not take "
            "fail the invocation and are kept only by AWS's retries and the function's DLQ"
        )
    elif not settings.spool_bucket and env.get("AWS_LAMBDA_FUNCTION_NAME"):
        logger.warning(
            "hsmaudit: the %s handler spools to a local directory, which is lost with the Lambda "
            "container; set HSMAUDIT_SPOOL_BUCKET",
            kind,
        )


def clear_runtime() -> None:
    """Forget the cached runtimes (tests; a changed environment)."""
    for runtime in _RUNTIMES.values():
        if runtime.client is not None:
            runtime.client.close()
    _RUNTIMES.clear()


def deadline_from(context: Any, reserve: float, *, clock: Any = time.monotonic) -> float:
    """A `clock()` deadline: the invocation's remaining time minus the reserve kept for spooling.

    Without a Lambda context (local runs) the budget is 60 s. The reserve never takes more than
    half of what is left, so a short invocation still gets to try HEC.
    """
    remaining = 60.0
    getter = getattr(context, "get_remaining_time_in_millis", None)
    if callable(getter):
        try:
            remaining = float(getter()) / 1000.0
        except (TypeError, ValueError):
            remaining = 60.0
    budget = remaining - reserve if remaining - reserve >= remaining / 2 else remaining / 2
    return float(clock()) + max(budget, 0.0)
