"""TCP probe: a completed handshake is an answer; refused, unreachable or too slow is not."""

from __future__ import annotations

import socket

import trio

from ._addr import resolve


async def tcp_probe(address: str, port: int, timeout: float) -> float | None:
    """Seconds that connect() to (address, port) took, or None if it did not complete within
    `timeout`. The socket is closed as soon as the connection is made. `address` must be an IP
    literal (ValueError otherwise): no DNS."""
    start = trio.current_time()
    with trio.move_on_after(timeout):
        try:
            family, sockaddr = resolve(address, port)
            with trio.socket.socket(family, socket.SOCK_STREAM) as sock:
                await sock.connect(sockaddr)
                return trio.current_time() - start
        except OSError:  # refused, unreachable, no buffer space, no such scope interface
            return None
    return None
