"""Real carpd-py daemons on a simulated pair: for the demo, the end-to-end tests, the benchmarks.

Each node gets its own directory with `ifconfig` and `sysctl` executables over the shared
world file, a config file, a state file, a control socket and a log; the daemon is the real
`carpd-py` console script started as a process, exactly as rc.d would run it (with -d so its
log can be read from a file). A node given a network namespace (`netns`) has its daemon started
inside it with `ip netns exec NAME` (the network lab: `lab.py`).

Elections take time (see kernel.py): wait for a role with a deadline (`wait_until`), never
assume a change settles at once. A `Ticker` advances the world every `tick` seconds while the
harness lives, so its event log fills as things happen even when nobody reads.
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..model import CarpNode
from .events import SimEvent
from .ticker import INTERVAL, Ticker
from .world import World


def toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    raise TypeError(f"cannot write {value!r} as TOML")


def toml_document(doc: Mapping[str, Any]) -> str:
    """A small TOML writer for our config shape: scalars, tables, arrays of tables."""
    lines = [f"{k} = {toml_value(v)}" for k, v in doc.items() if not isinstance(v, (dict, list))]
    for key, value in doc.items():
        if isinstance(value, dict):
            lines.append(f"\n[{key}]")
            lines.extend(f"{k} = {toml_value(v)}" for k, v in value.items())
        elif isinstance(value, list) and all(isinstance(v, dict) for v in value):
            for table in value:
                lines.append(f"\n[[{key}]]")
                lines.extend(f"{k} = {toml_value(v)}" for k, v in table.items())
        elif isinstance(value, list):
            lines.insert(0, f"{key} = {toml_value(value)}")
    return "\n".join(lines) + "\n"


def console_script(name: str) -> str:
    """The installed console script beside this interpreter (the venv's bin)."""
    path = Path(sys.executable).parent / name
    if not path.exists():
        raise FileNotFoundError(f"{path}: not installed (run `make venv`)")
    return str(path)


@dataclass
class Node:
    name: str
    root: Path
    ifconfig: str
    sysctl: str
    process: subprocess.Popen[bytes] | None = None
    config: dict[str, Any] = field(default_factory=dict)
    netns: str | None = None  # start the daemon in this network namespace (needs root)

    @property
    def config_path(self) -> Path:
        return self.root / "carpd-py.conf"

    @property
    def log_path(self) -> Path:
        return self.root / "carpd-py.log"

    @property
    def state_path(self) -> Path:
        return self.root / "state.json"

    @property
    def socket_path(self) -> Path:
        return self.root / "control.sock"

    @property
    def route_path(self) -> Path:
        """Where the daemon listens for the simulated kernel's routing messages."""
        return self.root / "route.sock"

    def log(self) -> str:
        try:
            return self.log_path.read_text(encoding="utf-8", errors="replace")
        except FileNotFoundError:
            return ""


def base_config(node: Node) -> dict[str, Any]:
    """A fast-reacting config for the simulated node (sub-second interval, short hold-down)."""
    return {
        "interval": 0.2,
        "state_file": str(node.state_path),
        "demote": {"hold_down": 1.0},
        "sync": {"interface": "pfsync0", "fall": 2, "rise": 2},
        "metrics": {"listen": ""},
        "log": {"level": "info"},
        "control": {"socket": str(node.socket_path)},
        "platform": {
            "ifconfig": node.ifconfig,
            "sysctl": node.sysctl,
            "command_timeout": 2.0,
            "route_socket": str(node.route_path),
            "resync_interval": 1.0,
            **_service_paths(node),
        },
        "verify": {
            "name": node.name,
            "relayd_conf": str(Path(node.ifconfig).parent / "relayd.conf"),
        },
    }


def _service_paths(node: Node) -> dict[str, str]:
    """pfctl and relayctl, written by install_bin beside ifconfig (sim/services.py)."""
    bindir = Path(node.ifconfig).parent
    return {"pfctl": str(bindir / "pfctl"), "relayctl": str(bindir / "relayctl")}


def merge(base: dict[str, Any], over: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in over.items():
        if value is None:
            out.pop(key, None)
        elif isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merge(out[key], value)
        else:
            out[key] = value
    return out


def free_udp_port(host: str = "127.0.0.1") -> int:
    """A UDP port free now (bound and released; a small race, fine for tests and the demo)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


class Relay:
    """One path of the peer channel in one direction: datagrams to `port` go on to `target`,
    unless the path is `blocked` (a pf rule, a pulled LAN cable, a dead switch)."""

    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        self.blocked = False
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(0.2)
        self.port = int(self.sock.getsockname()[1])
        self.forwarded = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="relay", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                data, _ = self.sock.recvfrom(65535)
            except TimeoutError:
                continue
            except OSError:
                return
            if not self.blocked:
                try:
                    self.sock.sendto(data, self.target)
                    self.forwarded += 1
                except OSError:
                    pass

    def close(self) -> None:
        self._stop.set()
        self._thread.join(2.0)
        self.sock.close()


class Harness:
    def __init__(
        self,
        root: str | os.PathLike[str],
        topology: str = "handbook",
        *,
        netns: Mapping[str, str] | None = None,
        tick: float | None = INTERVAL,
        on_events: Callable[[list[SimEvent]], None] | None = None,
        timescale: float | None = None,
    ) -> None:
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self.world = World.create(self.root / "world.json", topology=topology, timescale=timescale)
        self.ticker: Ticker | None = None
        if tick is not None:
            self.ticker = Ticker(self.world, interval=tick, on_events=on_events).start()
        self.nodes: dict[str, Node] = {}
        for name in self.world.nodes():
            directory = self.root / name
            ifconfig, sysctl = self.world.install_bin(directory / "bin", name)
            node = Node(name, directory, ifconfig, sysctl, netns=(netns or {}).get(name))
            node.config = base_config(node)
            self.nodes[name] = node
            self.world.set_route_socket(name, str(node.route_path))
        self.relays: dict[str, Relay] = {}

    def pair_up(self, *, timeout: float = 1.5, keys: Mapping[str, bytes] | None = None) -> None:
        """Give each daemon a [peer] table and a key file (0600): they decide together. Each
        direction goes through a `Relay` (self.relays["A"]: what A sends), so a test can
        block the channel."""
        names = list(self.nodes)
        assert len(names) == 2, "a pair has two nodes"
        key = secrets.token_hex(32).encode()
        ports = {name: free_udp_port() for name in names}
        for name, other in zip(names, reversed(names), strict=True):
            self.relays[name] = Relay(("127.0.0.1", ports[other]))
        for name in names:
            node = self.nodes[name]
            key_path = node.root / "carpd-py.key"
            key_path.write_bytes((keys or {}).get(name, key) + b"\n")
            key_path.chmod(0o600)
            self.configure(
                name,
                peer={
                    "listen": [f"127.0.0.1:{ports[name]}"],
                    "addresses": [f"127.0.0.1:{self.relays[name].port}"],
                    "key_file": str(key_path),
                    "timeout": timeout,
                },
            )

    def configure(self, name: str, **over: Any) -> Path:
        """Merge `over` into the node's config (None removes a key) and write it."""
        node = self.nodes[name]
        node.config = merge(node.config, over)
        node.config_path.write_text(toml_document(node.config), encoding="utf-8")
        return node.config_path

    def start(self, name: str, *args: str) -> subprocess.Popen[bytes]:
        node = self.nodes[name]
        if not node.config_path.exists():
            self.configure(name)
        log = open(node.log_path, "ab")  # noqa: SIM115 (the daemon owns it while it runs)
        argv = [console_script("carpd-py"), "-d", "-f", str(node.config_path), *args]
        if node.netns is not None:
            argv = ["ip", "netns", "exec", node.netns, *argv]  # ip execs the daemon: same pid
        node.process = subprocess.Popen(argv, stdout=log, stderr=log, stdin=subprocess.DEVNULL)
        log.close()
        return node.process

    def stop(self, name: str, sig: int = signal.SIGTERM, timeout: float = 10.0) -> int:
        """Signal the daemon and wait for it; SIGKILL past the timeout. Returns its status."""
        node = self.nodes[name]
        proc = node.process
        if proc is None:
            return 0
        if proc.poll() is None:
            proc.send_signal(sig)
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout)
        node.process = None
        return proc.returncode

    def stop_all(self) -> None:
        for name in self.nodes:
            self.stop(name)
        for relay in self.relays.values():
            relay.close()
        self.relays = {}
        if self.ticker is not None:
            self.ticker.stop()
            self.ticker = None

    def status(self, name: str) -> dict[str, Any]:
        """`carpctl status --json` of a running daemon ({} if it does not answer)."""
        result = self.carpctl(name, "status", "--json")
        if result.returncode != 0:
            return {}
        try:
            doc: dict[str, Any] = json.loads(result.stdout)
        except ValueError:
            return {}
        return doc

    def carpctl(
        self, name: str, *args: str, timeout: float = 10.0
    ) -> subprocess.CompletedProcess[str]:
        node = self.nodes[name]
        argv = [console_script("carpctl"), "-f", str(node.config_path), *args]
        return subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False)

    def _per_vhid(self, name: str) -> list[tuple[str, CarpNode]]:
        """('carp0' or, on a multi-vhid interface, 'carp2/1', node) as ifconfig shows them."""
        out = []
        for iface in self.world.view(name).carp:
            assert iface.carp is not None
            for n in iface.carp.nodes:
                out.append((iface.name if not iface.carp.multi else f"{iface.name}/{n.vhid}", n))
        return out

    def roles(self, name: str) -> dict[str, str]:
        return {key: n.state for key, n in self._per_vhid(name)}

    def wait_roles(self, want: Mapping[str, Mapping[str, str]], timeout: float = 15.0) -> float:
        """Wait until every node's roles are as given ({"A": {"carp0": "MASTER"}, ...});
        return the seconds it took, or raise TimeoutError."""

        def done() -> bool:
            for name, roles in want.items():
                have = self.roles(name)
                if any(have.get(key) != role for key, role in roles.items()):
                    return False
            return True

        return wait_until(done, timeout, f"roles {dict(want)}")

    def advskews(self, name: str) -> dict[str, int]:
        return {key: n.advskew for key, n in self._per_vhid(name)}


def wait_until(
    predicate: Callable[[], bool], timeout: float, what: str, *, step: float = 0.05
) -> float:
    """Poll until `predicate()` holds; return the seconds it took, or raise TimeoutError."""
    start = time.monotonic()
    while True:
        if predicate():
            return time.monotonic() - start
        if time.monotonic() - start > timeout:
            raise TimeoutError(f"not within {timeout:g}s: {what}")
        time.sleep(step)
