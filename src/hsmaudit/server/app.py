"""The local collector and dashboard as one ASGI app (Starlette): HEC in, store, pages out.

Where it sits: senders (our Lambda handler's HEC client, Splunk's own loggers, curl) POST to the
HEC endpoints; every accepted event is committed to the `EventStore` before the reply says
success; the dashboard and `/api/*` read the same store. `hsmaudit serve` and `hsmaudit demo`
run this app under uvicorn (`server/run.py`).

Security defaults: the token is compared in constant time and never logged; query-string tokens
are refused (reference §1.2: tokens in URLs get logged); every page string is escaped.

Hostile senders: decompression, decoding, parsing and row building run in worker threads, at most
`max_concurrent_decodes` at once (each holds up to `max_content_length` decompressed bytes), so
the event loop keeps answering other clients while one sends a bomb or a 5 MB whitespace line;
small bodies have a lane of their own, so ordinary batches do not queue behind big hostile ones.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import functools
import hmac
import logging
from concurrent.futures import Future
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final, TypeVar

import anyio
import anyio.to_thread
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.trustedhost import TrustedHostMiddleware
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from hsmaudit.records.event import HsmEvent
from hsmaudit.records.parse import parse_message
from hsmaudit.server.dashboard import dashboard_routes
from hsmaudit.server.hec import (
    DEFAULT_MAX_CONTENT_LENGTH,
    DEFAULT_MAX_EVENT_SIZE,
    AckRegistry,
    HecRequestError,
    PayloadTooLargeError,
    check_channel,
    decode_ack_request,
    decode_body,
    decode_envelopes,
    envelope_events,
    reply_body,
    reply_status,
)
from hsmaudit.sinks.hec.answers import (
    ACK_DISABLED,
    DATA_CHANNEL_MISSING,
    HEALTHY,
    INTERNAL_ERROR,
    INVALID_AUTHORIZATION,
    INVALID_DATA_FORMAT,
    INVALID_TOKEN,
    NO_DATA,
    QUERY_STRING_AUTH_DISABLED,
    SUCCESS,
    TOKEN_REQUIRED,
    UNHEALTHY_QUEUES_FULL,
)
from hsmaudit.sources.files import split_records
from hsmaudit.store.errors import StoreDataError, StoreError
from hsmaudit.store.writer import GroupCommitWriter

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Awaitable, Callable, Sequence

    from starlette.requests import Request

    from hsmaudit.store.database import EventStore

LOG: Final = logging.getLogger("hsmaudit.server")

CHANNEL_HEADER: Final = "x-splunk-request-channel"

_T = TypeVar("_T")

SMALL_BODY: Final = 256 * 1024
"""Bodies up to this size as received take the small decode lane first (see `_offload`)."""
SMALL_INFLATED: Final = 8 * 1024 * 1024
"""Decompressed cap in the small lane; past it a body moves to the big lane."""


@dataclass(frozen=True, slots=True)
class CollectorSettings:
    """How the collector behaves; `token` is the one secret it accepts."""

    token: str
    max_content_length: int = DEFAULT_MAX_CONTENT_LENGTH
    max_event_size: int = DEFAULT_MAX_EVENT_SIZE
    ack: bool = True
    """Indexer acknowledgement: a request with a channel gets an `ackId` (reference §1.7)."""
    max_concurrent_decodes: int = 2
    """Requests decompressed and decoded at once (the rest wait their turn): bounds memory to about
    this many times 3 x `max_content_length`, and CPU to this many threads (2 cores by default)."""

    def __repr__(self) -> str:  # never show the token in a traceback or a log line
        return (
            f"CollectorSettings(max_content_length={self.max_content_length}, ack={self.ack}, "
            f"max_concurrent_decodes={self.max_concurrent_decodes})"
        )


@dataclass(frozen=True, slots=True)
class _Decoded:
    """A request body turned into events off the event loop: what to store, what to report."""

    events: list[HsmEvent]
    error: HecRequestError | None
    stored: Future[int] | None
    """The writer's future for `events` (rows built in the worker thread); None when empty."""


