"""What an AWS error means for a doctor check, and its short name for a one-line message."""

from __future__ import annotations

import re
from typing import Literal

ErrorKind = Literal["denied", "credentials", "not_found", "throttled", "unavailable", "other"]


def error_kind(error: BaseException) -> ErrorKind:
    """What an AWS error means for a check, from botocore's `ClientError` or its other errors.

    Matches on codes and, for emulators and query-protocol answers that put the code in the
    message, on the message: "AccessDenied", "not authorized", "InvalidClientTokenId".
    """
    response = getattr(error, "response", None)
    code = ""
    message = ""
    status = 0
    if isinstance(response, dict):
        code = str(response.get("Error", {}).get("Code", ""))
        message = str(response.get("Error", {}).get("Message", ""))
        status = int(response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0) or 0)
    name = type(error).__name__
    text = f"{code} {message}"
    if name in {"NoCredentialsError", "PartialCredentialsError", "CredentialRetrievalError"}:
        return "credentials"
    if re.search(
        r"InvalidClientTokenId|UnrecognizedClient|ExpiredToken|SignatureDoesNotMatch|InvalidAccessKeyId", text
    ):
        return "credentials"
    if re.search(r"AccessDenied|UnauthorizedOperation|not authorized|AuthorizationError", text):
        return "denied"
    if re.search(r"ResourceNotFound|NoSuchBucket|NoSuchEntity|ParameterNotFound|NoSuchKey", text):
        return "not_found"
    if re.search(r"Throttl|TooManyRequests|RequestLimitExceeded|SlowDown", text):
        return "throttled"
    if name in {"EndpointConnectionError", "ConnectTimeoutError", "ReadTimeoutError", "ResponseParserError"}:
        return "unavailable"
    if status >= 500 or name in {"NotImplementedError"}:
        return "unavailable"
    return "other"


def _short(error: BaseException) -> str:
    response = getattr(error, "response", None)
    if isinstance(response, dict):
        code = str(response.get("Error", {}).get("Code", ""))
        message = str(response.get("Error", {}).get("Message", ""))
        inner = re.search(r"<Code>([^<]+)</Code>", message)
        return inner.group(1) if inner else (code or type(error).__name__)
    return type(error).__name__
