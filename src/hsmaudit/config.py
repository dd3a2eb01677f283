"""Configuration: every setting, its `HSMAUDIT_*` environment variable, flag and default, in one place.

The default values themselves are stated once, in `hsmaudit.defaults` (which the HEC client's
policies read too); `SETTINGS` and `Settings` take them from there.

Precedence: command-line flags > environment > config file > defaults. The config file is TOML
(flat `setting = value` keys, named as below), found at `--config`, else `HSMAUDIT_CONFIG`, else
`~/.config/hsmaudit/config.toml` when it exists. The Lambda handlers use the environment only.

Stdlib only (it is imported on the Lambda's cold path and by every CLI command). The HEC token
is never part of a repr, an error message or `Settings.describe()`; the Lambda should read it
from Secrets Manager or SSM (`HSMAUDIT_HEC_TOKEN_SECRET_ARN`, `HSMAUDIT_HEC_TOKEN_SSM_PARAMETER`),
`HSMAUDIT_HEC_TOKEN` is for local use. `docs/configuration.md` is the table for people; a test
keeps it in step with `SETTINGS`.

Errors:
    ConfigError   a value that cannot be used (names the setting and the source, never a token)
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Final, Literal

from hsmaudit import defaults
from hsmaudit.booleans import FALSE, TRUE
from hsmaudit.errors import HsmauditError

# -- environment variable names (the shared list in the team's preamble; docs/configuration.md)
HSMAUDIT_CONFIG: Final = "HSMAUDIT_CONFIG"
HSMAUDIT_DB: Final = "HSMAUDIT_DB"  # local store file of serve/demo (`--db`); not a forwarder setting
HSMAUDIT_HEC_URL: Final = "HSMAUDIT_HEC_URL"
HSMAUDIT_HEC_TOKEN: Final = "HSMAUDIT_HEC_TOKEN"  # noqa: S105 - a variable name, not a secret
HSMAUDIT_HEC_TOKEN_SECRET_ARN: Final = "HSMAUDIT_HEC_TOKEN_SECRET_ARN"  # noqa: S105 - a variable name, not a secret
HSMAUDIT_HEC_TOKEN_SSM_PARAMETER: Final = "HSMAUDIT_HEC_TOKEN_SSM_PARAMETER"  # noqa: S105 - a variable name, not a secret
HSMAUDIT_HEC_TOKEN_TTL: Final = "HSMAUDIT_HEC_TOKEN_TTL"  # noqa: S105 - a variable name, not a secret
HSMAUDIT_HEC_INDEX: Final = "HSMAUDIT_HEC_INDEX"
HSMAUDIT_HEC_SOURCETYPE: Final = "HSMAUDIT_HEC_SOURCETYPE"
HSMAUDIT_HEC_ACK: Final = "HSMAUDIT_HEC_ACK"
HSMAUDIT_HEC_ACK_TIMEOUT: Final = "HSMAUDIT_HEC_ACK_TIMEOUT"
HSMAUDIT_HEC_ACK_POLL_INTERVAL: Final = "HSMAUDIT_HEC_ACK_POLL_INTERVAL"
HSMAUDIT_HEC_CA_BUNDLE: Final = "HSMAUDIT_HEC_CA_BUNDLE"
HSMAUDIT_HEC_VERIFY: Final = "HSMAUDIT_HEC_VERIFY"
HSMAUDIT_HEC_PROXY: Final = "HSMAUDIT_HEC_PROXY"
HSMAUDIT_HEC_TIMEOUT: Final = "HSMAUDIT_HEC_TIMEOUT"
HSMAUDIT_HEC_MAX_ATTEMPTS: Final = "HSMAUDIT_HEC_MAX_ATTEMPTS"
HSMAUDIT_HEC_BACKOFF_BASE: Final = "HSMAUDIT_HEC_BACKOFF_BASE"
HSMAUDIT_HEC_BACKOFF_CAP: Final = "HSMAUDIT_HEC_BACKOFF_CAP"
HSMAUDIT_INCLUDE_RAW: Final = "HSMAUDIT_INCLUDE_RAW"
HSMAUDIT_EVENT_FORMAT: Final = "HSMAUDIT_EVENT_FORMAT"
HSMAUDIT_SPOOL_BUCKET: Final = "HSMAUDIT_SPOOL_BUCKET"
HSMAUDIT_SPOOL_PREFIX: Final = "HSMAUDIT_SPOOL_PREFIX"
HSMAUDIT_SPOOL_DIR: Final = "HSMAUDIT_SPOOL_DIR"
HSMAUDIT_BATCH_MAX_EVENTS: Final = "HSMAUDIT_BATCH_MAX_EVENTS"
HSMAUDIT_BATCH_MAX_BYTES: Final = "HSMAUDIT_BATCH_MAX_BYTES"
HSMAUDIT_TIME_RESERVE: Final = "HSMAUDIT_TIME_RESERVE"
HSMAUDIT_METRICS: Final = "HSMAUDIT_METRICS"
HSMAUDIT_METRICS_NAMESPACE: Final = "HSMAUDIT_METRICS_NAMESPACE"
HSMAUDIT_LOG_LEVEL: Final = "HSMAUDIT_LOG_LEVEL"
HSMAUDIT_SUBSCRIBE_DESTINATION_ARN: Final = "HSMAUDIT_SUBSCRIBE_DESTINATION_ARN"
HSMAUDIT_SUBSCRIBE_ROLE_ARN: Final = "HSMAUDIT_SUBSCRIBE_ROLE_ARN"
HSMAUDIT_SUBSCRIBE_FILTER_NAME: Final = "HSMAUDIT_SUBSCRIBE_FILTER_NAME"

DEFAULT_CONFIG_PATH: Final = "~/.config/hsmaudit/config.toml"
MAX_BATCH_BYTES: Final = defaults.HEC_MAX_EVENT_BYTES
"""HEC's default per-event `maxEventSize` (splunk.md §1.10); no request goes above it."""

