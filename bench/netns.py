"""The daemon under test, started by a small helper that can also break its upstream.

The helper (`python -m bench.netns`, this module) starts carpd-py as its child and then obeys
one JSON command a line on stdin, answering one JSON line on stdout with the wall-clock time
at which the change took effect (`"t"`). With `--private` it runs inside its own network
namespace (`unshare --net`), where it may do what must never be done to the machine:

- `icmp up|down`: `net.ipv4.icmp_echo_ignore_all` of the namespace, 0 or 1. Echo requests to
  the 127.0.0.x targets are then silently unanswered: the probe waits for its timeout, as it
  does when a real gateway dies (not an error that fails at once).
- `tcp drop|pass`: an nftables rule dropping the SYNs to the targets' port, so that connect()
  times out (a dead upstream sends no RST).
- `spawn` (argv, log, stamp): start the daemon; with `stamp` its output goes through a pipe
  and each line is written to the log with the wall-clock time it came (the -d log has whole
  seconds; the role-change figure needs milliseconds).
- `tcp refuse|accept`: close or reopen the listeners: connect() is refused at once (the
  service is down, the host is up). Allowed outside a namespace too: it touches only our
  own sockets.

The namespace is the bench's own private one, with nothing but `lo`: the network lab (veth
pairs, real keepalived) is another part of the project (carpd_py/sim/lab.py).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import selectors
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import IO, Any

NFT_TABLE = "carpd_bench"
ICMP_SYSCTL = "/proc/sys/net/ipv4/icmp_echo_ignore_all"


class Listeners:
    """TCP listeners on (address, port) pairs, accepting and closing, from one thread."""

    def __init__(self, addresses: list[str], port: int) -> None:
        self.addresses = addresses
        self.port = port
        self.socks: list[socket.socket] = []
        self._selector = selectors.DefaultSelector()
        self._lock = threading.Lock()
        threading.Thread(target=self._loop, daemon=True).start()

    def open(self) -> None:
        with self._lock:
            for address in self.addresses:
                sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                sock.bind((address, self.port))
                if self.port == 0:
                    self.port = sock.getsockname()[1]
                sock.listen(128)
                sock.setblocking(False)
                self._selector.register(sock, selectors.EVENT_READ)
                self.socks.append(sock)

    def close(self) -> None:
        with self._lock:
            for sock in self.socks:
                self._selector.unregister(sock)
                sock.close()
            self.socks = []

    def _loop(self) -> None:
        while True:
            if not self.socks:
                time.sleep(0.05)
                continue
            try:
                ready = self._selector.select(timeout=0.2)
            except (OSError, ValueError):  # a socket closed under us: look again
                continue
            for key, _ in ready:
                sock = key.fileobj
                assert isinstance(sock, socket.socket)
                try:
                    conn, _ = sock.accept()
                    conn.close()
                except OSError:
                    pass


def stamp_lines(pipe: IO[bytes], path: str) -> None:
    """Copy the daemon's output to `path`, each line prefixed with the wall-clock time it was
    read (`1764650000.123456 `): the daemon's -d log has whole seconds only. The daemon
    flushes each line (logging's StreamHandler), so the time is when it logged, give or take
    this thread's wake-up."""
    with open(path, "ab", buffering=0) as out:
        for line in pipe:
            out.write(b"%.6f " % time.time() + line)


def _nft(*args: str) -> None:
    subprocess.run(["nft", *args], check=True, capture_output=True)


class Helper:
    def __init__(self, private: bool) -> None:
        self.private = private
        self.daemon: subprocess.Popen[bytes] | None = None
        self.listeners: Listeners | None = None
        self.nft = False

    def setup(self) -> dict[str, Any]:
        if not self.private:
            return {"private": False}
        subprocess.run(["ip", "link", "set", "lo", "up"], check=True, capture_output=True)
        if shutil.which("nft") is not None:
            try:
                _nft("add", "table", "inet", NFT_TABLE)
                _nft(
                    "add", "chain", "inet", NFT_TABLE, "input",
                    "{ type filter hook input priority 0; policy accept; }",
                )  # fmt: skip
                self.nft = True
            except subprocess.CalledProcessError:
                self.nft = False
        return {"private": True, "nft": self.nft}

    def handle(self, cmd: dict[str, Any]) -> dict[str, Any]:
        op = cmd["op"]
        if op == "spawn":
            if cmd.get("stamp"):
                self.daemon = subprocess.Popen(
                    cmd["argv"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                    stdin=subprocess.DEVNULL,
                )  # fmt: skip
                assert self.daemon.stdout is not None
                args = (self.daemon.stdout, cmd["log"])
                threading.Thread(target=stamp_lines, args=args, daemon=True).start()
                return {"pid": self.daemon.pid}
            log = open(cmd["log"], "ab")  # noqa: SIM115 (the daemon owns it)
            self.daemon = subprocess.Popen(
                cmd["argv"], stdout=log, stderr=log, stdin=subprocess.DEVNULL
            )
            log.close()
            return {"pid": self.daemon.pid}
        if op == "listen":
            self.listeners = Listeners(list(cmd["addresses"]), int(cmd.get("port", 0)))
            self.listeners.open()
            return {"port": self.listeners.port}
        if op == "icmp":
            if not self.private:
                return {"error": "icmp faults need a private network namespace"}
            Path(ICMP_SYSCTL).write_text("0\n" if cmd["up"] else "1\n")
            return {"t": time.time()}
        if op == "tcp":
            return self._tcp(cmd["mode"])
        if op == "stop":
            return {"code": self.stop(int(cmd.get("signal", signal.SIGTERM)))}
        return {"error": f"unknown op {op!r}"}

    def _tcp(self, mode: str) -> dict[str, Any]:
        assert self.listeners is not None
        if mode in ("refuse", "accept"):
            if mode == "refuse":
                self.listeners.close()
            else:
                self.listeners.open()
            return {"t": time.time()}
        if not (self.private and self.nft):
            return {"error": "tcp drop needs nft in a private network namespace"}
        if mode == "drop":
            rule = f"tcp dport {self.listeners.port} drop"
            _nft("add", "rule", "inet", NFT_TABLE, "input", *rule.split())
        else:
            _nft("flush", "chain", "inet", NFT_TABLE, "input")
        return {"t": time.time()}

    def stop(self, sig: int = signal.SIGTERM) -> int:
        proc = self.daemon
        if proc is None:
            return 0
        if proc.poll() is None:
            proc.send_signal(sig)
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(10)
        self.daemon = None
        return proc.returncode


def helper_main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.netns")
    parser.add_argument("--private", action="store_true", help="in our own network namespace")
    args = parser.parse_args(argv)
    helper = Helper(args.private)
    out = sys.stdout

    def reply(doc: dict[str, Any]) -> None:
        out.write(json.dumps(doc) + "\n")
        out.flush()

    try:
        reply(helper.setup())
        for line in sys.stdin:
            if line.strip():
                try:
                    reply(helper.handle(json.loads(line)))
                except (OSError, subprocess.CalledProcessError, KeyError, ValueError) as exc:
                    reply({"error": str(exc)})
    finally:
        helper.stop()
    return 0


# --- the bench's side -----------------------------------------------------------------------


class HelperError(RuntimeError):
    pass


class Helped:
    """A running helper (private namespace or not) and the daemon it started."""

    def __init__(self, private: bool) -> None:
        root = str(Path(__file__).resolve().parent.parent)
        argv = [sys.executable, "-m", "bench.netns"]
        if private:
            argv = ["unshare", "--net", "--", *argv, "--private"]
            if os.geteuid() != 0:  # a user namespace gives us root inside, for the sysctl
                argv.insert(1, "--map-root-user")
        env = {**os.environ, "PYTHONPATH": root}
        self.proc = subprocess.Popen(
            argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env, text=True
        )
        self.private = private
        hello = self._read()
        self.nft = bool(hello.get("nft"))
        self.pid: int | None = None

    def _read(self) -> dict[str, Any]:
        stdout: IO[str] | None = self.proc.stdout
        assert stdout is not None
        line = stdout.readline()
        if not line:
            raise HelperError(f"the helper exited ({self.proc.wait()})")
        doc: dict[str, Any] = json.loads(line)
        return doc

    def call(self, **cmd: Any) -> dict[str, Any]:
        stdin: IO[str] | None = self.proc.stdin
        assert stdin is not None
        stdin.write(json.dumps(cmd) + "\n")
        stdin.flush()
        doc = self._read()
        if "error" in doc:
            raise HelperError(str(doc["error"]))
        return doc

    def spawn(self, argv: list[str], log: Path, *, stamp: bool = False) -> int:
        """Start the daemon, its output appended to `log`; with `stamp`, each line prefixed
        with the wall-clock time it came (`stamp_lines`)."""
        self.pid = int(self.call(op="spawn", argv=argv, log=str(log), stamp=stamp)["pid"])
        return self.pid

    def close(self) -> None:
        if self.proc.poll() is None:
            with contextlib.suppress(HelperError, OSError, ValueError):
                self.call(op="stop")
            assert self.proc.stdin is not None
            self.proc.stdin.close()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)


def private_namespace_works() -> bool:
    """Can we make a network namespace here (root, or unprivileged user namespaces)?"""
    if shutil.which("unshare") is None or shutil.which("ip") is None:
        return False
    argv = ["unshare", "--net", "--", "ip", "link", "set", "lo", "up"]
    if os.geteuid() != 0:
        argv.insert(1, "--map-root-user")
    done = subprocess.run(argv, capture_output=True, check=False)
    return done.returncode == 0


if __name__ == "__main__":
    sys.exit(helper_main())
