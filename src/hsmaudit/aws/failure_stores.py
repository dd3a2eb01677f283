"""Where AWS keeps what the forwarder could not deliver: the SQS on-failure queue and Firehose's S3 objects.

Two stores, both outside our own spool (`aws/s3spool.py`), read and emptied by `hsmaudit replay`
(the engine is `ops/recover.py`; this module only talks to SQS and S3):

- `SqsFailureQueue`: the Lambda's asynchronous on-failure destination. Each message body is an
  invocation record (Lambda developer guide, "Configuring destinations for asynchronous
  invocation"): `{"version": "1.0", "timestamp", "requestContext": {"requestId", "functionArn",
  "condition": "RetriesExhausted" | "EventAgeExceeded" | …, "approximateInvokeCount"},
  "requestPayload": <the original event>, "responseContext": {"statusCode", "executedVersion",
  "functionError"}, "responsePayload"}`. A message is received with a visibility timeout that
  covers its delivery, deleted once it is delivered, and made visible again (timeout 0) when it
  is left, so the next run sees it at once.
- `FirehoseFailureObjects`: the objects Firehose writes under `S3BackupMode: FailedEventsOnly`'s
  prefix (records it could not deliver to Splunk) and under `ErrorOutputPrefix`'s
  `processing-failed/` (records the transformation answered `ProcessingFailed`). Each object is
  gzip'd (CompressionFormat GZIP) JSON records, one per line, with `rawData` the base64 record
  (Firehose developer guide, "Handle data delivery failures" / "Handle failure in data
  transformation"). An object is deleted only after everything in it was delivered.

Errors become `FailureStoreError` (a `SinkError`, so the CLI's one-line error handling applies)
with the queue or key and the AWS error code.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Final

from hsmaudit.aws.clients import aws_client, aws_error_code, split_s3_url
from hsmaudit.sinks.errors import SinkError

SQS_URL: Final = re.compile(r"^https://sqs[.-]([a-z0-9-]+)\.amazonaws\.com(?:\.cn)?/(\d{12})/([^/?#]+)$")
"""A queue URL as SQS prints it: `https://sqs.<region>.amazonaws.com/<account>/<name>`."""
RECEIVE_BATCH: Final = 10
"""SQS returns at most 10 messages per ReceiveMessage."""


class FailureStoreError(SinkError):
    """SQS or S3 refused a read, delete or visibility change of a failure store."""


READ_TIMEOUT: Final = 25
"""Seconds: longer than a ReceiveMessage long poll (`wait`, at most 20 s)."""


def is_queue_url(where: str) -> bool:
    """`sqs://name` or an SQS queue URL."""
    return where.startswith("sqs://") or SQS_URL.match(where) is not None


@dataclass(frozen=True, slots=True)
class QueueMessage:
    """One received message: id, receipt handle (to delete or release it) and body text."""

    message_id: str
    receipt_handle: str
    body: str


class SqsFailureQueue:
    """The on-failure queue, named `sqs://<queue-name>` or by its URL."""

    def __init__(self, where: str, *, client: Any = None) -> None:
        self.where = where
        self._region: str | None = None
        self._url: str | None = None
        match = SQS_URL.match(where)
        if match is not None:
            self._region, self._url = match.group(1), where
            self.name = match.group(3)
        elif where.startswith("sqs://"):
            self.name = where.removeprefix("sqs://").strip("/")
            if not self.name or "/" in self.name:
                raise FailureStoreError(
                    f"not a queue: {where!r} (expected sqs://<queue-name> or the queue URL)"
                )
        else:
            raise FailureStoreError(f"not a queue: {where!r} (expected sqs://<queue-name> or the queue URL)")
        self._client = client

    @property
    def location(self) -> str:
        """`sqs://name`, as the summary names it."""
        return f"sqs://{self.name}"

    @property
    def client(self) -> Any:
        """The boto3 SQS client, made on first use."""
        if self._client is None:
            self._client = aws_client("sqs", read_timeout=READ_TIMEOUT, region=self._region)
        return self._client

    @property
    def url(self) -> str:
        """The queue URL (GetQueueUrl once, for `sqs://name`)."""
        if self._url is None:
            try:
                self._url = str(self.client.get_queue_url(QueueName=self.name)["QueueUrl"])
            except Exception as error:  # boundary: botocore's error types are many
                raise FailureStoreError(
                    f"cannot find the queue {self.name} ({aws_error_code(error)}): check the name, "
                    "the Region (AWS_REGION) and sqs:GetQueueUrl"
                ) from None
        return self._url

    def approximate_count(self) -> int:
        """ApproximateNumberOfMessages (visible ones)."""
        try:
            attributes = self.client.get_queue_attributes(
                QueueUrl=self.url, AttributeNames=["ApproximateNumberOfMessages"]
            )["Attributes"]
        except Exception as error:  # boundary
            raise FailureStoreError(f"cannot read {self.location} ({aws_error_code(error)})") from None
        return int(attributes.get("ApproximateNumberOfMessages", 0))

    def receive(self, *, visibility: int, wait: int = 1) -> list[QueueMessage]:
        """Up to 10 messages, hidden from other readers for `visibility` seconds."""
        try:
            answer = self.client.receive_message(
                QueueUrl=self.url,
                MaxNumberOfMessages=RECEIVE_BATCH,
                VisibilityTimeout=visibility,
                WaitTimeSeconds=wait,
            )
        except Exception as error:  # boundary
            raise FailureStoreError(
                f"cannot receive from {self.location} ({aws_error_code(error)})"
            ) from None
        return [
            QueueMessage(str(m["MessageId"]), str(m["ReceiptHandle"]), str(m.get("Body", "")))
            for m in answer.get("Messages", [])
        ]

    def delete(self, message: QueueMessage) -> None:
        """Delete one delivered message."""
        try:
            self.client.delete_message(QueueUrl=self.url, ReceiptHandle=message.receipt_handle)
        except Exception as error:  # boundary
            raise FailureStoreError(
                f"cannot delete message {message.message_id} from {self.location} ({aws_error_code(error)})"
            ) from None

    def release(self, message: QueueMessage) -> None:
        """Make a message visible again at once (it stays; the next run sees it)."""
        try:
            self.client.change_message_visibility(
                QueueUrl=self.url, ReceiptHandle=message.receipt_handle, VisibilityTimeout=0
            )
        except Exception as error:  # boundary
            raise FailureStoreError(
                f"cannot release message {message.message_id} in {self.location} ({aws_error_code(error)})"
            ) from None


class FirehoseFailureObjects:
    """Firehose's failed-delivery or processing-failed objects under `s3://bucket/prefix`."""

    def __init__(self, url: str, *, client: Any = None) -> None:
        location = split_s3_url(url)
        if location is None:
            raise FailureStoreError(f"not an S3 URL: {url!r} (expected s3://bucket/prefix)")
        self.bucket, self.prefix = location
        self._client = client

    @property
    def location(self) -> str:
        """`s3://bucket/prefix`."""
        return f"s3://{self.bucket}/{self.prefix}"

    @property
    def client(self) -> Any:
        """The boto3 S3 client, made on first use."""
        if self._client is None:
            self._client = aws_client("s3", read_timeout=READ_TIMEOUT)
        return self._client

    def object_keys(self) -> Iterator[str]:
        """Object keys under the prefix, oldest first (Firehose's keys start with the UTC hour)."""
        found: list[tuple[Any, str]] = []
        try:
            paginator = self.client.get_paginator("list_objects_v2")
            for page in paginator.paginate(Bucket=self.bucket, Prefix=self.prefix):
                for item in page.get("Contents", []):
                    if not item["Key"].endswith("/"):
                        found.append((item.get("LastModified"), item["Key"]))
        except Exception as error:  # boundary
            raise FailureStoreError(f"cannot list {self.location} ({aws_error_code(error)})") from None
        return iter(key for _, key in sorted(found, key=lambda pair: (str(pair[0]), pair[1])))

    def read(self, key: str) -> bytes:
        """The object's bytes (still compressed)."""
        try:
            return bytes(self.client.get_object(Bucket=self.bucket, Key=key)["Body"].read())
        except Exception as error:  # boundary
            raise FailureStoreError(
                f"cannot read s3://{self.bucket}/{key} ({aws_error_code(error)})"
            ) from None

    def delete(self, key: str) -> None:
        """Delete one object whose records were all delivered (or kept in the quarantine)."""
        try:
            self.client.delete_object(Bucket=self.bucket, Key=key)
        except Exception as error:  # boundary
            raise FailureStoreError(
                f"cannot delete s3://{self.bucket}/{key} ({aws_error_code(error)})"
            ) from None
