"""Many processes on one state file at once: no lost update, no torn read."""

from __future__ import annotations

import json
import subprocess
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from carpd_py.parse import parse_group, parse_ifconfig
from carpd_py.sim.state import MASTER
from carpd_py.sim.world import World

WRITERS = 8
ROUNDS = 6
READERS = 4


def _writer(ifconfig: str) -> list[int]:
    codes = []
    for _ in range(ROUNDS):
        done = subprocess.run(
            [ifconfig, "-g", "carp", "carpdemote", "1"],
            capture_output=True,
            timeout=60,
            check=False,
        )
        codes.append(done.returncode)
    return codes


def _reader(ifconfig: str) -> int:
    reads = 0
    for _ in range(ROUNDS):
        out = subprocess.run([ifconfig], capture_output=True, text=True, timeout=60, check=True)
        interfaces = parse_ifconfig(out.stdout)  # raises on a torn or empty read
        assert [i.name for i in interfaces if i.is_carp] == ["carp0", "carp1"]
        group = subprocess.run(
            [ifconfig, "-g", "carp"], capture_output=True, text=True, timeout=60, check=True
        )
        parse_group(group.stdout)
        reads += 1
    return reads


def test_concurrent_writers_lose_no_update(tmp_path: Path) -> None:
    world = World.create(tmp_path / "state.json")
    a_ifconfig, _ = world.install_bin(tmp_path / "bin-a", "A")
    b_ifconfig, _ = world.install_bin(tmp_path / "bin-b", "B")
    with ThreadPoolExecutor(max_workers=WRITERS * 2 + READERS + 1) as pool:
        writers = [pool.submit(_writer, a_ifconfig) for _ in range(WRITERS)]
        writers += [pool.submit(_writer, b_ifconfig) for _ in range(WRITERS)]
        readers = [pool.submit(_reader, a_ifconfig) for _ in range(READERS)]

        def flap() -> None:  # this process changes the world too, meanwhile
            for i in range(ROUNDS * 2):
                world.set_link("B", "em2", up=i % 2 == 1)

        flapper = pool.submit(flap)
        assert all(code == 0 for f in writers for code in f.result())
        assert all(f.result() == ROUNDS for f in readers)
        flapper.result()
    assert world.demote_count("A") == WRITERS * ROUNDS
    assert world.demote_count("B") == WRITERS * ROUNDS  # B's sync link ends up
    # the file is whole JSON, and the temp files are gone
    json.loads((tmp_path / "state.json").read_text())
    assert not list(tmp_path.glob(".state.json.*.tmp"))
    events = world.events()
    assert [e.seq for e in events] == list(range(1, len(events) + 1))
    # A is demoted by 48, B by 48 with its link back: equal, A is faster and preempts
    assert world.state("A", "carp0") == MASTER


def test_concurrent_worlds_in_threads_serialise(tmp_path: Path) -> None:
    World.create(tmp_path / "state.json")

    def bump(_: int) -> None:
        w = World(tmp_path / "state.json")  # a separate object, as another process would have
        for _ in range(5):
            assert w.ifconfig("A", "-g", "carp", "carpdemote", "1").code == 0

    with ThreadPoolExecutor(max_workers=8) as pool:
        list(pool.map(bump, range(8)))
    assert World(tmp_path / "state.json").demote_count("A") == 40
