"""Where we may connect: every URL we fetch or post to that came from outside (provider download
links, webhook targets) must lead to a public address.

A URL passes when its scheme is http or https and every address its host resolves to is a
global unicast address, with IPv4 hidden inside IPv6 (mapped, compatible, 6to4, Teredo) unwrapped
first. The check runs before connecting, again at every redirect hop (we follow redirects
ourselves), and once more against the address the connection actually reached, so a DNS answer
that changes between check and connect (rebinding) is caught before the body is read.

``MEDIAGEN_OUTBOUND_ALLOW`` lists hosts or CIDRs that pass anyway: local fakes and tests.
"""

from __future__ import annotations

import contextlib
import ipaddress
import re
import socket
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urljoin, urlsplit

import httpx

from .errors import RefusedURL

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
MAX_REDIRECTS = 5
REDIRECT_STATUSES = {301, 302, 303, 307, 308}
_HOST_NAME = re.compile(r"[a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)*")


def parse_allow(entries: Sequence[str]) -> tuple[frozenset[str], tuple[IPNetwork, ...]]:
    """Split allow-list entries into host names and networks; raise ValueError on junk."""
    hosts: set[str] = set()
    networks: list[IPNetwork] = []
    for raw in entries:
        entry = raw.strip().lower()
        if not entry:
            continue
        try:
            networks.append(ipaddress.ip_network(entry, strict=False))
            continue
        except ValueError:
            pass
        if not _HOST_NAME.fullmatch(entry):
            raise ValueError(f"{raw!r} is neither a host name nor an IP address or CIDR")
        hosts.add(entry)
    return frozenset(hosts), tuple(networks)


def _embedded_ipv4(address: IPAddress) -> ipaddress.IPv4Address | None:
    if isinstance(address, ipaddress.IPv4Address):
        return None
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address.sixtofour is not None:
        return address.sixtofour
    if address.teredo is not None:
        return address.teredo[1]
    if int(address) >> 32 == 0 and int(address) > 1:  # deprecated IPv4-compatible ::a.b.c.d
        return ipaddress.IPv4Address(int(address))
    return None


def why_not_public(address: IPAddress) -> str | None:
    """None for a global unicast address; otherwise what kind of address it is."""
    inner = _embedded_ipv4(address)
    if inner is not None:
        reason = why_not_public(inner)
        return f"{reason} (inside {address})" if reason else None
    for attribute, label in (
        ("is_loopback", "loopback"),
        ("is_link_local", "link-local"),
        ("is_multicast", "multicast"),
        ("is_unspecified", "unspecified"),
        ("is_reserved", "reserved"),
        ("is_private", "private"),
    ):
        if getattr(address, attribute):
            return label
    if address in ipaddress.ip_network("100.64.0.0/10"):
        return "shared (CGNAT)"
    if not address.is_global:
        return "not globally routable"
    return None


@dataclass(frozen=True)
class OutboundGuard:
    allowed_hosts: frozenset[str] = frozenset()
    allowed_networks: tuple[IPNetwork, ...] = ()
    resolve: Any = field(default=socket.getaddrinfo, repr=False)  # swapped in tests for fake DNS

    @classmethod
    def from_entries(cls, entries: Sequence[str]) -> OutboundGuard:
        hosts, networks = parse_allow(entries)
        return cls(hosts, networks)

    def check_url(self, url: str) -> None:
        """Raise ``RefusedURL`` unless ``url`` is http(s) and its host resolves only to public
        addresses (or is allowed)."""
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https"):
            raise RefusedURL(f"{_shown(url)}: only http and https URLs are allowed, not {parts.scheme or 'none'}")
        host = (parts.hostname or "").lower()
        if not host:
            raise RefusedURL(f"{_shown(url)}: the URL has no host")
        if host in self.allowed_hosts:
            return
        try:
            port = parts.port or (443 if parts.scheme == "https" else 80)
        except ValueError:
            raise RefusedURL(f"{_shown(url)}: the port is not a number from 0 to 65535") from None
        for address in self._addresses(host, port, url):
            self.check_address(address, url)

    def check_address(self, address: IPAddress, url: str) -> None:
        if any(address in network for network in self.allowed_networks):
            return
        reason = why_not_public(address)
        if reason:
            raise RefusedURL(
                f"{_shown(url)} leads to {address}, a {reason} address; only public addresses are allowed "
                "(MEDIAGEN_OUTBOUND_ALLOW lists exceptions)"
            )

    def _addresses(self, host: str, port: int, url: str) -> list[IPAddress]:
        try:
            answers = self.resolve(host, port, type=socket.SOCK_STREAM)
        except (socket.gaierror, UnicodeError) as exc:
            raise RefusedURL(f"{_shown(url)}: the host {host} does not resolve ({exc})") from None
        # getaddrinfo also turns "2130706433" and "0x7f.1" into addresses, so odd spellings of an
        # internal address are judged by what they resolve to.
        return [ipaddress.ip_address(answer[4][0].split("%", 1)[0]) for answer in answers]

    def check_peer(self, response: httpx.Response, url: str) -> None:
        """Judge the address the connection actually reached (defeats DNS rebinding)."""
        stream = response.extensions.get("network_stream")
        peer = stream.get_extra_info("server_addr") if stream is not None else None
        host = (urlsplit(url).hostname or "").lower()
        if peer and host not in self.allowed_hosts:
            self.check_address(ipaddress.ip_address(str(peer[0]).split("%", 1)[0]), url)


@contextlib.contextmanager
def guarded_stream(
    client: httpx.Client,
    method: str,
    url: str,
    guard: OutboundGuard,
    *,
    follow_redirects: bool = True,
    **kwargs: Any,
) -> Iterator[httpx.Response]:
    """``client.stream`` with every hop checked by ``guard``; redirects followed by us (at most
    ``MAX_REDIRECTS``), never by httpx, and not at all when ``follow_redirects`` is False."""
    current = url
    for _hop in range(MAX_REDIRECTS + 1):
        guard.check_url(current)
        with client.stream(method, current, follow_redirects=False, **kwargs) as response:
            guard.check_peer(response, current)
            location = response.headers.get("location")
            if not (follow_redirects and response.status_code in REDIRECT_STATUSES and location):
                yield response
                return
            if response.status_code == 303:
                method = "GET"
                kwargs.pop("content", None)
                kwargs.pop("json", None)
            following = urljoin(current, location)
            if urlsplit(following).netloc != urlsplit(current).netloc:
                # Credentials are for the host they were given to, never for where it points us.
                headers = {k: v for k, v in (kwargs.get("headers") or {}).items() if k.lower() != "authorization"}
                kwargs["headers"] = headers
            current = following
    raise RefusedURL(f"{_shown(url)}: more than {MAX_REDIRECTS} redirects")


def _shown(url: str) -> str:
    """The URL as far as the path: no credentials, no query string (it often carries a signature)."""
    parts = urlsplit(url)
    if not parts.hostname:
        return url[:80]
    port = f":{parts.port}" if _port_or_none(parts) else ""
    return f"{parts.scheme}://{parts.hostname}{port}{parts.path}"


def _port_or_none(parts: Any) -> int | None:
    try:
        return int(parts.port) if parts.port else None
    except ValueError:
        return None
