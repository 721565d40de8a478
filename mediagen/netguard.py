"""Where we may connect: every URL we fetch or post to that came from outside (provider download
links, webhook targets) must lead to a public address.

A URL passes when it is one that can be sent as it is (no control characters, whitespace or
invisible formatting characters, parsable, IPv4 written plainly), its scheme is http or https and
every address its host resolves to is a global unicast address, with IPv4 hidden inside IPv6
(mapped, compatible, 6to4, Teredo) unwrapped first. The check runs before connecting, again at
every redirect hop (we follow redirects ourselves), and once more against the address each new
connection reached, as soon as it is made: a DNS answer that changes between check and connect
(rebinding) is caught before anything is sent. That address is taken while the socket is open, so
a peer that resets the connection right after answering still has its answer read.

``MEDIAGEN_OUTBOUND_ALLOW`` lists hosts or CIDRs that pass anyway: local fakes and tests.
"""

from __future__ import annotations

import contextlib
import ipaddress
import re
import socket
import unicodedata
import weakref
from collections.abc import Callable, Iterator, Sequence
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
# Unicode categories a URL may not carry, by what they are called in the refusal.
_REFUSED_CATEGORIES = {
    "Cc": "a control character",
    "Zs": "whitespace",
    "Zl": "whitespace",
    "Zp": "whitespace",
    "Cf": "an invisible formatting character",
    "Cs": "a lone surrogate",
    "Co": "a private-use character",
    "Cn": "an unassigned character",
}
_CONNECTED = ("connection.connect_tcp.complete", "connection.start_tls.complete")
# The address each connection reached, recorded when it was made (see ``connection_checker``).
_peers: weakref.WeakKeyDictionary[Any, IPAddress] = weakref.WeakKeyDictionary()


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
        """Raise ``RefusedURL`` unless ``url`` can be sent as it is, is http(s) and its host
        resolves only to public addresses (or is allowed)."""
        parts = _split(url)
        if parts.scheme not in ("http", "https"):
            raise RefusedURL(f"{_shown(url)}: only http and https URLs are allowed, not {parts.scheme or 'none'}")
        host = (parts.hostname or "").lower()
        if not host:
            raise RefusedURL(f"{_shown(url)}: the URL has no host")
        try:
            port = parts.port or (443 if parts.scheme == "https" else 80)
        except ValueError:
            raise RefusedURL(f"{_shown(url)}: the port is not a number from 0 to 65535") from None
        if host in self.allowed_hosts:
            _check_sendable(url)
            return
        self._check_plain_ipv4(host, url)
        _check_sendable(url)
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

    def _check_plain_ipv4(self, host: str, url: str) -> None:
        """Refuse IPv4 written as one number, in hex, octal or with parts left out (``0177.0.0.1``,
        ``2130706433``): parsers disagree on what it means (httpx refuses it, getaddrinfo reads it
        as C does), so it is only accepted written plainly, after saying where it would lead."""
        try:
            ipaddress.IPv4Address(host)
            return
        except ValueError:
            pass
        try:
            read_as = ipaddress.IPv4Address(socket.inet_aton(host))
        except OSError:
            return  # a host name
        self.check_address(read_as, url)
        reason = why_not_public(read_as)
        what = f"{read_as}, a {reason} address" if reason else str(read_as)
        raise RefusedURL(f"{_shown(url)}: the host {host} is an unusual way to write {what}; write it as {read_as}")

    def _addresses(self, host: str, port: int, url: str) -> list[IPAddress]:
        try:
            answers = self.resolve(host, port, type=socket.SOCK_STREAM)
        except socket.gaierror as exc:  # may resolve later: a DNS outage, a name not yet published
            raise RefusedURL(f"{_shown(url)}: the host {host} does not resolve ({exc})", transient=True) from None
        except UnicodeError as exc:
            raise RefusedURL(f"{_shown(url)}: the host {host} does not resolve ({exc})") from None
        return [ipaddress.ip_address(answer[4][0].split("%", 1)[0]) for answer in answers]

    def check_peer(self, response: httpx.Response, url: str) -> None:
        """Judge the address the connection that answered reached (defeats DNS rebinding). A new
        connection was judged when it was made; this covers one reused from the client's pool."""
        stream = response.extensions.get("network_stream")
        if stream is None or self._vouched(url):
            return
        address = _peers.get(stream)
        if address is None:  # made outside ``guarded_stream``: ask the socket, if it is still open
            try:
                address = _peer_address(stream)
            except OSError:
                raise httpx.ReadError(
                    f"{_shown(url)}: the connection closed before the address it reached could be checked"
                ) from None
        if address is not None:
            self.check_address(address, url)

    def _vouched(self, url: str) -> bool:
        return (urlsplit(url).hostname or "").lower() in self.allowed_hosts

    def connection_checker(self, url: str) -> Callable[[str, dict[str, Any]], None]:
        """An httpcore ``trace`` hook that records and judges the address each new connection
        reached, right after connecting: nothing is sent to an address that is refused."""

        def on_event(event: str, info: dict[str, Any]) -> None:
            if event not in _CONNECTED:
                return
            stream = info["return_value"]
            address = _peer_address(stream)
            if address is None:
                return
            _peers[stream] = address
            if not self._vouched(url):
                try:
                    self.check_address(address, url)
                except RefusedURL:
                    stream.close()
                    raise

        return on_event


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
        extensions = {**kwargs.pop("extensions", {}), "trace": guard.connection_checker(current)}
        with client.stream(method, current, follow_redirects=False, extensions=extensions, **kwargs) as response:
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


def _peer_address(stream: Any) -> IPAddress | None:
    peer = stream.get_extra_info("server_addr")
    return ipaddress.ip_address(str(peer[0]).split("%", 1)[0]) if peer else None


def _split(url: str) -> Any:
    """The URL's parts, or ``RefusedURL`` saying why it cannot be sent as it is. Characters come
    first: a refusal never echoes them, and nothing after could be trusted to read them alike."""
    for position, char in enumerate(url, start=1):
        kind = _REFUSED_CATEGORIES.get(unicodedata.category(char))
        if kind:
            raise RefusedURL(f"contains {kind} (U+{ord(char):04X}) at position {position}")
    try:
        return urlsplit(url)
    except ValueError as exc:
        raise RefusedURL(f"is not a valid URL ({exc})") from None


def _check_sendable(url: str) -> None:
    """What sends the URL must read it too (httpx is stricter than ``urlsplit``: ports, IDNA)."""
    try:
        httpx.URL(url)
    except httpx.InvalidURL as exc:
        raise RefusedURL(f"{_shown(url)} is not a valid URL ({exc})") from None


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
