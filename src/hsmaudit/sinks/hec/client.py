"""The HEC client: HEC lines -> Splunk HTTP Event Collector, with nothing lost silently.

Where it sits: the Lambda handlers (and `hsmaudit replay`, the demo) hand it events or
already-built HEC lines; it batches, gzips and POSTs them to `/services/collector/event`, and every
line ends in exactly one of: accepted by HEC, written to the spool, or (when the spool write
fails) an exception that fails the invocation so AWS retries it.

Facts (`docs/reference/splunk.md` §1):
- §1.3/§2 of contracts.md: the envelope of each line is built by `envelope.py`.
- §1.4-1.6: envelopes back to back, gzip'd body, one channel GUID per container (`X-Splunk-Request-
  Channel`), always sent so ack-enabled tokens work.
- §1.8: retry HEC codes 8/9/18-20, HTTP 429/5xx, timeouts and resets with backoff and jitter;
  never retry other 4xx; 403 code 1 (disabled token) is configuration: spool and say so once.
- §1.9: `invalid-event-number` N means 0..N-1 were accepted, N is bad, N+1.. were not read:
  spool N, resend only N+1.. (never the whole batch: that duplicates 0..N-1).
- §1.7: with indexer acknowledgement, a 200 carries an `ackId`; poll `/services/collector/ack`
  and resend what is not acknowledged in time; what is still not acknowledged is spooled.
"""

from __future__ import annotations

import gzip
import logging
import random
import time
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final
from urllib.parse import urlsplit

import msgspec
import urllib3

from hsmaudit import __version__
from hsmaudit.config import masked_url
from hsmaudit.records.event import HsmEvent
from hsmaudit.sinks.batch import MAX_BYTES_LIMIT, batch_lines, join_lines
from hsmaudit.sinks.errors import (
    HecError,
    HecInvalidEventError,
    HecRejectedError,
    HecRetryableError,
    HecTokenError,
    HecTooLargeError,
    HecTransportError,
)
from hsmaudit.sinks.hec.answers import INDEX_CODE, classify_answer
from hsmaudit.sinks.hec.envelope import EventEncoder, EventFormat
from hsmaudit.sinks.hec.policy import AckPolicy, BatchPolicy, ConnectionPolicy, RetryPolicy
from hsmaudit.sinks.hec.proxy import proxy_manager
from hsmaudit.sinks.hec.report import DeliveryReport, FailedBatch, SpooledBatch
from hsmaudit.sinks.hec.token import TokenProvider
from hsmaudit.sinks.hec.url import event_url
from hsmaudit.sinks.spool import Spool, SpoolBatch

logger = logging.getLogger("hsmaudit.hec")

MAX_EVENT_BYTES: Final = MAX_BYTES_LIMIT
"""HEC's default per-event `maxEventSize`, 5 MB (docs/reference/splunk.md §1.10)."""
HELD_BYTES_LIMIT: Final = 8 * 1024 * 1024
"""Bytes of lines kept in memory for one spool write once a run is blocked (bounded for 128 MB Lambdas)."""

_ACK_ENCODER: Final = msgspec.json.Encoder()
_ACK_DECODER: Final = msgspec.json.Decoder()


@dataclass(slots=True)
class _Pending:
    lines: list[bytes]
    sent_at: float
    resends: int


@dataclass(slots=True)
class _Run:
    """The mutable bookkeeping of one `send` call (never shared between calls)."""

    deadline: float
    spool: Spool | None
    metadata: Mapping[str, str]
    lines_in: int = 0
    accepted: int = 0
    requests: int = 0
    retries: int = 0
    wire_bytes: int = 0
    body_bytes: int = 0
    resent_unacked: int = 0
    blocked: str | None = None
    token_refreshed: bool = False
    spooled: list[SpooledBatch] = field(default_factory=list)
    failed: list[FailedBatch] = field(default_factory=list)
    latencies_ms: list[float] = field(default_factory=list)
    pending: dict[int, _Pending] = field(default_factory=dict)
    held: list[bytes] = field(default_factory=list)
    held_bytes: int = 0

    def report(self) -> DeliveryReport:
        return DeliveryReport(
            lines_in=self.lines_in,
            accepted=self.accepted,
            spooled=tuple(self.spooled),
            failed=tuple(self.failed),
            requests=self.requests,
            retries=self.retries,
            wire_bytes=self.wire_bytes,
            body_bytes=self.body_bytes,
            latencies_ms=tuple(self.latencies_ms),
            resent_unacked=self.resent_unacked,
            blocked=self.blocked,
        )