def _reply(code: int, **extra: Any) -> JSONResponse:
    return JSONResponse(reply_body(code, **extra), status_code=reply_status(code))


def _error_reply(error: HecRequestError) -> JSONResponse:
    return JSONResponse(error.body(), status_code=reply_status(error.code))


class Collector:
    """The HEC endpoints, bound to a store (through a group-commit writer) and settings."""

    def __init__(self, store: EventStore, settings: CollectorSettings) -> None:
        self.store = store
        self.settings = settings
        self.writer = GroupCommitWriter(store)
        self.acks = AckRegistry()
        self._token = settings.token.encode("utf-8")
        self._decodes = anyio.CapacityLimiter(max(1, settings.max_concurrent_decodes))
        self._small = anyio.CapacityLimiter(max(2, settings.max_concurrent_decodes))

    def close(self) -> None:
        """Commit what is queued and stop the writer thread."""
        self.writer.close()

    # --- request plumbing ---------------------------------------------------------------

    def _authorize(self, request: Request) -> None:
        """Reference §1.2: header `Splunk <token>` (or Basic with the token as password)."""
        if "token" in request.query_params:
            raise HecRequestError(QUERY_STRING_AUTH_DISABLED)
        header = request.headers.get("authorization")
        if header is None or not header.strip():
            raise HecRequestError(TOKEN_REQUIRED)
        scheme, _, value = header.strip().partition(" ")
        value = value.strip()
        if scheme.lower() == "splunk" and value:
            presented = value.encode("utf-8", "replace")
        elif scheme.lower() == "basic" and value:
            try:
                decoded = base64.b64decode(value, validate=True).decode("utf-8", "replace")
            except (binascii.Error, ValueError):
                raise HecRequestError(INVALID_AUTHORIZATION) from None
            presented = decoded.partition(":")[2].encode("utf-8", "replace")
        else:
            raise HecRequestError(INVALID_AUTHORIZATION)
        if not hmac.compare_digest(presented, self._token):
            raise HecRequestError(INVALID_TOKEN)

    async def _received(self, request: Request) -> bytes:
        """The body as sent (maybe gzip), at most `max_content_length` bytes of it."""
        limit = self.settings.max_content_length
        declared = request.headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            raise PayloadTooLargeError(int(declared), limit)
        chunks: list[bytes] = []
        size = 0
        async for chunk in request.stream():
            size += len(chunk)
            if size > limit:
                raise PayloadTooLargeError(size, limit)
            chunks.append(chunk)
        return b"".join(chunks)

    async def _body(self, request: Request) -> bytes | bytearray:
        """The decompressed body (inflated off the event loop, within the decode limiter)."""
        received = await self._received(request)
        encoding = request.headers.get("content-encoding")
        return await self._offload(received, functools.partial(decode_body, received, encoding))

    async def _offload(self, received: bytes, work: Callable[..., _T]) -> _T:
        """Run `work(limit=…)` on a request body in a worker thread, in one of two lanes.

        A body of at most `SMALL_BODY` bytes as received goes to the small lane first, with a
        decompressed cap of `SMALL_INFLATED`: its work is bounded by that (about 10 ms of
        inflating), so ordinary batches never queue behind big hostile bodies. One that inflates
        past the cap (a small bomb, or a very compressible batch) moves to the big lane, which runs
        at most `max_concurrent_decodes` requests of up to `max_content_length` at once.
        """
        limit = self.settings.max_content_length
        if len(received) <= SMALL_BODY and limit > SMALL_INFLATED:
            try:
                return await anyio.to_thread.run_sync(
                    functools.partial(work, limit=SMALL_INFLATED), limiter=self._small
                )
            except PayloadTooLargeError as error:
                if error.limit != SMALL_INFLATED:
                    raise
        return await anyio.to_thread.run_sync(functools.partial(work, limit=limit), limiter=self._decodes)

    def _channel(self, request: Request) -> str | None:
        return check_channel(request.headers.get(CHANNEL_HEADER) or request.query_params.get("channel"))

    async def _store(self, decoded: _Decoded) -> HecRequestError | None:
        """Wait for the commit of the decoded events; the error to report, if any.

        Events the store cannot hold (StoreDataError: deterministic) are found by storing the
        events one at a time, so the ones before the bad one are kept and it is reported at its
        number, as HEC does for bad data (§1.9).
        """
        if decoded.stored is None:
            return decoded.error
        try:
            await asyncio.wrap_future(decoded.stored)
        except StoreDataError:
            for index, event in enumerate(decoded.events):
                try:
                    await asyncio.wrap_future(self.writer.submit([event]))
                except StoreDataError:
                    LOG.warning("HEC event %d cannot be stored; answered as bad data", index)
                    return HecRequestError(INVALID_DATA_FORMAT, index)
        return decoded.error

    def _decode_events(self, received: bytes, encoding: str | None, *, limit: int) -> _Decoded:
        """Worker thread: inflate, decode the envelopes, parse the events, build the store rows."""
        body = decode_body(received, encoding, limit=limit)
        envelopes, error = decode_envelopes(body, max_event_size=self.settings.max_event_size)
        del body
        events, event_error = envelope_events(envelopes)
        # Events before a bad one are accepted (reference §1.9): the first problem is reported.
        first = event_error if event_error is not None else error
        return _Decoded(events, first, self.writer.submit(events) if events else None)

    def _decode_raw(
        self, received: bytes, encoding: str | None, source: str | None, host: str | None, *, limit: int
    ) -> _Decoded:
        """Worker thread: the raw endpoint's body as record text, parsed and queued for the store."""
        body = decode_body(received, encoding, limit=limit)
        # Invalid UTF-8 is kept reversibly: surrogateescape makes each bad byte a lone surrogate,
        # which the parser writes as a \udcXX escape and flags (records/parse.py).
        text = body.decode("utf-8", "surrogateescape")
        if not text.strip():
            raise HecRequestError(NO_DATA)
        if text.lstrip().startswith("{"):
            # Certificate-storage records are one JSON object per line (reference §8.1).
            records = [line for line in text.splitlines() if line.strip()]
        else:
            records = list(split_records(text))
        events = [parse_message(record, log_group=source, log_stream=host) for record in records]
        return _Decoded(events, None, self.writer.submit(events) if events else None)

    async def _guarded(self, request: Request, work: Callable[[Request], Awaitable[Response]]) -> Response:
        try:
            return await work(request)
        except HecRequestError as error:
            return _error_reply(error)
        except PayloadTooLargeError as error:
            return JSONResponse(error.body(), status_code=413)
        except StoreDataError as error:  # deterministic: a retry fails the same way
            LOG.warning("store refused the request's data: %s", error)
            return _reply(INVALID_DATA_FORMAT)
        except StoreError as error:
            LOG.error("store write failed: %s", error)
            return _reply(INTERNAL_ERROR)
        except Exception:  # a request handler is a boundary: answer in HEC's terms, log the cause
            LOG.exception("HEC request failed")
            return _reply(INTERNAL_ERROR)

    # --- endpoints ----------------------------------------------------------------------

    async def event(self, request: Request) -> Response:
        """`/services/collector[/event[/1.0]]`: envelopes back to back."""
        return await self._guarded(request, self._event)

    async def _event(self, request: Request) -> Response:
        self._authorize(request)
        channel = self._channel(request)
        received = await self._received(request)
        encoding = request.headers.get("content-encoding")
        decoded = await self._offload(received, functools.partial(self._decode_events, received, encoding))
        del received
        # Events before a bad one are accepted (reference §1.9): store them, then report it.
        error = await self._store(decoded)
        if error is not None:
            return _error_reply(error)
        return self._success(channel)

    async def raw(self, request: Request) -> Response:
        """`/services/collector/raw`: CloudHSM record text; metadata from the query string."""
        return await self._guarded(request, self._raw)

    async def _raw(self, request: Request) -> Response:
        self._authorize(request)
        channel = self._channel(request)
        received = await self._received(request)
        encoding = request.headers.get("content-encoding")
        source = request.query_params.get("source") or None
        host = request.query_params.get("host") or None
        decoded = await self._offload(
            received, functools.partial(self._decode_raw, received, encoding, source, host)
        )
        del received
        error = await self._store(decoded)
        if error is not None:
            # No event numbers on /raw: the request as a whole is bad data.
            return _error_reply(HecRequestError(error.code))
        return self._success(channel)

    def _success(self, channel: str | None) -> JSONResponse:
        if channel is not None and self.settings.ack:
            return _reply(SUCCESS, ackId=self.acks.issue(channel))
        return _reply(SUCCESS)

    async def health(self, request: Request) -> Response:
        """`/services/collector/health`: 200 code 17 while the store writer runs."""
        if request.method != "GET":
            return _reply(NO_DATA)
        if self.writer.alive:
            return _reply(HEALTHY)
        return _reply(UNHEALTHY_QUEUES_FULL)

    async def ack(self, request: Request) -> Response:
        """`/services/collector/ack`: which ack ids of this channel are indexed (reference §1.7)."""
        return await self._guarded(request, self._ack)

    async def _ack(self, request: Request) -> Response:
        self._authorize(request)
        if not self.settings.ack:
            raise HecRequestError(ACK_DISABLED)
        channel = self._channel(request)
        if channel is None:
            raise HecRequestError(DATA_CHANNEL_MISSING)
        body = await self._body(request)
        if not body.strip():
            raise HecRequestError(NO_DATA)
        return JSONResponse({"acks": self.acks.query(channel, decode_ack_request(body))})

    def routes(self) -> list[Route]:
        """The HEC routes, with Splunk's versioned aliases."""
        return [
            Route("/services/collector", self.event, methods=["POST"]),
            Route("/services/collector/event", self.event, methods=["POST"]),
            Route("/services/collector/event/1.0", self.event, methods=["POST"]),
            Route("/services/collector/raw", self.raw, methods=["POST"]),
            Route("/services/collector/raw/1.0", self.raw, methods=["POST"]),
            Route("/services/collector/health", self.health, methods=["GET", "POST"]),
            Route("/services/collector/health/1.0", self.health, methods=["GET", "POST"]),
            Route("/services/collector/ack", self.ack, methods=["POST"]),
        ]


