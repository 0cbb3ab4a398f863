"""The network lab: the handbook pair on real Linux network namespaces, links and faults.

    with Lab() as lab:                          # root; namespace names unique to this run
        harness = lab.harness(tmp_path)         # carpd-py daemons inside fwA and fwB
        harness.start("A")
        lab.link_down("fwA", "em2")             # the SYNC cable, for real

Two firewalls, an upstream router and a LAN, one network namespace each, joined by veth pairs
named as on the firewalls. The carp election stays simulated (`World`), but each firewall's
em0, em1 and em2 link states follow the real veth carriers (carrier.py), and the daemons'
probes are real ICMP and TCP packets over the veths.

      up     br0 203.0.113.6/29 (the ISP gateway), lo 198.51.100.1/32 (a host beyond it)
      | a0                     | b0
      | em0 203.0.113.2/29     | em0 203.0.113.3/29      WAN: a bridge in `up`
     fwA ------- em2 -------- fwB                        SYNC: 10.255.255.2/31 - .3/31
      | em1 10.10.10.2/24      | em1 10.10.10.3/24       LAN: a bridge in `lan`
      | a1                     | b1
     lan     br0 10.10.10.100/24

The SYNC link is a direct veth (`sync="direct"`, the handbook's cable: pulling it takes the
carrier away on both nodes) or goes through a bridge in a fifth namespace `sw`
(`sync="switch"`: one node's link can fail alone). It is a /31 here, not the handbook's /30: on
Linux .3 is the /30's broadcast address and would not answer an echo. IPv6 is off in every
namespace (no DAD, no router solicitations: the lab is quiet and ready at once). These
addresses exist only inside the lab's namespaces; nothing is routed out of them.

Faults, all real: `link_down` (`ip link set IF down`: no carrier at either end), `loss` (a
share of the packets an interface receives is dropped, see below), `blackhole` (`ip route add
blackhole PREFIX`), `silence` (`net.ipv4.icmp_echo_ignore_all=1`: the namespace stops
answering echoes).

Packet loss: the kernel of this project's machines has no netem qdisc and no tc `gact`
action (`tc ... action drop`), and loads no modules; it has nf_tables with `numgen`. `loss`
therefore adds an nftables rule on the interface's netdev *ingress* hook (Debian package
`nftables`): `numgen random mod 10000 < N drop`. The ingress side is deliberate: a drop at
egress (netdev egress, or the output hook) is reported to the sending socket (ENOBUFS, EPERM),
and iputils ping, which asks for those errors, resends the same sequence number, so the loss
would be invisible to it; a lossy cable drops silently, as this rule does (and as netem
does). To lose both directions, call it on both ends (`peer()` names the other end).

Cleanup: `close()` (also `__exit__`, atexit, and SIGTERM while a lab is open) kills the
processes started with `popen_in`, then every process still in a lab namespace (the daemons),
then deletes the namespaces, which deletes their links. Namespace names are
`PREFIX-PID-TOKEN-KEY`; `sweep()` (run by `build()`) removes those a dead process left.
"""

from __future__ import annotations

import atexit
import contextlib
import json
import os
import re
import secrets
import selectors
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from types import FrameType, TracebackType
from typing import Any, Literal

from .carrier import SYSFS
from .harness import Harness

PREFIX = "cpl"  # carpd-py lab
WAN_GATEWAY = "203.0.113.6"  # the ISP router on the WAN segment
ISP_HOST = "198.51.100.1"  # an address beyond it (on the router's loopback)
UPSTREAM_TARGETS = (WAN_GATEWAY, ISP_HOST)
LAN_HOST = "10.10.10.100"
SYNC_ADDRESS = {"A": "10.255.255.2", "B": "10.255.255.3"}
LAN_ADDRESS = {"A": "10.10.10.2", "B": "10.10.10.3"}  # the path the daemons talk over
PEER_PORT = 9724
NODE_NAMESPACE = {"A": "fwA", "B": "fwB"}  # simulated node -> lab namespace
NFT_TABLE = "carpd_lab"