EVENT_FORMATS: Final = ("lean", "json")
"""`hsmaudit.sinks.hec.EVENT_FORMATS` (not imported: this module stays stdlib only)."""

Kind = Literal["str", "bool", "int", "float"]
Origin = Literal["default", "file", "env", "flag"]


class ConfigError(HsmauditError, ValueError):
    """A setting has a value that cannot be used; the message names setting and source."""


@dataclass(frozen=True, slots=True)
class SettingSpec:
    """One setting: its name (also the config-file key), env var, CLI flag, type and meaning."""

    name: str
    env: str
    kind: Kind
    default: str | bool | int | float | None
    meaning: str
    flag: str | None = None
    secret: bool = False


SETTINGS: Final[tuple[SettingSpec, ...]] = (
    SettingSpec("hec_url", HSMAUDIT_HEC_URL, "str", None,
                "HEC URL: origin (`https://hec.example.com:8088`) or full `/services/collector/event` URL",
                "--hec-url"),
    SettingSpec("hec_token", HSMAUDIT_HEC_TOKEN, "str", None,
                "HEC token itself, for local use only (never logged; use a secret store in AWS)",
                secret=True),
    SettingSpec("hec_token_secret_arn", HSMAUDIT_HEC_TOKEN_SECRET_ARN, "str", None,
                "Secrets Manager secret holding the token (plain string, or JSON with a `token` key)"),
    SettingSpec("hec_token_ssm_parameter", HSMAUDIT_HEC_TOKEN_SSM_PARAMETER, "str", None,
                "SSM parameter (SecureString) holding the token"),
    SettingSpec("hec_token_ttl", HSMAUDIT_HEC_TOKEN_TTL, "float", defaults.HEC_TOKEN_TTL,
                "seconds a fetched token is cached (it is also re-fetched once after HEC answers 401/403)"),
    SettingSpec("hec_index", HSMAUDIT_HEC_INDEX, "str", None,
                "HEC `index` for every event (only sent when set)", "--index"),
    SettingSpec("event_format", HSMAUDIT_EVENT_FORMAT, "str", defaults.EVENT_FORMAT,
                "HEC event format: `lean` (the record text as CloudHSM wrote it, ids as indexed "
                "`fields`: licence = the logs' own size) or `json` (the normalised event object)",
                "--event-format"),
    SettingSpec("hec_sourcetype", HSMAUDIT_HEC_SOURCETYPE, "str", None,
                "HEC `sourcetype`; unset: the format's, `aws:cloudhsm:audit:text` (lean) or "
                "`aws:cloudhsm:audit` (json)", "--sourcetype"),
    SettingSpec("hec_ack", HSMAUDIT_HEC_ACK, "bool", defaults.HEC_ACK,
                "use indexer acknowledgement (the token must have it enabled)", "--ack/--no-ack"),
    SettingSpec("hec_ack_timeout", HSMAUDIT_HEC_ACK_TIMEOUT, "float", defaults.HEC_ACK_TIMEOUT,
                "seconds to wait for an ack before resending once; still unacknowledged then: spooled"),
    SettingSpec("hec_ack_poll_interval", HSMAUDIT_HEC_ACK_POLL_INTERVAL, "float",
                defaults.HEC_ACK_POLL_INTERVAL,
                "seconds between ack polls"),
    SettingSpec("hec_ca_bundle", HSMAUDIT_HEC_CA_BUNDLE, "str", None,
                "PEM file of CA certificates to trust for HEC (e.g. Splunk's own or an internal CA)",
                "--ca-bundle"),
    SettingSpec("hec_verify", HSMAUDIT_HEC_VERIFY, "bool", defaults.HEC_VERIFY,
                "verify HEC's TLS certificate; `false` is logged as a warning on every cold start",
                "--insecure"),
    SettingSpec("hec_proxy", HSMAUDIT_HEC_PROXY, "str", None,
                "HTTP(S) proxy for HEC requests, `http://[user:password@]proxy:3128` (https HEC is "
                "tunnelled with CONNECT); `HTTPS_PROXY` is not read for HEC", secret=True),
    SettingSpec("hec_timeout", HSMAUDIT_HEC_TIMEOUT, "float", defaults.HEC_TIMEOUT,
                "seconds per HEC request (connect and read), also bounded by the time left", "--timeout"),
    SettingSpec("hec_max_attempts", HSMAUDIT_HEC_MAX_ATTEMPTS, "int", defaults.HEC_MAX_ATTEMPTS,
                "tries per batch on retryable failures (503, 429, 5xx, timeouts, resets) before spooling"),
    SettingSpec("hec_backoff_base", HSMAUDIT_HEC_BACKOFF_BASE, "float", defaults.HEC_BACKOFF_BASE,
                "first retry waits up to this many seconds; each further retry doubles it (full jitter)"),
    SettingSpec("hec_backoff_cap", HSMAUDIT_HEC_BACKOFF_CAP, "float", defaults.HEC_BACKOFF_CAP,
                "longest wait between retries, in seconds (also caps a server's Retry-After)"),
    SettingSpec("include_raw", HSMAUDIT_INCLUDE_RAW, "bool", defaults.INCLUDE_RAW,
                "`json` format only: keep the record text in `event.raw` (a lean event is the text)",
                "--raw/--no-raw"),
    SettingSpec("spool_bucket", HSMAUDIT_SPOOL_BUCKET, "str", None,
                "S3 bucket for batches HEC did not take (the Lambda's spool)"),
    SettingSpec("spool_prefix", HSMAUDIT_SPOOL_PREFIX, "str", defaults.SPOOL_PREFIX,
                "key prefix in the spool bucket"),
    SettingSpec("spool_dir", HSMAUDIT_SPOOL_DIR, "str", None,
                "local spool directory (CLI, demo; in Lambda only `/tmp`, which is not durable)",
                "--spool-dir"),
    SettingSpec("batch_max_events", HSMAUDIT_BATCH_MAX_EVENTS, "int", defaults.BATCH_MAX_EVENTS,
                "events per HEC request at most"),
    SettingSpec("batch_max_bytes", HSMAUDIT_BATCH_MAX_BYTES, "int", defaults.BATCH_MAX_BYTES,
                "uncompressed bytes per HEC request at most (HEC limits apply before gzip; max 5 MiB)"),
    SettingSpec("time_reserve", HSMAUDIT_TIME_RESERVE, "float", defaults.TIME_RESERVE,
                "seconds of each invocation kept back for spooling what HEC has not taken"),
    SettingSpec("metrics", HSMAUDIT_METRICS, "bool", defaults.METRICS,
                "emit CloudWatch EMF metrics from the Lambda handlers"),
    SettingSpec("metrics_namespace", HSMAUDIT_METRICS_NAMESPACE, "str", defaults.METRICS_NAMESPACE,
                "CloudWatch metrics namespace"),
    SettingSpec("log_level", HSMAUDIT_LOG_LEVEL, "str", defaults.LOG_LEVEL,
                "log level of the handlers (`DEBUG`, `INFO`, `WARNING`, `ERROR`)"),
    SettingSpec("subscribe_destination_arn", HSMAUDIT_SUBSCRIBE_DESTINATION_ARN, "str", None,
                "auto-subscribe function: where a new cluster's subscription filter sends (the "
                "forwarder function or the delivery stream)"),
    SettingSpec("subscribe_role_arn", HSMAUDIT_SUBSCRIBE_ROLE_ARN, "str", None,
                "auto-subscribe function, Firehose mode: the role CloudWatch Logs puts records with"),
    SettingSpec("subscribe_filter_name", HSMAUDIT_SUBSCRIBE_FILTER_NAME, "str",
                defaults.SUBSCRIBE_FILTER_NAME,
                "auto-subscribe function: the name of the subscription filter it puts"),
)  # fmt: skip

