"""IP literals to socket addresses, never via DNS: a failover path must not wait on a resolver.

The probes run every round against the same few configured addresses, so what is learnt of
an address is kept (`family_of`, and `resolve` of a literal without a %scope): an idle round
parses no address again. A scoped link-local address is resolved every time: the interface
its %scope names may have been destroyed and created again with another index.
"""

from __future__ import annotations

import ipaddress
import socket
from functools import lru_cache
from typing import Any

SockAddr = tuple[Any, ...]  # (host, port) or (host, port, flowinfo, scope_id)
CACHED = 4096  # addresses remembered (the config's targets and peers: a handful, usually)


@lru_cache(maxsize=CACHED)
def family_of(address: str) -> socket.AddressFamily:
    """AF_INET or AF_INET6 for an IP literal; ValueError for anything else (a host name)."""
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        raise ValueError(f"{address!r} is not an IP address (no host names here)") from None
    return socket.AF_INET if ip.version == 4 else socket.AF_INET6


def resolve(address: str, port: int = 0) -> tuple[socket.AddressFamily, SockAddr]:
    """`address` (an IP literal, "fe80::1%em0" too) as (family, sockaddr), never asking DNS.

    ValueError if it is not an IP literal; OSError (socket.gaierror) if the %scope of a
    link-local address names an interface that is not there (any more).
    """
    if "%" in address:
        return _resolve(address, port)
    return _resolve_literal(address, port)


@lru_cache(maxsize=CACHED)
def _resolve_literal(address: str, port: int) -> tuple[socket.AddressFamily, SockAddr]:
    return _resolve(address, port)


def _resolve(address: str, port: int) -> tuple[socket.AddressFamily, SockAddr]:
    family = family_of(address)
    infos = socket.getaddrinfo(address, port, family, socket.SOCK_DGRAM, 0, socket.AI_NUMERICHOST)
    return family, infos[0][4]


def same_host(a: str, b: str) -> bool:
    """Whether two address strings name the same IP; a %scope suffix is ignored."""
    if a == b:
        return True
    try:
        return _unscoped(a) == _unscoped(b)
    except ValueError:
        return False


def _unscoped(address: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    return ipaddress.ip_address(address.partition("%")[0])
