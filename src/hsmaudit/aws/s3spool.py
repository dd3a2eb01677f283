"""The S3 spool: the Lambda's durable place for batches HEC did not take.

Same batch format as `hsmaudit.sinks.spool.LocalSpool` (gzip'd header line + HEC lines), one
object per batch under `<prefix><batch_id>.hsmspool.gz`; ids sort by time, so listing is oldest
first. Replay moves a batch it must not send to `<prefix>quarantine/<batch_id>.hsmspool.gz`
(copy, then delete), with the reason in the object's metadata. A put is a single `PutObject`
(atomic in S3); a delete of a missing key succeeds, so
replay can be repeated. Errors become `SpoolError` with the bucket, key and AWS error code.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any
from urllib.parse import quote, unquote

from hsmaudit import defaults
from hsmaudit.aws.clients import aws_client, aws_error_code, split_s3_url
from hsmaudit.sinks.errors import SpoolError
from hsmaudit.sinks.spool import QUARANTINE, SPOOL_SUFFIX, SpoolBatch, decode_batch, encode_batch


class S3Spool:
    """Spooled batches as S3 objects under a prefix."""

    def __init__(self, bucket: str, prefix: str = defaults.SPOOL_PREFIX, *, client: Any = None) -> None:
        if not bucket:
            raise SpoolError("the spool bucket name is empty")
        self.bucket = bucket
        self.prefix = prefix.lstrip("/")
        if self.prefix and not self.prefix.endswith("/"):
            self.prefix += "/"
        self._client = client

    @classmethod
    def from_url(cls, url: str, *, client: Any = None) -> S3Spool:
        """`s3://bucket/prefix/` -> S3Spool."""
        location = split_s3_url(url)
        if location is None:
            raise SpoolError(f"not an S3 spool URL: {url!r} (expected s3://bucket/prefix)")
        return cls(*location, client=client)

    @property
    def location(self) -> str:
        """`s3://bucket/prefix`."""
        return f"s3://{self.bucket}/{self.prefix}"

    @property
    def client(self) -> Any:
        """The boto3 S3 client, made on first use."""
        if self._client is None:
            self._client = aws_client("s3", read_timeout=5)  # the invocation's time is short
        return self._client

    def _key(self, batch_id: str) -> str:
        if not batch_id or "/" in batch_id:
            raise SpoolError(f"not a spool batch id: {batch_id!r}")
        return f"{self.prefix}{batch_id}{SPOOL_SUFFIX}"

    def put(self, batch: SpoolBatch) -> str:
        """Write one object; raises `SpoolError` when S3 refuses."""
        key = self._key(batch.batch_id)
        try:
            self.client.put_object(
                Bucket=self.bucket, Key=key, Body=encode_batch(batch), ContentType="application/gzip"
            )
        except Exception as error:  # boundary: botocore's error types are many
            raise SpoolError(f"cannot write s3://{self.bucket}/{key} ({aws_error_code(error)})") from None
        return f"s3://{self.bucket}/{key}"

    def list(self) -> Iterator[str]:
        """Batch ids under the prefix, oldest first."""
        ids: list[str] = []
        try:
            paginator = self.client.get_paginator("list_objects_v2")
            for page in paginator.paginate(Bucket=self.bucket, Prefix=self.prefix):
                for item in page.get("Contents", []):
                    key = item["Key"]
                    name = key[len(self.prefix) :]
                    if name.endswith(SPOOL_SUFFIX) and "/" not in name:
                        ids.append(name[: -len(SPOOL_SUFFIX)])
        except Exception as error:  # boundary
            raise SpoolError(f"cannot list {self.location} ({aws_error_code(error)})") from None
        return iter(sorted(ids))

    def get(self, batch_id: str) -> SpoolBatch:
        """Read one batch."""
        key = self._key(batch_id)
        try:
            data = self.client.get_object(Bucket=self.bucket, Key=key)["Body"].read()
        except Exception as error:  # boundary
            raise SpoolError(f"cannot read s3://{self.bucket}/{key} ({aws_error_code(error)})") from None
        return decode_batch(data, name=batch_id)

    def delete(self, batch_id: str) -> None:
        """Delete one batch (a missing key is not an error in S3)."""
        key = self._key(batch_id)
        try:
            self.client.delete_object(Bucket=self.bucket, Key=key)
        except Exception as error:  # boundary
            raise SpoolError(f"cannot delete s3://{self.bucket}/{key} ({aws_error_code(error)})") from None

    def quarantine(self, batch_id: str, reason: str) -> str:
        """Copy the object under `quarantine/` with its reason as metadata, then delete the original."""
        key = self._key(batch_id)
        target = f"{self.prefix}{QUARANTINE}/{batch_id}{SPOOL_SUFFIX}"
        try:
            self.client.copy_object(
                Bucket=self.bucket,
                Key=target,
                CopySource={"Bucket": self.bucket, "Key": key},
                Metadata={"hsmaudit-reason": quote(reason[:1500], safe=" ")},
                MetadataDirective="REPLACE",
            )
            self.client.delete_object(Bucket=self.bucket, Key=key)
        except Exception as error:  # boundary
            raise SpoolError(
                f"cannot quarantine s3://{self.bucket}/{key} ({aws_error_code(error)})"
            ) from None
        return f"s3://{self.bucket}/{target}"

    def quarantined(self) -> Iterator[tuple[str, str]]:
        """Quarantined batch ids with their reasons (one HeadObject each)."""
        folder = f"{self.prefix}{QUARANTINE}/"
        found: list[tuple[str, str]] = []
        try:
            paginator = self.client.get_paginator("list_objects_v2")
            for page in paginator.paginate(Bucket=self.bucket, Prefix=folder):
                for item in page.get("Contents", []):
                    name = item["Key"][len(folder) :]
                    if not name.endswith(SPOOL_SUFFIX) or "/" in name:
                        continue
                    head = self.client.head_object(Bucket=self.bucket, Key=item["Key"])
                    reason = unquote(head.get("Metadata", {}).get("hsmaudit-reason", ""))
                    found.append((name[: -len(SPOOL_SUFFIX)], reason or "(no reason recorded)"))
        except Exception as error:  # boundary
            raise SpoolError(f"cannot list {self.location}{QUARANTINE}/ ({aws_error_code(error)})") from None
        return iter(sorted(found))
