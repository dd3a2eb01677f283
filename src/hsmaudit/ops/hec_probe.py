"""`hsmaudit doctor`'s HEC checks: find out, in order and in plain words, why nothing arrives.

Checks, each depending on the ones before it (a dead HEC makes its token uncheckable;
`docs/reference/splunk.md` §1; operator-needs.md §1.2, §1.5, §1.6):

1. `hec.config`     a HEC URL is configured (flags > HSMAUDIT_* > config file, like every command)
2. `hec.reachable`  the host resolves and the port accepts a TCP connection
3. `hec.tls`        the certificate verifies for the URL's name (self-signed Splunk default
                    certificates are the classic case: trust them with HSMAUDIT_HEC_CA_BUNDLE)
4. `hec.health`     `GET /services/collector/health` answers code 17
5. `hec.token`      an empty POST is answered "No data" (code 5): the token is known and enabled,
                    and nothing was indexed; codes 4 / 1 say unknown / disabled
6. `hec.ack`        `POST /services/collector/ack` answers code 14 when the token has indexer
                    acknowledgement off; compared with HSMAUDIT_HEC_ACK
7. `hec.index`      one test event (sourcetype `hsmaudit:doctor`, outside the `hsmaudit_events`
                    macro) is accepted into the configured index; code 7 means the token may not
                    write there. `--no-test-event` skips it.

An answer that is not HEC's (a JSON object with an integer `code`) fails health, token and test
event even with HTTP 200: an HTML login page or a web server's JSON is not a collector, and the
forwarder would spool everything there. The URL is printed with any embedded user name,
password or query value masked (`https://***@host`).

Every problem is one `CheckResult` saying what and what to do. The token is never put in one.
HEC's codes are named in `hsmaudit.sinks.hec.answers` (imported when a check runs, like urllib3,
so loading the CLI does not load the HEC client).
Plain Python (sockets, `ssl`, urllib3): no Typer or Rich, so the probe runs without the CLI.
"""

from __future__ import annotations

import json
import re
import socket
import ssl
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final
from urllib.parse import urlsplit

from hsmaudit.config import masked_url, url_has_credentials
from hsmaudit.ops.checks import CheckResult

if TYPE_CHECKING:
    from hsmaudit.config import Settings

DOCTOR_SOURCETYPE: Final = "hsmaudit:doctor"

# OpenSSL X509_V_ERR_* codes (openssl/x509_vfy.h) behind ssl.SSLCertVerificationError.verify_code.
_SELF_SIGNED: Final = frozenset({18, 19})
_UNKNOWN_ISSUER: Final = frozenset({2, 20, 21})
_EXPIRED: Final = 10
_NOT_YET_VALID: Final = 9
_HOSTNAME_MISMATCH: Final = frozenset({62, 64})

_MAX_ANSWER: Final = 64 * 1024
"""Bytes of an answer doctor reads: a HEC reply is tiny, whatever answers instead may not be."""

_TITLE: Final = re.compile(rb"<title[^>]*>([^<]{0,200})", re.IGNORECASE)
_UNPRINTABLE: Final = re.compile(r"[^\x20-\x7e\u00a0-\ud7ff\ue000-\ufffd]")

NOT_HEC_FIX: Final = (
    "point HSMAUDIT_HEC_URL at Splunk's HTTP Event Collector (port 8088 by default; Splunk Cloud: "
    "https://http-inputs-<stack>.splunkcloud.com), not at a web page, login portal or proxy"
)


def shown(text: object, limit: int = 120) -> str:
    """Text from the other side, safe for one terminal line: control characters out, bounded."""
    value = _UNPRINTABLE.sub("?", str(text))
    return value if len(value) <= limit else value[: limit - 1] + "…"


