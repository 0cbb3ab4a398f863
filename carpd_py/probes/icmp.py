"""ICMP echo sent by the process itself: one socket per address family, whatever the targets.

A `Pinger` owns one socket: raw ICMP/ICMPv6 or, on Linux when raw is not permitted, the
unprivileged ping socket (SOCK_DGRAM), whose echo id the kernel picks and filters on. Its `run`
task reads every packet and wakes the `ping` waiting for that (id, seq), once the source address
and the payload match too. Everything else (the echo requests a raw socket sees on loopback,
other processes' replies, ICMP errors, junk) is dropped.
"""

from __future__ import annotations

import errno
import os
import secrets
import socket
import struct
import sys
from collections.abc import Iterable, Sequence
from typing import Literal

import trio

from ._addr import family_of, resolve, same_host

Kind = Literal["raw", "dgram"]

ECHO_REQUEST = {socket.AF_INET: 8, socket.AF_INET6: 128}
ECHO_REPLY = {socket.AF_INET: 0, socket.AF_INET6: 129}
PROTOCOL = {socket.AF_INET: socket.IPPROTO_ICMP, socket.AF_INET6: socket.IPPROTO_ICMPV6}
PAYLOAD_SIZE = 16  # random bytes per echo, checked in the reply
RECV_SIZE = 2048  # ours are 20-60 (IPv4 header) + 8 + PAYLOAD_SIZE; longer packets are not ours
DRAIN = 64  # packets read at one wake-up at most (a flood still lets the other tasks run)

# recvfrom errors that concern one earlier packet, not the socket: keep reading.
_TRANSIENT = {errno.ECONNREFUSED, errno.EHOSTUNREACH, errno.ENETUNREACH, errno.EHOSTDOWN,
              errno.ENETDOWN, errno.EMSGSIZE, errno.EINTR, errno.ENOBUFS}  # fmt: skip


def checksum(data: bytes) -> int:
    """The Internet checksum (RFC 1071) of `data`."""
    if len(data) % 2:
        data += b"\0"
    total: int = sum(struct.unpack(f"!{len(data) // 2}H", data))
    total = (total >> 16) + (total & 0xFFFF)
    total += total >> 16
    return ~total & 0xFFFF


def echo_request(family: socket.AddressFamily, ident: int, seq: int, payload: bytes) -> bytes:
    """An ICMP(v6) echo request; ICMPv6 leaves the checksum to the kernel (it must, RFC 3542)."""
    header = struct.pack("!BBHHH", ECHO_REQUEST[family], 0, 0, ident, seq)
    if family == socket.AF_INET6:
        return header + payload
    packet = header + payload
    return packet[:2] + struct.pack("!H", checksum(packet)) + packet[4:]


def parse_echo_reply(
    data: bytes, family: socket.AddressFamily, *, ip_header: bool
) -> tuple[int, int, bytes] | None:
    """(id, seq, payload) of an echo reply, or None for anything else.

    `ip_header`: the packet starts with an IPv4 header (IPv4 raw sockets deliver it; ICMPv6
    raw sockets and ping sockets do not).
    """
    if ip_header:
        if len(data) < 20 or data[0] >> 4 != 4 or data[0] & 0x0F < 5:
            return None
        data = data[(data[0] & 0x0F) * 4 :]
    if len(data) < 8:
        return None
    kind, code, _, ident, seq = struct.unpack_from("!BBHHH", data)
    if kind != ECHO_REPLY[family] or code != 0:
        return None
    if family == socket.AF_INET and checksum(data) != 0:
        return None
    return ident, seq, data[8:]


def _open(family: socket.AddressFamily, kind: Kind | None) -> tuple[socket.socket, Kind]:
    proto = PROTOCOL[family]
    if kind != "dgram":
        try:
            return socket.socket(family, socket.SOCK_RAW, proto), "raw"
        except PermissionError:
            if kind == "raw" or not sys.platform.startswith("linux"):
                raise
    try:
        return socket.socket(family, socket.SOCK_DGRAM, proto), "dgram"
    except PermissionError as exc:
        raise PermissionError(
            exc.errno,
            "cannot open an ICMP socket: raw sockets need root (CAP_NET_RAW) and ping sockets "
            f"are not open to group {os.getgid()} (sysctl net.ipv4.ping_group_range)",
        ) from exc


class _Batch:
    """The echoes of one `ping_all`: `done` is set when the last of them is answered or
    has failed (one wake-up for the whole batch, not one per echo)."""

    __slots__ = ("done", "left")

    def __init__(self, left: int) -> None:
        self.left = left
        self.done = trio.Event()

    def one_done(self) -> None:
        self.left -= 1
        if self.left <= 0:
            self.done.set()


class _Waiter:
    __slots__ = ("address", "at", "batch", "payload", "settled")

    def __init__(self, address: str, payload: bytes, batch: _Batch) -> None:
        self.address = address
        self.payload = payload
        self.batch = batch
        self.at: float | None = None  # when the reply came
        self.settled = False  # answered, or no answer can come (the send failed, stopped)

    def settle(self, at: float | None) -> None:
        if not self.settled:
            self.settled, self.at = True, at
            self.batch.one_done()