class HecClient:
    """Sends HEC event lines with bounded retries, spooling what HEC does not take.

    One instance per Lambda container (or CLI run): it owns the urllib3 pool (keep-alive reused
    across invocations) and the channel GUID (reference §1.6: one per execution environment).
    Construct it from explicit values; `hsmaudit.config` and the handlers decide those values
    (`aws.runtime.build_client` makes the policies from `Settings`).

    Args:
        url: HEC origin or endpoint URL (https; http only for a local collector).
        token: where the token comes from; it is read per request and never logged.
        connection: timeout, TLS verification, CA bundle, proxy (`policy.ConnectionPolicy`).
        retry: attempts and backoff for retryable failures (`policy.RetryPolicy`).
        acks: indexer acknowledgement on or off, its timeout and poll interval (`policy.AckPolicy`).
        batch: events and bytes per request, gzip level (`policy.BatchPolicy`).
        encoder: builds each event's line: format, sourcetype, index, raw (`envelope.EventEncoder`;
            by default the lean format with its own sourcetype, no index, raw kept).
        channel: the `X-Splunk-Request-Channel` GUID; a new one when not given.
        sleep, clock, rng: time and jitter, injectable for tests.
    """

    def __init__(
        self,
        url: str,
        token: TokenProvider,
        *,
        connection: ConnectionPolicy | None = None,
        retry: RetryPolicy | None = None,
        acks: AckPolicy | None = None,
        batch: BatchPolicy | None = None,
        encoder: EventEncoder | None = None,
        channel: str | None = None,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
        rng: random.Random | None = None,
    ) -> None:
        origin, self.event_path, self.ack_path = event_url(url)
        self.origin = origin
        self._token = token
        self.connection = connection = connection or ConnectionPolicy()
        self.retry = retry or RetryPolicy()
        self.acks = acks or AckPolicy()
        self.batch = batch or BatchPolicy()
        self.encoder = encoder or EventEncoder()
        self.channel = channel or str(uuid.uuid4())
        self._sleep = sleep
        self._clock = clock
        self._rng = rng or random.Random()  # noqa: S311 - jitter, not cryptography
        pool_options: dict[str, Any] = {"num_pools": 2, "maxsize": 2, "block": False, "retries": False}
        if origin.startswith("https://"):
            if connection.verify:
                pool_options["cert_reqs"] = "CERT_REQUIRED"
                if connection.ca_bundle:
                    pool_options["ca_certs"] = connection.ca_bundle
            else:
                pool_options["cert_reqs"] = "CERT_NONE"
                logger.warning(
                    "hec: TLS certificate verification is OFF for %s; set a CA bundle instead",
                    masked_url(origin),
                )
        elif urlsplit(origin).hostname not in ("127.0.0.1", "localhost", "::1"):
            logger.warning(
                "hec: %s is plain HTTP: the token and the audit records travel unencrypted",
                masked_url(origin),
            )
        self._http: urllib3.PoolManager
        if connection.proxy:
            self._http = proxy_manager(connection.proxy, pool_options)
        else:
            self._http = urllib3.PoolManager(**pool_options)
        self._user_agent = f"hsmaudit/{__version__}"

    # What callers read of the policies and the encoder (the CLI's chunk size, the runtime tests).
    @property
    def ack(self) -> bool:
        """Whether indexer acknowledgement is on."""
        return self.acks.enabled

    @property
    def max_events(self) -> int:
        """Lines per request at most."""
        return self.batch.max_events

    @property
    def event_format(self) -> EventFormat:
        """The encoder's format, `lean` or `json`."""
        return self.encoder.event_format

    @property
    def sourcetype(self) -> str:
        """The sourcetype every line carries."""
        return self.encoder.sourcetype

    @property
    def index(self) -> str | None:
        """The HEC `index` every line carries, or None (the token's default)."""
        return self.encoder.index

    @property
    def include_raw(self) -> bool:
        """Whether json-format lines keep the record text in `event.raw`."""
        return self.encoder.include_raw

    def __repr__(self) -> str:
        shown = masked_url(self.origin + self.event_path)  # never a user:password in the URL
        return f"HecClient({shown}, ack={self.ack}, channel={self.channel})"

    def close(self) -> None:
        """Close pooled connections (tests and CLI runs; a Lambda keeps them)."""
        self._http.clear()

    # -- lines ----------------------------------------------------------------

    def event_line(self, event: HsmEvent) -> bytes:
        """The HEC envelope of one event with this client's format, sourcetype, index and raw setting."""
        return self.encoder.line(event)

    # -- sending --------------------------------------------------------------

    def send(
        self,
        events: Iterable[HsmEvent],
        *,
        deadline: float,
        spool: Spool | None = None,
        metadata: Mapping[str, str] | None = None,
        blocked: str | None = None,
    ) -> DeliveryReport:
        """Send events; see `send_lines`."""
        return self.send_lines(
            map(self.encoder.line, events),
            deadline=deadline,
            spool=spool,
            metadata=metadata,
            blocked=blocked,
        )

    def send_lines(
        self,
        lines: Iterable[bytes],
        *,
        deadline: float,
        spool: Spool | None = None,
        metadata: Mapping[str, str] | None = None,
        blocked: str | None = None,
    ) -> DeliveryReport:
        """Send HEC lines before `deadline` (a `clock()` value); spool or report what HEC refuses.

        With a spool, lines HEC does not take are written to it as they fail (a `SpoolError`
        propagates: the caller must fail). Without one, they come back in `report.failed`.
        Lines are streamed: only one batch (plus unacknowledged ones, with ack on) is held.

        `blocked` starts the run with the circuit open: a caller that sends in several calls
        (the CLI, chunk by chunk) passes the previous report's `blocked`, so once HEC is known to
        be down or to refuse the token, the rest goes to the spool at once with that reason
        instead of every chunk paying the full retry schedule again.
        """
        run = _Run(deadline=deadline, spool=spool, metadata=dict(metadata or {}), blocked=blocked)

        # Every line is in exactly one batch: counting per batch is counting per line, without a
        # generator frame per line.
        for batch in batch_lines(lines, max_events=self.batch.max_events, max_bytes=self.batch.max_bytes):
            run.lines_in += len(batch)
            self._deliver(batch, run, resends=0)
            if self.acks.enabled and len(run.pending) >= 64:
                self._poll_acks(run)
        if self.acks.enabled:
            self._await_acks(run)
        self._flush_blocked(run)
        return run.report()

    def _park(self, lines: list[bytes], reason: str, run: _Run, *, retryable: bool = True) -> None:
        """Spool (or hand back) lines HEC did not take; the one place that decides their fate."""
        if not lines:
            return
        if run.spool is None:
            run.failed.append(FailedBatch(tuple(lines), reason, retryable))
            return
        batch = SpoolBatch(lines=tuple(lines), reason=reason, metadata=run.metadata)
        where = run.spool.put(batch)  # SpoolError propagates: the invocation must fail
        run.spooled.append(SpooledBatch(batch.batch_id, reason, len(lines), where))
        logger.warning("hec: spooled %d events as batch %s: %s", len(lines), batch.batch_id, reason)

    def _flush_blocked(self, run: _Run) -> None:
        if run.held:
            held, run.held, run.held_bytes = run.held, [], 0
            self._park(held, run.blocked or "HEC refused the run", run)

    def _block(self, run: _Run, reason: str) -> None:
        if run.blocked is None:
            run.blocked = reason
            logger.error("hec: %s; spooling the rest of this run without sending", reason)

    def _backoff(self, attempt: int, retry_after: float | None) -> float:
        cap, base = self.retry.backoff_cap, self.retry.backoff_base
        delay = self._rng.uniform(0.0, min(cap, base * (2 ** (attempt - 1))))
        if retry_after is not None:
            delay = max(delay, min(retry_after, cap))
        return delay

    def _deliver(self, batch: list[bytes], run: _Run, *, resends: int) -> None:
        """Get one batch accepted, or park every line of it; never lose or duplicate a line."""
        if len(batch) == 1 and len(batch[0]) > MAX_EVENT_BYTES:
            # batch_lines puts any line over max_bytes (<= 5 MiB) in a batch of its own, so only a
            # one-line batch can hold an event over HEC's limit. HEC would refuse it with a bare
            # "Invalid data format"; we say why and keep it (spooled, quarantined by replay).
            size = len(batch[0]) / (1024 * 1024)
            reason = (
                f"an event of {size:.1f} MiB exceeds HEC's per-event limit of "
                f"{MAX_EVENT_BYTES // (1024 * 1024)} MiB (maxEventSize, inputs.conf [http]); not sent"
            )
            self._park(batch, reason, run, retryable=False)
            return
        todo: list[list[bytes]] = [batch]
        while todo:
            lines = todo.pop()
            attempt = 0
            while lines:
                if run.blocked is not None:
                    # Once HEC is known to refuse everything, the rest of the run goes to the spool
                    # as one batch rather than one write per batch (one S3 put, not dozens).
                    run.held.extend(lines)
                    run.held_bytes += sum(len(line) for line in lines)
                    if run.held_bytes >= HELD_BYTES_LIMIT:
                        self._flush_blocked(run)
                    break
                remaining = run.deadline - self._clock()
                if remaining <= 0.05:
                    self._park(lines, "the time budget ran out before HEC accepted these events", run)
                    break
                try:
                    ack_id = self._post(lines, remaining, run)
                except HecInvalidEventError as error:
                    bad = min(max(error.index, 0), len(lines) - 1)
                    run.accepted += bad  # reference §1.9: 0..N-1 are accepted and will be indexed
                    if error.code == INDEX_CODE:
                        reason = f"HEC refused the index ({error})"
                        self._park(lines[bad:], reason, run)
                        self._block(run, reason)
                        break
                    self._park([lines[bad]], f"HEC rejected this event ({error})", run, retryable=False)
                    lines, attempt = lines[bad + 1 :], 0
                    continue
                except HecTokenError as error:
                    if not run.token_refreshed and self._refresh_token():
                        run.token_refreshed = True
                        continue
                    if error.status is None:
                        # Raised by the token provider, before any request: HEC never saw it.
                        reason = f"no HEC token: {error.text}"
                    else:
                        reason = (
                            f"HEC refused the token ({error}); check the token "
                            "(HSMAUDIT_HEC_TOKEN or its secret) and that it is enabled in Splunk"
                        )
                    self._park(lines, reason, run)
                    self._block(run, reason)
                    break
                except HecTooLargeError as error:
                    if len(lines) > 1:
                        middle = len(lines) // 2
                        todo.extend((lines[middle:], lines[:middle]))
                    else:
                        self._park(
                            lines, f"HEC refused a single event as too large ({error})", run, retryable=False
                        )
                    break
                except HecRejectedError as error:
                    reason = f"HEC rejected the request ({error})"
                    self._park(lines, reason, run)
                    self._block(run, reason)
                    break
                except HecRetryableError as error:
                    attempt += 1
                    if attempt >= self.retry.max_attempts:
                        reason = f"HEC still failing after {attempt} attempts ({error})"
                        self._park(lines, reason, run)
                        self._block(run, f"HEC unavailable ({error})")
                        break
                    delay = self._backoff(attempt, error.retry_after)
                    if self._clock() + delay >= run.deadline - 0.05:
                        self._park(lines, f"no time left to retry ({error})", run)
                        break
                    run.retries += 1
                    logger.info("hec: attempt %d failed (%s); retrying in %.2fs", attempt, error, delay)
                    self._sleep(delay)
                    continue
                if self.acks.enabled and ack_id is not None:
                    run.pending[ack_id] = _Pending(lines, self._clock(), resends)
                else:
                    run.accepted += len(lines)
                lines = []

    def _refresh_token(self) -> bool:
        """Fetch the token again after a 401/403; True when it changed (worth one more try)."""
        try:
            before = self._token.token()
            after = self._token.token(refresh=True)
        except HecTokenError as error:
            logger.error("hec: cannot refresh the token: %s", error)
            return False
        return after != before

    def _headers(self, token: str) -> dict[str, str]:
        return {
            "Authorization": f"Splunk {token}",
            "X-Splunk-Request-Channel": self.channel,
            "Content-Type": "application/json",
            "User-Agent": self._user_agent,
        }

    def _post(self, lines: list[bytes], remaining: float, run: _Run) -> int | None:
        body = join_lines(lines)
        wire = gzip.compress(body, compresslevel=self.batch.gzip_level, mtime=0)
        headers = self._headers(self._token.token())
        headers["Content-Encoding"] = "gzip"
        run.requests += 1
        run.wire_bytes += len(wire)
        run.body_bytes += len(body)
        status, data, answer_headers = self._request(self.event_path, wire, headers, remaining, run)
        return classify_answer(status, data, answer_headers)

    def _request(
        self, path: str, body: bytes, headers: dict[str, str], remaining: float, run: _Run
    ) -> tuple[int, bytes, Mapping[str, str]]:
        limit = max(0.05, min(self.connection.timeout, remaining))
        started = time.perf_counter()
        try:
            response = self._http.urlopen(
                "POST",
                self.origin + path,
                body=body,
                headers=headers,
                retries=False,
                redirect=False,
                timeout=urllib3.Timeout(connect=limit, read=limit),
                preload_content=True,
            )
        except urllib3.exceptions.SSLError as error:
            text = str(error)
            if "CERTIFICATE_VERIFY_FAILED" in text or "certificate verify failed" in text:
                # OpenSSL's own words say which: "self-signed certificate", "unable to get local
                # issuer certificate", "certificate has expired", "Hostname mismatch".
                detail = text.partition("certificate verify failed:")[2].split("(")[0].strip(" )'\"")
                raise HecRejectedError(
                    "TLS certificate verification failed"
                    + (f" ({detail})" if detail else "")
                    + "; trust the HEC certificate's CA with a CA bundle "
                    "(--ca-bundle / HSMAUDIT_HEC_CA_BUNDLE)"
                ) from None
            raise HecTransportError(f"TLS failure ({type(error).__name__})") from None
        except urllib3.exceptions.ProxyError as error:
            if "407" in str(error):  # the proxy refused our credentials: retrying cannot help
                raise HecRejectedError("the HEC proxy refused the credentials (HTTP 407)") from None
            raise HecTransportError("the HEC proxy could not be used or could not connect") from None
        except urllib3.exceptions.HTTPError as error:
            raise HecTransportError(_transport_reason(error, self.origin)) from None
        finally:
            run.latencies_ms.append((time.perf_counter() - started) * 1000.0)
        return response.status, response.data, response.headers

    # -- indexer acknowledgement --------------------------------------------------

    def _poll_acks(self, run: _Run) -> None:
        """Ask HEC which pending ackIds are indexed; count those as accepted."""
        if not run.pending:
            return
        remaining = run.deadline - self._clock()
        if remaining <= 0.05:
            return
        body = _ACK_ENCODER.encode({"acks": sorted(run.pending)})
        try:
            status, data, _headers = self._request(
                self.ack_path, body, self._headers(self._token.token()), remaining, run
            )
        except HecError as error:
            logger.info("hec: ack poll failed (%s); will ask again", error)
            return
        if status != 200:
            logger.info("hec: ack poll answered HTTP %d; will ask again", status)
            return
        try:
            answer = _ACK_DECODER.decode(data)
        except msgspec.DecodeError:
            return
        acks = answer.get("acks") if isinstance(answer, dict) else None
        if not isinstance(acks, dict):
            return
        for key, indexed in acks.items():
            try:
                ack_id = int(key)
            except ValueError:
                continue
            if indexed is True and ack_id in run.pending:
                run.accepted += len(run.pending.pop(ack_id).lines)

    def _await_acks(self, run: _Run) -> None:
        """Poll until every ack arrives; resend once what is late; spool what never arrives."""
        ack_timeout, poll_interval = self.acks.timeout, self.acks.poll_interval
        while run.pending:
            now = self._clock()
            late = [ack_id for ack_id, p in run.pending.items() if now - p.sent_at >= ack_timeout]
            for ack_id in late:
                pending = run.pending.pop(ack_id)
                time_left = run.deadline - now > poll_interval
                if pending.resends < 1 and run.blocked is None and time_left:
                    run.resent_unacked += len(pending.lines)
                    logger.warning(
                        "hec: ackId %d not acknowledged within %.1fs; resending its %d events "
                        "(HEC may index them twice)",
                        ack_id,
                        ack_timeout,
                        len(pending.lines),
                    )
                    self._deliver(pending.lines, run, resends=pending.resends + 1)
                else:
                    self._park(
                        pending.lines,
                        f"HEC did not acknowledge indexing within {ack_timeout:g}s "
                        f"(ackId {ack_id}); they may be indexed, so replay may duplicate them",
                        run,
                    )
            if not run.pending:
                return
            wait = min(poll_interval, run.deadline - self._clock() - 0.05)
            if wait <= 0:
                break
            self._sleep(wait)
            self._poll_acks(run)
        for ack_id in sorted(run.pending):
            pending = run.pending.pop(ack_id)
            self._park(
                pending.lines,
                f"the time budget ran out waiting for HEC to acknowledge ackId {ack_id}; "
                "they may be indexed, so replay may duplicate them",
                run,
            )