@dataclass(frozen=True, slots=True)
class HecAnswer:
    """What came back: the HTTP status, the JSON object (None when the body is not one) and,
    when it is not a HEC reply, what it is instead (for the one-line reason)."""

    status: int
    body: dict[str, Any] | None
    content_type: str
    data: bytes

    @property
    def code(self) -> int | None:
        """HEC's `code`, None when there is none (or it is not an integer)."""
        code = (self.body or {}).get("code")
        return code if isinstance(code, int) and not isinstance(code, bool) else None

    @property
    def text(self) -> str:
        return shown((self.body or {}).get("text", ""))

    @property
    def is_hec(self) -> bool:
        """A HEC reply: a JSON object with an integer `code` (and `text`), or the ack map (§1.7)."""
        if self.body is None:
            return False
        if self.code is not None and isinstance(self.body.get("text", ""), str):
            return True
        return isinstance(self.body.get("acks"), dict)

    def what(self) -> str:
        """What the body is, for a reply that is not HEC's: `an HTML page ("Sign in")`, …"""
        data = self.data.lstrip()
        kind = self.content_type.split(";")[0].strip().lower()
        if not data:
            return "an empty body"
        if kind in ("text/html", "application/xhtml+xml") or data[:1] == b"<":
            title = _TITLE.search(data)
            named = f' ("{shown(title.group(1).decode("utf-8", "replace").strip(), 60)}")' if title else ""
            return f"an HTML page{named}"
        if self.body is not None:
            keys = ", ".join(shown(key, 20) for key in list(self.body)[:4]) or "no keys"
            return f"a JSON object without HEC's code and text ({keys})"
        try:
            json.loads(self.data)
        except ValueError:
            return f"a {shown(kind, 40) or 'body'} that is not JSON"
        return "JSON that is not an object"

    def not_hec(self, check: str, path: str) -> CheckResult:
        """The failure for an answer that is not HEC's, HTTP 200 included."""
        return CheckResult(
            check,
            "fail",
            f"HTTP {self.status} from {path} is not a HEC answer ({self.what()}): the URL points at "
            "something else, and the forwarder would spool every event there",
            NOT_HEC_FIX,
        )


