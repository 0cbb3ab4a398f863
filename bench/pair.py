"""The pair's figures: two real daemons on the simulated pair, alone and with [peer].

- **view arrival**: A's SYNC port dies; how long until a message of A's that shows the sync
  check failing arrives over UDP (a bench "tap" is a second path in A's `peer.addresses`,
  and checks the HMAC with the shared key like the peer does).
- **reaction, alone against with a peer**: the same fault (A's own SYNC port, a fault only A
  has), at a random phase of the poll cycle: time until A's advskew is 240 on the host. With
  a peer, A waits for a view of B's made after B heard of A's failing check.
- **the direct SYNC cable pulled** (both ends): in how many trials the VIPs left A, and how
  many ended split across the pair, alone and with a peer.

Both daemons run the recording `ifconfig`/`sysctl` of bench/recorder.py, so the reaction is
also measured as in the reaction part (issue 12's figure): from the simulated kernel's change
(the link event in the world's event log) to the moment A's daemon exec'd its first
`advskew 240` (gross), and net of the simulator's own costs: the state-file transaction
before the routing message left (set_link's return) and the time any simulated read of
either node ran in between (with a peer, B's read that makes its fresh view is on the path;
a read of B's that is not is subtracted too, so net is a lower bound of carpd-py's share).

Settings: interval 1 s, sync fall/rise 3/3, hold-down 2 s, peer timeout 3 s, resync 10 s
(defaults but the hold-down, as in the reaction runs).
"""

from __future__ import annotations

import random
import socket
import statistics
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from carpd_py.peer import Rejected, unseal
from carpd_py.sim.harness import Harness, wait_until

from .reaction import busy, sim_read_spans
from .recorder import CallLog, install_recorders

INTERVAL = 1.0
SETTLE = 30.0
SETTINGS: dict[str, Any] = {
    "interval": INTERVAL,
    "demote": {"hold_down": 2.0},
    "sync": {"interface": "pfsync0", "fall": 3, "rise": 3},
    "platform": {"resync_interval": 10.0},  # the default (the harness's is 1 s, for tests)
}


@dataclass
class PairResult:
    settings: dict[str, Any] = field(default_factory=dict)
    view_arrival: list[float] = field(default_factory=list)  # s, fault -> message at the tap
    reaction_alone: list[float] = field(default_factory=list)  # s, fault -> A at 240
    reaction_pair: list[float] = field(default_factory=list)
    direct_trials: int = 0
    direct_moved_alone: int = 0  # trials in which a VIP left A
    direct_moved_pair: int = 0
    direct_split_alone: int = 0  # trials that ended with the VIPs split
    direct_split_pair: int = 0
    # issue 12: the kernel's change -> A's first `advskew 240` exec'd, gross and net (s)
    command_alone: list[float] = field(default_factory=list)
    net_alone: list[float] = field(default_factory=list)
    command_pair: list[float] = field(default_factory=list)
    net_pair: list[float] = field(default_factory=list)

    @staticmethod
    def median(samples: list[float]) -> float | None:
        return statistics.median(samples) if samples else None


class Tap:
    """A UDP socket that records when the first message showing `check` failing arrives."""

    def __init__(self, key: bytes, check: str = "sync") -> None:
        self.key = key
        self.check = check
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(0.1)
        self.port = int(self.sock.getsockname()[1])
        self.armed_at: float | None = None
        self.seen_at: float | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def arm(self) -> None:
        self.seen_at = None
        self.armed_at = time.monotonic()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                data, _ = self.sock.recvfrom(65535)
            except TimeoutError:
                continue
            except OSError:
                return
            now = time.monotonic()
            try:
                doc = unseal(self.key, data)
            except Rejected:
                continue
            check = doc["view"].get("checks", {}).get(self.check, {})
            if self.armed_at is not None and self.seen_at is None and check.get("bad", 0) > 0:
                self.seen_at = now

    def close(self) -> None:
        self._stop.set()
        self._thread.join(2.0)
        self.sock.close()


def _masters(h: Harness) -> dict[str, set[str]]:
    return {n: {i for i, s in h.roles(n).items() if s == "MASTER"} for n in h.nodes}


def _settled(h: Harness) -> bool:
    return (
        _masters(h) == {"A": {"carp0", "carp1"}, "B": set()}
        and h.advskews("A") == {"carp0": 0, "carp1": 0}
        and h.advskews("B") == {"carp0": 100, "carp1": 100}
    )


@dataclass
class Recorded:
    """The recorders' logs of both nodes, and the world's event log, read as they grow."""

    calls: dict[str, CallLog]
    world: Any
    offset: int = 0

    def skip(self) -> None:
        self.offset = self.world.events_from(0)[1]

    def kernel_change(self, after: float, fallback: float) -> float:
        """When the simulated kernel took A's em2 carrier away (wall clock)."""
        events, self.offset = self.world.events_from(self.offset)
        state = self.world.read()
        for e in events:
            if e.kind == "link" and e.node == "A" and e.iface == "em2":
                when = float(state.wall_time(e.time))
                if when >= after - 0.001:
                    return when
        return fallback