SyncLink = Literal["direct", "switch"]

# (namespace, ifname, its address or None) for each end of each veth, per SYNC layout
_LINKS: dict[str, list[tuple[tuple[str, str, str | None], tuple[str, str, str | None]]]] = {
    "common": [
        (("fwA", "em0", "203.0.113.2/29"), ("up", "a0", None)),
        (("fwB", "em0", "203.0.113.3/29"), ("up", "b0", None)),
        (("fwA", "em1", "10.10.10.2/24"), ("lan", "a1", None)),
        (("fwB", "em1", "10.10.10.3/24"), ("lan", "b1", None)),
    ],
    "direct": [
        (("fwA", "em2", "10.255.255.2/31"), ("fwB", "em2", "10.255.255.3/31")),
    ],
    "switch": [
        (("fwA", "em2", "10.255.255.2/31"), ("sw", "a2", None)),
        (("fwB", "em2", "10.255.255.3/31"), ("sw", "b2", None)),
    ],
}
# namespace -> (bridge ports, bridge address)
_BRIDGES: dict[str, tuple[tuple[str, ...], str | None]] = {
    "up": (("a0", "b0"), f"{WAN_GATEWAY}/29"),
    "lan": (("a1", "b1"), f"{LAN_HOST}/24"),
    "sw": (("a2", "b2"), None),
}

# A TCP service for the upstream checks: accept and close, forever. argv: ADDRESS PORT.
_LISTENER = """\
import socket, sys
server = socket.create_server((sys.argv[1], int(sys.argv[2])), backlog=128)
print("listening", flush=True)
while True:
    conn, _ = server.accept()
    conn.close()
"""


class LabError(RuntimeError):
    """A lab command failed, or the lab cannot run here; the message says what and why."""


def _run(argv: Sequence[str], *, timeout: float = 30.0, check: bool = True,
         input_text: str | None = None) -> subprocess.CompletedProcess[str]:  # fmt: skip
    try:
        done = subprocess.run(
            list(argv), capture_output=True, text=True, timeout=timeout, check=False,
            input=input_text, stdin=None if input_text is not None else subprocess.DEVNULL,
        )  # fmt: skip
    except FileNotFoundError as exc:
        raise LabError(f"{argv[0]}: not installed ({exc})") from None
    except subprocess.TimeoutExpired:
        raise LabError(f"{' '.join(argv)}: no answer within {timeout:g}s") from None
    if check and done.returncode != 0:
        raise LabError(f"{' '.join(argv)}: exit {done.returncode}: {done.stderr.strip()}")
    return done


