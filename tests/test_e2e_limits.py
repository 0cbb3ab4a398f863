"""End to end: hostile clients cannot starve a real daemon (issue 9, item 8).

A real carpd-py process under a 256 file limit, on the simulated pair, with hundreds of
control connections that never send, opened again as fast as the daemon closes them: the
poll still runs its `ifconfig` and the SYNC loss still demotes.
"""

from __future__ import annotations

import resource
import socket
import threading

from carpd_py.sim.harness import Harness, wait_until

WAIT = 20.0  # seconds; generous: the daemon polls every 0.2 s
FILES = 256  # the daemon's RLIMIT_NOFILE
IDLE_CLIENTS = 312


class Flood:
    """IDLE_CLIENTS connections that never send, each opened again once the daemon drops it."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.stop = threading.Event()
        self.opened = 0
        self.thread = threading.Thread(target=self.run, daemon=True)

    def run(self) -> None:
        open_: list[socket.socket] = []
        try:
            while not self.stop.is_set():
                for s in [s for s in open_ if closed(s)]:
                    open_.remove(s)
                    s.close()
                while len(open_) < IDLE_CLIENTS and not self.stop.is_set():
                    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                    s.settimeout(0.5)
                    try:
                        s.connect(self.path)
                    except OSError:  # the listen queue is full: try again soon
                        s.close()
                        break
                    s.setblocking(False)
                    open_.append(s)
                    self.opened += 1
                self.stop.wait(0.05)
        finally:
            for s in open_:
                s.close()


def closed(s: socket.socket) -> bool:
    try:
        return s.recv(4096, socket.MSG_PEEK) == b""
    except BlockingIOError:
        return False
    except OSError:
        return True


def test_idle_control_connections_under_a_256_file_limit_never_delay_a_demotion(
    pair: Harness,
) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < 4 * IDLE_CLIENTS:  # this test's own side of the connections
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, 4 * IDLE_CLIENTS), hard))
    proc = pair.start("A")
    node = pair.nodes["A"]
    resource.prlimit(proc.pid, resource.RLIMIT_NOFILE, (FILES, FILES))
    wait_until(lambda: "check up" in node.log(), WAIT, "sync check up")
    flood = Flood(str(node.socket_path))
    flood.thread.start()
    try:
        wait_until(lambda: flood.opened >= IDLE_CLIENTS, WAIT, "the idle clients connected")
        pair.world.set_link("A", "em2", up=False)
        wait_until(lambda: pair.advskews("A") == {"carp0": 240, "carp1": 240}, WAIT, "A demoted")
        pair.world.set_link("A", "em2", up=True)
        wait_until(lambda: pair.advskews("A") == {"carp0": 0, "carp1": 0}, WAIT, "A restored")
    finally:
        flood.stop.set()
        flood.thread.join(10)
    log = node.log()
    assert "Too many open files" not in log
    assert "host read failed" not in log
    assert "control socket: too many connections, refusing more" in log
    assert proc.poll() is None