class HecProbe:
    """The HEC checks; each method returns its result and whether later checks can go on."""

    def __init__(
        self, settings: Settings, *, timeout: float, test_event: bool, source: str | None = None
    ) -> None:
        self.settings = settings
        self.source = source
        self.timeout = timeout
        self.test_event = test_event
        self.origin = ""
        self.event_path = ""
        self.ack_path = ""
        self.scheme = ""
        self.host = ""
        self.port = 0
        self._pool: Any = None
        self._token: str | None = None
        self.token_has_ack: bool | None = None

    def run(self) -> Iterator[CheckResult]:
        steps = (self.config, self.reachable, self.tls, self.health, self.token, self.ack, self.index)
        names = ("hec.config", "hec.reachable", "hec.tls", "hec.health", "hec.token", "hec.ack", "hec.index")
        blocked: str | None = None
        for name, step in zip(names, steps, strict=True):
            if blocked is not None:
                yield CheckResult(name, "skip", f"not checked: {blocked} failed")
                continue
            result, go_on = step()
            yield result
            if not go_on:
                blocked = name

    # -- 1 -------------------------------------------------------------------------------------
    def config(self) -> tuple[CheckResult, bool]:
        from hsmaudit.sinks.hec.url import event_url

        url = self.settings.hec_url
        if not url:
            return CheckResult(
                "hec.config",
                "fail",
                "no HEC URL is configured",
                "set HSMAUDIT_HEC_URL (or --hec-url, or hec_url in the config file)",
            ), False
        try:
            self.origin, self.event_path, self.ack_path = event_url(url)
            parts = urlsplit(self.origin)
            self.port = parts.port or (443 if parts.scheme == "https" else 80)
        except ValueError as error:
            return CheckResult(
                "hec.config", "fail", f"the HEC URL {masked_url(url)!r} is not usable", str(error)
            ), False
        self.scheme = parts.scheme
        self.host = parts.hostname or ""
        origin = self.source or self.settings.origins.get("hec_url", "default")
        summary = f"HEC URL {masked_url(self.origin + self.event_path)} (from {origin})"
        if url_has_credentials(url):
            # Never printed (masked above): HEC authenticates with the token header only.
            return CheckResult(
                "hec.config",
                "warn",
                f"{summary} carries a user name or password, which HEC ignores and logs may keep",
                "remove them from the URL; the token goes in a secret (HSMAUDIT_HEC_TOKEN_SECRET_ARN)",
            ), True
        if self.host.endswith(".splunkcloud.com") and (
            not self.host.startswith("http-inputs-") or self.port != 443 or self.scheme != "https"
        ):
            # operator-needs.md §1.6: Splunk Cloud's HEC is https://http-inputs-<stack>.splunkcloud.com:443;
            # clients hard-coding port 8088 or the web host miss it.
            return CheckResult(
                "hec.config",
                "warn",
                f"{summary} does not look like a Splunk Cloud HEC URL",
                "Splunk Cloud's HEC is usually https://http-inputs-<stack>.splunkcloud.com:443",
            ), True
        return CheckResult("hec.config", "ok", summary), True

    # -- 2 -------------------------------------------------------------------------------------
    def reachable(self) -> tuple[CheckResult, bool]:
        where = f"{self.host}:{self.port}"
        try:
            with socket.create_connection((self.host, self.port), timeout=self.timeout):
                pass
        except socket.gaierror:
            return CheckResult(
                "hec.reachable",
                "fail",
                f"the HEC host name {self.host} does not resolve",
                "check the name in HSMAUDIT_HEC_URL (Splunk Cloud: http-inputs-<stack>.splunkcloud.com)",
            ), False
        except ConnectionRefusedError:
            return CheckResult(
                "hec.reachable",
                "fail",
                f"HEC is down: {where} refused the connection",
                "start Splunk or enable HEC (Settings > Data inputs > HTTP Event Collector > Global "
                "Settings), and check the port (8088 by default, 443 on Splunk Cloud)",
            ), False
        except TimeoutError:
            return CheckResult(
                "hec.reachable",
                "fail",
                f"no answer from {where} within {self.timeout:g}s",
                "a firewall, security group or VPC route is in the way, or the port is wrong",
            ), False
        except OSError as error:
            return CheckResult(
                "hec.reachable",
                "fail",
                f"cannot connect to {where} ({error.strerror or error})",
                "check the network path",
            ), False
        return CheckResult("hec.reachable", "ok", f"{where} accepts connections"), True

    # -- 3 -------------------------------------------------------------------------------------
    def tls(self) -> tuple[CheckResult, bool]:
        if self.scheme != "https":
            loopback = self.host in {"127.0.0.1", "localhost", "::1"}
            if loopback:
                return CheckResult(
                    "hec.tls", "skip", "plain HTTP to a local collector (no TLS to check)"
                ), True
            return CheckResult(
                "hec.tls",
                "warn",
                "the HEC URL is plain http: the token and audit records cross the network unencrypted",
                "use https:// (Splunk's HEC has TLS on by default)",
            ), True
        if not self.settings.hec_verify:
            return CheckResult(
                "hec.tls",
                "warn",
                "TLS certificate verification is OFF (HSMAUDIT_HEC_VERIFY=false)",
                "trust the certificate with HSMAUDIT_HEC_CA_BUNDLE instead of turning verification off",
            ), True
        bundle = self.settings.hec_ca_bundle
        try:
            context = ssl.create_default_context(cafile=bundle)
        except (OSError, ssl.SSLError) as error:
            return CheckResult(
                "hec.tls",
                "fail",
                f"the CA bundle {bundle} cannot be loaded ({getattr(error, 'strerror', None) or error})",
                "point HSMAUDIT_HEC_CA_BUNDLE at a PEM file of CA certificates",
            ), False
        try:
            with (
                socket.create_connection((self.host, self.port), timeout=self.timeout) as raw,
                context.wrap_socket(raw, server_hostname=self.host) as tls,
            ):
                version = tls.version()
        except ssl.SSLCertVerificationError as error:
            return self._certificate_problem(error), False
        except ssl.SSLError as error:
            return CheckResult(
                "hec.tls",
                "fail",
                f"the TLS handshake with {self.host}:{self.port} failed ({error.reason or error})",
                "if HEC serves plain HTTP (enableSSL = 0), use an http:// URL; otherwise check the port",
            ), False
        except OSError as error:
            return CheckResult(
                "hec.tls", "fail", f"the TLS connection failed ({error})", "check the network path"
            ), False
        trusted = f"the CA bundle {bundle}" if bundle else "the system's trusted CAs"
        return CheckResult(
            "hec.tls", "ok", f"TLS certificate valid for {self.host} ({version}, trusted via {trusted})"
        ), True

    def _certificate_problem(self, error: ssl.SSLCertVerificationError) -> CheckResult:
        code = error.verify_code
        subject, names = self._peer_certificate()
        about = f" ({subject})" if subject else ""
        bundle_fix = (
            "put the certificate (or the CA that signed it) in a PEM file and set "
            "HSMAUDIT_HEC_CA_BUNDLE=/path/to/ca.pem (or --ca-bundle); do not turn verification off"
        )
        if code in _SELF_SIGNED:
            return CheckResult(
                "hec.tls",
                "fail",
                f"HEC's TLS certificate is self-signed{about}, so it cannot be verified",
                bundle_fix,
            )
        if code in _UNKNOWN_ISSUER:
            return CheckResult(
                "hec.tls",
                "fail",
                f"HEC's TLS certificate{about} is signed by a CA this machine does not trust",
                bundle_fix,
            )
        if code in _HOSTNAME_MISMATCH:
            valid = ", ".join(names) or subject or "other names"
            return CheckResult(
                "hec.tls",
                "fail",
                f"HEC's TLS certificate is valid for {valid}, not for {self.host}",
                "use a name the certificate covers in HSMAUDIT_HEC_URL, "
                "or reissue the certificate for this name",
            )
        if code == _EXPIRED:
            return CheckResult(
                "hec.tls",
                "fail",
                f"HEC's TLS certificate{about} has expired",
                "renew the certificate on the HEC side",
            )
        if code == _NOT_YET_VALID:
            return CheckResult(
                "hec.tls",
                "fail",
                f"HEC's TLS certificate{about} is not valid yet",
                "check the clocks of both machines",
            )
        return CheckResult(
            "hec.tls", "fail", f"HEC's TLS certificate does not verify ({error.verify_message})", bundle_fix
        )

    def _peer_certificate(self) -> tuple[str, list[str]]:
        """Subject and DNS/IP names of the server's certificate, read without verifying it."""
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        try:
            with (
                socket.create_connection((self.host, self.port), timeout=self.timeout) as raw,
                context.wrap_socket(raw, server_hostname=self.host) as tls,
            ):
                der = tls.getpeercert(binary_form=True)
        except OSError:
            return "", []
        if not der:
            return "", []
        try:
            from cryptography import x509
        except ImportError:  # optional: only names the certificate more precisely
            return "", []
        try:
            certificate = x509.load_der_x509_certificate(der)
            subject = certificate.subject.rfc4514_string()
            try:
                extension = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName)
                names = [str(n) for n in extension.value.get_values_for_type(x509.DNSName)]
                names += [str(n) for n in extension.value.get_values_for_type(x509.IPAddress)]
            except x509.ExtensionNotFound:
                names = []
        except ValueError:
            return "", []
        return subject, names

    # -- HTTP helpers --------------------------------------------------------------------------
    def _request(self, method: str, path: str, body: bytes | None, headers: dict[str, str]) -> HecAnswer:
        """One request, no retries, no redirects; at most `_MAX_ANSWER` bytes of the answer read."""
        import urllib3

        if self._pool is None:
            options: dict[str, Any] = {"retries": False, "timeout": urllib3.Timeout(self.timeout)}
            if self.scheme == "https":
                if self.settings.hec_verify:
                    options["cert_reqs"] = "CERT_REQUIRED"
                    if self.settings.hec_ca_bundle:
                        options["ca_certs"] = self.settings.hec_ca_bundle
                else:
                    options["cert_reqs"] = "CERT_NONE"
                    # hec.tls already says verification is off, once; not a warning per request.
                    urllib3.disable_warnings(urllib3.exceptions.InsecureRequestWarning)
            self._pool = urllib3.connection_from_url(self.origin, **options)
        response = self._pool.urlopen(
            method, path, body=body, headers=headers, redirect=False, retries=False, preload_content=False
        )
        try:
            data: bytes = response.read(_MAX_ANSWER + 1)
        except BaseException:
            response.close()
            raise
        if len(data) > _MAX_ANSWER:
            response.close()  # the rest is not read: drop this connection, keep the pool
        else:
            response.release_conn()
        try:
            value = json.loads(data) if len(data) <= _MAX_ANSWER else None
        except ValueError:
            value = None
        return HecAnswer(
            status=int(response.status),
            body=value if isinstance(value, dict) else None,
            content_type=response.headers.get("content-type", ""),
            data=data[:_MAX_ANSWER],
        )

    def _headers(self, *, channel: bool = True) -> dict[str, str]:
        import uuid

        from hsmaudit import __version__

        headers = {"User-Agent": f"hsmaudit-doctor/{__version__}", "Content-Type": "application/json"}
        if self._token is not None:
            headers["Authorization"] = f"Splunk {self._token}"
        if channel:
            headers["X-Splunk-Request-Channel"] = str(uuid.uuid4())
        return headers

    def _http_failure(self, check: str, error: Exception) -> tuple[CheckResult, bool]:
        return CheckResult(
            check,
            "fail",
            f"HEC did not answer ({type(error).__name__})",
            "run doctor again; check the network",
        ), False

    # -- 4 -------------------------------------------------------------------------------------
    def health(self) -> tuple[CheckResult, bool]:
        import urllib3

        from hsmaudit.sinks.hec import answers as hec

        base = self.event_path.split("/services/collector")[0]
        path = f"{base}/services/collector/health"
        try:
            answer = self._request("GET", path, None, self._headers(channel=False))
        except urllib3.exceptions.HTTPError as error:
            return self._http_failure("hec.health", error)
        status, code, text = answer.status, answer.code, answer.text
        if status == 200 and code == hec.HEALTHY:
            return CheckResult("hec.health", "ok", "HEC reports itself healthy"), True
        if status == 200 or (status < 400 and not answer.is_hec):
            # Splunk answers {"text":"HEC is healthy","code":17}; a 200 without it is not HEC.
            return answer.not_hec("hec.health", path), True
        if status == 503:
            return CheckResult(
                "hec.health",
                "fail",
                f"HEC is unhealthy (HEC code {code}: {text})",
                "Splunk's indexing queues are full or its ack service is down; check the indexers",
            ), True
        if status == 404:
            return CheckResult(
                "hec.health",
                "warn",
                "no HEC health endpoint at this URL (a proxy in front, or not a HEC?)",
                "check that HSMAUDIT_HEC_URL points at Splunk's HTTP Event Collector",
            ), True
        return CheckResult(
            "hec.health", "warn", f"the health endpoint answered HTTP {status} {text}".rstrip()
        ), True

    # -- 5 -------------------------------------------------------------------------------------
    def token(self) -> tuple[CheckResult, bool]:
        import urllib3

        from hsmaudit.aws.runtime import token_provider
        from hsmaudit.config import ConfigError
        from hsmaudit.sinks.errors import HecTokenError
        from hsmaudit.sinks.hec import answers as hec

        try:
            self._token = token_provider(self.settings).token()
        except (HecTokenError, ConfigError) as error:
            return CheckResult("hec.token", "fail", f"cannot get the HEC token: {error}", None), False
        source = {"secretsmanager": "Secrets Manager", "ssm": "SSM", "env": "HSMAUDIT_HEC_TOKEN"}[
            self.settings.token_source
        ]
        try:
            # An empty body: a known, enabled token gets "No data" (code 5) and nothing is indexed.
            answer = self._request("POST", self.event_path, b"", self._headers())
        except urllib3.exceptions.HTTPError as error:
            return self._http_failure("hec.token", error)
        status, code, text = answer.status, answer.code, answer.text
        if not answer.is_hec and (status < 400 or status in (401, 403)):
            # A login page's 200 (or 401/403) says nothing about the HEC token.
            return answer.not_hec("hec.token", self.event_path), False
        if code in hec.TOKEN_ACCEPTED_CODES:
            return CheckResult("hec.token", "ok", f"the HEC token (from {source}) is valid and enabled"), True
        if code in hec.DISABLED_TOKEN_CODES:
            return CheckResult(
                "hec.token",
                "fail",
                f"the HEC token (from {source}) is disabled in Splunk (HEC code {code}: {text})",
                "enable it under Settings > Data inputs > HTTP Event Collector",
            ), False
        if code in hec.REFUSED_TOKEN_CODES or status in (401, 403):
            return CheckResult(
                "hec.token",
                "fail",
                f"HEC does not accept the token (from {source}): HTTP {status}, HEC code {code}: {text}",
                "copy the token's value from Splunk (Settings > Data inputs > HTTP Event Collector) "
                "into its store",
            ), False
        return CheckResult(
            "hec.token", "warn", f"unexpected answer to the token check: HTTP {status}, code {code}: {text}"
        ), True

    # -- 6 -------------------------------------------------------------------------------------
    def ack(self) -> tuple[CheckResult, bool]:
        import urllib3

        from hsmaudit.sinks.hec import answers as hec

        try:
            answer = self._request("POST", self.ack_path, b'{"acks":[0]}', self._headers())
        except urllib3.exceptions.HTTPError as error:
            return self._http_failure("hec.ack", error)
        wanted = self.settings.hec_ack
        status = answer.status
        if answer.code == hec.ACK_DISABLED:
            self.token_has_ack = False
        elif status == 200 and isinstance((answer.body or {}).get("acks"), dict):
            self.token_has_ack = True
        else:
            what = "" if answer.is_hec else f", {answer.what()}"
            return CheckResult(
                "hec.ack",
                "warn",
                f"cannot tell whether the token uses indexer acknowledgement (HTTP {status}{what})",
                None
                if not wanted
                else f"HSMAUDIT_HEC_ACK is on: if sending fails with HEC code {hec.ACK_DISABLED}, "
                "turn it off",
            ), True
        if wanted and not self.token_has_ack:
            return CheckResult(
                "hec.ack",
                "fail",
                "HSMAUDIT_HEC_ACK is on but the token has indexer acknowledgement off "
                f"(HEC code {hec.ACK_DISABLED})",
                "set HSMAUDIT_HEC_ACK=false, or enable 'Indexer acknowledgement' on the token",
            ), True
        if self.token_has_ack and not wanted:
            return CheckResult(
                "hec.ack",
                "warn",
                "the token has indexer acknowledgement on but HSMAUDIT_HEC_ACK is off: "
                "events are sent (with a channel) but never confirmed as indexed",
                "set HSMAUDIT_HEC_ACK=true for confirmed delivery",
            ), True
        state = "on" if wanted else "off"
        return CheckResult(
            "hec.ack", "ok", f"indexer acknowledgement is {state} on both the token and hsmaudit"
        ), True

    # -- 7 -------------------------------------------------------------------------------------
    def index(self) -> tuple[CheckResult, bool]:
        import urllib3

        from hsmaudit.sinks.hec import answers as hec

        index = self.settings.hec_index
        where = f"index {index}" if index else "the token's default index"
        if not self.test_event:
            return CheckResult("hec.index", "skip", f"{where} not checked (--no-test-event)"), True
        envelope: dict[str, Any] = {
            "time": round(time.time(), 3),
            "host": socket.gethostname(),
            "source": "hsmaudit:doctor",
            "sourcetype": DOCTOR_SOURCETYPE,
            "event": {"message": "hsmaudit doctor connectivity check", "hsmaudit_doctor": True},
        }
        if index:
            envelope["index"] = index
        try:
            answer = self._request("POST", self.event_path, json.dumps(envelope).encode(), self._headers())
        except urllib3.exceptions.HTTPError as error:
            return self._http_failure("hec.index", error)
        status, code, text = answer.status, answer.code, answer.text
        if not answer.is_hec:
            # Only {"text":"Success","code":0} says the event was taken (§1.8).
            return answer.not_hec("hec.index", self.event_path), True
        if status == 200 and code == hec.SUCCESS:
            return CheckResult(
                "hec.index", "ok", f"HEC accepted a test event into {where} (sourcetype {DOCTOR_SOURCETYPE})"
            ), True
        if code == hec.INCORRECT_INDEX:
            return CheckResult(
                "hec.index",
                "fail",
                f"the token may not write to {where} (HEC code {code}: {text})",
                "add the index to the token's allowed indexes, or fix HSMAUDIT_HEC_INDEX",
            ), True
        if code == hec.DATA_CHANNEL_MISSING:
            return CheckResult(
                "hec.index",
                "fail",
                f"HEC wants a channel (HEC code {code}: the token has indexer acknowledgement on)",
                "set HSMAUDIT_HEC_ACK=true",
            ), True
        return CheckResult(
            "hec.index", "fail", f"HEC refused the test event: HTTP {status}, HEC code {code}: {text}"
        ), True

    def close(self) -> None:
        if self._pool is not None:
            self._pool.close()