def _alive(pid: int) -> bool:
    """Whether the process exists and is not a zombie (dead, not yet reaped by its parent)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read()
    except (FileNotFoundError, ProcessLookupError):
        return False
    return stat[stat.rfind(b")") + 2 : stat.rfind(b")") + 3] != b"Z"


def _kill_all(pids: Sequence[int], grace: float = 3.0) -> None:
    """SIGTERM each, wait up to `grace` seconds, SIGKILL what is left."""
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline and any(_alive(p) for p in pids):
        time.sleep(0.02)
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


def _netns_pids(name: str) -> list[int]:
    done = _run(["ip", "netns", "pids", name], check=False, timeout=10)
    return [int(p) for p in done.stdout.split() if p.isdigit() and int(p) != os.getpid()]


def _delete_netns(name: str) -> None:
    """Kill what runs in the namespace, then delete it (its links go with it)."""
    for _ in range(3):
        pids = _netns_pids(name)
        if not pids:
            break
        _kill_all(pids)
    _run(["ip", "netns", "delete", name], check=False, timeout=10)


_checked: str | Literal[False] | None = False  # False: not checked yet


class Lab:
    """A network lab for one test or benchmark run (see the module docstring)."""

    def __init__(self, *, prefix: str = PREFIX, sync: SyncLink = "direct") -> None:
        if not re.fullmatch(r"[a-z][a-z0-9]{0,7}", prefix):
            raise ValueError(f"prefix {prefix!r}: 1 to 8 lower-case letters and digits")
        if sync not in ("direct", "switch"):
            raise ValueError(f"sync {sync!r}: direct or switch")
        self.prefix = prefix
        self.sync: SyncLink = sync
        self.token = f"{os.getpid()}-{secrets.token_hex(2)}"
        keys = ["fwA", "fwB", "up", "lan"] + (["sw"] if sync == "switch" else [])
        self.namespaces: dict[str, str] = {k: f"{prefix}-{self.token}-{k}" for k in keys}
        self._links = _LINKS["common"] + _LINKS[sync]
        self._created: list[str] = []
        self._processes: list[subprocess.Popen[Any]] = []
        self._loss: set[tuple[str, str]] = set()
        self._closed = False

    # --- availability --------------------------------------------------------------------

    @staticmethod
    def why_unavailable() -> str | None:
        """None if a lab can be built here, else why not (checked once per process)."""
        global _checked  # noqa: PLW0603 (a per-process cache)
        if _checked is False:
            _checked = Lab._check()
        return _checked

    @staticmethod
    def available() -> bool:
        return Lab.why_unavailable() is None

    @staticmethod
    def _check() -> str | None:
        if not sys.platform.startswith("linux"):
            return "the network lab needs Linux (network namespaces, veth)"
        if os.geteuid() != 0:
            return "the network lab needs root (network namespaces)"
        if shutil.which("ip") is None:
            return "the network lab needs ip (Debian: iproute2)"
        probe = f"{PREFIX}-{os.getpid()}-{secrets.token_hex(2)}-probe"
        try:
            _run(["ip", "netns", "add", probe], timeout=10)
            _run(["ip", "-n", probe, "link", "add", "p0", "type", "veth", "peer", "name", "p1"])
        except LabError as exc:
            return f"cannot make a network namespace with a veth pair here: {exc}"
        finally:
            _run(["ip", "netns", "delete", probe], check=False, timeout=10)
        return None

    @staticmethod
    def tool_missing(tool: str) -> str | None:
        """None if a fault's tool is installed, else what to install: nft, sysctl."""
        package = {"nft": "nftables", "sysctl": "procps", "ip": "iproute2"}.get(tool, tool)
        if shutil.which(tool) is None:
            return f"{tool} is not installed (Debian: {package})"
        return None

    # --- building and tearing down -----------------------------------------------------

    def __enter__(self) -> Lab:
        self.build()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def ns(self, key: str) -> str:
        """The real name of a lab namespace: fwA, fwB, up, lan (sw with sync="switch")."""
        try:
            return self.namespaces[key]
        except KeyError:
            known = ", ".join(self.namespaces)
            raise KeyError(f"no namespace {key!r} in this lab (known: {known})") from None

    def build(self) -> None:
        """Create the namespaces, links and addresses; wait until every link has carrier."""
        why = self.why_unavailable()
        if why is not None:
            raise LabError(why)
        if self._closed or self._created:
            raise LabError("a Lab is built once")
        _register(self)
        try:
            self.sweep(self.prefix)
            self._build()
        except BaseException:
            self.close()
            raise

    def _build(self) -> None:
        for key, name in self.namespaces.items():
            _run(["ip", "netns", "add", name], timeout=10)
            self._created.append(name)
            no_ipv6 = ("net.ipv6.conf.all.disable_ipv6=1", "net.ipv6.conf.default.disable_ipv6=1")
            _run(["ip", "netns", "exec", name, "sysctl", "-qw", *no_ipv6])
            self.ip(key, "link", "set", "lo", "up")
        for (ns1, if1, _), (ns2, if2, _) in self._links:
            _run(["ip", "link", "add", if1, "netns", self.ns(ns1), "type", "veth",
                  "peer", "name", if2, "netns", self.ns(ns2)])  # fmt: skip
        for key, (ports, address) in _BRIDGES.items():
            if key not in self.namespaces:
                continue
            self.ip(key, "link", "add", "br0", "type", "bridge")
            for port in ports:
                self.ip(key, "link", "set", port, "master", "br0")
                self.ip(key, "link", "set", port, "up")
            self.ip(key, "link", "set", "br0", "up")
            if address is not None:
                self.ip(key, "addr", "add", address, "dev", "br0")
        self.ip("up", "addr", "add", f"{ISP_HOST}/32", "dev", "lo")
        for end in (e for link in self._links for e in link):
            key, ifname, address = end
            if address is not None:
                self.ip(key, "addr", "add", address, "dev", ifname)
            self.ip(key, "link", "set", ifname, "up")
        for key in ("fwA", "fwB"):
            self.ip(key, "route", "add", "default", "via", WAN_GATEWAY)
        deadline = time.monotonic() + 10
        ends = [(k, i) for link in self._links for (k, i, _) in link]
        while not all(self.carrier(k, i) for k, i in ends):
            if time.monotonic() > deadline:
                down = [f"{k}:{i}" for k, i in ends if not self.carrier(k, i)]
                raise LabError(f"links without carrier after 10s: {', '.join(down)}")
            time.sleep(0.02)

    def close(self) -> None:
        """Kill the lab's processes, delete its namespaces; idempotent, never raises."""
        if self._closed:
            return
        self._closed = True
        try:
            for proc in self._processes:
                if proc.poll() is None:
                    with contextlib.suppress(ProcessLookupError):
                        os.killpg(proc.pid, signal.SIGTERM)
            for proc in self._processes:
                try:
                    proc.wait(3)
                except subprocess.TimeoutExpired:
                    with contextlib.suppress(ProcessLookupError):
                        os.killpg(proc.pid, signal.SIGKILL)
                    proc.wait(3)
                for pipe in (proc.stdin, proc.stdout, proc.stderr):
                    if pipe is not None:
                        pipe.close()
            for name in reversed(self._created):
                _delete_netns(name)
        except (OSError, LabError, subprocess.SubprocessError) as exc:
            print(f"carpd-py lab: cleanup: {exc}", file=sys.stderr)
        finally:
            _unregister(self)

    @classmethod
    def sweep(cls, prefix: str = PREFIX) -> list[str]:
        """Delete the namespaces that a lab of a process no longer alive left behind."""
        done = _run(["ip", "netns", "list"], check=False, timeout=10)
        removed = []
        pattern = re.compile(rf"({re.escape(prefix)}-(\d+)-[0-9a-f]{{4}}-\w+)\b")
        for line in done.stdout.splitlines():
            m = pattern.match(line.strip())
            if m is not None and not _alive(int(m.group(2))):
                _delete_netns(m.group(1))
                removed.append(m.group(1))
        return removed

    # --- running things inside ----------------------------------------------------------

    def exec_argv(self, key: str) -> list[str]:
        """The prefix that runs a command inside a namespace: `ip netns exec NAME`."""
        return ["ip", "netns", "exec", self.ns(key)]

    def ip(self, key: str, *args: str) -> subprocess.CompletedProcess[str]:
        """`ip -n NAME ARGS`, checked."""
        return _run(["ip", "-n", self.ns(key), *args])

    def run_in(
        self, key: str, argv: Sequence[str], *, check: bool = True, timeout: float = 30.0
    ) -> subprocess.CompletedProcess[str]:
        """Run a command inside a namespace and wait for it (LabError when it fails)."""
        return _run([*self.exec_argv(key), *argv], check=check, timeout=timeout)

    def popen_in(self, key: str, argv: Sequence[str], **kwargs: Any) -> subprocess.Popen[Any]:
        """Start a command inside a namespace, in a session of its own; killed by close()."""
        kwargs.setdefault("stdin", subprocess.DEVNULL)
        proc: subprocess.Popen[Any] = subprocess.Popen(
            [*self.exec_argv(key), *argv], start_new_session=True, **kwargs
        )
        self._processes.append(proc)
        return proc

    def tcp_listener(self, key: str, address: str, port: int) -> subprocess.Popen[Any]:
        """A TCP service that accepts and closes, listening when this returns."""
        proc = self.popen_in(
            key, [sys.executable, "-c", _LISTENER, address, str(port)], stdout=subprocess.PIPE
        )
        assert proc.stdout is not None
        with selectors.DefaultSelector() as sel:
            sel.register(proc.stdout, selectors.EVENT_READ)
            ready = bool(sel.select(10)) and proc.stdout.readline() == b"listening\n"
        proc.stdout.close()  # it prints nothing more
        if not ready:
            proc.kill()
            proc.wait()
            raise LabError(f"the TCP listener on {address}:{port} in {key} did not start")
        return proc

    def harness(self, root: str | os.PathLike[str], topology: str = "handbook") -> Harness:
        """A Harness whose nodes A and B run their daemons in fwA and fwB, with em* carrier
        taken from the real veths (`World.set_carrier_source`)."""
        netns = {node: self.ns(key) for node, key in NODE_NAMESPACE.items()}
        harness = Harness(root, topology, netns=netns)
        root_dir = str(Path(__file__).resolve().parents[2])
        env = {**os.environ, "PYTHONPATH": root_dir}
        for node in harness.nodes:
            key = NODE_NAMESPACE[node]
            harness.world.set_carrier_source(node, SYSFS)
            # The node follows its veths as they change (netlink), not at its next ifconfig.
            argv = [sys.executable, "-m", "carpd_py.sim.carrier", str(harness.world.path), node]
            self.popen_in(key, argv, env=env)
        return harness

    def pair_up(self, harness: Harness, *, timeout: float = 1.5) -> None:
        """Give both daemons a [peer] table over the LAN (em1), as the handbook pair would
        have it, and one key file (0600)."""
        key = secrets.token_hex(32).encode() + b"\n"
        for node in harness.nodes:
            other = "B" if node == "A" else "A"
            path = harness.nodes[node].root / "carpd-py.key"
            path.write_bytes(key)
            path.chmod(0o600)
            harness.configure(
                node,
                peer={
                    "listen": [f"{LAN_ADDRESS[node]}:{PEER_PORT}"],
                    "addresses": [f"{LAN_ADDRESS[other]}:{PEER_PORT}"],
                    "key_file": str(path),
                    "timeout": timeout,
                },
            )

    # --- looking ------------------------------------------------------------------------

    def peer(self, key: str, ifname: str) -> tuple[str, str]:
        """The other end of a link: ("fwA", "em0") -> ("up", "a0")."""
        for a, b in self._links:
            if a[:2] == (key, ifname):
                return b[0], b[1]
            if b[:2] == (key, ifname):
                return a[0], a[1]
        raise KeyError(f"no link {key}:{ifname} in this lab")

    def carrier(self, key: str, ifname: str) -> bool:
        """Whether the interface is up and has carrier (LOWER_UP)."""
        done = _run(["ip", "-j", "-n", self.ns(key), "link", "show", "dev", ifname])
        flags = json.loads(done.stdout)[0]["flags"]
        return "UP" in flags and "LOWER_UP" in flags

    def dropped(self, key: str, ifname: str) -> int:
        """Packets the `loss` rule of this interface has dropped (0 without one)."""
        if (key, ifname) not in self._loss:
            return 0
        done = self.run_in(key, ["nft", "-j", "list", "chain", "netdev", NFT_TABLE,
                                 _loss_chain(ifname)])  # fmt: skip
        for item in json.loads(done.stdout)["nftables"]:
            for expr in item.get("rule", {}).get("expr", []):
                if "counter" in expr:
                    packets: int = expr["counter"]["packets"]
                    return packets
        return 0

    # --- faults -------------------------------------------------------------------------

    def link_down(self, key: str, ifname: str) -> None:
        """`ip link set IFNAME down` in the namespace: no carrier at either end of the veth."""
        self.ip(key, "link", "set", ifname, "down")

    def link_up(self, key: str, ifname: str) -> None:
        self.ip(key, "link", "set", ifname, "up")

    def loss(self, key: str, ifname: str, percent: float) -> None:
        """Drop `percent`% of the packets IFNAME receives (0 removes the rule); needs nft."""
        if not 0 <= percent <= 100:
            raise ValueError(f"loss {percent}%: 0 to 100")
        missing = self.tool_missing("nft")
        if missing is not None:
            raise LabError(f"packet loss: {missing}; this kernel has no netem")
        chain = _loss_chain(ifname)
        if (key, ifname) in self._loss:
            self.run_in(key, ["nft", "delete", "chain", "netdev", NFT_TABLE, chain])
            self._loss.discard((key, ifname))
        if percent == 0:
            return
        share = round(percent * 100)  # in 1/10000
        match = "" if share >= 10000 else f"numgen random mod 10000 < {share} "
        rules = (
            f"table netdev {NFT_TABLE} {{\n"
            f"  chain {chain} {{\n"
            f'    type filter hook ingress device "{ifname}" priority 0; policy accept;\n'
            f"    {match}counter drop\n"
            f"  }}\n"
            f"}}\n"
        )
        _run([*self.exec_argv(key), "nft", "-f", "-"], input_text=rules)
        self._loss.add((key, ifname))

    def blackhole(self, key: str, prefix: str) -> None:
        """`ip route add blackhole PREFIX`: packets to it are discarded (sendto: EINVAL)."""
        self.ip(key, "route", "add", "blackhole", prefix)

    def unblackhole(self, key: str, prefix: str) -> None:
        self.ip(key, "route", "del", "blackhole", prefix)

    def silence(self, key: str, on: bool = True) -> None:
        """The namespace stops answering ICMP echo (`net.ipv4.icmp_echo_ignore_all`)."""
        missing = self.tool_missing("sysctl")
        if missing is not None:
            raise LabError(f"silence: {missing}")
        value = "1" if on else "0"
        self.run_in(key, ["sysctl", "-qw", f"net.ipv4.icmp_echo_ignore_all={value}"])


