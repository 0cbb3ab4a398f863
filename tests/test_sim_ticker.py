"""`Ticker`: the world advanced continuously, for a feed that waits for events."""

from __future__ import annotations

import threading
from pathlib import Path

from carpd_py.sim.events import SimEvent
from carpd_py.sim.harness import wait_until
from carpd_py.sim.state import MASTER
from carpd_py.sim.ticker import Ticker
from carpd_py.sim.world import World


def test_the_ticker_hands_on_timer_and_command_events_as_they_happen(tmp_path: Path) -> None:
    """carp_master_down(): nobody reads the world, yet B's takeover (a timer, 3 + 100/256
    simulated seconds after A's carpdev lost its link) reaches the feed, with the link events
    RTM_IFINFO needs, after the command's own events."""
    world = World.create(tmp_path / "w.json", timescale=50)
    got: list[SimEvent] = []
    lock = threading.Lock()

    def collect(events: list[SimEvent]) -> None:
        with lock:
            got.extend(events)

    def b_master() -> bool:
        with lock:
            return any(
                e.kind == "carp" and e.node == "B" and e.iface == "carp0" and e.new == MASTER
                for e in got
            )

    with Ticker(world, interval=0.01, on_events=collect) as ticker:
        world.set_link("A", "em0", up=False)
        wait_until(b_master, 10, "the ticker saw B take carp0")
    assert ticker.error is None
    with lock:
        seqs = [e.seq for e in got]
        kinds = [(e.node, e.iface, e.kind, e.new) for e in got]
    assert seqs == sorted(seqs)
    assert ("A", "em0", "link", "down") in kinds  # the cable: RTM_IFINFO for em0
    assert ("A", "carp0", "link", "invalid") in kinds  # carp0 INIT
    assert ("B", "carp0", "link", "up") in kinds  # carp0 MASTER on B
    took = next(e for e in got if e.node == "B" and e.iface == "carp0" and e.kind == "carp")
    lost = next(e for e in got if e.node == "A" and e.iface == "em0")
    # simulated seconds: the master-down time, from A's last advertisement (<= 1 s before)
    assert 3.0 + 100 / 256 - 1.0 <= took.time - lost.time <= 3.0 + 100 / 256 + 0.01


def test_interface_arrival_and_departure_are_events(tmp_path: Path) -> None:
    """if_clone_create() / if_clone_destroy(): RTM_IFANNOUNCE arrival and departure."""
    world = World.create(tmp_path / "w.json")
    before = len(world.events())
    assert world.ifconfig("A", "carp5", "create").code == 0
    assert world.ifconfig("A", "carp5", "destroy").code == 0
    new = [(e.kind, e.iface) for e in world.events()[before:] if e.kind != "link"]
    assert new == [("arrival", "carp5"), ("departure", "carp5")]