LOOPBACK_HOSTS: Final[tuple[str, ...]] = ("127.0.0.1", "localhost", "[::1]")
"""Host headers a loopback-bound server answers. Anything else is refused, so a web page whose
name an attacker re-points at 127.0.0.1 (DNS rebinding) cannot read the dashboard."""


def allowed_hosts_for(bind_host: str) -> tuple[str, ...]:
    """The Host headers to accept when listening on `bind_host`: loopback names, or any when exposed."""
    from hsmaudit.server.run import is_loopback

    if not is_loopback(bind_host):
        return ("*",)
    shown = f"[{bind_host.strip('[]')}]" if ":" in bind_host else bind_host
    return tuple(dict.fromkeys((*LOOPBACK_HOSTS, shown.lower())))


def create_app(
    store: EventStore, settings: CollectorSettings, *, allowed_hosts: Sequence[str] = LOOPBACK_HOSTS
) -> Starlette:
    """The whole local server: HEC collector plus dashboard, over one store."""
    collector = Collector(store, settings)

    async def not_found(request: Request, exc: Exception) -> Response:
        if request.url.path.startswith("/services/collector"):
            return JSONResponse({"text": "The requested URL was not found on this server.", "code": 404}, 404)
        return Response("Not found", status_code=404, media_type="text/plain")

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        yield
        # Shutdown: commit what is queued before the process goes.
        collector.close()

    app = Starlette(
        routes=[*collector.routes(), *dashboard_routes(store)],
        exception_handlers={404: not_found},
        lifespan=lifespan,
        middleware=[Middleware(TrustedHostMiddleware, allowed_hosts=list(allowed_hosts))],
    )
    app.state.collector = collector
    app.state.store = store
    return app


__all__ = ["LOOPBACK_HOSTS", "Collector", "CollectorSettings", "allowed_hosts_for", "create_app"]
