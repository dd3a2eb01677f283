"""The spool: where a batch goes when HEC will not take it, until `hsmaudit replay` sends it.

On the delivery path every batch ends in exactly one of: accepted by HEC, written here, or the
invocation fails. So a spool write that fails raises `SpoolError` (never swallowed), and replay
deletes a spooled batch only after HEC accepted it.

A spooled batch keeps what replay needs: the HEC event lines exactly as they were (or would have
been) sent, why they were spooled, and where they came from (ids and counts, never the token).
Payloads that could not even be decoded (bad base64/gzip/JSON) are spooled raw as kind
`payload`, so a person can inspect them; replay reports them and leaves them in place.

Storage format (the same for every back end): gzip of one JSON header line, then either the HEC
lines separated by `\\n` (kind `hec`) or the raw payload bytes (kind `payload`). The header carries
`digest`, the SHA-256 of the body, and the count; `decode_batch` checks both, so a truncated,
foreign or edited file raises `SpoolCorruptError` and replay moves it to the quarantine
(`quarantine/` beside the batches) with its reason instead of sending it. The digest is unkeyed:
it proves the file is what the writer wrote *unless* someone who can write the spool also
recomputed it; against that, see docs/forwarder.md (S3 Object Lock / versioning). The three-method
interface follows the Datadog Forwarder's `retry/base_storage.py` (the factory that opens a spool
by location, importing only the chosen back end, is `aws/spools.py`); unlike it, a stored batch
is deleted only once *all* of it is accepted.
"""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import os
import secrets
import zlib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Final, Literal, Protocol, runtime_checkable

import msgspec

from hsmaudit.sinks.errors import SpoolCorruptError, SpoolError

SpoolKind = Literal["hec", "payload"]

SPOOL_FORMAT: Final = "hsmaudit-spool/2"
LEGACY_FORMAT: Final = "hsmaudit-spool/1"
"""Written before batches carried a digest; still read (and replayed) so old spools drain."""
SPOOL_SUFFIX: Final = ".hsmspool.gz"
QUARANTINE: Final = "quarantine"
"""Folder (or key prefix) beside the batches where replay moves batches it must not send."""
MAX_BATCH_BYTES: Final = 256 * 1024 * 1024
"""Decompressed size above which a stored batch is refused (no spool write comes near it)."""


def new_batch_id() -> str:
    """A sortable, unique id: UTC time to the microsecond plus 48 random bits."""
    now = datetime.now(UTC)
    return f"{now:%Y%m%dT%H%M%S%f}Z-{secrets.token_hex(6)}"


@dataclass(frozen=True, slots=True)
class SpoolBatch:
    """One spooled unit: HEC event lines (or a raw payload) with the reason and origin.

    Attributes:
        lines: HEC event envelopes, one JSON object each, exactly as sent (kind `hec`).
        reason: one line saying why HEC did not take them (no token, no payload).
        kind: `hec` for sendable lines, `payload` for an undecodable input kept as received.
        payload: the raw input bytes (kind `payload` only).
        metadata: ids and counts for people (request id, log group, stream, function name).
        batch_id: unique, sortable; replay deletes by it.
        created: ISO-8601 UTC time of spooling.
    """

    lines: tuple[bytes, ...] = ()
    reason: str = ""
    kind: SpoolKind = "hec"
    payload: bytes = b""
    metadata: Mapping[str, str] = field(default_factory=dict)
    batch_id: str = field(default_factory=new_batch_id)
    created: str = field(default_factory=lambda: datetime.now(UTC).isoformat(timespec="microseconds"))

    @property
    def count(self) -> int:
        """How many HEC events the batch holds (a raw payload counts as one item)."""
        return len(self.lines) if self.kind == "hec" else 1


class _Header(msgspec.Struct, frozen=True):
    format: str
    batch_id: str
    kind: SpoolKind
    reason: str
    created: str
    count: int
    metadata: dict[str, str] = msgspec.field(default_factory=dict)
    digest: str = ""