SETTINGS_BY_NAME: Final[dict[str, SettingSpec]] = {spec.name: spec for spec in SETTINGS}
ENV_VARS: Final[tuple[str, ...]] = (HSMAUDIT_CONFIG, *(spec.env for spec in SETTINGS))
"""Every `HSMAUDIT_*` variable the project reads."""


def masked_url(url: str) -> str:
    """`url` safe to print: embedded credentials and query values become `***`.

    `https://user:pass@hec:8088/x?token=t` -> `https://***@hec:8088/x?token=***`. HEC takes its
    token in the Authorization header (docs/reference/splunk.md §1.2), so anything in the URL
    itself would only leak into terminals and logs.
    """
    from urllib.parse import urlsplit, urlunsplit

    try:
        parts = urlsplit(url)
    except ValueError:
        return "<unparsable URL>"
    netloc = parts.netloc
    if "@" in netloc:
        netloc = "***@" + netloc.rpartition("@")[2]
    query = (
        "&".join(
            f"{name}=***" if sep else name
            for name, sep, _ in (item.partition("=") for item in parts.query.split("&"))
        )
        if parts.query
        else ""
    )
    return urlunsplit((parts.scheme, netloc, parts.path, query, "***" if parts.fragment else ""))


def url_has_credentials(url: str) -> bool:
    """True when `url` carries a user name or password before the host."""
    from urllib.parse import urlsplit

    try:
        return "@" in urlsplit(url).netloc
    except ValueError:
        return False


