"""The guard on every URL the server itself calls (key documents of OAuth clients, event
receivers): server-side request forgery must not reach the server's own network.

A destination must be a public (globally routable) address: checked when the host name
is resolved (``check_destination``) and again on the connected socket
(``guarded_connect``), since the name may resolve differently the second time (DNS
rebinding). Each caller has its own development switch that allows loopback and private
networks (``allow_private``).
"""

from __future__ import annotations

import ipaddress
import socket
from urllib.parse import urlsplit


class DestinationRefused(Exception):
    """A URL's host is, or resolves to, an address that is not public."""


class DestinationUnresolved(Exception):
    """A URL's host does not resolve."""


def address_allowed(address: str, *, allow_private: bool) -> bool:
    """Whether the server may connect to ``address`` (an IP address as text)."""
    if allow_private:
        return True
    try:
        ip = ipaddress.ip_address(address.split("%", 1)[0])
    except ValueError:
        return False
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return ip.is_global


def check_destination(url: str, *, allow_private: bool) -> None:
    """Refuse a URL whose host resolves to any non-public address (loopback, private,
    link-local such as 169.254.169.254, ...) unless ``allow_private``.
    Raises ``DestinationRefused``, or ``DestinationUnresolved`` when the host does not
    resolve."""
    if allow_private:
        return
    parts = urlsplit(url)
    host = parts.hostname
    if not host:
        raise DestinationRefused(f"{url[:200]} names no host")
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (OSError, ValueError, UnicodeError) as exc:
        raise DestinationUnresolved(f"{host[:200]} does not resolve: {exc}") from None
    addresses = {info[4][0] for info in infos}
    refused = sorted(a for a in addresses if not address_allowed(a, allow_private=False))
    if not addresses or refused:
        raise DestinationRefused(
            f"{host[:200]} resolves to a non-public address ({', '.join(refused)[:200]})"
        )


def check_peer(sock: socket.socket, *, allow_private: bool) -> None:
    """Close ``sock`` and raise ``DestinationRefused`` when its peer is not public."""
    peer = sock.getpeername()[0]
    if not address_allowed(peer, allow_private=allow_private):
        sock.close()
        raise DestinationRefused(f"connected to a non-public address ({peer})")


def guarded_connect(
    address,
    timeout=socket._GLOBAL_DEFAULT_TIMEOUT,  # noqa: SLF001
    source_address=None,
    *,
    allow_private: bool,
) -> socket.socket:
    """``socket.create_connection``, refusing a peer that is not a public address."""
    sock = socket.create_connection(address, timeout, source_address)
    check_peer(sock, allow_private=allow_private)
    return sock
