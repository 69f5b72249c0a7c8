"""The client's address: one rule for lockouts, rate limits and ``/healthz``.

``X-Forwarded-For`` is believed only when the direct peer (the TCP connection's address) is one
of ``settings.TRUSTED_PROXIES`` (addresses or networks, default: none). The header is then read
from right to left: each address added by a trusted proxy is skipped, and the first address
that is not a trusted proxy is the client. Anybody else's ``X-Forwarded-For`` is ignored, so a
client cannot choose its address by sending the header itself.

The web server must therefore pass the real peer address (uvicorn without ``--proxy-headers``:
the Docker image and ``manage.py serve`` run it so).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Mapping
from functools import lru_cache
from typing import Any

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.http import HttpRequest

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def parse_ip(value: str | None) -> IPAddress | None:
    """An address as written by a proxy or a server (``1.2.3.4``, ``1.2.3.4:5678``, ``::1``,
    ``[::1]:5678``); IPv4-mapped IPv6 addresses become IPv4. ``None`` when it is not one."""
    text = (value or "").strip().strip('"')
    if not text:
        return None
    if text.startswith("["):  # [v6] or [v6]:port
        text = text[1:].split("]", 1)[0]
    elif text.count(":") == 1:  # v4:port
        text = text.split(":", 1)[0]
    text = text.split("%", 1)[0]  # an IPv6 zone (fe80::1%eth0)
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


@lru_cache(maxsize=16)
def _networks(values: tuple[str, ...]) -> tuple[Network, ...]:
    networks = []
    for value in values:
        text = value.strip()
        if not text:
            continue
        try:
            networks.append(ipaddress.ip_network(text, strict=False))
        except ValueError:
            raise ImproperlyConfigured(
                f"{text!r} is not an IP address or network (e.g. 10.0.0.5 or 10.0.0.0/8)"
            ) from None
    return tuple(networks)


def networks(values: Iterable[str]) -> tuple[Network, ...]:
    """Parse a list of addresses or CIDR networks (raises ``ImproperlyConfigured``)."""
    return _networks(tuple(values))


def in_networks(address: IPAddress | None, among: tuple[Network, ...]) -> bool:
    return address is not None and any(address in network for network in among)


def trusted_proxies() -> tuple[Network, ...]:
    return networks(getattr(settings, "TRUSTED_PROXIES", ()))


def client_address(remote_addr: str | None, xff_header: str | None) -> IPAddress | None:
    """The client's address (see the module's docstring); ``None`` when the peer is unknown."""
    peer = parse_ip(remote_addr)
    trusted = trusted_proxies()
    if peer is None or not xff_header or not in_networks(peer, trusted):
        return peer
    client = peer
    for entry in reversed(xff_header.split(",")):
        hop = parse_ip(entry)
        if hop is None:  # garbage before the trusted hops: stop at the last good one
            break
        client = hop
        if not in_networks(hop, trusted):
            break
    return client


def client_ip_from(remote_addr: str | None, xff_header: str | None) -> str | None:
    """The client's address as text (``None`` when the peer is unknown)."""
    address = client_address(remote_addr, xff_header)
    return str(address) if address is not None else None


def client_ip_for_request(request: HttpRequest) -> str | None:
    """For an HTTP request (also ``settings.AXES_CLIENT_IP_CALLABLE``)."""
    return client_ip_from(request.META.get("REMOTE_ADDR"), request.META.get("HTTP_X_FORWARDED_FOR"))


def scope_header(scope: Mapping[str, Any], name: bytes) -> str:
    """Every value of one header of an ASGI scope, joined by commas (as HTTP allows)."""
    values = [
        value.decode("latin-1") for key, value in scope.get("headers", []) if key.lower() == name
    ]
    return ",".join(values)


def client_ip_for_scope(scope: Mapping[str, Any]) -> str | None:
    """For an ASGI scope (WebSocket consumers)."""
    client = scope.get("client")
    peer = str(client[0]) if client and client[0] else None
    return client_ip_from(peer, scope_header(scope, b"x-forwarded-for"))


def relayed_by_untrusted_proxy(request: HttpRequest) -> bool:
    """The request carries ``X-Forwarded-For`` but its peer is not a trusted proxy: it came
    through a proxy nobody declared (or the header is forged)."""
    if not request.META.get("HTTP_X_FORWARDED_FOR"):
        return False
    return not in_networks(parse_ip(request.META.get("REMOTE_ADDR")), trusted_proxies())


def request_from_networks(request: HttpRequest, values: Iterable[str]) -> bool:
    """The client of ``request`` (behind ``TRUSTED_PROXIES`` only) is in one of these networks.
    A request relayed by a proxy that is not trusted never is: the proxy's own address (often
    a private one) says nothing about the caller."""
    if relayed_by_untrusted_proxy(request):
        return False
    address = client_address(
        request.META.get("REMOTE_ADDR"), request.META.get("HTTP_X_FORWARDED_FOR")
    )
    return in_networks(address, networks(values))
