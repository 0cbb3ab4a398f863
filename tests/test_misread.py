"""Issue 9 item 2: one empty or cut-short `ifconfig` output (exit 0) never demotes.

The real adapter (`OpenBSDHost`) and the real supervisor read the simulated handbook node; only
the process boundary is replaced (the simulated `ifconfig` runs in this process, so trio's
MockClock can drive the rounds): the full listing is cut at a chosen byte, as a pipe closed
early or a killed process would leave it, while `ifconfig NAME` answers in full.

ifconfig.c prints every line with a final newline (printif() -> status(), the address lines);
so a cut that falls inside a line leaves output that does not end in one (parse.py refuses it),
and a cut that falls at the end of a line leaves interfaces missing and the last one shown
possibly without its last lines (em2 without `status:`). Those are confirmed by a targeted
`ifconfig NAME` before they count.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pytest
import trio
import trio.testing

from carpd_py.config import Config, PlatformConfig, SyncConfig
from carpd_py.host import OpenBSDHost
from carpd_py.hysteresis import Round
from carpd_py.misread import CONFIRM_MAX
from carpd_py.model import HostView
from carpd_py.parse import ParseError, parse_ifconfig
from carpd_py.rounds import sync_round
from carpd_py.run import Completed
from carpd_py.sim.printed import Result
from carpd_py.sim.world import World
from carpd_py.supervisor import Supervisor

from .fakes import FakeHost, FakeProber, RecordingLog, phys

SYNC = SyncConfig(interface="pfsync0", peer=None, fall=3, rise=1)


class CutHost(OpenBSDHost):
    """The real adapter over the simulated node, the full `ifconfig` listing cut at `cut`."""

    def __init__(
        self, world: World, node: str, cache: dict[tuple[str, ...], Result] | None = None
    ) -> None:
        super().__init__(PlatformConfig(ifconfig="ifconfig", sysctl="sysctl"))
        self.world = world
        self.node = node
        self.cut: int | None = None
        self.argvs: list[tuple[str, ...]] = []
        self._cache = {} if cache is None else cache  # the world does not change meanwhile

    async def _run(self, argv: Sequence[str]) -> Completed:
        self.commands_run += 1
        key = tuple(argv)
        self.argvs.append(key)
        result = self._cache.get(key)
        if result is None:
            tool, *args = key
            run = self.world.ifconfig if tool == "ifconfig" else self.world.sysctl
            result = self._cache[key] = run(self.node, *args)
        stdout = result.stdout
        if key == ("ifconfig",) and self.cut is not None:
            stdout = stdout[: self.cut]
        await trio.lowlevel.checkpoint()
        return Completed(key, result.code, stdout, result.stderr)


def read_error(sup: Supervisor) -> str | None:
    """Read through a call: mypy would otherwise narrow the attribute across awaits."""
    return sup.read_error


@pytest.fixture
def world(tmp_path: Path) -> World:
    return World.create(tmp_path / "world.json", topology="handbook")


def config(tmp_path: Path) -> Config:
    return Config(interval=1.0, state_file=str(tmp_path / "state.json"), sync=SYNC)


def full_text(world: World) -> str:
    text = world.ifconfig("A").stdout
    assert text.endswith("\n")
    assert "pfsync0:" in text
    return text


def test_the_old_reading_took_most_line_end_cuts_for_a_sync_loss(world: World) -> None:
    """What the issue saw: read as it is printed, a cut at a line end often looks like SYNC
    loss (pfsync0 or em2 missing, em2 without status). This is what the confirmation fixes."""
    text = full_text(world)
    lost = 0
    ends = [i + 1 for i, c in enumerate(text) if c == "\n"]
    for cut in ends[:-1]:
        view = HostView(parse_ifconfig(text[:cut]))
        if sync_round(view, SYNC, None) is Round.HARD:
            lost += 1
    assert lost > len(ends) // 2


def test_every_cut_inside_a_line_is_refused_by_the_parser(world: World) -> None:
    text = full_text(world)
    for cut in range(1, len(text)):
        if text[cut - 1] != "\n":
            with pytest.raises(ParseError, match="cut short"):
                parse_ifconfig(text[:cut])


async def test_no_truncation_point_of_the_handbook_output_demotes(
    tmp_path: Path, world: World, autojump_clock: trio.testing.MockClock
) -> None:
    """Walk EVERY truncation point, 0 .. len, each between two complete reads."""
    text = full_text(world)
    host, log = CutHost(world, "A"), RecordingLog()
    sup = Supervisor(config(tmp_path), host, FakeProber(), log, wall=trio.current_time)
    sup.load()
    await sup.poll_once()
    await sup.poll_once()
    assert sup.checks["sync"].up is True
    baselines = dict(sup.memory.vhids)
    assert set(baselines) == {("carp0", 10), ("carp1", 20)}
    failed = confirmed = 0
    for cut in range(len(text) + 1):
        host.cut = cut
        reads = sup.telemetry.read_errors
        await sup.poll_once()
        failed += sup.telemetry.read_errors - reads
        confirmed += sum(1 for a in host.argvs if len(a) == 2 and a[1] != "-g")
        host.argvs.clear()
        assert sup.checks["sync"].up is True, f"cut at {cut}: {sup.details.get('sync')}"
        assert not sup.memory.demoted, f"cut at {cut}"
        host.cut = None
        await sup.poll_once()
        assert sup.memory.vhids == baselines, f"cut at {cut}"
        assert sup.view is not None
        assert sup.view.interfaces == world.view("A").interfaces, f"cut at {cut}"
    assert "check down" not in log.events()
    assert "demoting" not in log.events()
    # every cut inside a line, and the empty output, is a failed read (no round)
    assert failed >= len(text) - text.count("\n")
    assert confirmed > 0  # the cuts at a line end were confirmed by `ifconfig NAME`


async def test_no_truncation_point_of_the_first_read_demotes(
    tmp_path: Path, world: World, autojump_clock: trio.testing.MockClock
) -> None:
    """At start there is no previous read to compare with: what the SYNC check would take
    for a loss by its absence (pfsync0, its pfsync line, the syncdev, its status) is
    confirmed first."""
    text = full_text(world)
    cache: dict[tuple[str, ...], Result] = {}
    for cut in range(len(text) + 1):
        host, log = CutHost(world, "A", cache), RecordingLog()
        conf = config(tmp_path / str(cut))
        sup = Supervisor(conf, host, FakeProber(), log, wall=trio.current_time)
        host.cut = cut
        await sup.poll_once()
        assert sup.checks["sync"].up is not False, f"cut at {cut}: {sup.details.get('sync')}"
        assert not sup.memory.demoted


async def test_a_real_loss_still_counts_at_once(
    tmp_path: Path, world: World, autojump_clock: trio.testing.MockClock
) -> None:
    """Confirmation costs no round: pfsync0 destroyed, or em2 read as `no carrier`, demotes
    at the very read that shows it."""
    host, log = CutHost(world, "A"), RecordingLog()
    sup = Supervisor(config(tmp_path), host, FakeProber(), log, wall=trio.current_time)
    sup.load()
    await sup.poll_once()
    await sup.poll_once()
    assert world.ifconfig("A", "pfsync0", "destroy").code == 0
    host._cache.clear()
    await sup.poll_once()
    assert ("ifconfig", "pfsync0") in host.argvs  # confirmed: no such interface
    assert sup.memory.demoted
    assert sup.details["sync"] == "pfsync0 missing"


async def test_no_carrier_counts_without_confirmation(
    tmp_path: Path, world: World, autojump_clock: trio.testing.MockClock
) -> None:
    host, log = CutHost(world, "A"), RecordingLog()
    sup = Supervisor(config(tmp_path), host, FakeProber(), log, wall=trio.current_time)
    sup.load()
    await sup.poll_once()
    await sup.poll_once()
    world.set_link("A", "em2", up=False)
    host._cache.clear()
    host.argvs.clear()
    await sup.poll_once()
    assert sup.memory.demoted
    assert all(len(a) != 2 or a[1] == "-g" for a in host.argvs)  # no `ifconfig NAME`


async def test_a_wholesale_loss_is_a_failed_read_until_the_next_read_agrees(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    """More than CONFIRM_MAX interfaces gone at once: no round, no `ifconfig NAME` storm;
    when the next read shows the same, it is believed (the operator destroyed them)."""
    host, log = FakeHost.handbook(), RecordingLog()
    for n in range(CONFIRM_MAX + 1):
        host.interfaces[f"vlan{n}"] = phys(f"vlan{n}")
    sup = Supervisor(config(tmp_path), host, FakeProber(), log, wall=trio.current_time)
    sup.load()
    await sup.poll_once()
    await sup.poll_once()
    for n in range(CONFIRM_MAX + 1):
        del host.interfaces[f"vlan{n}"]
    await sup.poll_once()
    assert sup.telemetry.read_errors == 1
    assert "9 interfaces missing at once" in str(read_error(sup))
    await sup.poll_once()
    assert read_error(sup) is None
    assert sup.view is not None
    assert "vlan0" not in sup.view.names
    assert sup.checks["sync"].up is True
