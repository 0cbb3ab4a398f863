"""The simulated host bound to real links: a node's ifconfig follows a sysfs-like directory.

Here the directory is a fake one (no root needed); tests/test_lab.py does the same with real
veths in network namespaces. Also: the log of set commands with their wall-clock time.
"""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import pytest

from carpd_py.model import Interface
from carpd_py.sim.carrier import SYSFS
from carpd_py.sim.state import MASTER
from carpd_py.sim.world import World


@pytest.fixture
def world(tmp_path: Path) -> World:
    return World.create(tmp_path / "world.json", topology="handbook")


def sysfs(root: Path, **carriers: str) -> Path:
    for name, value in carriers.items():
        (root / name).mkdir(parents=True, exist_ok=True)
        (root / name / "carrier").write_text(value + "\n")
    return root


def run(path: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([path, *args], capture_output=True, text=True, timeout=30, check=False)


def iface(world: World, node: str, ifname: str) -> Interface:
    found = world.view(node).get(ifname)
    assert found is not None
    return found


def status(world: World, node: str, ifname: str) -> str | None:
    return iface(world, node, ifname).status


def test_ifconfig_follows_the_carrier_and_the_kernel_reacts(world: World, tmp_path: Path) -> None:
    net = sysfs(tmp_path / "net", em0="1", em1="1", em2="1")
    world.set_carrier_source("A", str(net))
    ifconfig, _ = world.install_bin(tmp_path / "bin", "A")
    assert "status: active" in run(ifconfig, "em2").stdout
    assert world.demote_count("A") == 0

    sysfs(net, em2="0")  # the SYNC cable is pulled
    out = run(ifconfig, "em2").stdout  # the very read that notices it prints it
    assert "status: no carrier" in out
    assert world.demote_count("A") == 1  # pfsync_syncif_link(): +1 "pfsync link"
    assert "RUNNING" in iface(world, "A", "pfsync0").flag_names  # 7.4+: it stays RUNNING
    assert status(world, "B", "em2") == "active"  # B's executables never looked

    sysfs(net, em2="1", em0="0")  # back, and now the WAN carpdev goes
    run(ifconfig)
    assert world.demote_count("A") == 1  # pfsync -1, carpdev of carp0 +1
    assert world.state("A", "carp0") == "INIT"
    assert world.state("B", "carp0") == MASTER


def test_unreadable_means_no_carrier_and_missing_means_unknown(
    world: World, tmp_path: Path
) -> None:
    net = sysfs(tmp_path / "net", em0="1", em1="1")  # no em2 here at all
    (net / "em1" / "carrier").unlink()
    (net / "em1" / "carrier").mkdir()  # reading fails, as EINVAL does for an interface set down
    world.set_carrier_source("A", str(net))
    ifconfig, _ = world.install_bin(tmp_path / "bin", "A")
    run(ifconfig)
    assert status(world, "A", "em1") == "no carrier"
    assert status(world, "A", "em2") == "active"  # not in the directory: the state's value


def test_nothing_moved_means_nothing_written(world: World, tmp_path: Path) -> None:
    net = sysfs(tmp_path / "net", em0="1", em1="1", em2="1")
    world.set_carrier_source("A", str(net))
    ifconfig, sysctl = world.install_bin(tmp_path / "bin", "A")
    before = world.path.stat().st_ino
    for _ in range(3):
        assert run(ifconfig).returncode == 0
    assert world.path.stat().st_ino == before  # the read-only path: no rename of the state
    sysfs(net, em2="0")
    run(sysctl, "net.inet.carp")  # only ifconfig looks at links
    assert world.path.stat().st_ino == before
    run(ifconfig, "-g", "carp")
    assert world.path.stat().st_ino != before


def test_unbound_nodes_ignore_the_directory(world: World, tmp_path: Path) -> None:
    net = sysfs(tmp_path / "net", em2="0")
    world.set_carrier_source("A", str(net))
    world.set_carrier_source("A", None)
    ifconfig, _ = world.install_bin(tmp_path / "bin", "A")
    run(ifconfig)
    assert status(world, "A", "em2") == "active"
    assert world.read().node("A").carrier_from is None


def test_the_sysfs_default_and_the_state_round_trip(world: World) -> None:
    world.set_carrier_source("B", SYSFS)
    assert world.read().node("B").carrier_from == "/sys/class/net"
    assert world.read().node("A").carrier_from is None


def test_set_commands_are_logged_with_their_time(world: World, tmp_path: Path) -> None:
    ifconfig, sysctl = world.install_bin(tmp_path / "bin", "A")
    start = time.time()
    run(ifconfig, "carp0")  # a read: not logged
    assert run(ifconfig, "carp0", "advskew", "240").returncode == 0
    assert run(ifconfig, "carp0", "advskew", "300").returncode == 1
    assert run(sysctl, "net.inet.carp.preempt=1").returncode == 0
    end = time.time()
    commands = world.commands()
    assert [(c.node, c.argv, c.code) for c in commands] == [
        ("A", ("ifconfig", "carp0", "advskew", "240"), 0),
        ("A", ("ifconfig", "carp0", "advskew", "300"), 1),
        ("A", ("sysctl", "net.inet.carp.preempt=1"), 0),
    ]
    assert all(start <= c.time <= end for c in commands)
    assert [c.time for c in commands] == sorted(c.time for c in commands)
    World.create(world.path)  # a new world starts a new log
    assert world.commands() == []