class Pinger:
    """ICMP echo for one address family over one socket, shared by all pings.

    Start it first, `await nursery.start(pinger.run)`, then `await pinger.ping(address, 1.0)`
    (or `ping_all` for several at once) from any number of tasks; cancel the nursery to close
    the socket.

    Cheap at idle, as it runs every round: the socket is a plain non-blocking one that trio
    only polls (`wait_readable`), every packet waiting is read at one wake-up, an echo is sent
    at once without a task of its own, and the addresses are resolved once (`_addr.py`).
    """

    def __init__(self, family: socket.AddressFamily, *, kind: Kind | None = None) -> None:
        """`kind`: "raw", "dgram" (Linux ping socket), or None: raw, else dgram on Linux."""
        if family not in PROTOCOL:
            raise ValueError(f"not an IP address family: {family!r}")
        self.family = family
        self.kind: Kind | None = kind  # once running: the kind of socket in use
        self._want = kind
        self._sock: socket.socket | None = None
        self._ident = 0
        self._seq = secrets.randbelow(0x10000)
        self._waiters: dict[tuple[int, int], _Waiter] = {}

    async def run(self, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Open the socket (OSError if it cannot be), then read replies until cancelled."""
        if self._sock is not None:
            raise RuntimeError("Pinger.run() is already running")
        sock, kind = _open(self.family, self._want)
        try:
            sock.setblocking(False)
            if kind == "dgram":  # the kernel's echo id for this socket is its "port"
                sock.bind(("::" if self.family == socket.AF_INET6 else "0.0.0.0", 0))  # noqa: S104
                self._ident = sock.getsockname()[1]
            else:
                self._ident = secrets.randbelow(0x10000)
            self.kind, self._sock = kind, sock
            try:
                task_status.started()
                await self._serve(sock, ip_header=kind == "raw" and self.family == socket.AF_INET)
            finally:
                self._sock = None
                for waiter in self._waiters.values():
                    waiter.settle(None)  # no reply will come: their ping returns None now
        finally:
            trio.lowlevel.notify_closing(sock)
            sock.close()

    async def _serve(self, sock: socket.socket, *, ip_header: bool) -> None:
        while True:
            await trio.lowlevel.wait_readable(sock)
            for _ in range(DRAIN):  # what is waiting, at one wake-up; then let others run
                try:
                    data, source = sock.recvfrom(RECV_SIZE)
                except BlockingIOError:
                    break
                except OSError as exc:
                    if exc.errno in _TRANSIENT:
                        continue
                    raise
                self._take(data, source[0], ip_header=ip_header)

    def _take(self, data: bytes, source: str, *, ip_header: bool) -> None:
        reply = parse_echo_reply(data, self.family, ip_header=ip_header)
        if reply is None:
            return
        waiter = self._waiters.get(reply[:2])
        if waiter is None or waiter.settled or waiter.payload != reply[2]:
            return
        if source == waiter.address or same_host(source, waiter.address):
            waiter.settle(trio.current_time())

    def _next_key(self) -> tuple[int, int]:
        for _ in range(0x10000):
            self._seq = (self._seq + 1) & 0xFFFF
            if (self._ident, self._seq) not in self._waiters:
                return self._ident, self._seq
        raise RuntimeError("65536 echo requests in flight")

    async def ping(self, address: str, timeout: float) -> float | None:
        """Round-trip time in seconds of one echo to `address` (an IP literal of this family),
        or None: no reply within `timeout`, or the send failed (unreachable, no route, ...)."""
        (rtt,) = await self.ping_all((address,), timeout)
        return rtt

    async def ping_all(self, addresses: Sequence[str], timeout: float) -> list[float | None]:
        """`ping` of every address at once: their round-trip times in the same order. The
        echoes leave together and the call returns when the last one is answered, or failed,
        or at `timeout`, whichever comes first."""
        if not addresses:
            return []
        for address in addresses:
            if family_of(address) != self.family:
                raise ValueError(f"{address}: not an address for this {self.family.name} Pinger")
        sock = self._sock
        if sock is None:
            raise RuntimeError("Pinger.run() is not running")
        batch = _Batch(len(addresses))
        sent: list[tuple[tuple[int, int], _Waiter]] = []
        start = trio.current_time()
        try:
            with trio.move_on_after(timeout):
                for address in addresses:
                    key = self._next_key()
                    waiter = self._waiters[key] = _Waiter(address, os.urandom(PAYLOAD_SIZE), batch)
                    sent.append((key, waiter))
                    await self._send(sock, waiter, key)
                await batch.done.wait()
        finally:
            for key, _ in sent:
                del self._waiters[key]
        return [None if w.at is None else w.at - start for _, w in sent]

    async def _send(self, sock: socket.socket, waiter: _Waiter, key: tuple[int, int]) -> None:
        """Send one echo; a send that fails settles the waiter at once (no answer)."""
        try:
            _, sockaddr = resolve(waiter.address)
            packet = echo_request(self.family, *key, waiter.payload)
            while True:
                try:
                    sock.sendto(packet, sockaddr)
                    return
                except BlockingIOError:
                    await trio.lowlevel.wait_writable(sock)
        except (OSError, trio.ClosedResourceError):  # the Pinger stopped while it waited
            waiter.settle(None)


class Pingers:
    """Several Pingers (one per family) behind one `ping`, which picks by the address.

    It starts nothing: run each Pinger in a nursery (`await nursery.start(pinger.run)`).
    """

    def __init__(self, pingers: Iterable[Pinger]) -> None:
        self._by_family = {p.family: p for p in pingers}

    async def ping(self, address: str, timeout: float) -> float | None:
        """Like Pinger.ping; ValueError if no Pinger here has the address's family."""
        pinger = self._by_family.get(family_of(address))
        if pinger is None:
            raise ValueError(f"{address}: no Pinger for {family_of(address).name}")
        return await pinger.ping(address, timeout)