def _loss_chain(ifname: str) -> str:
    return f"loss_{re.sub(r'[^A-Za-z0-9_]', '_', ifname)}"


# --- cleanup at exit and on SIGTERM ------------------------------------------------------

_open: list[Lab] = []
_lock = threading.Lock()
_atexit_done = False
_handler_installed = False
_previous: Callable[[int, FrameType | None], Any] | int | None = None


def _close_all() -> None:
    for lab in list(_open):
        lab.close()


def _on_sigterm(signum: int, frame: FrameType | None) -> None:
    _close_all()
    previous = _restore_handler()
    if callable(previous):
        previous(signum, frame)
    elif previous != signal.SIG_IGN:
        os.kill(os.getpid(), signum)  # the default action, as if we had not been here


def _restore_handler() -> Callable[[int, FrameType | None], Any] | int | None:
    global _handler_installed  # noqa: PLW0603
    previous = _previous
    if _handler_installed and signal.getsignal(signal.SIGTERM) is _on_sigterm:
        signal.signal(signal.SIGTERM, previous if previous is not None else signal.SIG_DFL)
    _handler_installed = False
    return previous


def _register(lab: Lab) -> None:
    global _atexit_done, _handler_installed, _previous  # noqa: PLW0603
    with _lock:
        _open.append(lab)
        if not _atexit_done:
            atexit.register(_close_all)
            _atexit_done = True
        if not _handler_installed and threading.current_thread() is threading.main_thread():
            _previous = signal.getsignal(signal.SIGTERM)
            signal.signal(signal.SIGTERM, _on_sigterm)
            _handler_installed = True


def _unregister(lab: Lab) -> None:
    with _lock:
        if lab in _open:
            _open.remove(lab)
        last = not _open
    if last and threading.current_thread() is threading.main_thread():
        _restore_handler()
