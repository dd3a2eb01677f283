"""The environment the handlers and boto3 see: short HEC timeouts (`FAST_SETTINGS`) and moto's
endpoint with fake credentials (`moto_environment`). The fixtures (`lambda_env`, `aws_env`,
`moto_url`) in `conftest.py` apply them."""

from __future__ import annotations

FAST_SETTINGS = {
    "HSMAUDIT_HEC_TIMEOUT": "0.5",
    "HSMAUDIT_HEC_BACKOFF_BASE": "0.01",
    "HSMAUDIT_HEC_BACKOFF_CAP": "0.05",
    "HSMAUDIT_HEC_MAX_ATTEMPTS": "4",
    "HSMAUDIT_HEC_ACK_TIMEOUT": "0.3",
    "HSMAUDIT_HEC_ACK_POLL_INTERVAL": "0.05",
    "HSMAUDIT_TIME_RESERVE": "0.5",
    "HSMAUDIT_METRICS": "false",
}
"""Short timeouts and backoffs so the whole fault matrix runs in seconds."""


CLEARED_AWS_VARIABLES = ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN")
"""What must not leak from the machine's own AWS setup into a test against moto."""


def moto_environment(moto_url: str) -> dict[str, str]:
    """boto3 pointed at moto (`AWS_ENDPOINT_URL`) with fake credentials and no config files."""
    return {
        "AWS_ENDPOINT_URL": moto_url,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_REGION": "us-east-1",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_CONFIG_FILE": "/dev/null",
        "AWS_SHARED_CREDENTIALS_FILE": "/dev/null",
    }
