"""The routing socket: link and carp role changes as they happen. Shell.

On OpenBSD `socket(AF_ROUTE, SOCK_RAW, 0)` with ROUTE_MSGFILTER set to RTM_IFINFO and
RTM_IFANNOUNCE (RTM_DESYNC always passes), as ifstated(8) does. With `platform.route_socket`
set, a Unix datagram socket bound at that path instead, through which the simulated host sends
the same bytes. `open_route_socket` returns None, with the reason, where neither can be opened:
the supervisor then reads the host every interval.
"""

from __future__ import annotations

import contextlib
import os
import socket
import stat
import struct
import sys

import trio

from .rtmsg import ROUTE_MSGFILTER, RTM_IFANNOUNCE, RTM_IFINFO, route_filter

RECV_SIZE = 65536  # a datagram holds whole messages; one message is at most RTM_MAXSIZE


class RouteSocket:
    def __init__(self, sock: trio.socket.SocketType, path: str | None, what: str) -> None:
        self.sock = sock
        self.path = path
        self.what = what  # for the log: "AF_ROUTE" or the path

    async def receive(self) -> bytes:
        return await self.sock.recv(RECV_SIZE)

    def close(self) -> None:
        self.sock.close()
        if self.path is not None:
            with contextlib.suppress(OSError):
                os.unlink(self.path)


def _unlink_stale(path: str) -> None:
    """A socket left by an earlier run is replaced; anything else at the path is an error."""
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return
    if not stat.S_ISSOCK(st.st_mode):
        raise OSError(f"{path}: exists and is not a socket")
    os.unlink(path)


def open_route_socket(path: str) -> RouteSocket | str:
    """The routing socket for `platform.route_socket`, or why it cannot be opened."""
    if path:
        raw = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        try:
            _unlink_stale(path)
            old = os.umask(0o177)  # mode 0600: only root may speak for the kernel
            try:
                raw.bind(path)
            finally:
                os.umask(old)
        except OSError as exc:
            raw.close()
            return f"{path}: {exc.strerror or exc}"
        return RouteSocket(trio.socket.from_stdlib_socket(raw), path, path)
    system: str = sys.platform
    af_route: int | None = getattr(socket, "AF_ROUTE", None)
    if af_route is None or not system.startswith("openbsd"):
        return f"no routing socket on {system} (platform.route_socket is empty)"
    try:
        sock = trio.socket.socket(af_route, socket.SOCK_RAW, 0)
    except OSError as exc:
        return f"socket(AF_ROUTE): {exc.strerror or exc}"
    try:
        mask = route_filter(RTM_IFINFO, RTM_IFANNOUNCE)
        sock.setsockopt(af_route, ROUTE_MSGFILTER, struct.pack("=I", mask))
    except OSError as exc:
        sock.close()
        return f"setsockopt(ROUTE_MSGFILTER): {exc.strerror or exc}"
    return RouteSocket(sock, None, "AF_ROUTE")
