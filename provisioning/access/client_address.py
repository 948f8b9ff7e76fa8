"""The address of the client that sent a request, seen through the proxies we trust.

One answer per request, used everywhere an address matters: the request log and
change sets, token network restrictions, the SCIM rate limit for requests
without credentials, and django-axes' login lockout (``AXES_CLIENT_IP_CALLABLE``).

``SCIMGATE_TRUSTED_PROXIES`` lists the proxies (addresses or CIDR networks)
whose ``X-Forwarded-For`` is believed. A request from anywhere else is
attributed to its peer address, whatever headers it sends.
"""

from __future__ import annotations

import ipaddress
import logging
from functools import lru_cache
from typing import Any

from django.conf import settings

logger = logging.getLogger(__name__)

# Where the answer is kept for the rest of the request (a WSGI environ key: the
# Django request, DRF's wrapper around it and django-axes all see the same META).
_ENVIRON_KEY = "scimgate.client_address"

Address = ipaddress.IPv4Address | ipaddress.IPv6Address
Network = ipaddress.IPv4Network | ipaddress.IPv6Network


@lru_cache(maxsize=8)
def _networks(values: tuple[str, ...]) -> tuple[Network, ...]:
    networks = []
    for value in values:
        try:
            networks.append(ipaddress.ip_network(value.strip(), strict=False))
        except ValueError:
            logger.warning("Ignoring invalid SCIMGATE_TRUSTED_PROXIES entry %r", value)
    return tuple(networks)


def trusted_proxies() -> tuple[Network, ...]:
    """The networks of ``SCIMGATE_TRUSTED_PROXIES``, parsed once per distinct setting."""
    return _networks(tuple(settings.SCIMGATE_TRUSTED_PROXIES))


def parse_address(value: str | None) -> Address | None:
    """An IP address from a peer address or an ``X-Forwarded-For`` hop, else None.

    Accepts the forms proxies write: ``192.0.2.1``, ``192.0.2.1:4711``,
    ``2001:db8::1`` and ``[2001:db8::1]:4711``. An IPv4 peer of a dual-stack socket
    (``::ffff:192.0.2.1``) is its IPv4 address.
    """
    text = (value or "").strip()
    if text.startswith("["):
        text = text[1 : text.find("]")] if "]" in text else ""
    elif text.count(":") == 1:
        text = text.split(":", 1)[0]
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return None
    if address.version == 6 and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def _is_trusted(address: Address, networks: tuple[Network, ...]) -> bool:
    return any(address in network for network in networks)


def _resolve(meta: Any) -> str | None:
    peer = parse_address(meta.get("REMOTE_ADDR"))
    if peer is None:
        return None
    networks = trusted_proxies()
    if not networks or not _is_trusted(peer, networks):
        return str(peer)
    # From the right: each hop was appended by the proxy to its right. The first hop
    # not ours is the client as our outermost proxy saw it; anything further left was
    # written by the client and proves nothing.
    hops = [hop for hop in meta.get("HTTP_X_FORWARDED_FOR", "").split(",") if hop.strip()]
    farthest = peer
    for hop in reversed(hops):
        address = parse_address(hop)
        if address is None:
            # Our proxy wrote something that is not an address: the client is unknown.
            logger.debug("Unparseable X-Forwarded-For hop %r from a trusted proxy", hop[:64])
            return None
        if not _is_trusted(address, networks):
            return str(address)
        farthest = address
    # Every hop is one of ours (a client inside a trusted network): the farthest one.
    return str(farthest)


def client_address(request: Any) -> str | None:
    """The client's IP address, normalised (``::ffff:a.b.c.d`` as ``a.b.c.d``), or None.

    ``request`` is a Django ``HttpRequest`` or DRF ``Request``. Computed once per
    request and kept in its environ; the audit middleware computes it first.
    """
    meta = request.META
    try:
        return meta[_ENVIRON_KEY]
    except KeyError:
        pass
    address = _resolve(meta)
    meta[_ENVIRON_KEY] = address
    return address
