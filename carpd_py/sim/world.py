"""`World`: the simulated pair of OpenBSD nodes that tests, benchmarks and the demo drive.

    world = World.create(path, topology="handbook")
    ifconfig, sysctl = world.install_bin(tmpdir, node="A")   # real executables for host.py
    world.set_link("A", "em2", up=False)                       # pull the sync cable
    world.view("B")                                            # what B's ifconfig now says

Every change goes through the state file under its lock, so the executables (other processes)
and this object always see the same world.

The world keeps its own clock: every read, command and change first advances it to "now"
(`Kernel.advance`: the carp advertisement and master-down timers and pfsync's bulk request, in
order), so what anyone sees is the state at that moment. `advance()` does only that and
returns what happened; `Ticker` (ticker.py) calls it every few tens of ms for whoever waits for
events rather than polling. The clock is `clock` (default time.time) times `timescale`
(default 1, or $CARPD_SIM_TIMESCALE): simulated seconds per real second, for all processes.
A new world boots BOOT_AGE simulated seconds in the past, so it starts settled.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

import carpd_py

from ..model import HostView
from . import services
from .events import SimCommand, SimEvent
from .ifconfig_cmd import run_ifconfig
from .kernel import Kernel, transaction
from .printed import Result
from .state import ETHER, SYSCTL_ORDER, WorldState
from .store import Store
from .sysctl_cmd import run_sysctl
from .topology import named
from .view import host_view

Clock = Callable[[], float]
BOOT_AGE = 60.0  # simulated seconds between the boot of a new world and its creation
TIMESCALE_ENV = "CARPD_SIM_TIMESCALE"


def default_timescale() -> float:
    """$CARPD_SIM_TIMESCALE (simulated seconds per real second), 1 when unset."""
    text = os.environ.get(TIMESCALE_ENV, "").strip()
    if not text:
        return 1.0
    value = float(text)
    if not value > 0:
        raise ValueError(f"{TIMESCALE_ENV}={text!r}: must be a positive number")
    return value


_SCRIPT = '''#!{python} -IS
"""The simulated `{tool}` of node {node} of {state} (carpd-py's simulated OpenBSD host)."""
import os
import sys
sys.path.insert(0, {root!r})
from carpd_py.sim.cli import run_tool
code = run_tool({tool!r}, {state!r}, {node!r}, sys.argv[1:])
sys.stdout.flush()
sys.stderr.flush()
os._exit(code)  # all is printed: the interpreter's teardown would only cost time
'''


class World:
    """A simulated world of one or two OpenBSD nodes kept in a JSON state file."""

    def __init__(self, path: str | os.PathLike[str], *, clock: Clock = time.time) -> None:
        self.path = Path(path).resolve()
        self.clock = clock
        self._store = Store(self.path)
        if not self.path.exists():
            raise FileNotFoundError(f"{self.path}: no such simulated world")

    @classmethod
    def create(
        cls,
        path: str | os.PathLike[str],
        topology: str | WorldState = "handbook",
        *,
        clock: Clock = time.time,
        timescale: float | None = None,
    ) -> World:
        """Write a new world (replacing any at `path`) and boot it: elections run, logged.

        The boot happens BOOT_AGE simulated seconds before now, so the world is settled when
        this returns (the boot's log lines carry those earlier times).
        """
        if isinstance(topology, str):
            state = named(topology)
        else:
            state = WorldState.from_json(topology.to_json())  # a copy: the caller keeps theirs
            for name in state.nodes:
                if not name.isalnum():
                    raise ValueError(f"node name {name!r}: letters and digits only")
        events: list[SimEvent] = []
        wall = clock()
        state.epoch = wall
        state.timescale = default_timescale() if timescale is None else float(timescale)
        if not state.timescale > 0:
            raise ValueError(f"timescale {timescale!r}: must be positive")
        state.now = wall - BOOT_AGE
        kernel = Kernel(state, events, wall)
        kernel.boot()
        kernel.advance()
        kernel.finish()
        Store(path).create(state, events)
        return cls(path, clock=clock)

    # --- changing the world ----------------------------------------------------------------

    @contextmanager
    def modify(self) -> Iterator[WorldState]:
        """Change the state directly (tests); the kernel settles when the block ends."""
        with transaction(self._store, self.clock()) as kernel:
            yield kernel.world
            kernel.settle()

    def set_link(self, node: str, ifname: str, up: bool) -> None:
        """Carrier on or off on a physical interface (the cable, not `ifconfig down`)."""
        with self.modify() as state:
            iface = state.node(node).get(ifname)
            if iface is None or iface.kind != ETHER:
                raise ValueError(f"node {node}: {ifname} is not a physical interface")
            iface.carrier = up

    def sysctl_set(self, node: str, name: str, value: int) -> int:
        """Set net.inet.carp.NAME as root would (`sysctl net.inet.carp.preempt=1`).

        NAME may be given with or without `net.inet.carp.`. Returns the previous value.
        """
        leaf = name.removeprefix("net.inet.carp.")
        if leaf not in SYSCTL_ORDER:
            raise ValueError(f"no sysctl net.inet.carp.{leaf} (known: {', '.join(SYSCTL_ORDER)})")
        with self.modify() as state:
            values = state.node(node).sysctl
            old, values[leaf] = values[leaf], int(value)
        return old

    def set_fault(
        self,
        node: str,
        *,
        hang: float | None = None,
        garbage: bool | None = None,
        unprivileged: bool | None = None,
        truncate: int | None = None,
    ) -> None:
        """Make a node's executables hang, print garbage, or run as a non-root user; or cut
        the full `ifconfig` listing after `truncate` characters (exit 0; negative: off)."""
        with self._store.transaction() as (state, _):
            n = state.node(node)
            if hang is not None:
                n.hang = float(hang)
            if garbage is not None:
                n.garbage = garbage
            if unprivileged is not None:
                n.unprivileged = unprivileged
            if truncate is not None:
                n.truncate = truncate if truncate >= 0 else None

    def set_carrier_source(self, node: str, directory: str | None) -> None:
        """Make the node's `ifconfig` follow the real carrier of its physical interfaces.

        `directory` is laid out like /sys/class/net (`carrier.SYSFS`, what the network lab
        uses: the node's executables run inside its namespace); None goes back to the state
        file alone. See carrier.py.
        """
        with self._store.transaction() as (state, _):
            state.node(node).carrier_from = directory

    def set_route_socket(self, node: str, path: str | None) -> None:
        """Make the node's kernel send its routing messages (RTM_IFINFO on every link or carp
        state change, RTM_IFANNOUNCE on create and destroy) to the Unix datagram socket at
        `path`, carpd-py's `platform.route_socket`; None: send none. See rtemit.py."""
        with self._store.transaction() as (state, _):
            state.node(node).route_socket = path

    def drop_route_messages(self, node: str) -> str | None:
        """Stop sending the node's routing messages (a lost message); returns the old path."""
        with self._store.transaction() as (state, _):
            n = state.node(node)
            old, n.route_socket = n.route_socket, None
        return old

    def ifconfig(self, node: str, *args: str) -> Result:
        """Run `ifconfig ARGS` on a node in this process (no hang, no garbage)."""
        return self._run(run_ifconfig, node, args)

    def sysctl(self, node: str, *args: str) -> Result:
        """Run `sysctl ARGS` on a node in this process (no hang, no garbage)."""
        return self._run(run_sysctl, node, args)

    def _run(
        self, program: Callable[[Kernel, str, list[str]], Result], node: str, args: Iterable[str]
    ) -> Result:
        with transaction(self._store, self.clock()) as kernel:
            return program(kernel, node, list(args))

    # --- time ------------------------------------------------------------------------------

    def now(self) -> float:
        """The world's simulated time now."""
        return self._store.read().sim_time(self.clock())

    def advance(self) -> list[SimEvent]:
        """Run the world's timers up to now; return what they did, oldest first.

        Costs a read only when no timer is due. Events made by commands are in the log when
        the command returns (`events`, `events_from`).
        """
        state = self._store.read()
        if state.due is None or state.sim_time(self.clock()) < state.due:
            return []
        with transaction(self._store, self.clock()) as kernel:
            pass
        return list(kernel.events)

    def events_from(self, offset: int = 0) -> tuple[list[SimEvent], int]:
        """The events logged after byte `offset` of the event log, and the offset to go on
        from (a follower's cursor: `Ticker`)."""
        return self._store.events_from(offset)

    # --- reading ---------------------------------------------------------------------------

    def read(self) -> WorldState:
        """A copy of the whole state at this moment (changing it changes nothing)."""
        state = self._store.read()
        if state.due is not None and state.sim_time(self.clock()) >= state.due:
            self.advance()
            state = self._store.read()
        return state

    def nodes(self) -> tuple[str, ...]:
        return tuple(self.read().nodes)

    def view(self, node: str, groups: Iterable[str] | None = ("carp",)) -> HostView:
        """What ifconfig, ifconfig -g GROUP and sysctl net.inet.carp show now, as the model."""
        return host_view(self.read().node(node), groups)

    def state(self, node: str, ifname: str, vhid: int | None = None) -> str:
        """The carp state of one vhid (the first one by default): INIT, BACKUP or MASTER."""
        iface = self.read().node(node).get(ifname)
        if iface is None or iface.carp is None:
            raise ValueError(f"node {node}: {ifname} is not a carp interface")
        for vhe in iface.carp.vhosts:
            if vhid is None or vhe.vhid == vhid:
                return vhe.state
        raise ValueError(f"node {node}: {ifname} has no vhid {vhid}")

    def demote_count(self, node: str, group: str = "carp") -> int:
        return self.read().node(node).group_demote.get(group, 0)

    def events(self) -> list[SimEvent]:
        """Every event so far (kernel log lines, logged or not, and link events), oldest first."""
        self.read()  # advance to now first
        return self._store.events()

    def commands(self) -> list[SimCommand]:
        """Every command the executables ran on the write path, with when it was applied."""
        return self._store.commands()

    # --- executables -----------------------------------------------------------------------

    def install_bin(self, directory: str | os.PathLike[str], node: str = "A") -> tuple[str, str]:
        """Write `ifconfig` and `sysctl` for one node into `directory`; return their paths.

        `pfctl`, `relayctl` and `relayd.conf` are written beside them (see services.py)."""
        self.read().node(node)  # KeyError for a node that does not exist
        target = Path(directory)
        target.mkdir(parents=True, exist_ok=True)
        root = str(Path(carpd_py.__file__).resolve().parent.parent)
        paths = []
        for tool in ("ifconfig", "sysctl"):
            path = target / tool
            text = _SCRIPT.format(
                python=sys.executable, tool=tool, node=node, state=str(self.path), root=root
            )
            tmp = path.with_name(f".{tool}.{os.getpid()}.tmp")
            tmp.write_text(text)
            tmp.chmod(0o755)
            os.replace(tmp, path)
            paths.append(str(path))
        services.install(self.path, target, node)  # pfctl, relayctl, relayd.conf beside them
        return paths[0], paths[1]
