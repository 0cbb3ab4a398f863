"""A tap on a simulated node's routing socket: when each routing message left the simulator.

The simulated kernel sends a node's routing messages (RTM_IFINFO, RTM_IFANNOUNCE; see
carpd_py/sim/rtemit.py) to the Unix datagram socket named in the world (`World.set_route_socket`).
`RouteTap` binds its own socket there, and a thread forwards every datagram, unchanged and at
once, to the daemon's `platform.route_socket`, noting the wall-clock time it had it
(`Tapped.time`, read right before the forward) and what it said.

So the bench knows when the simulator had sent each message: a lazily evaluated world (an
election due at time T happens when someone next reads the world) and the state file's
writes delay the message after the kernel's change, and that delay is the simulator's, not
carpd-py's. The forward itself (a thread wake-up and one sendto) is counted in carpd-py's
share: the time is read before it.
"""

from __future__ import annotations

import contextlib
import os
import socket
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from carpd_py.rtmsg import IfInfo, RtMsgError, decode


@dataclass(frozen=True)
class Tapped:
    time: float  # wall clock, right before the forward
    index: int  # ifm_index (0 for what is not RTM_IFINFO)
    link_state: int  # LINK_STATE_* (-1 for what is not RTM_IFINFO)


class RouteTap:
    def __init__(self, path: Path, target: Path) -> None:
        self.path = path
        self.target = target
        self.messages: list[Tapped] = []
        self._lock = threading.Lock()
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)
        self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self._sock.bind(str(path))
        self._sock.settimeout(0.2)  # to see `close()`
        self._out = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self._out.setblocking(False)
        self._closed = False
        self._thread = threading.Thread(target=self._run, name="bench-route-tap", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._closed:
            try:
                data = self._sock.recv(65536)
            except TimeoutError:
                continue
            except OSError:
                return
            now = time.time()
            with contextlib.suppress(OSError):  # nobody listening yet, or a full buffer
                self._out.sendto(data, str(self.target))
            try:
                found = [m for m in decode(data) if isinstance(m, IfInfo)]
            except RtMsgError:
                found = []
            with self._lock:
                if not found:
                    self.messages.append(Tapped(now, 0, -1))
                for m in found:
                    self.messages.append(Tapped(now, m.index, m.link_state))

    def since(self, t: float) -> list[Tapped]:
        with self._lock:
            return [m for m in self.messages if m.time >= t]

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._thread.join(2.0)
        self._sock.close()
        self._out.close()
        with contextlib.suppress(OSError):
            os.unlink(self.path)
