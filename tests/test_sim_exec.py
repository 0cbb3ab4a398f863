"""The installed `ifconfig` and `sysctl` executables: real processes over the state file."""

from __future__ import annotations

import fcntl
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

import carpd_py
from carpd_py.config import PlatformConfig
from carpd_py.host import MissingInterface, NotPermitted, OpenBSDHost, Unparsable
from carpd_py.parse import ParseError, parse_group, parse_ifconfig, parse_sysctl
from carpd_py.sim.cli import run_tool
from carpd_py.sim.harness import wait_until
from carpd_py.sim.render import render_ifconfig
from carpd_py.sim.state import BACKUP, MASTER
from carpd_py.sim.view import interfaces
from carpd_py.sim.world import World


def run(path: str, *args: str, timeout: float = 20) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [path, *args], capture_output=True, text=True, timeout=timeout, check=False
    )


@pytest.fixture
def world(tmp_path: Path) -> World:
    return World.create(tmp_path / "state.json")


@pytest.fixture
def bin_a(world: World, tmp_path: Path) -> tuple[str, str]:
    return world.install_bin(tmp_path / "bin-a", node="A")


def test_install_bin_writes_two_executables(world: World, tmp_path: Path) -> None:
    ifconfig, sysctl = world.install_bin(tmp_path / "bin", node="B")
    assert (Path(ifconfig).name, Path(sysctl).name) == ("ifconfig", "sysctl")
    for path in (ifconfig, sysctl):
        assert os.access(path, os.X_OK)
        first = Path(path).read_text().splitlines()[0]
        assert first == f"#!{sys.executable} -IS"
    with pytest.raises(KeyError):
        world.install_bin(tmp_path / "bin", node="C")


@pytest.mark.parametrize("topology", ["handbook", "multivhid", "single", "scale:16"])
def test_output_reads_back_to_the_view(tmp_path: Path, topology: str) -> None:
    world = World.create(tmp_path / "state.json", topology)
    for node in world.nodes():
        ifconfig, sysctl = world.install_bin(tmp_path / f"bin-{node}", node)
        view = world.view(node)
        out = run(ifconfig)
        assert (out.returncode, out.stderr) == (0, "")
        assert parse_ifconfig(out.stdout) == view.interfaces
        group = run(ifconfig, "-g", "carp")
        assert parse_group(group.stdout) == ("carp", view.group_demote["carp"])
        values = run(sysctl, "net.inet.carp")
        assert parse_sysctl(values.stdout) == dict(view.sysctl)


def test_a_change_through_the_executable_is_seen_by_both(tmp_path: Path) -> None:
    """carp_setrun() after SIOCSVH: B preempts (it has preempt on) when A's next
    advertisement, 1 + 240/256 simulated seconds later, carries advskew 240; the world runs
    20 times faster than real time here, for every process."""
    world = World.create(tmp_path / "fast.json", timescale=20)
    ifconfig, sysctl = world.install_bin(tmp_path / "bin-fast", node="A")
    assert run(ifconfig, "carp0", "advskew", "240").returncode == 0
    assert run(sysctl, "net.inet.carp.preempt=0").stdout == "net.inet.carp.preempt: 1 -> 0\n"
    wait_until(lambda: world.state("B", "carp0") == MASTER, 10, "B takes carp0 over")
    assert world.state("A", "carp0") == BACKUP
    (carp0,) = parse_ifconfig(run(ifconfig, "carp0").stdout)
    assert carp0 == world.view("A").get("carp0")
    assert carp0.carp is not None
    assert carp0.carp.nodes[0].advskew == 240


def test_errors_on_stderr_with_exit_codes(bin_a: tuple[str, str]) -> None:
    ifconfig, sysctl = bin_a
    missing = run(ifconfig, "carp9")
    assert (missing.returncode, missing.stdout, missing.stderr) == (
        1,
        "",
        "carp9: no such interface\n",
    )
    group = run(ifconfig, "-g", "nosuch")
    assert (group.returncode, group.stderr) == (
        1,
        "ifconfig: nosuch: SIOCGIFGATTR: No such file or directory\n",
    )
    bad = run(sysctl, "net.inet.carp.demotion")
    assert (bad.returncode, bad.stdout) == (0, "")
    assert "is invalid" in bad.stderr


def test_the_trap_through_the_executable(world: World, bin_a: tuple[str, str]) -> None:
    ifconfig, _ = bin_a
    assert run(ifconfig, "carp9", "advskew", "240").returncode == 0
    assert "carp9" in world.view("A").names


def test_hang_makes_the_executable_sleep(world: World, bin_a: tuple[str, str]) -> None:
    ifconfig, sysctl = bin_a
    world.set_fault("A", hang=30)
    with pytest.raises(subprocess.TimeoutExpired):
        run(ifconfig, timeout=1)
    world.set_fault("A", hang=0.3)
    start = time.monotonic()
    assert run(sysctl, "net.inet.carp").returncode == 0
    assert time.monotonic() - start >= 0.3


def test_garbage_is_unparsable_but_exits_zero(world: World, bin_a: tuple[str, str]) -> None:
    ifconfig, sysctl = bin_a
    world.set_fault("A", garbage=True)
    out = run(ifconfig)
    assert out.returncode == 0
    with pytest.raises(ParseError):
        parse_ifconfig(out.stdout)
    with pytest.raises(ParseError):
        parse_group(run(ifconfig, "-g", "carp").stdout)
    with pytest.raises(ParseError):
        parse_sysctl(run(sysctl, "net.inet.carp").stdout)
    # set commands still work, errors still print
    assert run(ifconfig, "-g", "carp", "carpdemote", "1").returncode == 0
    assert world.demote_count("A") == 1
    assert run(ifconfig, "carp9").returncode == 1