@dataclass(frozen=True, slots=True)
class Settings:
    """Resolved settings. Construct with `load_settings` (or directly in tests and the demo)."""

    hec_url: str | None = None
    hec_token: str | None = field(default=None, repr=False)
    hec_token_secret_arn: str | None = None
    hec_token_ssm_parameter: str | None = None
    hec_token_ttl: float = defaults.HEC_TOKEN_TTL
    hec_index: str | None = None
    event_format: Literal["lean", "json"] = defaults.EVENT_FORMAT
    hec_sourcetype: str | None = None
    hec_ack: bool = defaults.HEC_ACK
    hec_ack_timeout: float = defaults.HEC_ACK_TIMEOUT
    hec_ack_poll_interval: float = defaults.HEC_ACK_POLL_INTERVAL
    hec_ca_bundle: str | None = None
    hec_verify: bool = defaults.HEC_VERIFY
    hec_proxy: str | None = field(default=None, repr=False)
    hec_timeout: float = defaults.HEC_TIMEOUT
    hec_max_attempts: int = defaults.HEC_MAX_ATTEMPTS
    hec_backoff_base: float = defaults.HEC_BACKOFF_BASE
    hec_backoff_cap: float = defaults.HEC_BACKOFF_CAP
    include_raw: bool = defaults.INCLUDE_RAW
    spool_bucket: str | None = None
    spool_prefix: str = defaults.SPOOL_PREFIX
    spool_dir: str | None = None
    batch_max_events: int = defaults.BATCH_MAX_EVENTS
    batch_max_bytes: int = defaults.BATCH_MAX_BYTES
    time_reserve: float = defaults.TIME_RESERVE
    metrics: bool = defaults.METRICS
    metrics_namespace: str = defaults.METRICS_NAMESPACE
    log_level: str = defaults.LOG_LEVEL
    subscribe_destination_arn: str | None = None
    subscribe_role_arn: str | None = None
    subscribe_filter_name: str = defaults.SUBSCRIBE_FILTER_NAME
    origins: Mapping[str, Origin] = field(default_factory=dict, repr=False, compare=False)
    config_path: str | None = None

    @property
    def spool_location(self) -> str | None:
        """`s3://bucket/prefix` when a bucket is set, else the spool directory, else None."""
        if self.spool_bucket:
            return f"s3://{self.spool_bucket}/{self.spool_prefix.lstrip('/')}"
        return self.spool_dir

    @property
    def token_source(self) -> Literal["secretsmanager", "ssm", "env", "none"]:
        """Where the token comes from: a secret store wins over a plain token."""
        if self.hec_token_secret_arn:
            return "secretsmanager"
        if self.hec_token_ssm_parameter:
            return "ssm"
        if self.hec_token:
            return "env"
        return "none"

    def describe(self) -> dict[str, Any]:
        """Every setting with its value and where it came from; the token shown only as set/unset."""
        out: dict[str, Any] = {}
        for spec in SETTINGS:
            value = getattr(self, spec.name)
            if spec.secret:
                value = "<set>" if value else None
            elif spec.name == "hec_url" and value:
                value = masked_url(value)
            out[spec.name] = {"value": value, "from": self.origins.get(spec.name, "default")}
        return out