_HEADER_DECODER: Final = msgspec.json.Decoder(_Header)
_ENCODER: Final = msgspec.json.Encoder()


def body_digest(body: bytes) -> str:
    """`sha256:<hex>` of a batch body, as stored in its header."""
    return "sha256:" + hashlib.sha256(body).hexdigest()


def _decompress(data: bytes) -> bytes:
    """Gunzip with a cap, streaming, so a hostile file cannot take the machine's memory."""
    out = bytearray()
    view = data
    while view:
        inflater = zlib.decompressobj(wbits=31)
        while view:
            out += inflater.decompress(view, MAX_BATCH_BYTES + 1 - len(out))
            if len(out) > MAX_BATCH_BYTES:
                raise ValueError(f"more than {MAX_BATCH_BYTES} bytes decompressed")
            view = inflater.unconsumed_tail
            if inflater.eof:
                break
        if not inflater.eof:
            raise EOFError("compressed file ended before the end-of-stream marker was reached")
        view = inflater.unused_data
    return bytes(out)


def encode_batch(batch: SpoolBatch) -> bytes:
    """Serialise a batch (gzip'd header line + body); raises ValueError for a line with a newline."""
    if batch.kind == "hec":
        for line in batch.lines:
            if b"\n" in line:
                raise ValueError("an HEC line must be one line of compact JSON")
        body = b"\n".join(batch.lines)
    else:
        body = batch.payload
    header = _Header(
        format=SPOOL_FORMAT,
        batch_id=batch.batch_id,
        kind=batch.kind,
        reason=batch.reason,
        created=batch.created,
        count=batch.count,
        metadata=dict(batch.metadata),
        digest=body_digest(body),
    )
    return gzip.compress(_ENCODER.encode(header) + b"\n" + body, compresslevel=6)


def decode_batch(data: bytes, *, name: str) -> SpoolBatch:
    """Read a serialised batch back; `SpoolError` names the batch when it is not one of ours."""
    try:
        text = _decompress(data)
        head, _, body = text.partition(b"\n")
        header = _HEADER_DECODER.decode(head)
    except (ValueError, EOFError, zlib.error, msgspec.DecodeError) as error:
        raise SpoolCorruptError(f"spooled batch {name} is not readable ({error})") from None
    if header.format == SPOOL_FORMAT:
        if header.digest != body_digest(body):
            raise SpoolCorruptError(f"spooled batch {name} does not match its digest (altered or damaged)")
    elif header.format != LEGACY_FORMAT:
        raise SpoolCorruptError(f"spooled batch {name} has unknown format {header.format!r}")
    lines: tuple[bytes, ...] = ()
    payload = b""
    if header.kind == "hec":
        lines = tuple(body.split(b"\n")) if header.count else ()
        if len(lines) != header.count:
            raise SpoolCorruptError(
                f"spooled batch {name} holds {len(lines)} lines, header says {header.count}"
            )
    else:
        payload = body
    return SpoolBatch(
        lines=lines,
        reason=header.reason,
        kind=header.kind,
        payload=payload,
        metadata=header.metadata,
        batch_id=header.batch_id,
        created=header.created,
    )


@runtime_checkable
class Spool(Protocol):
    """Where undeliverable batches wait. Every method raises `SpoolError` on failure."""

    def put(self, batch: SpoolBatch) -> str:
        """Store a batch durably; returns where (path or URL), for the log line."""
        ...

    def list(self) -> Iterator[str]:
        """Ids of stored batches, oldest first."""
        ...

    def get(self, batch_id: str) -> SpoolBatch:
        """Read one stored batch."""
        ...

    def delete(self, batch_id: str) -> None:
        """Remove a batch; deleting one that is already gone is not an error (replay is repeatable)."""
        ...

    def quarantine(self, batch_id: str, reason: str) -> str:
        """Move a stored batch (readable or not) aside with its reason; returns where it went."""
        ...

    def quarantined(self) -> Iterator[tuple[str, str]]:
        """(batch id, reason) of quarantined batches, oldest first."""
        ...

    @property
    def location(self) -> str:
        """Where this spool lives, for people (a directory or `s3://bucket/prefix`)."""
        ...


