"""Where webhooks may go: public http(s) addresses only, so an endpoint cannot reach rebill's own network.

An admin who registers ``http://169.254.169.254/`` or ``http://localhost:5432``
would otherwise make the worker post there (server-side request forgery).
The rules are checked twice: on the URL when an endpoint is registered, and
on every address a host name resolves to when a delivery connects, since
DNS may change in between; the connection then goes to the address that was
checked (see ``transport``). ``REBILL_WEBHOOK_ALLOW_PRIVATE`` lifts the
address rule for local development; credentials and other schemes stay out.
"""

from __future__ import annotations

import asyncio
import ipaddress
import re
import socket
from collections.abc import Awaitable, Callable, Sequence
from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network
from urllib.parse import SplitResult

IPAddress = IPv4Address | IPv6Address
# ``(host, port) -> addresses``: how a host name becomes IP addresses (injectable for tests).
Resolver = Callable[[str, int], Awaitable[Sequence[str]]]

SCHEMES = ("http", "https")
DEFAULT_PORTS = {"http": 80, "https": 443}
# A registration does not wait longer than this for DNS; a name not resolved by then is checked at delivery.
LOOKUP_SECONDS = 3.0

# Ranges ``is_global`` lets through on some Python versions, or that deserve their own name.
_SHARED = IPv4Network("100.64.0.0/10")  # carrier-grade NAT (RFC 6598)
_BENCHMARKING = IPv4Network("198.18.0.0/15")  # RFC 2544
_NAT64 = (IPv6Network("64:ff9b::/96"), IPv6Network("64:ff9b:1::/48"))
# A host name in ASCII: letters, digits, hyphens, underscores and dots.
_HOST_NAME = re.compile(r"^[a-z0-9_]([a-z0-9_.-]*[a-z0-9_])?$")


class DestinationRefused(Exception):
    """A destination that is not a public address; the message says which address and why."""


class NotResolved(Exception):
    """A host name that did not resolve (now)."""


def address_refusal(address: IPAddress) -> str | None:
    """Why ``address`` is not a public destination (a few words), or None when it is one.

    IPv6 forms that carry an IPv4 address (IPv4-mapped, 6to4, NAT64) are
    judged by the IPv4 address they carry.
    """
    if isinstance(address, IPv6Address):
        embedded = _embedded_ipv4(address)
        if embedded is not None:
            inner = address_refusal(embedded)
            return f"{inner}, as {embedded}" if inner else None
    if address.is_unspecified:
        return "unspecified"
    if address.is_loopback:
        return "loopback"
    if address.is_link_local:
        return "link-local"
    if address.is_multicast:
        return "multicast"
    if isinstance(address, IPv4Address) and address in _SHARED:
        return "shared address space 100.64.0.0/10"
    if isinstance(address, IPv4Address) and address in _BENCHMARKING:
        return "benchmarking range 198.18.0.0/15"
    if address.is_reserved:
        return "reserved"
    if address.is_private:
        return "private"
    if not address.is_global:
        return "not globally routable"
    return None


def _embedded_ipv4(address: IPv6Address) -> IPv4Address | None:
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address.sixtofour is not None:
        return address.sixtofour
    if any(address in net for net in _NAT64):
        return IPv4Address(int(address) & 0xFFFFFFFF)
    return None


def literal_address(host: str) -> IPAddress | None:
    """The IP address ``host`` spells, in any form the system resolver accepts; None for a host name.

    ``ipaddress`` reads dotted quads and IPv6; ``inet_aton`` reads what
    resolvers also take for IPv4: ``2130706433``, ``0177.0.0.1``, ``0x7f.1``.
    """
    text = host.strip().strip("[]").rstrip(".")
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        pass
    try:
        return IPv4Address(socket.inet_aton(text))
    except (OSError, ValueError):
        return None


def is_localhost(host: str) -> bool:
    """``localhost`` and names under it are loopback whatever DNS says (RFC 6761)."""
    name = host.lower().rstrip(".")
    return name == "localhost" or name.endswith(".localhost")


def valid_host_name(host: str) -> bool:
    """A syntactically valid DNS name (internationalised names through IDNA)."""
    try:
        name = host.encode("idna").decode("ascii")
    except UnicodeError:
        return False
    return len(name) <= 253 and bool(_HOST_NAME.match(name.lower().rstrip(".")))


def url_refusal(parts: SplitResult) -> str | None:
    """Why a URL is refused whatever its address: another scheme, or credentials in it."""
    if parts.scheme.lower() not in SCHEMES:
        return f"only http and https URLs receive webhooks, not {parts.scheme}:"
    if "@" in parts.netloc:
        return "a URL with credentials (user:password@) is not allowed; the signature tells receivers the sender"
    return None


async def system_resolver(host: str, port: int) -> list[str]:
    """The addresses the operating system resolves ``host`` to (``loop.getaddrinfo``)."""
    infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return [str(info[4][0]) for info in infos]


async def resolve_checked(host: str, port: int, resolver: Resolver, *, allow_private: bool) -> list[IPAddress]:
    """The addresses to connect to for ``host``, each of them checked.

    Raises ``DestinationRefused`` when the host is, or resolves to, any
    address that is not public (unless ``allow_private``), and
    ``NotResolved`` when it does not resolve.
    """
    literal = literal_address(host)
    if literal is not None:
        reason = None if allow_private else address_refusal(literal)
        if reason:
            raise DestinationRefused(f"{host} is not a public address ({reason})")
        return [literal]
    if is_localhost(host) and not allow_private:
        raise DestinationRefused(f"{host} is not a public address (loopback)")
    try:
        found = await resolver(host, port)
    except (OSError, UnicodeError) as exc:
        raise NotResolved(f"{host} does not resolve ({exc})") from None
    addresses: list[IPAddress] = []
    for text in found:
        address = literal_address(text)
        if address is None:
            raise DestinationRefused(f"{host} resolves to {text!r}, which is not an IP address")
        reason = None if allow_private else address_refusal(address)
        if reason:
            raise DestinationRefused(f"{host} resolves to {address}, which is not a public address ({reason})")
        if address not in addresses:
            addresses.append(address)
    if not addresses:
        raise NotResolved(f"{host} resolves to no address")
    return addresses