def test_the_read_path_imports_no_trio_no_model_no_json(world: World) -> None:
    # Each read-only run pays its imports: json alone (re, enum) doubled a run's ~10 ms.
    root = str(Path(carpd_py.__file__).resolve().parent.parent)
    heavy = ("trio", "dataclasses", "carpd_py.model", "argparse", "typing", "json", "re",
             "enum", "contextlib", "fcntl")  # fmt: skip
    code = (
        f"import io, sys; sys.path.insert(0, {root!r}); from carpd_py.sim.cli import run_tool\n"
        f"out, sys.stdout = sys.stdout, io.StringIO()\n"
        f"codes = [run_tool('ifconfig', {str(world.path)!r}, 'A', a) for a in ([], ['-g', 'carp'])]"
        f" + [run_tool('sysctl', {str(world.path)!r}, 'A', ['net.inet.carp'])]\n"
        f"printed, sys.stdout = sys.stdout.getvalue(), out\n"
        f"print(codes, 'carp: MASTER carpdev em1' in printed, "
        f"sorted(m for m in {heavy!r} if m in sys.modules))"
    )
    out = subprocess.run(
        [sys.executable, "-IS", "-c", code], capture_output=True, text=True, check=True
    )
    assert out.stdout == "[0, 0, 0] True []\n"


def test_a_read_only_run_does_not_wait_for_a_writer(world: World, bin_a: tuple[str, str]) -> None:
    # A node's printed snapshot is replaced by rename: a reader sees the whole old one or the
    # whole new one, so it need not queue behind another node's transaction (in the lab two
    # nodes' commands and carrier changes hold the lock for tens of ms at a time).
    ifconfig, sysctl = bin_a
    expected = run(ifconfig).stdout
    with open(str(world.path) + ".lock", "rb+") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # a transaction under way, for as long as it takes
        assert run(ifconfig, timeout=5).stdout == expected
        assert run(ifconfig, "-g", "carp", timeout=5).returncode == 0
        assert run(sysctl, "net.inet.carp", timeout=5).returncode == 0


def test_the_executables_print_what_the_world_renders(world: World, bin_a: tuple[str, str]) -> None:
    # The read path loads the node's printed cache (marshal); the write path renders it.
    ifconfig, _ = bin_a
    world.set_link("A", "em2", up=False)
    done = run(ifconfig)
    assert done.returncode == 0
    assert done.stderr == ""
    assert done.stdout == render_ifconfig(interfaces(world.read().node("A")))


def test_unknown_node_or_state(tmp_path: Path, world: World) -> None:
    assert run_tool("ifconfig", str(world.path), "Z", []) == 1
    assert run_tool("ifconfig", str(tmp_path / "nope.json"), "A", []) == 1


# --- carpd-py's own adapter against the executables -----------------------------------------


def host_for(paths: tuple[str, str], timeout: float = 5.0) -> OpenBSDHost:
    return OpenBSDHost(PlatformConfig(ifconfig=paths[0], sysctl=paths[1], command_timeout=timeout))


async def test_openbsd_host_reads_what_the_world_holds(
    world: World, bin_a: tuple[str, str]
) -> None:
    host = host_for(bin_a)
    assert await host.read() == world.view("A")
    await host.set_advskew("carp0", {10: 240})
    assert world.view("A").get("carp0").carp.nodes[0].advskew == 240  # type: ignore[union-attr]
    await host.carpdemote("carp", 3)
    assert world.demote_count("A") == 3
    await host.carpdemote("carp", -3)
    assert world.demote_count("A") == 0


async def test_openbsd_host_reads_the_group_counters_apart_when_asked(
    world: World, bin_a: tuple[str, str]
) -> None:
    host = host_for(bin_a)
    await host.read()  # ifconfig, ifconfig -g carp, sysctl net.inet.carp
    assert host.commands_run == 3
    world.set_link("A", "em2", up=False)  # pfsync_carp_demote(): the kernel's own +1
    view = await host.read(groups=False, sysctl=False)  # ifconfig alone
    assert host.commands_run == 4
    assert view.get("em2").status == "no carrier"  # type: ignore[union-attr]
    assert view.group_demote == {"carp": 0}  # the counter of the read before
    assert await host.read_groups() == {"carp": 1}
    assert host.commands_run == 5
    assert host.last is not None
    assert host.last.group_demote == {"carp": 1}
    assert (await host.read(groups=False, sysctl=False)).group_demote == {"carp": 1}


async def test_openbsd_host_never_springs_the_trap(world: World, bin_a: tuple[str, str]) -> None:
    host = host_for(bin_a)
    await host.read()
    with pytest.raises(MissingInterface):
        await host.set_advskew("carp9", {1: 240})
    assert "carp9" not in world.view("A").names


async def test_openbsd_host_sees_eperm_and_garbage(world: World, bin_a: tuple[str, str]) -> None:
    host = host_for(bin_a)
    await host.read()
    world.set_fault("A", unprivileged=True)
    with pytest.raises(NotPermitted):
        await host.set_advskew("carp0", {10: 240})
    world.set_fault("A", garbage=True)
    with pytest.raises(Exception) as info:  # host.read() reads in a nursery: may be a group
        await host.read()
    assert _carries(info.value, Unparsable)


def _carries(exc: BaseException, kind: type[BaseException]) -> bool:
    if isinstance(exc, kind):
        return True
    inner: tuple[BaseException, ...] = getattr(exc, "exceptions", ())
    return any(_carries(e, kind) for e in inner)