def _convert(spec: SettingSpec, value: Any, origin: str) -> str | bool | int | float | None:
    """Convert a raw value (env string, TOML value, flag value) to the setting's type."""
    where = f"{spec.name} (from {origin})"
    if value is None:
        return None
    if spec.kind == "str":
        if not isinstance(value, str):
            raise ConfigError(f"{where} must be a string")
        value = value.strip()
        return value or None
    if spec.kind == "bool":
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.strip().lower() in TRUE:
            return True
        if isinstance(value, str) and value.strip().lower() in FALSE:
            return False
        raise ConfigError(f"{where} must be true or false")
    if spec.kind == "int":
        if isinstance(value, bool):
            raise ConfigError(f"{where} must be a whole number")
        if isinstance(value, int):
            return value
        try:
            return int(str(value).strip())
        except ValueError:
            raise ConfigError(f"{where} must be a whole number") from None
    if isinstance(value, bool):
        raise ConfigError(f"{where} must be a number")
    if isinstance(value, int | float):
        return float(value)
    try:
        return float(str(value).strip())
    except ValueError:
        raise ConfigError(f"{where} must be a number") from None


def validate(settings: Settings) -> None:
    """Check ranges; raises `ConfigError` naming the setting."""
    if settings.batch_max_events < 1:
        raise ConfigError("batch_max_events must be at least 1")
    if not 1024 <= settings.batch_max_bytes <= MAX_BATCH_BYTES:
        raise ConfigError(f"batch_max_bytes must be between 1024 and {MAX_BATCH_BYTES} (HEC's maxEventSize)")
    for name in ("hec_timeout", "hec_ack_poll_interval", "hec_ack_timeout"):
        if getattr(settings, name) <= 0:
            raise ConfigError(f"{name} must be greater than 0")
    if settings.hec_backoff_base < 0 or settings.hec_backoff_cap < 0:
        raise ConfigError("hec_backoff_base and hec_backoff_cap cannot be negative")
    if settings.hec_token_ttl < 0 or settings.time_reserve < 0:
        raise ConfigError("hec_token_ttl and time_reserve cannot be negative")
    if settings.hec_max_attempts < 1:
        raise ConfigError("hec_max_attempts must be at least 1")
    if settings.hec_url is not None and not settings.hec_url.startswith(("https://", "http://")):
        raise ConfigError("hec_url must start with https:// (or http:// for a local collector)")
    if settings.event_format not in EVENT_FORMATS:
        raise ConfigError(f"event_format must be {' or '.join(EVENT_FORMATS)}")
    if settings.log_level.upper() not in ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"):
        raise ConfigError("log_level must be DEBUG, INFO, WARNING, ERROR or CRITICAL")