def _transport_reason(error: Exception, origin: str = "") -> str:
    """A one-line reason for a transport failure, without URLs' query strings or payloads.

    Names the real cause: a name that does not resolve is not a refused connection (the fix is
    the URL or DNS, not starting HEC).
    """
    where = urlsplit(masked_url(origin)).netloc if origin else ""
    # NameResolutionError subclasses NewConnectionError, which subclasses ConnectTimeoutError in
    # urllib3 2.x: test the most specific first.
    if isinstance(error, urllib3.exceptions.NameResolutionError):
        host = urlsplit(origin).hostname if origin else None
        return f"cannot resolve host {host or '(unknown)'}: check the HEC URL's host name and DNS"
    if isinstance(error, urllib3.exceptions.NewConnectionError):
        text = str(error)
        at = f" {where}" if where else ""
        if "refused" in text.lower():
            return f"connection refused by{at}; is HEC running on that port?"
        if "unreachable" in text.lower() or "no route" in text.lower():
            return f"network unreachable: no route to{at}"
        return f"cannot connect to{at}"
    if isinstance(error, urllib3.exceptions.ReadTimeoutError):
        return "read timed out"
    if isinstance(error, urllib3.exceptions.ConnectTimeoutError):
        return "connect timed out"
    if isinstance(error, urllib3.exceptions.ProtocolError):
        return "connection reset or closed mid-request"
    return f"transport failure ({type(error).__name__})"
