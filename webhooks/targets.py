"""Where a webhook may be sent, and the HTTP request itself.

A subscription's URL is checked when it is saved and again at every attempt (a DNS name may
change what it points to):

- ``https`` only; ``http`` only to a loopback address when ``WEBHOOK_ALLOW_LOOPBACK`` is on
  (development and tests);
- every address the name resolves to must be a public one: loopback, private, link-local
  (cloud metadata), multicast and reserved ranges are refused, unless the address is in
  ``WEBHOOK_ALLOWED_NETWORKS`` (an internal case-management system) or is loopback with
  ``WEBHOOK_ALLOW_LOOPBACK``;
- the connection goes to the address that was checked (not to a second resolution that a
  rebinding DNS could answer differently), with the name kept for TLS (SNI, certificate) and
  the ``Host`` header; redirects are not followed; connection and total timeouts bound it.
"""

from __future__ import annotations

import ipaddress
import socket
import time
from dataclasses import dataclass
from functools import lru_cache
from urllib.parse import SplitResult, urlsplit

import urllib3
from django.conf import settings
from django.utils.translation import gettext as _

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
RESPONSE_EXCERPT_BYTES = 2048


class TargetRefused(ValueError):
    """This URL may not receive webhooks (the message says why, in the user's language)."""


@lru_cache(maxsize=8)
def _networks(spec: tuple[str, ...]) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
    return tuple(ipaddress.ip_network(item.strip(), strict=False) for item in spec if item.strip())


def allowed_networks() -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
    return _networks(tuple(settings.WEBHOOK_ALLOWED_NETWORKS))


def address_allowed(address: IPAddress) -> bool:
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    if address.is_loopback:
        return bool(settings.WEBHOOK_ALLOW_LOOPBACK)
    if any(address in network for network in allowed_networks()):
        return True
    return address.is_global and not address.is_multicast


def _is_loopback_name(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_url(url: str) -> SplitResult:
    """The URL's parts when its form is acceptable (scheme, host, no credentials)."""
    parts = urlsplit(url.strip())
    host = parts.hostname or ""
    if parts.scheme not in ("https", "http") or not host:
        raise TargetRefused(_("The address must start with https://."))
    if parts.username or parts.password:
        raise TargetRefused(_("The address may not contain a user name or password."))
    if parts.scheme == "http" and not (settings.WEBHOOK_ALLOW_LOOPBACK and _is_loopback_name(host)):
        raise TargetRefused(_("The address must start with https://."))
    try:
        parts.port  # noqa: B018 (raises on a bad port)
    except ValueError as exc:
        raise TargetRefused(_("The port of this address is not valid.")) from exc
    return parts


def resolve(parts: SplitResult) -> list[IPAddress]:
    """The addresses to connect to; refused when any of them is not allowed."""
    host = parts.hostname or ""
    port = parts.port or (443 if parts.scheme == "https" else 80)
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError) as exc:
        raise TargetRefused(
            _("The host name %(host)s cannot be resolved.") % {"host": host}
        ) from exc
    addresses: list[IPAddress] = []
    for info in infos:
        address = ipaddress.ip_address(str(info[4][0]).split("%", 1)[0])
        if not address_allowed(address):
            raise TargetRefused(
                _(
                    "%(host)s points to %(address)s, a private or reserved address: webhooks "
                    "are not sent there unless WEBHOOK_ALLOWED_NETWORKS allows it."
                )
                % {"host": host, "address": address}
            )
        if address not in addresses:
            addresses.append(address)
    if not addresses:
        raise TargetRefused(_("The host name %(host)s cannot be resolved.") % {"host": host})
    return addresses


def validate_target(url: str) -> None:
    """Raise :class:`TargetRefused` unless webhooks may be sent to ``url`` now."""
    resolve(check_url(url))


@dataclass(frozen=True)
class Answer:
    status: int | None  # None: no HTTP answer (refused, unreachable, timed out)
    duration_ms: int
    error: str = ""

    @property
    def ok(self) -> bool:
        return self.status is not None and 200 <= self.status < 300


def post(url: str, body: bytes, headers: dict[str, str]) -> Answer:
    """POST ``body`` to ``url`` (checked first), never following a redirect."""
    started = time.monotonic()

    def elapsed() -> int:
        return int((time.monotonic() - started) * 1000)

    try:
        parts = check_url(url)
        addresses = resolve(parts)
    except TargetRefused as exc:
        return Answer(None, elapsed(), str(exc))
    host = parts.hostname or ""
    port = parts.port or (443 if parts.scheme == "https" else 80)
    path = parts.path or "/"
    if parts.query:
        path += "?" + parts.query
    default_port = port == (443 if parts.scheme == "https" else 80)
    host_header = (f"[{host}]" if ":" in host else host) + ("" if default_port else f":{port}")
    timeout = urllib3.Timeout(
        connect=settings.WEBHOOK_CONNECT_TIMEOUT_S, total=settings.WEBHOOK_TIMEOUT_S
    )
    last_error = ""
    for address in addresses:
        pool: urllib3.HTTPConnectionPool
        if parts.scheme == "https":
            pool = urllib3.HTTPSConnectionPool(
                str(address),
                port,
                timeout=timeout,
                retries=False,
                maxsize=1,
                server_hostname=host,
                assert_hostname=host,
                cert_reqs="CERT_REQUIRED",
            )
        else:
            pool = urllib3.HTTPConnectionPool(
                str(address), port, timeout=timeout, retries=False, maxsize=1
            )
        try:
            response = pool.urlopen(
                "POST",
                path,
                body=body,
                headers={**headers, "Host": host_header},
                redirect=False,
                retries=False,
                preload_content=False,
                assert_same_host=False,
            )
            try:
                response.read(RESPONSE_EXCERPT_BYTES)
            finally:
                response.release_conn()
            return Answer(response.status, elapsed())
        except urllib3.exceptions.NewConnectionError as exc:
            last_error = _("connection refused or unreachable: %(error)s") % {"error": _short(exc)}
            continue  # the next address, if any
        except (urllib3.exceptions.TimeoutError, TimeoutError):
            return Answer(None, elapsed(), _("no answer within the timeout"))
        except (urllib3.exceptions.HTTPError, OSError) as exc:
            return Answer(None, elapsed(), _short(exc))
        finally:
            pool.close()
    return Answer(None, elapsed(), last_error)


def _short(exc: BaseException) -> str:
    reason = getattr(exc, "reason", None) or exc
    text = f"{type(reason).__name__}: {reason}"
    return text[:300]