def config_file_path(flag_path: str | None, environ: Mapping[str, str]) -> tuple[Path | None, bool]:
    """Which config file to read, and whether it must exist (explicit paths must)."""
    if flag_path:
        return Path(flag_path).expanduser(), True
    env_path = environ.get(HSMAUDIT_CONFIG, "").strip()
    if env_path:
        return Path(env_path).expanduser(), True
    if not environ.get("HOME") and DEFAULT_CONFIG_PATH.startswith("~"):
        return None, False  # no home directory (a Lambda container): no default file
    return Path(DEFAULT_CONFIG_PATH).expanduser(), False


def read_config_file(path: Path) -> dict[str, Any]:
    """Read a TOML config file; unknown keys are an error (a typo must not be silently ignored)."""
    import tomllib  # only the CLI reads files; the Lambda's cold start does not pay for the parser

    try:
        with path.open("rb") as handle:
            data = tomllib.load(handle)
    except OSError as error:
        raise ConfigError(f"cannot read config file {path}: {error.strerror or error}") from None
    except tomllib.TOMLDecodeError as error:
        raise ConfigError(f"config file {path} is not valid TOML: {error}") from None
    unknown = sorted(set(data) - set(SETTINGS_BY_NAME))
    if unknown:
        raise ConfigError(
            f"config file {path} has unknown settings {', '.join(unknown)} (see docs/configuration.md)"
        )
    return data


def load_settings(
    flags: Mapping[str, Any] | None = None,
    *,
    environ: Mapping[str, str] | None = None,
    config_path: str | None = None,
) -> Settings:
    """Resolve settings: flags > environment > config file > defaults.

    Args:
        flags: setting name -> value given on the command line; None values mean "not given".
        environ: the environment (defaults to `os.environ`).
        config_path: `--config`; otherwise `HSMAUDIT_CONFIG`, otherwise the default path if present.
    """
    env = os.environ if environ is None else environ
    path, required = config_file_path(config_path, env)
    file_values: dict[str, Any] = {}
    used_path: str | None = None
    if path is not None and (required or path.is_file()):
        file_values = read_config_file(path)
        used_path = str(path)
    values: dict[str, Any] = {}
    origins: dict[str, Origin] = {}
    for spec in SETTINGS:
        chosen: tuple[Any, Origin] | None = None
        flag_value = (flags or {}).get(spec.name)
        if flag_value is not None:
            chosen = (flag_value, "flag")
        elif env.get(spec.env, "").strip():
            chosen = (env[spec.env], "env")
        elif spec.name in file_values:
            chosen = (file_values[spec.name], "file")
        if chosen is None:
            continue
        origin = chosen[1]
        label = {"flag": spec.flag or spec.name, "env": spec.env, "file": used_path or "config file"}[origin]
        converted = _convert(spec, chosen[0], label)
        if converted is not None:
            values[spec.name] = converted
            origins[spec.name] = origin
    unknown_flags = sorted(set(flags or {}) - set(SETTINGS_BY_NAME))
    if unknown_flags:
        raise ConfigError(f"unknown settings {', '.join(unknown_flags)}")
    if "log_level" in values:
        values["log_level"] = str(values["log_level"]).upper()
    if "event_format" in values:
        values["event_format"] = str(values["event_format"]).lower()
    settings = Settings(**values, origins=origins, config_path=used_path)
    validate(settings)
    return settings


def settings_field_names() -> tuple[str, ...]:
    """Names of the `Settings` fields that are settings (for the docs test)."""
    return tuple(f.name for f in fields(Settings) if f.name in SETTINGS_BY_NAME)