class LocalSpool:
    """A spool in a local directory: one file per batch, written atomically (tmp, fsync, rename)."""

    def __init__(self, directory: str | os.PathLike[str]) -> None:
        self.directory = Path(directory)

    @property
    def location(self) -> str:
        """The directory."""
        return str(self.directory)

    def _path(self, batch_id: str) -> Path:
        if not batch_id or "/" in batch_id or "\\" in batch_id or batch_id.startswith("."):
            raise SpoolError(f"not a spool batch id: {batch_id!r}")
        return self.directory / f"{batch_id}{SPOOL_SUFFIX}"

    def put(self, batch: SpoolBatch) -> str:
        """Write the batch; the file appears complete or not at all."""
        path = self._path(batch.batch_id)
        data = encode_batch(batch)
        tmp = self.directory / f".{batch.batch_id}.tmp"
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            # 0600 from the start (not chmod after): spooled events are audit records.
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
                handle.flush()
                os.fsync(handle.fileno())
            tmp.replace(path)
        except OSError as error:
            with contextlib.suppress(OSError):
                tmp.unlink(missing_ok=True)
            reason = error.strerror or error
            raise SpoolError(f"cannot write spool file in {self.directory}: {reason}") from None
        return str(path)

    def list(self) -> Iterator[str]:
        """Batch ids, oldest first (ids sort by time)."""
        try:
            names = sorted(p.name for p in self.directory.iterdir() if p.name.endswith(SPOOL_SUFFIX))
        except FileNotFoundError:
            return iter(())
        except OSError as error:
            reason = error.strerror or error
            raise SpoolError(f"cannot list spool directory {self.directory}: {reason}") from None
        return iter([name[: -len(SPOOL_SUFFIX)] for name in names])

    def get(self, batch_id: str) -> SpoolBatch:
        """Read a batch back."""
        path = self._path(batch_id)
        try:
            data = path.read_bytes()
        except OSError as error:
            raise SpoolError(f"cannot read spooled batch {batch_id}: {error.strerror or error}") from None
        return decode_batch(data, name=batch_id)

    def delete(self, batch_id: str) -> None:
        """Remove a batch (already gone is fine)."""
        try:
            self._path(batch_id).unlink(missing_ok=True)
        except OSError as error:
            raise SpoolError(f"cannot delete spooled batch {batch_id}: {error.strerror or error}") from None

    def quarantine(self, batch_id: str, reason: str) -> str:
        """Move the file to `quarantine/` and write its reason beside it (`<id>.reason`)."""
        source = self._path(batch_id)
        folder = self.directory / QUARANTINE
        target = folder / source.name
        try:
            folder.mkdir(mode=0o700, exist_ok=True)
            fd = os.open(folder / f"{batch_id}.reason", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w", encoding="utf-8", errors="backslashreplace") as handle:
                handle.write(reason + "\n")
            source.replace(target)
        except OSError as error:
            raise SpoolError(
                f"cannot quarantine spooled batch {batch_id}: {error.strerror or error}"
            ) from None
        return str(target)

    def quarantined(self) -> Iterator[tuple[str, str]]:
        """Quarantined batch ids with their reasons."""
        folder = self.directory / QUARANTINE
        try:
            names = sorted(p.name for p in folder.iterdir() if p.name.endswith(SPOOL_SUFFIX))
        except OSError:
            return iter(())
        found = []
        for name in names:
            batch_id = name[: -len(SPOOL_SUFFIX)]
            try:
                reason = (folder / f"{batch_id}.reason").read_text(encoding="utf-8", errors="replace").strip()
            except OSError:
                reason = "(no reason recorded)"
            found.append((batch_id, reason))
        return iter(found)