def _start(root: Path, paired: bool) -> tuple[Harness, Tap | None, Recorded]:
    h = Harness(root, topology="handbook")
    tap = None
    logs = {}
    for name in h.nodes:
        h.configure(name, **SETTINGS)
        path = h.nodes[name].root / "calls.log"
        ifconfig, sysctl = install_recorders(h.world, h.nodes[name].root / "rec", name, path)
        h.configure(name, platform={"ifconfig": ifconfig, "sysctl": sysctl})
        logs[name] = CallLog(path)
    if paired:
        h.pair_up(timeout=3.0)
        key = (h.nodes["A"].root / "carpd-py.key").read_bytes().strip()
        tap = Tap(key)
        addresses = [*h.nodes["A"].config["peer"]["addresses"], f"127.0.0.1:{tap.port}"]
        h.configure("A", peer={"addresses": addresses})
    for name in h.nodes:
        h.start(name)
    line = "peer up: deciding together" if paired else "check up check=sync"
    for name in h.nodes:
        log = h.nodes[name].log
        wait_until(lambda: line in log(), SETTLE, f"{name} ready")  # noqa: B023
    wait_until(lambda: _settled(h), SETTLE, "A MASTER of both")
    recorded = Recorded(logs, h.world)
    recorded.skip()
    return h, tap, recorded


def _poll_until(done: Callable[[], bool], limit: float) -> float | None:
    start = time.monotonic()
    while time.monotonic() - start < limit:
        if done():
            return time.monotonic() - start
        time.sleep(0.01)
    return None


def _reaction(
    h: Harness,
    tap: Tap | None,
    out: list[float],
    arrival: list[float],
    recorded: Recorded,
    figures: tuple[list[float], list[float]],
) -> None:
    time.sleep(random.uniform(0, INTERVAL))
    if tap is not None:
        tap.arm()
    before = time.time()
    h.world.set_link("A", "em2", up=False)
    sent = time.time()  # the routing message left inside set_link's transaction
    took = _poll_until(lambda: h.advskews("A") == {"carp0": 240, "carp1": 240}, SETTLE)
    if took is not None:
        out.append(took)
        kernel = recorded.kernel_change(before, sent)
        try:
            first = recorded.calls["A"].wait_for(lambda c: c.advskew() == 240, before, 10)
        except TimeoutError:
            first = None
        if first is not None:
            cmd = first.launched()
            spans = []
            for log in recorded.calls.values():
                log.refresh()
                spans += sim_read_spans(log.calls)
            gross, net = figures
            gross.append(cmd - kernel)
            net.append(cmd - sent - busy(spans, sent, cmd))
    if tap is not None and tap.seen_at is not None and tap.armed_at is not None:
        arrival.append(tap.seen_at - tap.armed_at)
    h.world.set_link("A", "em2", up=True)
    wait_until(lambda: _settled(h), SETTLE, "A restored")


def _direct(h: Harness, watch: float) -> tuple[bool, bool]:
    """Pull the direct cable (both ends) for `watch` seconds: (a VIP left A, ended split)."""
    time.sleep(random.uniform(0, INTERVAL))
    h.world.set_link("A", "em2", up=False)
    h.world.set_link("B", "em2", up=False)
    moved = False
    end = time.monotonic() + watch
    while time.monotonic() < end:
        moved = moved or _masters(h)["A"] != {"carp0", "carp1"}
        time.sleep(0.02)
    m = _masters(h)
    split = bool(m["A"]) and bool(m["B"])
    h.world.set_link("A", "em2", up=True)
    h.world.set_link("B", "em2", up=True)
    wait_until(lambda: _settled(h), SETTLE, "back to A")
    return moved, split


def run_pair(
    work: Path, faults: int, direct: int, progress: Callable[[str], None] = print
) -> PairResult:
    result = PairResult(settings={**SETTINGS, "peer": {"timeout": 3.0}})
    result.direct_trials = direct
    for paired in (False, True):
        mode = "with a peer" if paired else "alone"
        h, tap, recorded = _start(work / ("pair" if paired else "alone"), paired)
        try:
            progress(f"pair: {faults} faults on A's SYNC port, {mode}")
            out = result.reaction_pair if paired else result.reaction_alone
            figures = (
                (result.command_pair, result.net_pair)
                if paired
                else (result.command_alone, result.net_alone)
            )
            for _ in range(faults):
                _reaction(h, tap, out, result.view_arrival, recorded, figures)
                if figures[0]:
                    progress(
                        f"  {mode}: to the command {figures[0][-1] * 1000:.0f} ms "
                        f"(net {figures[1][-1] * 1000:.0f} ms)"
                    )
            progress(f"pair: {direct} pulls of the direct SYNC cable, {mode}")
            for _ in range(direct):
                moved, split = _direct(h, watch=3 * INTERVAL + 3.0)
                if paired:
                    result.direct_moved_pair += moved
                    result.direct_split_pair += split
                else:
                    result.direct_moved_alone += moved
                    result.direct_split_alone += split
        finally:
            h.stop_all()
            if tap is not None:
                tap.close()
    return result
